"""Activation layers the papers use that Keras does not ship."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfsynth")
class GLU(keras.layers.Layer):
    """Gated linear unit over channels: [a, b] -> a * sigmoid(b); halves the channels."""

    def call(self, x):
        a, b = tf.split(x, 2, axis=-1)
        return a * tf.sigmoid(b)

    def compute_output_shape(self, shape):
        return (*shape[:-1], shape[-1] // 2)
