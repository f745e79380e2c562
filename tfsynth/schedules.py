"""Learning-rate schedules of the papers, as Keras schedules driven by the optimizer's step."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfsynth")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """pix2pix / CycleGAN "linear" policy: constant, then linearly towards zero, per epoch.

    For the 1-indexed epoch e the rate is ``initial * (1 - max(0, e - constant_epochs) /
    (decay_epochs + 1))``: it changes at epoch boundaries, as PyTorch's LambdaLR stepped once
    per epoch, and the last epoch still trains at ``initial / (decay_epochs + 1)``.

    With ``policy="pix2pixhd"`` the rate is ``initial * (1 - max(0, e - constant_epochs - 1) /
    decay_epochs)``: pix2pixHD lowers it by ``initial / decay_epochs`` after every epoch past
    ``constant_epochs``, so it reaches zero after the last epoch.

    ``step_offset`` is the training step at which the optimizer takes its first step, for an
    optimizer that starts mid-run (pix2pixHD's fresh Adam after ``niter_fix_global``): epochs
    count from the start of training, not from the optimizer's first step.
    """

    POLICIES = ("pix2pix", "pix2pixhd")

    def __init__(self, initial_learning_rate: float, steps_per_epoch: int, constant_epochs: int,
                 decay_epochs: int, policy: str = "pix2pix", step_offset: int = 0):
        if policy not in self.POLICIES:
            raise ValueError(f"policy must be one of {', '.join(self.POLICIES)}, got {policy!r}")
        self.initial_learning_rate = initial_learning_rate
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.constant_epochs = constant_epochs
        self.decay_epochs = decay_epochs
        self.policy = policy
        self.step_offset = int(step_offset)

    def __call__(self, step):
        step = tf.cast(step, tf.int64) + self.step_offset
        epoch = tf.cast(tf.math.floordiv(step, self.steps_per_epoch) + 1, tf.float32)
        if self.policy == "pix2pixhd":
            over = tf.maximum(epoch - float(self.constant_epochs) - 1.0, 0.0)
            return self.initial_learning_rate * tf.maximum(1.0 - over / float(max(self.decay_epochs, 1)), 0.0)
        over = tf.maximum(epoch - float(self.constant_epochs), 0.0)
        return self.initial_learning_rate * (1.0 - over / float(self.decay_epochs + 1))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "steps_per_epoch": self.steps_per_epoch, "constant_epochs": self.constant_epochs,
                "decay_epochs": self.decay_epochs, "policy": self.policy, "step_offset": self.step_offset}
