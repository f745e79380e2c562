"""Differentiable Augmentation (Zhao, Liu, Lin, Zhu & Han, NeurIPS 2020, arXiv:2006.10738).

The same random, differentiable transforms are applied to every image the discriminator sees,
real and generated, so that D cannot overfit a small training set while G still receives
gradients through the augmentation. FastGAN trains with the policy ``color,translation``
(docs/papers.md 5(c)); any GAN family can call :func:`diff_augment`.

Per example, in this order (the reference's ranges, images in [-1, 1]):

* ``color``: brightness ``x + b``, b ~ U(-0.5, 0.5); saturation ``(x - mean_c x) s + mean_c x``,
  s ~ U(0, 2) (mean over channels, per pixel); contrast ``(x - mean x) c + mean x``,
  c ~ U(0.5, 1.5) (mean over the whole image);
* ``translation``: an integer shift of up to ``round(H / 8)`` rows and ``round(W / 8)`` columns
  either way, uniform over the integers, the uncovered border filled with zeros;
* ``cutout`` is not part of FastGAN's policy and not implemented.

The function is pure: its randomness comes from per-example seeds (:mod:`tfsynth.seeded`), so
the same seeds give the same augmentation, e.g. for the discriminator's and the generator's
update of one step, or on one device and on two.
"""

from __future__ import annotations

import tensorflow as tf

from tfsynth import seeded

POLICIES = ("color", "translation")
TRANSLATION_RATIO = 0.125
# Independent streams of each example's seed for each transform.
_COLOR_SALT, _TRANSLATION_SALT = 1, 2


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"color,translation"`` -> ("color", "translation"); an unknown name is a ValueError."""
    names = tuple(filter(None, (part.strip() for part in policy.split(","))))
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise ValueError(f"DiffAugment policy {policy!r}: unknown {unknown}; valid: {', '.join(POLICIES)}")
    return names


def diff_augment(images, seeds, policy: str = "color,translation"):
    """Augments ``images`` [N, H, W, C] (float, [-1, 1]) with per-example ``seeds`` [N, 2].

    Differentiable with respect to ``images``; an empty policy returns them unchanged.
    """
    images = tf.cast(images, tf.float32)
    for name in parse_policy(policy):
        if name == "color":
            images = color(images, seeded.uniform(seeded.fold(seeds, _COLOR_SALT), [3]))
        else:
            images = translation(images, seeded.uniform(seeded.fold(seeds, _TRANSLATION_SALT), [2]))
    return images


def color(images, draws):
    """Brightness, saturation and contrast from ``draws`` [N, 3] uniform in [0, 1)."""
    brightness = draws[:, 0, None, None, None] - 0.5
    saturation = draws[:, 1, None, None, None] * 2.0
    contrast = draws[:, 2, None, None, None] + 0.5
    images = images + brightness
    channel_mean = tf.reduce_mean(images, axis=-1, keepdims=True)
    images = (images - channel_mean) * saturation + channel_mean
    image_mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - image_mean) * contrast + image_mean


def translation_shifts(draws, height, width):
    """Integer shifts [N, 2] (rows, columns) in [-round(H/8), round(H/8)] x [-round(W/8), ..]
    from ``draws`` [N, 2] uniform in [0, 1)."""
    sizes = tf.cast(tf.stack([height, width]), tf.float32)
    limits = tf.cast(tf.floor(sizes * TRANSLATION_RATIO + 0.5), tf.int32)
    shifts = tf.cast(tf.floor(draws * tf.cast(2 * limits + 1, tf.float32)), tf.int32) - limits
    return tf.minimum(shifts, limits)  # a draw of exactly 1.0 cannot occur; kept in range regardless


def translation(images, draws):
    """Each image shifted by its integer offset, zero fill: output[i, j] = input[i + dy, j + dx],
    0 where that falls outside (a gather, so gradients reach every pixel that stays in view)."""
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    shifts = translation_shifts(draws, height, width)
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
    # Indices into the padded image; anything beyond the image lands on a zero border.
    rows = tf.clip_by_value(tf.range(height)[None] + shifts[:, :1] + 1, 0, height + 1)
    cols = tf.clip_by_value(tf.range(width)[None] + shifts[:, 1:] + 1, 0, width + 1)
    shifted = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.ensure_shape(tf.gather(shifted, cols, axis=2, batch_dims=1), images.shape)
