"""Adam with TensorFlow's fused update kernel.

Keras 3's Adam updates each variable with about ten elementwise ops (two moment updates, a
square, a square root, a division, three assignments), each one pass over the variable's
memory. On a CPU that traffic is a large share of a GAN step: with pix2pix's 57 M parameters
the profile of the paper configuration put 25 % of the step in those ops. ``Adam`` here makes
the same update in one pass per variable with TensorFlow's ``ResourceApplyAdam`` kernel
(multi-threaded, vectorised), the kernel TF1's ``AdamOptimizer`` used.

The rule is Keras' (and TF1's) exactly, up to rounding: with t the step (from 1),

    m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,
    w <- w - lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps).

Variables, slot names and checkpoints are Keras Adam's, so runs saved with either restore
into the other. Sparse gradients and AMSGrad take Keras' own path.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfsynth")
class Adam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` whose dense updates run TensorFlow's fused Adam kernel."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices) or not hasattr(variable, "handle"):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].value.handle, v=self._velocities[index].value.handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype), use_locking=False)
