"""Tests for tfsynth.metrics.diversity: pairwise distances between a model's K outputs."""

import numpy as np
import pytest

from tfsynth.metrics.diversity import (
    FEATURE_KEY,
    PIXEL_KEY,
    DiversityAccumulator,
)
from tfsynth.perceptual import VGGFeatures

pytestmark = pytest.mark.unit


def _constant_outputs(values, h=4, w=6):
    """[N, K, H, W, 3] images, output k of input n filled with values[n][k]."""
    values = np.asarray(values, np.float32)
    return np.broadcast_to(values[:, :, None, None, None], values.shape + (h, w, 3)).copy()


class _TwoLayers:
    """VGGFeatures-like: a dict of features, here the image and twice the image."""

    feature_names = ("a", "b")

    def __call__(self, images):
        return {"a": images, "b": 2 * images}


def test_identical_outputs_have_zero_diversity():
    x = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    outputs = np.repeat(x[:, None], 4, axis=1)  # [1, 4, 8, 8, 3], four equal outputs
    result = DiversityAccumulator(_TwoLayers()).update(outputs).result()
    assert result[PIXEL_KEY] == 0 and result[FEATURE_KEY] == 0
    assert result["applicable"] and result["num_pairs"] == 6
    assert result["num_inputs"] == 1 and result["num_outputs"] == 4


def test_known_pixel_distance_by_hand():
    # Input 0: outputs 0, 10, 40 -> pairs |0-10|, |0-40|, |10-40| = 10, 40, 30 -> mean 80/3.
    # Input 1: outputs 0, 0, 6   -> pairs 0, 6, 6 -> mean 4.
    # Mean over inputs: (80/3 + 4) / 2 = 46/3. Features a = x, b = 2x: (d + 2d) / 2 = 1.5 d.
    outputs = _constant_outputs([[0, 10, 40], [0, 0, 6]])
    result = DiversityAccumulator(_TwoLayers()).update(outputs.astype(np.uint8)).result()
    assert result[PIXEL_KEY] == pytest.approx(46 / 3)
    assert result[FEATURE_KEY] == pytest.approx(1.5 * 46 / 3)
    assert result["num_pairs"] == 3 and result["num_inputs"] == 2
    assert "pixel L1" in result["labels"][PIXEL_KEY]
    assert "a, b" in result["labels"][FEATURE_KEY]
    # Streaming one input at a time gives the same numbers.
    acc = DiversityAccumulator(_TwoLayers())
    acc.update(outputs[:1]).update(outputs[1])  # [K, H, W, 3] is one input
    assert acc.result()[PIXEL_KEY] == pytest.approx(46 / 3)
    assert acc.result()[FEATURE_KEY] == pytest.approx(1.5 * 46 / 3)
    assert acc.result()["num_inputs"] == 2


def test_single_output_is_not_applicable():
    result = DiversityAccumulator(_TwoLayers()).update(_constant_outputs([[5], [7]])).result()
    assert np.isnan(result[PIXEL_KEY]) and np.isnan(result[FEATURE_KEY])
    assert result["applicable"] is False and "not applicable" in result["note"]
    assert "K=1" in result["note"]


def test_nothing_seen_is_not_applicable():
    result = DiversityAccumulator().result()
    assert np.isnan(result[PIXEL_KEY]) and FEATURE_KEY not in result
    assert result["applicable"] is False and result["note"] == "no outputs seen"


def test_with_vgg_features_and_mismatched_k():
    vgg = VGGFeatures(depth=16, layers=("conv1_2", "pool1"), weights="random")
    rng = np.random.default_rng(1)
    outputs = rng.integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8)
    result = DiversityAccumulator(vgg).update(outputs).result()
    assert result[FEATURE_KEY] > 0 and np.isfinite(result[FEATURE_KEY])
    assert "conv1_2, pool1" in result["labels"][FEATURE_KEY]
    acc = DiversityAccumulator().update(outputs)
    assert FEATURE_KEY not in acc.result()
    with pytest.raises(ValueError, match="K=2"):
        acc.update(outputs[:, :2])
