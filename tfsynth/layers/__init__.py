"""Layers shared by several model families (Keras 3, TensorFlow backend)."""

from tfsynth.layers.normalization import SlimLayerNormalization
from tfsynth.layers.resampling import AreaDownsample2D, BilinearResize

__all__ = ["AreaDownsample2D", "BilinearResize", "SlimLayerNormalization"]
