"""Fréchet Inception Distance (FID), Kernel Inception Distance (KID) and their feature extractors.

FID (Heusel et al. 2017, arXiv:1706.08500) fits a Gaussian to the 2048-d pool features of an
Inception network for each image set and reports the Fréchet (2-Wasserstein) distance

    d^2 = |mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)).

KID (Bińkowski et al. 2018, arXiv:1801.01401) is the unbiased estimate of the squared maximum
mean discrepancy with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random
subsets. Unlike FID it has no bias from the sample count, so small evaluations can use it.

**Comparability.** An FID is comparable only with FIDs from the same feature extractor, image
resizing, and sample count. The numbers in papers (SPADE, and most GAN papers since 2017) come
from the 2015 Inception graph ``classify_image_graph_def.pb`` (the TTUR code, or pytorch-fid's
port of the same weights): use ``InceptionFeatures(source="/path/classify_image_graph_def.pb")``
for those. ``source="keras"`` (keras.applications InceptionV3, a different 2016 training run and
preprocessing) gives FIDs that are internally consistent but NOT comparable with published ones.

The statistics and distances are numpy/scipy; only the feature extraction runs TensorFlow, and
TensorFlow is imported when an extractor is built, not at module import.
"""

from __future__ import annotations

import os
import socket
import warnings
from typing import NamedTuple, Tuple

import numpy as np
from scipy import linalg

FEATURE_DIM = 2048
INCEPTION_SIZE = 299
_RANDOM_SEED = 1234
_DOWNLOAD_TIMEOUT_S = 15.0
KERAS_NOTOP_FILENAME = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
# The 2015 Inception graph (inception-2015-12-05.tgz) and its tensors, as the TTUR FID code
# (bioinf-jku/TTUR fid.py) uses them; see InceptionFeatures.
GRAPH_FILENAME = "classify_image_graph_def.pb"
GRAPH_INPUT_TENSOR = "ExpandDims:0"
GRAPH_POOL_TENSOR = "pool_3:0"


class MetricsWeightsError(ValueError):
    """A feature-extractor weight source is missing, unreadable or unavailable offline."""


# ------------------------------------------------------------------------------ statistics


def feature_statistics(features) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased (N - 1) covariance of ``[N, D]`` features, in float64.

    This is what the reference FID code computes (``np.mean(act, 0)``, ``np.cov(act,
    rowvar=False)``). Needs N >= 2.
    """
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be [N >= 2, D], got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``|mu1 - mu2|^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr(sqrtm(sigma1 @ sigma2))``.

    Numerics follow the reference FID code: when ``scipy.linalg.sqrtm`` of the product is not
    finite (the product of two rank-deficient covariances, e.g. fewer samples than 2048
    dimensions, can be numerically singular) the square root is retaken of
    ``(sigma1 + eps I)(sigma2 + eps I)`` with a warning; a small imaginary part from round-off is
    dropped (the real part is kept), while a large one (> 1e-3 on the diagonal) raises, since it
    means the inputs are not covariance matrices.

    Returns:
        The distance as a Python float (the squared form d^2, which is what "FID" denotes).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors differ in shape: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"covariances {sigma1.shape}, {sigma2.shape} do not match means {mu1.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        warnings.warn(f"frechet_distance: sqrtm of the covariance product is not finite; adding "
                      f"{eps} to the diagonal of both covariances")
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"frechet_distance: sqrtm has a large imaginary component "
                             f"({np.abs(covmean.imag).max():.3g}); are the covariances PSD?")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid_from_features(features1, features2) -> float:
    """FID of two ``[N, D]`` feature sets (their Gaussian fits, then :func:`frechet_distance`)."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


class KIDResult(NamedTuple):
    """KID estimate: the mean over subsets and its standard deviation across subsets."""

    mean: float
    std: float


