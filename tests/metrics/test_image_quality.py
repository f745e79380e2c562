"""Tests for tfsynth.metrics.image_quality: PSNR/SSIM agree with tf.image; streaming mean."""

import numpy as np
import pytest
import tensorflow as tf

from tfsynth.metrics.image_quality import MeanMetric, psnr, ssim

pytestmark = pytest.mark.unit


def _pair(shape=(3, 32, 48, 3), seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    noise = rng.integers(-20, 21, shape)
    return a, np.clip(a.astype(np.int64) + noise, 0, 255).astype(np.uint8)


def test_psnr_ssim_equal_tf_image():
    a, b = _pair()
    fa, fb = tf.constant(a, tf.float32), tf.constant(b, tf.float32)
    p, s = psnr(a, b), ssim(a, b)
    assert p.shape == (3,) and s.shape == (3,)
    np.testing.assert_allclose(p, tf.image.psnr(fa, fb, max_val=255.0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(s, tf.image.ssim(fa, fb, max_val=255.0).numpy(), rtol=1e-6)
    # uint8 and float inputs on 0..255 give the same numbers.
    np.testing.assert_allclose(psnr(a.astype(np.float32), b.astype(np.float64)), p, rtol=1e-6)
    np.testing.assert_allclose(ssim(a.astype(np.float32), b), s, rtol=1e-6)
    assert np.all((s > 0) & (s < 1)) and np.all(p > 20)


def test_psnr_by_hand_and_identical_images():
    a = np.full((2, 16, 16, 3), 100, np.uint8)
    b = a + 5  # MSE 25 -> PSNR = 10 log10(255^2 / 25) = 20 log10(51) = 34.151 dB
    np.testing.assert_allclose(psnr(a, b), [20 * np.log10(51)] * 2, rtol=1e-5)
    img, _ = _pair((2, 16, 16, 3), seed=1)
    assert np.all(np.isposinf(psnr(img, img)))
    np.testing.assert_allclose(ssim(img, img), [1.0, 1.0], atol=1e-6)


def test_single_image_and_errors():
    a, b = _pair((16, 16, 3), seed=2)
    assert psnr(a, b).shape == () and ssim(a, b).shape == ()
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(a, b[:8])
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(a[:8, :8], b[:8, :8])


def test_mean_metric_streams():
    m = MeanMetric("psnr")
    assert np.isnan(m.result())
    m.update(np.array([1.0, 2.0])).update(6.0).update(np.array([[3.0]]))
    assert m.result() == pytest.approx(3.0) and m.count == 4
    m.update(np.inf)
    assert m.result() == np.inf
    m.reset()
    assert m.count == 0 and np.isnan(m.result())
