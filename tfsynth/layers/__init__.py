"""Layers and small networks shared by several model families (Keras 3, TensorFlow backend)."""

from tfsynth.layers import resnet
from tfsynth.layers.activations import GLU
from tfsynth.layers.noise import NoiseInjection
from tfsynth.layers.normalization import (GlobalBatchNormalization, SlimLayerNormalization, batch_norm, instance_norm,
                                          make_norm)
from tfsynth.layers.padding import Quarter, ReflectionPadding2D, SlicedCropping2D, quarter
from tfsynth.layers.resampling import AdaptiveAveragePooling, AreaDownsample2D, AvgPoolDownsample, BilinearResize
from tfsynth.layers.small_maps import SmallMapConv2D, SmallMapConv2DTranspose
from tfsynth.layers.state import StoredTensor

__all__ = [
    "AdaptiveAveragePooling", "AreaDownsample2D", "AvgPoolDownsample", "BilinearResize", "GLU",
    "GlobalBatchNormalization", "NoiseInjection", "Quarter", "ReflectionPadding2D", "SlicedCropping2D",
    "SlimLayerNormalization", "SmallMapConv2D", "SmallMapConv2DTranspose", "StoredTensor", "batch_norm", "instance_norm",
    "make_norm", "quarter", "resnet",
]
