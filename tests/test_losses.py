"""Tests for tfsynth.losses: CRN's diversity loss, masked feature error and plain L1.

Small hand-computed examples and numpy references.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfsynth import losses

pytestmark = pytest.mark.unit


# ------------------------------------------------------------------------- diversity loss

# B=1, K=3 outputs, C=2 classes: content[k][c].
CONTENT_1 = [[1.0, 6.0],
             [3.0, 2.0],
             [5.0, 4.0]]
# min over k:  class 0 -> 1 (output 0), class 1 -> 2 (output 1); sum = 3
# mean over k: class 0 -> (1+3+5)/3 = 3, class 1 -> (6+2+4)/3 = 4; sum = 7
# L = 0.999 * 3 + 0.001 * 7 = 2.997 + 0.007 = 3.004
EXPECTED_1 = 3.004

# A second example: output 0 renders both classes perfectly.
CONTENT_2 = [[0.0, 0.0],
             [2.0, 2.0],
             [4.0, 4.0]]
# min: 0 + 0 = 0; mean: 2 + 2 = 4; L = 0.999 * 0 + 0.001 * 4 = 0.004
EXPECTED_2 = 0.004


def test_diversity_loss_hand_computed_single_example():
    result = losses.diversity_loss(tf.constant([CONTENT_1]))
    assert tuple(result.shape) == (1,)
    np.testing.assert_allclose(result.numpy(), [EXPECTED_1], rtol=1e-6)


def test_diversity_loss_batch_is_per_example():
    result = losses.diversity_loss(tf.constant([CONTENT_1, CONTENT_2]))
    assert tuple(result.shape) == (2,)
    np.testing.assert_allclose(result.numpy(), [EXPECTED_1, EXPECTED_2], rtol=1e-6, atol=1e-7)
    # Order of the batch is kept.
    swapped = losses.diversity_loss(tf.constant([CONTENT_2, CONTENT_1]))
    np.testing.assert_allclose(swapped.numpy(), [EXPECTED_2, EXPECTED_1], rtol=1e-6, atol=1e-7)


def test_diversity_loss_weights_are_arguments():
    content = tf.constant([CONTENT_1])
    # Pure min: 3; pure mean: 7.
    np.testing.assert_allclose(
        losses.diversity_loss(content, min_weight=1.0, mean_weight=0.0).numpy(), [3.0])
    np.testing.assert_allclose(
        losses.diversity_loss(content, min_weight=0.0, mean_weight=1.0).numpy(), [7.0])


def test_diversity_loss_matches_numpy_on_random_input():
    content = np.random.default_rng(0).uniform(0, 10, (4, 9, 20)).astype(np.float32)
    expected = 0.999 * content.min(axis=1).sum(-1) + 0.001 * content.mean(axis=1).sum(-1)
    np.testing.assert_allclose(losses.diversity_loss(tf.constant(content)).numpy(), expected,
                               rtol=1e-5)


def test_diversity_loss_gradient_goes_mostly_to_the_best_output():
    content = tf.Variable([CONTENT_1])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(losses.diversity_loss(content))
    grad = tape.gradient(loss, content).numpy()[0]
    # d/dcontent[k, c] = 0.999 * [k is argmin for c] + 0.001 / K
    expected = np.full((3, 2), 0.001 / 3)
    expected[0, 0] += 0.999
    expected[1, 1] += 0.999
    np.testing.assert_allclose(grad, expected, rtol=1e-5)


# ------------------------------------------------------------------- masked feature error

def _masked_feature_error_reference(real, fakes, mask):
    b_count, k_count = fakes.shape[:2]
    h, w, c_count = mask.shape[1:]
    out = np.zeros((b_count, k_count, c_count), np.float64)
    for b in range(b_count):
        for k in range(k_count):
            diff = np.abs(fakes[b, k].astype(np.float64) - real[b]).mean(axis=-1)  # [h, w]
            for c in range(c_count):
                out[b, k, c] = (mask[b, :, :, c] * diff).sum() / (h * w)
    return out


def test_masked_feature_error_matches_numpy():
    rng = np.random.default_rng(1)
    b, k, h, w, d, c = 2, 3, 4, 5, 6, 4
    real = rng.normal(size=(b, h, w, d)).astype(np.float32)
    fakes = rng.normal(size=(b, k, h, w, d)).astype(np.float32)
    mask = rng.uniform(size=(b, h, w, c)).astype(np.float32)  # soft, like an area-resized mask
    result = losses.masked_feature_error(tf.constant(real), tf.constant(fakes), tf.constant(mask))
    assert tuple(result.shape) == (b, k, c)
    np.testing.assert_allclose(result.numpy(), _masked_feature_error_reference(real, fakes, mask),
                               rtol=1e-5, atol=1e-6)


def test_masked_feature_error_normalises_by_all_pixels_not_class_area():
    # 2x2 features, d=2, one fake. |fake-real| per pixel (mean over channels):
    #   pixel (0,0): |[2, 4]| -> 3;  every other pixel: 0 ... except (1,1): |[1, 1]| -> 1.
    real = np.zeros((1, 2, 2, 2), np.float32)
    fakes = np.zeros((1, 1, 2, 2, 2), np.float32)
    fakes[0, 0, 0, 0] = [2.0, -4.0]
    fakes[0, 0, 1, 1] = [1.0, 1.0]
    # Class 0 covers only pixel (0,0); class 1 covers pixels (0,1) and (1,1).
    mask = np.zeros((1, 2, 2, 2), np.float32)
    mask[0, 0, 0, 0] = 1.0
    mask[0, 0, 1, 1] = 1.0
    mask[0, 1, 1, 1] = 1.0
    result = losses.masked_feature_error(real, fakes, mask).numpy()
    # Class 0: 3 / 4 pixels = 0.75 (not 3 / 1 = 3, the class-area normalisation).
    # Class 1: (0 + 1) / 4 = 0.25 (not 1 / 2).
    np.testing.assert_allclose(result, [[[0.75, 0.25]]], rtol=1e-6)


# ---------------------------------------------------------------------------- feature L1

def test_feature_l1_matches_numpy():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(3, 4, 5, 6)).astype(np.float32)
    fakes = rng.normal(size=(3, 2, 4, 5, 6)).astype(np.float32)
    result = losses.feature_l1(tf.constant(real), tf.constant(fakes))
    assert tuple(result.shape) == (3,)
    expected = np.abs(fakes - real[:, None]).mean(axis=(1, 2, 3, 4))
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5)


def test_feature_l1_hand_computed():
    real = np.zeros((1, 1, 2, 1), np.float32)
    fakes = np.array([[[[[1.0], [-3.0]]]]], np.float32)  # [1, 1, 1, 2, 1]
    # mean(|1|, |-3|) = 2
    assert losses.feature_l1(real, fakes).numpy() == pytest.approx([2.0])
