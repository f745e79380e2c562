"""Per-example transforms for tf.data, applied jointly to every image of an example.

Random transforms are stateless and take one seed per example, so a photo, its label map and
its instance map get the same crop and flip, and a given seed always gives the same result
(reproducible pipelines, exact resume).
"""

from __future__ import annotations

import tensorflow as tf

#: Keys holding continuous images (bilinear/bicubic) vs id maps (nearest).
_IMAGE_KEYS = ("image", "target")
_ID_KEYS = ("label", "instance")


def _resize(example: dict, size, image_method: str) -> dict:
    out = dict(example)
    for key in _IMAGE_KEYS:
        if key in example:
            resized = tf.image.resize(tf.cast(example[key], tf.float32), size, method=image_method,
                                      antialias=True)
            out[key] = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
    for key in _ID_KEYS:
        if key in example:
            resized = tf.image.resize(example[key][..., None], size, method="nearest")[..., 0]
            out[key] = tf.cast(resized, example[key].dtype)
    return out


def resize(example: dict, size: tuple[int, int], image_method: str = "bicubic") -> dict:
    """Resizes images (antialiased) and id maps (nearest) to ``size``; a no-op at that size."""
    shape = tf.shape(example["image"])
    return tf.cond(
        tf.reduce_all(shape[:2] == tf.constant(size)),
        lambda: dict(example),
        lambda: _resize(example, size, image_method),
    )


def random_jitter(example: dict, seed, load_size: tuple[int, int], crop_size: tuple[int, int],
                  flip: bool = True) -> dict:
    """pix2pix-style jitter: resize to ``load_size``, random crop to ``crop_size``, random flip.

    One draw of crop offset and flip serves every image of the example.

    Args:
      example: dict of tensors with "image" and optionally "label", "instance", "target".
      seed: int32/int64 [2] stateless seed for this example.
    """
    example = _resize(example, load_size, "bicubic")
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    max_offset = tf.constant([load_size[0] - crop_size[0] + 1, load_size[1] - crop_size[1] + 1])
    offset = tf.random.stateless_uniform([2], crop_seed, minval=0, maxval=tf.int32.max,
                                         dtype=tf.int32) % max_offset
    do_flip = tf.random.stateless_uniform([], flip_seed) < 0.5 if flip else tf.constant(False)
    out = dict(example)
    for key in _IMAGE_KEYS + _ID_KEYS:
        if key in example:
            value = example[key]
            value = value[offset[0]:offset[0] + crop_size[0], offset[1]:offset[1] + crop_size[1]]
            out[key] = tf.cond(do_flip, lambda v=value: tf.reverse(v, axis=[1]), lambda v=value: v)
    return out
