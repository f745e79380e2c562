"""Diversity of a multi-output generator: how different its K outputs for one input are.

CRN (Chen & Koltun 2017) emits K images per label map and trains them to differ; the question a
user then asks is how much they differ. For each input the K outputs are compared pairwise
(every pair i < j) and the distances are averaged over pairs, then over inputs:

* ``pixel L1``: mean |x_i - x_j| over pixels and channels, on the 0..255 scale;
* ``VGG L1``: for each layer of a VGG feature extractor (``tfsynth.perceptual.VGGFeatures`` or any
  callable returning a dict of [N, h, w, c] features), mean |f_i - f_j| over positions and
  channels, then the mean over layers. The label names the layers, because the number depends on
  them.

With K = 1 there is no pair: both distances are NaN and the result says "not applicable".
"""

from __future__ import annotations

import itertools
from typing import Callable, Dict, Optional, Sequence

import numpy as np

PIXEL_KEY = "diversity_pixel_l1"
FEATURE_KEY = "diversity_vgg_l1"
NOT_APPLICABLE = "not applicable: one output per input (K=1), no pairs to compare"


def _as_outputs(outputs) -> np.ndarray:
    x = np.asarray(outputs)
    if x.ndim == 4:  # [K, H, W, C]: one input.
        x = x[None]
    if x.ndim != 5:
        raise ValueError(f"expected outputs [N, K, H, W, C] (or [K, H, W, C]), got shape {x.shape}")
    return x


def _mean_pairwise_l1(x: np.ndarray) -> np.ndarray:
    """[N, K, ...] -> [N]: mean over pairs i < j of mean |x_i - x_j| (float64)."""
    k = x.shape[1]
    x = x.reshape(x.shape[0], k, -1).astype(np.float64)
    pairs = list(itertools.combinations(range(k), 2))
    return np.mean([np.abs(x[:, i] - x[:, j]).mean(axis=1) for i, j in pairs], axis=0)


def feature_label(layers: Sequence[str]) -> str:
    return f"VGG L1 over {', '.join(layers)}"


class DiversityAccumulator:
    """The mean pairwise distances of the module docstring, fed batch by batch of inputs.

    Args:
        features: Optional callable mapping float [M, H, W, 3] RGB on 0..255 to a dict of
            features (e.g. ``VGGFeatures``); without it only the pixel distance is computed.
    """

    def __init__(self, features: Optional[Callable] = None):
        self.features = features
        self.layers = tuple(getattr(features, "feature_names", ())) if features else ()
        self.num_outputs = None
        self.num_inputs = 0
        self._pixel_sum = 0.0
        self._feature_sum = 0.0

    def update(self, outputs) -> "DiversityAccumulator":
        """Adds ``[N, K, H, W, 3]`` outputs (uint8 or float on 0..255) of N inputs."""
        x = _as_outputs(outputs)
        n, k = x.shape[:2]
        if self.num_outputs is None:
            self.num_outputs = k
        elif k != self.num_outputs:
            raise ValueError(f"K={k} outputs per input, but earlier batches had {self.num_outputs}")
        self.num_inputs += n
        if k < 2 or n == 0:
            return self
        self._pixel_sum += float(_mean_pairwise_l1(x).sum())
        if self.features is not None:
            feats = self.features(x.reshape((n * k,) + x.shape[2:]).astype(np.float32))
            if not self.layers:
                self.layers = tuple(feats)
            per_layer = [_mean_pairwise_l1(np.asarray(feats[name]).reshape((n, k, -1)))
                         for name in self.layers]
            self._feature_sum += float(np.mean(per_layer, axis=0).sum())
        return self

    def result(self) -> Dict[str, object]:
        """Dict with ``diversity_pixel_l1``, ``diversity_vgg_l1`` (if features were given; NaN when
        not applicable), ``labels`` (what each number is), ``num_inputs``, ``num_outputs``,
        ``num_pairs`` and ``applicable`` (False, with ``note``, when K < 2 or nothing was seen)."""
        k = self.num_outputs or 0
        applicable = k >= 2 and self.num_inputs > 0
        nan = float("nan")
        result = {
            PIXEL_KEY: self._pixel_sum / self.num_inputs if applicable else nan,
            "labels": {PIXEL_KEY: "pixel L1: mean |x_i - x_j| on 0..255, over pairs i<j and inputs"},
            "num_inputs": self.num_inputs,
            "num_outputs": k,
            "num_pairs": k * (k - 1) // 2,
            "applicable": applicable,
        }
        if self.features is not None:
            result[FEATURE_KEY] = self._feature_sum / self.num_inputs if applicable else nan
            result["labels"][FEATURE_KEY] = (
                feature_label(self.layers) + ": mean over layers of mean |f_i - f_j|, over pairs "
                "i<j and inputs")
        if not applicable:
            result["note"] = NOT_APPLICABLE if k == 1 else "no outputs seen"
        return result
