"""Tests for tfsynth.metrics.segmentation: confusion matrix, scores, train ids, resizing."""

import numpy as np
import pytest
import tensorflow as tf

from tfsynth.metrics.segmentation import (
    ConfusionMatrix,
    resize_for_scoring,
    scores,
    train_ids_from_label_ids,
)

pytestmark = pytest.mark.unit


def test_identical_predictions_score_perfectly():
    labels = np.random.default_rng(0).integers(0, 19, (2, 16, 32))
    labels[0, :2] = 255  # Ignored pixels: the label map also "predicts" 255 there.
    cm = ConfusionMatrix(19, ignore_label=255).update(labels, labels)
    s = cm.scores()
    assert s["pixel_accuracy"] == 1.0
    assert s["mean_class_accuracy"] == 1.0
    assert s["mean_iou"] == 1.0
    assert s["num_pixels"] == labels.size - 64
    assert np.trace(cm.matrix) == cm.matrix.sum()


def test_constant_prediction_by_hand():
    # Labels (one pixel ignored) and a constant prediction of class 0, with 4 classes:
    #   label 0: 2 pixels -> predicted 0    row 0 = [2, 0, 0, 0]
    #   label 1: 2 pixels -> predicted 0    row 1 = [2, 0, 0, 0]
    #   label 2: 1 pixel  -> predicted 0    row 2 = [1, 0, 0, 0]
    #   label 3: absent from labels and predictions: row 3 = 0, column 3 = 0
    # pixel accuracy = 2/5; class accuracy = [2/2, 0/2, 0/1, undefined] -> mean 1/3;
    # IoU: class 0 = 2 / (2 + 5 - 2) = 0.4, classes 1, 2 = 0, class 3 undefined -> mean 0.4/3.
    labels = np.array([[0, 0, 1], [1, 2, 255]], np.uint8)
    predictions = np.zeros_like(labels)
    cm = ConfusionMatrix(4, ignore_label=255).update(labels, predictions)
    np.testing.assert_array_equal(cm.matrix, [[2, 0, 0, 0], [2, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    s = cm.scores()
    assert s["pixel_accuracy"] == pytest.approx(0.4)
    assert s["mean_class_accuracy"] == pytest.approx(1 / 3)
    assert s["mean_iou"] == pytest.approx(0.4 / 3)
    np.testing.assert_allclose(s["per_class_accuracy"], [1, 0, 0, np.nan])
    np.testing.assert_allclose(s["per_class_iou"], [0.4, 0, 0, np.nan])
    assert s["num_pixels"] == 5


def test_class_predicted_but_absent_from_labels_counts_in_iou_only():
    # Everything predicted as class 2, which no label has: its IoU is 0/(0+4-0) = 0 and counts;
    # its accuracy is 0/0 and does not.
    labels = np.array([0, 0, 1, 1])
    s = scores(ConfusionMatrix(3, None).update(labels, np.full(4, 2)).matrix)
    np.testing.assert_allclose(s["per_class_iou"], [0, 0, 0])
    np.testing.assert_allclose(s["per_class_accuracy"], [0, 0, np.nan])
    assert s["mean_iou"] == 0 and s["mean_class_accuracy"] == 0


def test_ignore_label_excluded_whatever_is_predicted_there():
    labels = np.array([[1, 255], [255, 0]])
    predictions = np.array([[1, 7], [255, 0]])  # Out-of-range ids only at ignored pixels.
    cm = ConfusionMatrix(2, ignore_label=255).update(labels, predictions)
    assert cm.matrix.sum() == 2 and cm.scores()["pixel_accuracy"] == 1.0


def test_streaming_equals_one_shot_and_accepts_tensors():
    rng = np.random.default_rng(1)
    labels, predictions = rng.integers(0, 5, (2, 3, 8, 8)), rng.integers(0, 5, (2, 3, 8, 8))
    streamed = ConfusionMatrix(5)
    for lab, pred in zip(labels, predictions):
        streamed.update(tf.constant(lab), tf.constant(pred[..., None]))  # [N,H,W] vs [N,H,W,1]
    one_shot = ConfusionMatrix(5).update(labels, predictions)
    np.testing.assert_array_equal(streamed.matrix, one_shot.matrix)
    assert streamed.scores() == one_shot.scores()


@pytest.mark.parametrize("labels, predictions, offender", [
    ([0, 40, 1], [0, 0, 1], "40"),
    ([0, 1, -3], [0, 1, 1], "-3"),
    ([0, 1, 2], [0, 19, 2], "19"),
    ([0, 1, 2], [0, 255, 2], "255"),  # Ignore id predicted at a scored pixel.
])
def test_bad_ids_raise_naming_them(labels, predictions, offender):
    with pytest.raises(ValueError, match=rf"id\(s\) {offender}\b"):
        ConfusionMatrix(19, ignore_label=255).update(np.array(labels), np.array(predictions))


def test_shape_mismatch_and_empty():
    with pytest.raises(ValueError, match="same shape"):
        ConfusionMatrix(3).update(np.zeros((2, 4)), np.zeros((2, 5)))
    s = ConfusionMatrix(3).scores()
    assert np.isnan(s["pixel_accuracy"]) and np.isnan(s["mean_iou"])


def test_train_ids_from_label_ids_official_table():
    ids = np.array([[7, 26, 0, 34], [8, 33, 18, 24]], np.uint8)
    # road 7 -> 0, car 26 -> 13, unlabeled 0 -> 255, license plate 34 -> 255,
    # sidewalk 8 -> 1, bicycle 33 -> 18, polegroup 18 -> 255, person 24 -> 11.
    np.testing.assert_array_equal(train_ids_from_label_ids(ids),
                                  [[0, 13, 255, 255], [1, 18, 255, 11]])
    all_ids = train_ids_from_label_ids(np.arange(35))
    assert sorted(set(all_ids) - {255}) == list(range(19))
    with pytest.raises(ValueError, match="35"):
        train_ids_from_label_ids([3, 35])


def test_resize_for_scoring_nearest_for_ids_bilinear_for_photos():
    ids = np.array([[[1, 2], [3, 4]]], np.uint8)
    up = resize_for_scoring(ids, (4, 4))
    assert up.dtype == np.uint8
    np.testing.assert_array_equal(up[0], np.kron([[1, 2], [3, 4]], np.ones((2, 2))))
    photos = np.full((2, 8, 16, 3), 77, np.uint8)
    photos[1] = 200
    out = resize_for_scoring(photos, (32, 64))
    assert out.shape == (2, 32, 64, 3) and out.dtype == np.uint8
    assert np.all(out[0] == 77) and np.all(out[1] == 200)
    ramp = np.linspace(0, 255, 16, dtype=np.float32)[None, None, :, None].repeat(3, -1).repeat(8, 1)
    smooth = resize_for_scoring(ramp, (8, 32))
    assert smooth.dtype == np.float32 and len(np.unique(smooth[0, 0, :, 0])) > 16  # interpolated
