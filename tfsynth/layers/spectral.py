"""Spectral normalization as PyTorch's ``torch.nn.utils.spectral_norm`` computes it.

FastGAN (and SPADE) wrap every convolution in spectral norm (Miyato et al. 2018). Keras'
``SpectralNormalization`` writes ``W / sigma`` back into the trainable kernel, so the
optimizer steps the normalised kernel and no gradient flows through sigma (docs/tensorflow-notes.md Q3). The
reference keeps the raw weight as the parameter and normalises it in the forward pass, with
the gradient through sigma(W); this layer does the same:

* the kernel stays the trainable variable; every call convolves with ``W / sigma(W)``;
* sigma comes from one power iteration per training call on the kernel viewed as a
  [k k C_in, C_out] matrix (PyTorch's [C_out, C_in k k] transposed: the same singular value),
  starting from the persistent vector ``u`` (non-trainable, so not counted as a parameter),
  which only training calls update;
* u and v are held constant in the gradient, as PyTorch detaches them.
"""

from __future__ import annotations

import keras
import tensorflow as tf

EPSILON = 1e-12  # PyTorch's normalize() floor


def _normalize(x):
    return x / tf.maximum(tf.norm(x), EPSILON)


@keras.saving.register_keras_serializable(package="tfsynth")
class SpectralConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` whose kernel is divided by its spectral norm in every call."""

    def build(self, input_shape):
        super().build(input_shape)
        # Every replica computes the same u; a synchronized (mean) assign keeps their copies equal
        # (replica-local assigns let them drift apart under MirroredStrategy, measured).
        self.spectral_u = self.add_weight(shape=(1, self.filters), initializer=keras.initializers.RandomNormal(),
                                          trainable=False, aggregation="mean", name="spectral_u")

    def normalized_kernel(self, training: bool = False):
        kernel = tf.cast(self.kernel, tf.float32)
        matrix = tf.reshape(kernel, (-1, self.filters))
        u = tf.cast(self.spectral_u, tf.float32)
        v = tf.stop_gradient(_normalize(tf.matmul(u, matrix, transpose_b=True)))
        u = tf.stop_gradient(_normalize(tf.matmul(v, matrix)))
        if training:
            self.spectral_u.assign(u)
        sigma = tf.reduce_sum(tf.matmul(v, matrix) * u)
        return kernel / sigma

    def call(self, inputs, training=None):
        kernel = tf.cast(self.normalized_kernel(bool(training)), inputs.dtype)
        outputs = self.convolution_op(inputs, kernel)
        if self.use_bias:
            outputs = outputs + tf.cast(self.bias, outputs.dtype)
        return self.activation(outputs)