def _power(base: np.ndarray, degree: int) -> np.ndarray:
    # Repeated multiplication: several times faster than np.power for a small integer degree.
    out = base.copy()
    for _ in range(int(degree) - 1):
        out *= base
    return out


def polynomial_mmd2_unbiased(x, y, degree: int = 3, coef0: float = 1.0) -> float:
    """Unbiased MMD^2 of samples ``x`` [m, d], ``y`` [n, d] with k(a, b) = (a.b / d + coef0)^degree.

    ``sum_{i != j} k(x_i, x_j) / (m(m-1)) + sum_{i != j} k(y_i, y_j) / (n(n-1))
    - 2 sum_{i, j} k(x_i, y_j) / (mn)``: the diagonal terms k(x_i, x_i) are what make the plain
    (V-statistic) estimate biased, so they are left out.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n, d = x.shape[0], y.shape[0], x.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"need at least 2 samples on each side, got {m} and {n}")
    k_xx = _power(x @ x.T / d + coef0, degree)
    k_yy = _power(y @ y.T / d + coef0, degree)
    k_xy = _power(x @ y.T / d + coef0, degree)
    term_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    term_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(term_xx + term_yy - 2.0 * k_xy.mean())


def kernel_inception_distance(features1, features2, num_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> KIDResult:
    """KID: unbiased cubic-polynomial MMD^2, averaged over random subsets.

    Each subset draws ``subset_size`` vectors without replacement from each set (independently
    per subset), with ``subset_size`` capped by the smaller sample count, as in Bińkowski et
    al.'s code. The expectation of each subset estimate is the population MMD^2, so KID can be
    slightly negative when the distributions match.

    Args:
        features1, features2: ``[N1, D]`` and ``[N2, D]`` features.
        num_subsets: Number of subsets averaged.
        subset_size: Vectors per subset (before capping).
        seed: Seed of the subset sampling, so reports are reproducible.

    Returns:
        ``KIDResult(mean, std)`` over the subsets (std is the spread of the subset estimates,
        not the standard error of the mean).
    """
    f1, f2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"features must be [N, D] with equal D, got {f1.shape} and {f2.shape}")
    size = min(int(subset_size), f1.shape[0], f2.shape[0])
    if size < 2:
        raise ValueError(f"KID needs at least 2 vectors per set, got {f1.shape[0]} and {f2.shape[0]}")
    rng = np.random.default_rng(seed)
    estimates = np.array([
        polynomial_mmd2_unbiased(f1[rng.choice(f1.shape[0], size, replace=False)],
                                 f2[rng.choice(f2.shape[0], size, replace=False)])
        for _ in range(int(num_subsets))
    ])
    return KIDResult(float(estimates.mean()), float(estimates.std()))


# ------------------------------------------------------------------------- feature extractors


def howto() -> str:
    return (
        "To compute Inception features without network access, pass one of\n"
        f"  source=/path/{GRAPH_FILENAME}   (the 2015 graph of the reference FID code, from\n"
        "      http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz;\n"
        "      gives FIDs comparable with published numbers)\n"
        f"  source=/path/{KERAS_NOTOP_FILENAME}   (keras.applications weights)\n"
        f"or copy {KERAS_NOTOP_FILENAME} into ~/.keras/models/ (the keras download cache)."
    )


def _keras_cache_paths() -> Tuple[str, ...]:
    home = os.path.expanduser(os.environ.get("KERAS_HOME") or os.path.join("~", ".keras"))
    return (os.path.join(home, "models", KERAS_NOTOP_FILENAME),
            os.path.join("/tmp", ".keras", "models", KERAS_NOTOP_FILENAME))


def _keras_inception(weights):
    import keras

    return keras.applications.InceptionV3(
        include_top=False, pooling="avg", weights=weights,
        input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))


def download_imagenet_inception():
    """keras.applications InceptionV3 (no top, average pool) with ImageNet weights.

    Downloads into the keras cache on first use. Module-level so tests can monkeypatch it.
    """
    return _keras_inception("imagenet")


def _randomize(model) -> None:
    """Overwrites every conv kernel with seeded He-normal values (BN stays the identity).

    Keras' own initialisers draw from a global seed; seeding per variable here keeps the
    "random" extractor identical across runs without touching global random state.
    """
    for i, variable in enumerate(model.weights):
        if variable.path.endswith("kernel"):
            shape = tuple(variable.shape)
            fan_in = int(np.prod(shape[:-1]))
            rng = np.random.default_rng([_RANDOM_SEED, i])
            variable.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32))


class InceptionFeatures:
    """Maps RGB images to 2048-d Inception pool features for FID and KID.

    Sources:
      * ``"keras"``: keras.applications InceptionV3 (``include_top=False, pooling="avg"``,
        ImageNet weights, downloaded or from the keras cache). Images are resized bilinearly
        (half-pixel centres, no antialiasing) to 299x299 and scaled to [-1, 1].
      * a path ending ``.h5``/``.hdf5``: the same network with weights loaded from that file.
      * a path ending ``.pb``: the 2015 Inception GraphDef ``classify_image_graph_def.pb`` used by
        the reference FID code (bioinf-jku/TTUR ``fid.py``), whose FIDs are the published ones.
        Images (0..255 floats, any size) are fed to its ``ExpandDims:0`` tensor, where the graph
        itself resizes them to 299x299 (its own ``ResizeBilinear``) and normalises them; features
        are ``pool_3:0`` ([N, 1, 1, 2048], flattened). The graph was exported for one image
        (``ExpandDims`` adds the batch axis to one decoded JPEG), so the reference code relaxed
        every leading static dimension of 1 to None to feed batches; here the same is achieved
        by mapping ``ExpandDims:0`` to a ``[None, None, None, 3]`` input at import, so every
        downstream shape is inferred with a free batch size. (One difference: the reference
        ``get_activations`` drops the last ``N mod batch_size`` images; this class keeps all.)
      * ``"random"``: the keras architecture with seeded random weights. For tests only: its
        features mean nothing.

    Args:
        source: One of the above.
        batch_size: Images per forward pass.

    Attributes:
        source_kind: ``"keras"``, ``"h5"``, ``"graph"`` or ``"random"``.
        description: One line for reports: the network, weights, and what the FID compares with.

    Raises:
        MetricsWeightsError: If the weights cannot be found, loaded or downloaded.
    """

    def __init__(self, source: str = "keras", batch_size: int = 50):
        import tensorflow as tf  # Deferred: statistics users need no TensorFlow.

        from tfsynth import pixels

        self.source = str(source)
        self.batch_size = int(batch_size)
        lowered = self.source.lower()
        if lowered.endswith(".pb"):
            self.source_kind = "graph"
            self._features = self._load_graph(self.source)
            self.description = (f"2015 Inception graph {os.path.basename(self.source)} pool_3 "
                                "(TTUR FID protocol; comparable with published FIDs)")
            return
        if self.source == "keras":
            model, self.source_kind = self._fetch_keras(), "keras"
        elif lowered.endswith((".h5", ".hdf5")):
            model, self.source_kind = self._load_h5(self.source), "h5"
        elif self.source == "random":
            model, self.source_kind = _keras_inception(None), "random"
            _randomize(model)
        else:
            raise MetricsWeightsError(
                f"source={self.source!r}: expected 'keras', 'random', or a path ending in .pb "
                f"(2015 Inception graph) or .h5 (keras weights).\n{howto()}")
        self._model = model
        self.description = {
            "keras": "keras.applications InceptionV3 ImageNet avg-pool (NOT comparable with "
                     "published FIDs)",
            "h5": f"keras.applications InceptionV3 avg-pool, weights {os.path.basename(self.source)} "
                  "(NOT comparable with published FIDs)",
            "random": "InceptionV3 with RANDOM weights (tests only; meaningless)",
        }[self.source_kind]

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
                     reduce_retracing=True)
        def features(images):
            x = tf.image.resize(images, (INCEPTION_SIZE, INCEPTION_SIZE), method="bilinear")
            x = pixels.to_unit_range(x)  # keras' inception_v3.preprocess_input ("tf" mode).
            return model(x, training=False)

        self._features = features

    @staticmethod
    def _fetch_keras():
        cached = any(os.path.isfile(p) for p in _keras_cache_paths())
        old = socket.getdefaulttimeout()
        if not cached:  # Offline machines otherwise hang on the connect for minutes.
            socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
        try:
            return download_imagenet_inception()
        except Exception as e:  # URLError, keras' "URL fetch failure", OSError, ...
            raise MetricsWeightsError(
                "source='keras': could not load or download the keras.applications InceptionV3 "
                f"ImageNet weights ({type(e).__name__}: {e}).\n{howto()}") from e
        finally:
            socket.setdefaulttimeout(old)

    @staticmethod
    def _load_h5(path: str):
        if not os.path.isfile(path):
            raise MetricsWeightsError(f"InceptionV3 weights file not found: {path}\n{howto()}")
        model = _keras_inception(None)
        try:
            model.load_weights(path)
        except Exception as e:  # h5py and keras raise many types; all mean "not usable".
            raise MetricsWeightsError(
                f"{path}: cannot load as keras.applications InceptionV3 (include_top=False) "
                f"weights: {type(e).__name__}: {e}") from e
        return model

    @staticmethod
    def _load_graph(path: str):
        import tensorflow as tf

        if not os.path.isfile(path):
            raise MetricsWeightsError(f"Inception graph file not found: {path}\n{howto()}")
        graph_def = tf.compat.v1.GraphDef()
        try:
            with open(path, "rb") as f:
                graph_def.ParseFromString(f.read())
        except Exception as e:  # DecodeError on a file that is not a serialized GraphDef.
            raise MetricsWeightsError(f"{path}: not a serialized TensorFlow GraphDef "
                                      f"({type(e).__name__}: {e})") from e
        nodes = {node.name for node in graph_def.node}
        missing = [t for t in (GRAPH_INPUT_TENSOR, GRAPH_POOL_TENSOR) if t.split(":")[0] not in nodes]
        if missing:
            raise MetricsWeightsError(
                f"{path}: no tensor(s) {missing}; expected the 2015 Inception graph "
                f"{GRAPH_FILENAME} (input {GRAPH_INPUT_TENSOR}, features {GRAPH_POOL_TENSOR})")

        def imported(images):
            (pool,) = tf.compat.v1.import_graph_def(
                graph_def, input_map={GRAPH_INPUT_TENSOR: images},
                return_elements=[GRAPH_POOL_TENSOR], name="FID_Inception_Net")
            return tf.reshape(pool, [tf.shape(images)[0], FEATURE_DIM])

        try:
            return tf.compat.v1.wrap_function(
                imported, [tf.TensorSpec([None, None, None, 3], tf.float32)])
        except Exception as e:  # Unknown ops or inconsistent shapes in a foreign graph.
            raise MetricsWeightsError(f"{path}: cannot import the graph ({type(e).__name__}: {e})") from e

    def __call__(self, images) -> np.ndarray:
        """Features of ``[N, H, W, 3]`` RGB images (uint8, or float on 0..255), any H and W.

        Returns:
            float32 numpy array ``[N, 2048]``.
        """
        import tensorflow as tf

        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected [N, H, W, 3] RGB images, got shape {images.shape}")
        out = [np.asarray(self._features(tf.constant(images[i:i + self.batch_size], tf.float32)))
               for i in range(0, images.shape[0], self.batch_size)]
        if not out:
            return np.zeros((0, FEATURE_DIM), np.float32)
        return np.concatenate(out).reshape(images.shape[0], FEATURE_DIM).astype(np.float32)
