"""tfsynth.optimizers.Adam: Keras' Adam rule in TensorFlow's fused kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfsynth import optimizers

pytestmark = pytest.mark.unit


def numpy_adam(weights, gradients, lr, beta_1, beta_2, epsilon):
    """The rule in the module docstring, step by step in float64."""
    m, v, w = np.zeros_like(weights), np.zeros_like(weights), weights.astype(np.float64)
    for t, g in enumerate(gradients, start=1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        w = w - lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (np.sqrt(v) + epsilon)
    return w


def train(optimizer, weights, gradients):
    variable = keras.Variable(weights)
    optimizer.build([variable])
    step = tf.function(lambda g: optimizer.apply_gradients([(g, variable)]))
    for g in gradients:
        step(tf.constant(g))
    return variable, optimizer


def test_fused_adam_follows_the_rule_and_keras_adam():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(40, 30)).astype(np.float32)
    gradients = [rng.normal(size=weights.shape).astype(np.float32) for _ in range(4)]
    hyper = dict(learning_rate=0.01, beta_1=0.5, beta_2=0.999, epsilon=1e-8)
    fused, optimizer = train(optimizers.Adam(**hyper), weights, gradients)
    expected = numpy_adam(weights, gradients, 0.01, 0.5, 0.999, 1e-8)
    np.testing.assert_allclose(fused.numpy(), expected, rtol=0, atol=2e-6)
    assert np.abs(expected - weights).max() > 0.02  # four steps of about lr each
    keras_variable, _ = train(keras.optimizers.Adam(**hyper), weights, gradients)
    np.testing.assert_allclose(fused.numpy(), keras_variable.numpy(), rtol=0, atol=2e-6)
    assert int(optimizer.iterations) == 4


def test_checkpoints_of_keras_adam_restore_into_the_fused_one(tmp_path):
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(8,)).astype(np.float32)
    gradients = [rng.normal(size=weights.shape).astype(np.float32) for _ in range(2)]
    _, saved = train(keras.optimizers.Adam(0.01), weights, gradients)
    path = tf.train.Checkpoint(optimizer=saved).write(str(tmp_path / "ckpt"))
    restored = optimizers.Adam(0.01)
    restored.build([keras.Variable(weights)])
    tf.train.Checkpoint(optimizer=restored).read(path).assert_consumed()
    assert int(restored.iterations) == 2
    for a, b in zip(saved.variables, restored.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
