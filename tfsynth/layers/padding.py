"""Padding layers."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfsynth")
class ReflectionPadding2D(keras.layers.Layer):
    """Reflection padding of H and W (PyTorch ``ReflectionPad2d``: the edge pixel is not repeated).

    Residual generators pad this way so that borders carry image content rather than zeros.
    The padding must be smaller than the padded dimension.
    """

    def __init__(self, padding: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.padding = padding

    def call(self, x):
        p = self.padding
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, input_shape):
        grow = lambda n: None if n is None else n + 2 * self.padding  # noqa: E731
        return (input_shape[0], grow(input_shape[1]), grow(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}
