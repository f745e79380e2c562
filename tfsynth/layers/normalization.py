"""Normalization layers that Keras does not ship in the form these papers used."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfsynth")
class SlimLayerNormalization(keras.layers.Layer):
    """Layer norm as TF1 ``tf.contrib.layers.layer_norm`` computed it for NHWC tensors.

    Moments are taken per example over H, W and C together, but the learned scale and offset are
    per channel, and epsilon is 1e-12. ``keras.layers.LayerNormalization(axis=[1, 2, 3])`` would
    learn an (H, W, C) scale instead, which is neither CRN's parameterisation nor independent of
    the resolution.
    """

    def __init__(self, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, x):
        # Statistics in float32 even under a bfloat16 policy: the variance of 1e5 activations
        # in bf16 loses most of its digits.
        x32 = tf.cast(x, tf.float32)
        mean, variance = tf.nn.moments(x32, axes=[1, 2, 3], keepdims=True)
        normed = (x32 - mean) * tf.math.rsqrt(variance + self.epsilon)
        gamma = tf.cast(self.gamma, tf.float32)
        beta = tf.cast(self.beta, tf.float32)
        return tf.cast(normed * gamma + beta, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def instance_norm(name: str | None = None) -> keras.layers.Layer:
    """PyTorch ``InstanceNorm2d`` as pix2pix/CycleGAN use it: no affine parameters, epsilon 1e-5.

    GroupNormalization with one group per channel is instance norm (tensorflow-addons' layer is
    gone); its default epsilon (1e-3) differs from PyTorch's, hence explicit.
    """
    return keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, center=False, scale=False, name=name)


def batch_norm(name: str | None = None) -> keras.layers.Layer:
    """PyTorch ``BatchNorm2d`` defaults: running averages keep 0.9 of the old value, epsilon 1e-5.

    Keras defaults (momentum 0.99, epsilon 1e-3) would train differently. Gamma is initialised
    N(1, 0.02) as pix2pix's ``init_weights`` does.
    """
    return keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5,
        gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02), name=name)


def make_norm(kind: str, name: str | None = None) -> keras.layers.Layer:
    """``"batch"`` or ``"instance"``; an unknown kind names the valid ones."""
    factories = {"batch": batch_norm, "instance": instance_norm}
    if kind not in factories:
        raise ValueError(f"unknown norm {kind!r}; valid: {', '.join(factories)}")
    return factories[kind](name)
