"""Normalization layers that Keras does not ship in the form these papers used."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfsynth")
class SlimLayerNormalization(keras.layers.Layer):
    """Layer norm as TF1 ``tf.contrib.layers.layer_norm`` computed it for NHWC tensors, optionally
    followed by a leaky ReLU fused into it.

    Moments are taken per example over H, W and C together, but the learned scale and offset are
    per channel, and epsilon is 1e-12. ``keras.layers.LayerNormalization(axis=[1, 2, 3])`` would
    learn an (H, W, C) scale instead, which is neither CRN's parameterisation nor independent of
    the resolution.

    The backward pass is written out (:func:`layer_norm_leaky_relu`), so training keeps only the
    input and two numbers per example, where TensorFlow's automatic one keeps four tensors the
    size of the input (x - mean, the normalised x, the output and, with the activation as its
    own layer, its output): on CRN 256p that is 2 GiB of activations.

    Args:
      epsilon: added to the variance.
      negative_slope: the fused leaky ReLU's slope for negative values; None: no activation.
    """

    def __init__(self, epsilon: float = 1e-12, negative_slope: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.negative_slope = negative_slope

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, x):
        # Statistics in float32 even under a bfloat16 policy: the variance of 1e5 activations
        # in bf16 loses most of its digits.
        slope = 1.0 if self.negative_slope is None else self.negative_slope
        y = layer_norm_leaky_relu(tf.cast(x, tf.float32), tf.cast(self.gamma, tf.float32),
                                  tf.cast(self.beta, tf.float32), self.epsilon, slope)
        return tf.cast(y, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "negative_slope": self.negative_slope}


def layer_norm_leaky_relu(x, gamma, beta, epsilon: float, slope: float):
    """``leaky_relu(gamma n + beta, slope)`` with ``n = (x - mean) / sqrt(var + epsilon)``, the
    moments per example over H, W, C; float32 [N, H, W, C] in and out (slope 1: no activation).

    Gradients, with z = gamma n + beta, dz = dy (1 where z > 0, else slope), and <.> the mean
    over H, W, C of one example::

        d beta = sum_{N,H,W} dz,   d gamma = sum_{N,H,W} dz n,
        dx = (dn - <dn> - n <dn n>) / sqrt(var + epsilon),   dn = gamma dz.

    Only x and the per-example mean and 1 / sqrt(var + epsilon) are kept for them. Every
    full-size step is an affine map of x or dz with [N, 1, 1, C] coefficients (z = a x + b,
    dx = A dz + B x + C), which TensorFlow's CPU kernels broadcast at memory speed, where the
    [N, 1, 1, 1] per-example statistics broadcast ten times slower (measured on CRN 256p).
    """

    @tf.custom_gradient
    def fused(x, gamma, beta):
        mean, variance = tf.nn.moments(x, axes=[1, 2, 3], keepdims=True)
        inverse_std = tf.math.rsqrt(variance + epsilon)  # [N, 1, 1, 1]
        scale = inverse_std * gamma  # [N, 1, 1, C]: z = scale x + shift
        shift = beta - mean * scale

        def activation(z):
            return z if slope == 1.0 else tf.nn.leaky_relu(z, slope)

        def backward(dy):
            dz = dy if slope == 1.0 else tf.where(x * scale + shift > 0, dy, slope * dy)
            sum_dz = tf.reduce_sum(dz, axis=[1, 2], keepdims=True)  # [N, 1, 1, C]
            sum_dz_x = tf.reduce_sum(dz * x, axis=[1, 2], keepdims=True)
            sum_dz_n = inverse_std * (sum_dz_x - mean * sum_dz)  # sum over H, W of dz n
            d_beta = tf.reduce_sum(sum_dz, axis=[0, 1, 2])
            d_gamma = tf.reduce_sum(sum_dz_n, axis=[0, 1, 2])
            count = tf.cast(tf.reduce_prod(tf.shape(x)[1:]), x.dtype)
            mean_dn = tf.reduce_sum(gamma * sum_dz, axis=-1, keepdims=True) / count  # <dn>, [N, 1, 1, 1]
            mean_dn_n = tf.reduce_sum(gamma * sum_dz_n, axis=-1, keepdims=True) / count  # <dn n>
            # dx = inverse_std (gamma dz - <dn> - (x - mean) inverse_std <dn n>)
            x_coefficient = -tf.square(inverse_std) * mean_dn_n
            constant = inverse_std * (inverse_std * mean * mean_dn_n - mean_dn)
            channels = tf.ones_like(gamma)  # per-example numbers as [N, 1, 1, C], the fast broadcast
            dx = dz * scale + (x * (x_coefficient * channels) + constant * channels)
            return dx, d_gamma, d_beta

        return activation(x * scale + shift), backward

    return fused(x, gamma, beta)


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


@keras.saving.register_keras_serializable(package="tfsynth")
class GlobalBatchNormalization(keras.layers.BatchNormalization):
    """Batch norm over the global batch (every replica's examples), with the variance computed
    in two passes: the mean first, then the mean squared deviation from it. Keras' synchronized
    batch norm takes E[x^2] - E[x]^2, which loses digits to cancellation (measured on FastGAN's
    tiny configuration: one device and two differed by 2.4e-3 of an update with it, 1.6e-3 with this)."""

    def __init__(self, **kwargs):
        kwargs["synchronized"] = False  # the statistics below are synchronized themselves
        super().__init__(**kwargs)

    def _moments(self, inputs, mask):
        context = tf.distribute.get_replica_context()
        axes = self._reduction_axes

        def global_sum(value):
            value = tf.reduce_sum(value, axis=axes)
            return context.all_reduce("SUM", value) if context is not None else value

        x = tf.cast(inputs, tf.float32)
        count = global_sum(tf.ones_like(x[..., :1]))
        mean = global_sum(x) / count
        variance = global_sum(tf.square(x - mean)) / count
        return tf.cast(mean, inputs.dtype), tf.cast(variance, inputs.dtype)
