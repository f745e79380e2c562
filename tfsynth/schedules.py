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
    """

    def __init__(self, initial_learning_rate: float, steps_per_epoch: int, constant_epochs: int,
                 decay_epochs: int):
        self.initial_learning_rate = initial_learning_rate
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.constant_epochs = constant_epochs
        self.decay_epochs = decay_epochs

    def __call__(self, step):
        epoch = tf.math.floordiv(tf.cast(step, tf.int64), self.steps_per_epoch) + 1
        over = tf.maximum(tf.cast(epoch, tf.float32) - float(self.constant_epochs), 0.0)
        return self.initial_learning_rate * (1.0 - over / float(self.decay_epochs + 1))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "steps_per_epoch": self.steps_per_epoch, "constant_epochs": self.constant_epochs,
                "decay_epochs": self.decay_epochs}
