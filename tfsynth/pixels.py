"""Pixel scales, in one place: uint8 (or 0..255 float) pixels and the [-1, 1] range GANs use.

Entry points that parse flags before TensorFlow loads import this module inside functions.
"""

import tensorflow as tf


def to_unit_range(images):
    """0..255 -> float32 in [-1, 1]: ``x / 127.5 - 1``."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def from_unit_range(images):
    """[-1, 1] -> float32 on the 0..255 scale: ``(x + 1) * 127.5``."""
    return (tf.cast(images, tf.float32) + 1.0) * 127.5


def to_uint8(images):
    """0..255 floats -> uint8: ``round(x)`` clipped to [0, 255]."""
    return tf.cast(tf.clip_by_value(tf.round(images), 0, 255), tf.uint8)


def unit_range_to_uint8(images):
    """[-1, 1] -> uint8: ``to_uint8(from_unit_range(x))``."""
    return to_uint8(from_unit_range(images))
