"""Noise drawn inside a network, as pure functions of per-example seeds (:mod:`tfsynth.seeded`)."""

import keras
import tensorflow as tf

from tfsynth import seeded


@keras.saving.register_keras_serializable(package="tfsynth")
class NoiseInjection(keras.layers.Layer):
    """``x + w n``: one noise map n ~ N(0, 1) per example, [H, W, 1] broadcast over channels,
    scaled by one learned scalar w that starts at 0. ``[x, seeds] -> x'``: the noise is drawn
    from each example's seed pair folded with this layer's ``salt``."""

    def __init__(self, salt: int, **kwargs):
        super().__init__(**kwargs)
        self.salt = salt

    def build(self, input_shapes):
        self.weight = self.add_weight(shape=(1,), initializer="zeros", name="weight")

    def call(self, inputs):
        x, seeds = inputs
        noise = seeded.normal(seeded.fold(seeds, self.salt), [x.shape[1], x.shape[2], 1])
        return x + tf.cast(self.weight * noise, x.dtype)

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self):
        return {**super().get_config(), "salt": self.salt}
