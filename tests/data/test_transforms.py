"""Tests for tfsynth.data.transforms: joint random jitter and resize of photo, label, instance."""

import numpy as np
import pytest
import tensorflow as tf

from tfsynth.data import transforms

pytestmark = pytest.mark.unit

HEIGHT, WIDTH = 24, 40
CROP = (16, 32)


def _aligned_example(height=HEIGHT, width=WIDTH, seed=0, max_id=25):
    """image = label * 10 on all channels, instance = label * 1000 + 1; random ids per pixel."""
    label = np.random.default_rng(seed).integers(0, max_id + 1, (height, width)).astype(np.uint8)
    image = np.repeat(label[..., None].astype(np.uint16) * 10, 3, axis=-1).astype(np.uint8)
    instance = label.astype(np.int32) * 1000 + 1
    return {"image": tf.constant(image), "label": tf.constant(label),
            "instance": tf.constant(instance)}


def _jitter(example, seed, load_size=(HEIGHT, WIDTH), crop_size=CROP, flip=True):
    out = transforms.random_jitter(example, tf.constant([seed, 0], tf.int64), load_size,
                                   crop_size, flip=flip)
    return {key: value.numpy() for key, value in out.items()}


def _locate(crop, full):
    """(offset_y, offset_x, flipped) of ``crop`` inside ``full``; the unique match."""
    h, w = crop.shape
    matches = []
    for flipped in (False, True):
        candidate = crop[:, ::-1] if flipped else crop
        for y in range(full.shape[0] - h + 1):
            for x in range(full.shape[1] - w + 1):
                if np.array_equal(full[y:y + h, x:x + w], candidate):
                    matches.append((y, x, flipped))
    assert len(matches) == 1, matches
    return matches[0]


def test_random_jitter_keeps_image_label_instance_aligned():
    example = _aligned_example()
    full_label = example["label"].numpy()
    for seed in range(20):
        out = _jitter(example, seed)
        label = out["label"]
        assert label.shape == CROP and label.dtype == np.uint8
        assert out["image"].shape == CROP + (3,) and out["image"].dtype == np.uint8
        assert out["instance"].shape == CROP and out["instance"].dtype == np.int32
        for channel in range(3):
            np.testing.assert_array_equal(out["image"][..., channel], label.astype(np.int32) * 10)
        np.testing.assert_array_equal(out["instance"], label.astype(np.int32) * 1000 + 1)
        # The label is a true window of the original (possibly mirrored).
        _locate(label, full_label)


def test_random_jitter_same_seed_same_result_and_seeds_vary():
    example = _aligned_example(seed=1)
    full_label = example["label"].numpy()
    first, again = _jitter(example, 7), _jitter(example, 7)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    placements = [_locate(_jitter(example, seed)["label"], full_label) for seed in range(40)]
    offsets = {(y, x) for y, x, _ in placements}
    flips = sum(flipped for _, _, flipped in placements)
    # 9 x 9 possible offsets: both coordinates vary, and about half the crops are mirrored.
    assert len(offsets) >= 10, offsets
    assert len({y for y, _ in offsets}) >= 5 and len({x for _, x in offsets}) >= 5, offsets
    assert 10 <= flips <= 30, flips


def test_random_jitter_without_flip_never_flips():
    example = _aligned_example(seed=2)
    full_label = example["label"].numpy()
    for seed in range(10):
        assert not _locate(_jitter(example, seed, flip=False)["label"], full_label)[2]


def test_random_jitter_resize_path_uses_nearest_for_ids():
    rng = np.random.default_rng(3)
    ids = np.array([3, 7, 26], np.uint8)
    label = ids[rng.integers(0, 3, (HEIGHT, WIDTH))]
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3)).astype(np.uint8)
    instance = label.astype(np.int32) * 1000 + 1
    example = {"image": tf.constant(image), "label": tf.constant(label),
               "instance": tf.constant(instance)}
    for seed in range(5):
        out = _jitter(example, seed, load_size=(30, 52), crop_size=(24, 40))
        assert out["label"].shape == (24, 40) and out["image"].shape == (24, 40, 3)
        assert set(np.unique(out["label"])) <= set(ids.tolist())
        np.testing.assert_array_equal(out["instance"], out["label"].astype(np.int32) * 1000 + 1)


def test_resize_is_noop_at_target_size():
    example = _aligned_example(seed=4)
    out = transforms.resize(example, (HEIGHT, WIDTH))
    for key in example:
        assert out[key].dtype == example[key].dtype
        np.testing.assert_array_equal(out[key].numpy(), example[key].numpy())


def test_resize_ids_with_nearest():
    example = _aligned_example(height=8, width=12, seed=5)
    out = transforms.resize(example, (16, 24))
    label = example["label"].numpy()
    # 2x upsampling with nearest (half-pixel centres) repeats every pixel.
    expected = np.repeat(np.repeat(label, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(out["label"].numpy(), expected)
    assert out["label"].dtype == tf.uint8
    np.testing.assert_array_equal(out["instance"].numpy(), expected.astype(np.int32) * 1000 + 1)
    assert out["instance"].dtype == tf.int32
    assert out["image"].shape == (16, 24, 3) and out["image"].dtype == tf.uint8
    # Downsampling: only ids that exist in the input appear.
    small = transforms.resize(example, (5, 7))
    assert small["label"].shape == (5, 7)
    assert set(np.unique(small["label"].numpy())) <= set(np.unique(label))
