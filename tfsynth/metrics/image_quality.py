"""Per-image PSNR and SSIM against a reference, and a streaming mean.

Both wrap ``tf.image`` (``psnr``; ``ssim`` with its defaults: 11x11 Gaussian window, sigma 1.5,
k1 = 0.01, k2 = 0.03, as in Wang et al. 2004) so that numbers agree with other TensorFlow code.
Images are compared on the 0..255 scale (``max_val=255``) whether they arrive as uint8 or float.
SSIM of colour images is the mean over the three channels' SSIM maps, which is what
``tf.image.ssim`` computes; it needs images of at least 11x11 pixels.

PSNR of two identical images is +inf; a mean over a set containing one is +inf too.
"""

from __future__ import annotations

import numpy as np


def _pair(a, b):
    import tensorflow as tf  # Deferred so that importing tfsynth.metrics stays light.

    a = tf.cast(tf.convert_to_tensor(a), tf.float32)
    b = tf.cast(tf.convert_to_tensor(b), tf.float32)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.shape.rank < 3:
        raise ValueError(f"expected [..., H, W, C] images, got shape {a.shape}")
    return a, b


def psnr(a, b, max_val: float = 255.0) -> np.ndarray:
    """Peak signal-to-noise ratio in dB, one value per image.

    Args:
        a, b: ``[..., H, W, C]`` images on 0..max_val (uint8 or float).
        max_val: The dynamic range (255 for 8-bit images).

    Returns:
        float32 numpy array of shape ``a.shape[:-3]`` (+inf where the images are identical).
    """
    import tensorflow as tf

    a, b = _pair(a, b)
    return tf.image.psnr(a, b, max_val=max_val).numpy()


def ssim(a, b, max_val: float = 255.0, **kwargs) -> np.ndarray:
    """Structural similarity (``tf.image.ssim``), one value per image.

    Args:
        a, b: ``[..., H, W, C]`` images on 0..max_val, H and W at least the filter size (11).
        max_val: The dynamic range (255 for 8-bit images).
        **kwargs: ``filter_size``, ``filter_sigma``, ``k1``, ``k2`` for ``tf.image.ssim``.

    Returns:
        float32 numpy array of shape ``a.shape[:-3]`` (1.0 where the images are identical).
    """
    import tensorflow as tf

    a, b = _pair(a, b)
    filter_size = int(kwargs.get("filter_size", 11))
    if min(a.shape[-3], a.shape[-2]) < filter_size:
        raise ValueError(f"SSIM needs images of at least {filter_size}x{filter_size}, got "
                         f"{a.shape[-3]}x{a.shape[-2]}")
    return tf.image.ssim(a, b, max_val=max_val, **kwargs).numpy()


def rgb_to_y(images) -> np.ndarray:
    """Luma Y of YCbCr (ITU-R BT.601, studio range 16..235, MATLAB's ``rgb2ycbcr``) of
    ``[..., H, W, 3]`` RGB on 0..255, as float ``[..., H, W, 1]``: the channel on which
    super-resolution papers report PSNR and SSIM."""
    rgb = np.asarray(images, np.float64)
    y = 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0
    return y[..., None].astype(np.float32)


def shave(images, border: int) -> np.ndarray:
    """``[..., H, W, C]`` without ``border`` pixels on each side (the SR protocol crops the
    scale factor's width, where upsampling has no neighbours to work from)."""
    images = np.asarray(images)
    return images[..., border:images.shape[-3] - border, border:images.shape[-2] - border, :] if border else images


def psnr_y(a, b, border: int = 0) -> np.ndarray:
    """PSNR of the Y channels after shaving ``border`` pixels, one value per image."""
    return psnr(shave(rgb_to_y(a), border), shave(rgb_to_y(b), border))


def ssim_y(a, b, border: int = 0) -> np.ndarray:
    """SSIM of the Y channels after shaving ``border`` pixels, one value per image."""
    return ssim(shave(rgb_to_y(a), border), shave(rgb_to_y(b), border))


class MeanMetric:
    """Streaming mean of per-item values (float64 sums), like ``keras.metrics.Mean`` without TF.

    ``update`` takes a scalar or an array of any shape; every element counts once.
    """

    def __init__(self, name: str = "mean"):
        self.name = name
        self.reset()

    def reset(self) -> None:
        self.total = 0.0
        self.count = 0

    def update(self, values) -> "MeanMetric":
        values = np.asarray(values, np.float64)
        self.total += float(values.sum())
        self.count += int(values.size)
        return self

    def result(self) -> float:
        """The mean so far (NaN before any update)."""
        return self.total / self.count if self.count else float("nan")
