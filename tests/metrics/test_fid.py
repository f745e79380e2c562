"""Tests for tfsynth.metrics.fid: Fréchet distance, KID, statistics, feature extractors.

All offline: no test downloads weights. The 2015 Inception graph itself is not available here,
so its loader is checked on a small stand-in GraphDef with the same tensor names and the same
batch-1 export (ExpandDims of one decoded image, a hard-coded [1, 2048] reshape after pool_3).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfsynth.metrics import fid
from tfsynth.metrics.fid import (
    InceptionFeatures,
    MetricsWeightsError,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    kernel_inception_distance,
    polynomial_mmd2_unbiased,
)

pytestmark = pytest.mark.unit


def _random_psd(d, rng):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# --------------------------------------------------------------------------- Fréchet distance


def test_frechet_diagonal_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_identical_statistics_is_zero():
    rng = np.random.default_rng(1)
    mu, sigma = rng.normal(size=32), _random_psd(32, rng)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_frechet_non_diagonal_commuting_by_hand():
    # sigma1 = [[2, 1], [1, 2]] has eigenvalues 3 (on (1,1)) and 1 (on (1,-1));
    # sigma2 = [[5, -3], [-3, 5]] has eigenvalues 2 (on (1,1)) and 8 (on (1,-1)).
    # They commute, so sqrt(sigma1 sigma2) has eigenvalues sqrt(6) and sqrt(8), and
    # d^2 = |(0,0) - (1,2)|^2 + Tr(sigma1) + Tr(sigma2) - 2 (sqrt 6 + sqrt 8)
    #     = 5 + 4 + 10 - 2 (2.449490 + 2.828427) = 8.444166.
    value = frechet_distance([0, 0], [[2, 1], [1, 2]], [1, 2], [[5, -3], [-3, 5]])
    assert value == pytest.approx(19 - 2 * (np.sqrt(6) + np.sqrt(8)), abs=1e-9)
    assert value == pytest.approx(8.444166, abs=1e-6)


def test_frechet_general_commuting_matrices():
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    a, b = rng.uniform(0.01, 4, 10), rng.uniform(0.01, 4, 10)
    value = frechet_distance(np.zeros(10), q @ np.diag(a) @ q.T, np.zeros(10), q @ np.diag(b) @ q.T)
    assert value == pytest.approx(np.sum(a + b - 2 * np.sqrt(a * b)), rel=1e-7)


def test_frechet_rank_deficient_covariances_stay_finite():
    # Fewer samples than dimensions, as with small evaluations against 2048-d features.
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 16)), rng.normal(size=(6, 16)) + 0.5
    value = fid_from_features(x, y)
    assert np.isfinite(value) and value > 0
    assert abs(fid_from_features(x, x)) < 1e-4


def test_frechet_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_feature_statistics_by_hand():
    # Three 2-d vectors (0, 0), (2, 0), (1, 3): mean (1, 1); deviations (-1, -1), (1, -1), (0, 2);
    # with the N - 1 = 2 normaliser var_x = (1 + 1 + 0) / 2 = 1, var_y = (1 + 1 + 4) / 2 = 3,
    # cov_xy = (1 - 1 + 0) / 2 = 0.
    mu, sigma = feature_statistics([[0, 0], [2, 0], [1, 3]])
    np.testing.assert_allclose(mu, [1, 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(sigma, [[1, 0], [0, 3]], rtol=0, atol=1e-12)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64


def test_feature_statistics_match_reference_code_and_reject_too_few():
    rng = np.random.default_rng(4)
    features = (rng.normal(size=(50, 8)) * 3 + 1000.0).astype(np.float32)
    mu, sigma = feature_statistics(features)
    np.testing.assert_allclose(mu, np.mean(features.astype(np.float64), 0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(features.astype(np.float64), rowvar=False),
                               rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(features[:1])
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(features[0])


# -------------------------------------------------------------------------------------- KID


def test_polynomial_mmd_matches_definition():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    yy = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / 12
    xy = sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / 20
    assert polynomial_mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_mmd_estimator_is_unbiased():
    # Over many independent pairs of samples from ONE distribution the estimates average to 0
    # within 4 standard errors, while the biased V-statistic (diagonal kept) is far above 0.
    rng = np.random.default_rng(6)
    m, d, trials = 12, 4, 1500
    unbiased, biased = [], []
    for _ in range(trials):
        x, y = rng.normal(size=(m, d)), rng.normal(size=(m, d))
        unbiased.append(polynomial_mmd2_unbiased(x, y))
        kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        biased.append(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    unbiased, biased = np.array(unbiased), np.array(biased)
    standard_error = unbiased.std() / np.sqrt(trials)
    assert abs(unbiased.mean()) < 4 * standard_error
    assert biased.mean() > 10 * biased.std() / np.sqrt(trials)


def test_kid_same_distribution_near_zero_shifted_clearly_positive():
    rng = np.random.default_rng(7)
    real, same = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    shifted = rng.normal(size=(400, 16)) + 0.5
    null = kernel_inception_distance(real, same, num_subsets=20, subset_size=200)
    # The subset estimates overlap, so their mean errs by about one subset's std: 3 std bounds it.
    assert abs(null.mean) < 3 * null.std
    alt = kernel_inception_distance(real, shifted, num_subsets=20, subset_size=200)
    assert alt.mean > 10 * alt.std and alt.mean > 10 * abs(null.mean)
    # Subset size is capped by the sample counts; the seed makes the estimate reproducible.
    capped = kernel_inception_distance(real[:50], shifted, num_subsets=5, subset_size=1000, seed=3)
    assert capped == kernel_inception_distance(real[:50], shifted, num_subsets=5, seed=3)
    mean, std = capped
    assert mean > 0 and std >= 0


# ------------------------------------------------------------------------ feature extractors


def test_random_inception_features_any_size():
    net = InceptionFeatures(source="random", batch_size=4)
    images = np.random.default_rng(8).integers(0, 256, (2, 64, 128, 3), dtype=np.uint8)
    features = net(images)
    assert features.shape == (2, 2048) and features.dtype == np.float32
    assert np.all(np.isfinite(features)) and np.all(features >= 0)  # post-ReLU average pool
    assert not np.allclose(features[0], features[1])
    assert net.source_kind == "random" and "RANDOM" in net.description


def _tiny_keras_net(weights=None):
    """Stands in for InceptionV3 (same input and output sizes) to keep the .h5 test fast."""
    assert weights is None
    inputs = keras.Input((fid.INCEPTION_SIZE, fid.INCEPTION_SIZE, 3))
    x = keras.layers.Conv2D(4, 3, strides=8, activation="relu")(inputs)
    outputs = keras.layers.Dense(2048)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def test_h5_source_loads_keras_weights(tmp_path, monkeypatch):
    # A local keras weights file is the offline route to the "keras" network: the network is
    # built with weights=None, then the file is loaded into it.
    monkeypatch.setattr(fid, "_keras_inception", _tiny_keras_net)
    original = _tiny_keras_net()
    path = str(tmp_path / "inception_v3.weights.h5")
    original.save_weights(path)
    net = InceptionFeatures(source=path)
    assert net.source_kind == "h5"
    images = np.random.default_rng(11).integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    x = tf.image.resize(images.astype(np.float32), (299, 299)) / 127.5 - 1.0
    np.testing.assert_allclose(net(images), original(x).numpy(), rtol=1e-5, atol=1e-5)
    other = tmp_path / "other.weights.h5"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save_weights(str(other))
    with pytest.raises(MetricsWeightsError, match="other.weights.h5: cannot load"):
        InceptionFeatures(source=str(other))


def _write_standin_graph(path):
    """A tiny GraphDef shaped like classify_image_graph_def.pb around the tensors FID uses."""
    graph = tf.Graph()
    rng = np.random.default_rng(9)
    kernel = rng.normal(0, 0.1, (3, 3, 3, 2048)).astype(np.float32)
    with graph.as_default():
        contents = tf.compat.v1.placeholder(tf.string, [], name="DecodeJpeg/contents")
        decoded = tf.io.decode_jpeg(contents, channels=3, name="DecodeJpeg")
        image = tf.cast(decoded, tf.float32, name="Cast")
        batch1 = tf.expand_dims(image, 0, name="ExpandDims")  # [1, ?, ?, 3]: the batch-1 export
        resized = tf.compat.v1.image.resize_bilinear(batch1, [8, 8], name="ResizeBilinear")
        x = tf.multiply(tf.subtract(resized, 128.0, name="Sub"), 1 / 128.0, name="Mul")
        x = tf.nn.relu(tf.nn.conv2d(x, tf.constant(kernel), 1, "SAME"))
        pool = tf.nn.avg_pool2d(x, 8, 1, "VALID", name="pool_3")  # [1, 1, 1, 2048]
        flat = tf.reshape(pool, [1, 2048], name="pool_3/_reshape")  # hard-coded batch of 1
        tf.nn.softmax(tf.matmul(flat, tf.ones((2048, 4))), name="softmax")
    with open(path, "wb") as f:
        f.write(graph.as_graph_def().SerializeToString())

    def reference(images):  # The same computation, one image at a time, eagerly.
        out = []
        for img in np.asarray(images, np.float32):
            r = tf.compat.v1.image.resize_bilinear(img[None], [8, 8])
            y = tf.nn.relu(tf.nn.conv2d((r - 128.0) / 128.0, kernel, 1, "SAME"))
            out.append(tf.reduce_mean(y, axis=[1, 2])[0].numpy())
        return np.stack(out)

    return reference


def test_graph_source_feeds_batches_through_expanddims(tmp_path):
    path = str(tmp_path / "classify_image_graph_def.pb")
    reference = _write_standin_graph(path)
    net = InceptionFeatures(source=path, batch_size=3)
    assert net.source_kind == "graph" and "TTUR" in net.description
    images = np.random.default_rng(10).integers(0, 256, (4, 20, 30, 3), dtype=np.uint8)
    features = net(images)  # batches of 3 and 1 through a graph exported for batch 1
    assert features.shape == (4, 2048)
    np.testing.assert_allclose(features, reference(images), rtol=1e-4, atol=1e-5)
    other_size = net(images[:2, :12, :17])
    np.testing.assert_allclose(other_size, reference(images[:2, :12, :17]), rtol=1e-4, atol=1e-5)


def test_weights_errors(tmp_path, monkeypatch):
    with pytest.raises(MetricsWeightsError, match="not found.*missing.pb") as error:
        InceptionFeatures(source=str(tmp_path / "missing.pb"))
    assert fid.howto() in str(error.value)  # every weights error says how to go offline
    assert fid.GRAPH_FILENAME in fid.howto() and fid.KERAS_NOTOP_FILENAME in fid.howto()
    garbage = tmp_path / "garbage.pb"
    garbage.write_bytes(b"\x00\x01not a graph" * 10)
    with pytest.raises(MetricsWeightsError, match="garbage.pb"):
        InceptionFeatures(source=str(garbage))
    with pytest.raises(MetricsWeightsError, match="not found"):
        InceptionFeatures(source=str(tmp_path / "missing.h5"))
    with pytest.raises(MetricsWeightsError, match="expected 'keras'"):
        InceptionFeatures(source="imagenet21k")

    def offline():
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(fid, "download_imagenet_inception", offline)
    with pytest.raises(MetricsWeightsError, match=r"(?s)source='keras'.*URL fetch failure.*\.h5"):
        InceptionFeatures(source="keras")
