"""Layers and small networks shared by several model families (Keras 3, TensorFlow backend)."""

from tfsynth.layers import resnet
from tfsynth.layers.normalization import SlimLayerNormalization, batch_norm, instance_norm, make_norm
from tfsynth.layers.padding import ReflectionPadding2D, SlicedCropping2D
from tfsynth.layers.resampling import AreaDownsample2D, AvgPoolDownsample, BilinearResize
from tfsynth.layers.small_maps import SmallMapConv2D, SmallMapConv2DTranspose
from tfsynth.layers.state import StoredTensor

__all__ = [
    "AreaDownsample2D", "AvgPoolDownsample", "BilinearResize", "ReflectionPadding2D", "SlicedCropping2D",
    "SlimLayerNormalization", "SmallMapConv2D", "SmallMapConv2DTranspose", "StoredTensor", "batch_norm", "instance_norm", "make_norm", "resnet",
]
