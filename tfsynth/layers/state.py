"""Model state that is not a network: kept in a layer so checkpoints and exports carry it."""

import keras


@keras.saving.register_keras_serializable(package="tfsynth")
class StoredTensor(keras.layers.Layer):
    """A tensor computed rather than trained (cluster centres, statistics gathered after
    training), held as a non-trainable weight.

    A family lists it in ``extra_state()`` (and in ``serving_state_keys`` when serving reads it):
    checkpoints then save and restore it, and exports hold it, as they do a network's weights.
    Calling the layer returns the tensor.
    """

    def __init__(self, shape, initial_value: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.shape = tuple(shape)
        self.initial_value = initial_value
        # An attribute of the layer, so that tf.train.Checkpoint finds it.
        self.value = self.add_weight(shape=self.shape, initializer=keras.initializers.Constant(initial_value),
                                     trainable=False, name="value")
        self.built = True

    def call(self):
        return self.value

    def assign(self, value) -> None:
        self.value.assign(value)

    def get_config(self):
        return {**super().get_config(), "shape": self.shape, "initial_value": self.initial_value}
