"""Per-example transforms for tf.data, applied jointly to every image of an example.

Random transforms are stateless and take one seed per example, so a photo, its label map and
its instance map get the same crop and flip, and a given seed always gives the same result
(reproducible pipelines, exact resume).
"""

from __future__ import annotations

import tensorflow as tf

from tfsynth import pixels

#: Keys holding continuous images (bilinear/bicubic) vs id maps (nearest).
_IMAGE_KEYS = ("image", "target")
_ID_KEYS = ("label", "instance")


def _resize(example: dict, size, image_method: str) -> dict:
    out = dict(example)
    for key in _IMAGE_KEYS:
        if key in example:
            resized = tf.image.resize(tf.cast(example[key], tf.float32), size, method=image_method,
                                      antialias=True)
            out[key] = pixels.to_uint8(resized)
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


def random_crop_at_least(example: dict, seed, crop_size: int) -> dict:
    """A random ``crop_size`` square of the image; images whose shorter side is smaller are first
    scaled up (bicubic, aspect kept) until it equals ``crop_size``.

    Johnson et al. train on fixed-size COCO crops (256 for style, 288 for super-resolution). Larger
    images are cropped at their own resolution, so high-resolution detail stays as it was shot;
    a smaller image is enlarged rather than refused, so one small photo in a folder does not stop
    a run.

    Args:
      example: dict with "image" uint8 [H, W, 3].
      seed: int32/int64 [2] stateless seed for this example.
      crop_size: side of the square crop.
    """
    image = example["image"]
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    shorter = tf.minimum(height, width)
    factor = tf.maximum(tf.cast(crop_size, tf.float32) / tf.cast(shorter, tf.float32), 1.0)
    # Never below crop_size after rounding.
    new_size = tf.maximum(tf.cast(tf.math.ceil(tf.cast(tf.stack([height, width]), tf.float32) * factor), tf.int32),
                          crop_size)

    def enlarge():
        resized = tf.image.resize(tf.cast(image, tf.float32), new_size, method="bicubic")
        return pixels.to_uint8(resized)

    image = tf.cond(shorter < crop_size, enlarge, lambda: image)
    image = tf.image.stateless_random_crop(image, [crop_size, crop_size, 3], seed=seed)
    return {**example, "image": image}


#: Johnson et al.'s super-resolution degradation: Gaussian blur of sigma 1 before the bicubic
#: downsampling (Sec. 4.2). The kernel reaches 4 sigma each side, as scipy.ndimage's default.
SR_BLUR_SIGMA = 1.0


def gaussian_blur(images, sigma: float = SR_BLUR_SIGMA):
    """Separable Gaussian blur of [N, H, W, C] float images, truncated at 4 sigma, borders
    mirrored with the edge pixel repeated (scipy.ndimage's ``mode="reflect"``)."""
    radius = int(4.0 * sigma + 0.5)
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    taps = tf.exp(-0.5 * tf.square(offsets / sigma))
    taps = taps / tf.reduce_sum(taps)
    channels = images.shape[-1]
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
    vertical = tf.tile(tf.reshape(taps, [-1, 1, 1, 1]), [1, 1, channels, 1])
    horizontal = tf.tile(tf.reshape(taps, [1, -1, 1, 1]), [1, 1, channels, 1])
    blurred = tf.nn.depthwise_conv2d(padded, vertical, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(blurred, horizontal, [1, 1, 1, 1], "VALID")


def crop_to_multiple(images, multiple: int):
    """[N, H, W, C] images with the last rows and columns dropped so H and W are multiples of
    ``multiple`` (a super-resolution pair needs the high-resolution size to be s times the low)."""
    shape = tf.shape(images)
    return images[:, : shape[1] // multiple * multiple, : shape[2] // multiple * multiple]


def degrade_for_super_resolution(images, scale: int, sigma: float = SR_BLUR_SIGMA):
    """The low-resolution input of a high-resolution image, as Johnson et al. made it: Gaussian
    blur of sigma 1, then bicubic downsampling by ``scale``, quantised to uint8 like a stored
    image. Training, ``--eval_every`` and ``tfsynth.evaluate`` all use this one function.

    The bicubic resize is antialiased (its kernel widened by ``scale``), as PIL's and MATLAB's
    ``imresize`` are; the blur already removes most of what aliasing would fold back.

    Args:
      images: uint8 or float [N, H, W, 3] on the 0..255 scale; H and W are cropped down to
        multiples of ``scale``.
      scale: the downsampling factor (4 or 8).

    Returns:
      uint8 [N, H // scale, W // scale, 3].
    """
    images = crop_to_multiple(tf.cast(images, tf.float32), scale)
    shape = tf.shape(images)
    blurred = gaussian_blur(images, sigma)
    small = tf.image.resize(blurred, [shape[1] // scale, shape[2] // scale], method="bicubic", antialias=True)
    return pixels.to_uint8(small)
