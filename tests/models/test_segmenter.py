"""The segmenter family: shapes, the masked loss, the trainId mapping, one training step."""

import numpy as np
import pytest
import tensorflow as tf

from tfsynth.models.segmenter import Segmenter, SegmenterConfig, masked_cross_entropy

TINY = SegmenterConfig(image_size=(32, 64), base_filters=4, depth=3)


def test_logits_keep_input_size_at_other_resolutions():
    model = Segmenter(TINY)
    assert model.segmenter(tf.zeros([2, 48, 96, 3])).shape == (2, 48, 96, 19)
    assert model.size_multiple == 8


def test_masked_cross_entropy_ignores_255_pixels():
    logits = tf.constant(np.random.default_rng(0).normal(size=(1, 2, 2, 19)), tf.float32)
    ids = tf.constant([[[3, 255], [255, 7]]], tf.uint8)
    expected = np.mean([
        tf.nn.sparse_softmax_cross_entropy_with_logits(3, logits[0, 0, 0]).numpy(),
        tf.nn.sparse_softmax_cross_entropy_with_logits(7, logits[0, 1, 1]).numpy()])
    assert float(masked_cross_entropy(ids, logits)) == pytest.approx(expected, rel=1e-6)
    assert float(masked_cross_entropy(tf.fill([1, 2, 2], tf.constant(255, tf.uint8)), logits)) == 0.0


def test_train_ids_follow_the_official_table():
    model = Segmenter(TINY)
    # road 7 -> 0, car 26 -> 13, polegroup 18 -> ignored, license plate 34 -> ignored
    ids = model.label_ids(tf.constant([7, 26, 18, 34, 0], tf.uint8)).numpy().tolist()
    assert ids == [0, 13, 255, 255, 255]


def test_one_step_lowers_nothing_to_nan_and_moves_weights():
    model = Segmenter(TINY)
    model.prepare_training()
    rng = np.random.default_rng(1)
    batch = {"image": tf.constant(rng.integers(0, 255, (2, 32, 64, 3)), tf.uint8),
             "label": tf.constant(rng.integers(0, 34, (2, 32, 64)), tf.uint8)}
    before = [w.numpy().copy() for w in model.segmenter.trainable_weights]
    losses = tf.function(model.train_step)(batch)
    assert np.isfinite(float(losses["cross_entropy"])) and 0 <= float(losses["pixel_accuracy"]) <= 1
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(before, model.segmenter.trainable_weights))
