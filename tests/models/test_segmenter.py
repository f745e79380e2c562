"""The segmenter family: shapes, the masked loss, the trainId mapping, its endpoint, one training step."""

import numpy as np
import pytest
import tensorflow as tf

from tfsynth.models.segmenter import Segmenter, SegmenterConfig, masked_cross_entropy

pytestmark = [pytest.mark.unit, pytest.mark.family("segmenter")]

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


def test_masked_cross_entropy_averages_per_image_then_over_images():
    # Image 0 has one labelled pixel, image 1 three: the loss is the mean of the two images'
    # means, not the mean over all four labelled pixels.
    logits = tf.constant(np.random.default_rng(2).normal(size=(2, 2, 2, 19)), tf.float32)
    ids = tf.constant([[[3, 255], [255, 255]], [[1, 2], [255, 5]]], tf.uint8)

    def ce(label, n, y, x):
        return tf.nn.sparse_softmax_cross_entropy_with_logits(label, logits[n, y, x]).numpy()

    image0 = ce(3, 0, 0, 0)
    image1 = np.mean([ce(1, 1, 0, 0), ce(2, 1, 0, 1), ce(5, 1, 1, 1)])
    pooled = np.mean([image0, ce(1, 1, 0, 0), ce(2, 1, 0, 1), ce(5, 1, 1, 1)])
    assert abs((image0 + image1) / 2 - pooled) > 1e-3  # the two normalisations differ here
    assert float(masked_cross_entropy(ids, logits)) == pytest.approx((image0 + image1) / 2, rel=1e-6)
    # A batch's loss is the mean of its examples' losses (replicas add up to the whole batch).
    halves = [float(masked_cross_entropy(ids[i:i + 1], logits[i:i + 1])) for i in range(2)]
    assert float(masked_cross_entropy(ids, logits)) == pytest.approx(np.mean(halves), rel=1e-6)


def test_train_ids_follow_the_official_table():
    model = Segmenter(TINY)
    # road 7 -> 0, car 26 -> 13, polegroup 18 -> ignored, license plate 34 -> ignored
    ids = model.label_ids(tf.constant([7, 26, 18, 34, 0], tf.uint8)).numpy().tolist()
    assert ids == [0, 13, 255, 255, 255]


def test_serving_endpoint_returns_argmax_train_ids():
    model = Segmenter(TINY)
    assert model.record_fields == ("image", "label")
    assert model.serving_state_keys == ("segmenter",)
    assert set(model.serving_state()) == {"segmenter"}
    endpoint, function = model.endpoint()
    assert endpoint.name == "serving_default" and endpoint.outputs == ("label",)
    assert [(i.name, i.kind, i.source) for i in endpoint.inputs] == [("image", "image", "image")]
    assert model.endpoint("serving_default")[0] is endpoint
    with pytest.raises(KeyError, match="serving_default"):
        model.endpoint("translate")
    images = tf.constant(np.random.default_rng(3).integers(0, 255, (2, 32, 64, 3)), tf.uint8)
    outputs = function(image=images)
    assert set(outputs) == {"label"} and outputs["label"].shape == (2, 32, 64)
    expected = np.argmax(model.segmenter(tf.cast(images, tf.float32)).numpy(), axis=-1)
    np.testing.assert_array_equal(outputs["label"].numpy(), expected)


def test_one_step_lowers_nothing_to_nan_and_moves_weights():
    model = Segmenter(TINY)
    model.prepare_training()
    rng = np.random.default_rng(1)
    batch = {"image": tf.constant(rng.integers(0, 255, (2, 32, 64, 3)), tf.uint8),
             "label": tf.constant(rng.integers(0, 34, (2, 32, 64)), tf.uint8)}
    before = [w.numpy().copy() for w in model.segmenter.trainable_weights]
    losses = tf.function(model.train_step)(batch)
    assert set(losses) == {"total", "pixel_accuracy"}
    assert np.isfinite(float(losses["total"])) and 0 <= float(losses["pixel_accuracy"]) <= 1
    assert list(model.optimizers) == ["segmenter"] and list(model.learning_rates()) == ["segmenter"]
    assert int(model.optimizers["segmenter"].iterations) == 1
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(before, model.segmenter.trainable_weights))
