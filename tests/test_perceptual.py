"""Tests for tfsynth.perceptual (VGG feature extractors). All offline; small 32x64 inputs."""

import socket

import h5py
import keras
import numpy as np
import pytest
import scipy.io
import tensorflow as tf

from tfsynth import perceptual
from tfsynth.perceptual import PerceptualWeightsError, VGGFeatures

pytestmark = pytest.mark.unit

MEAN_RGB = np.array([123.68, 116.779, 103.939], np.float32)
H, W = 32, 64


def _images(n=2, h=H, w=W, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, h, w, 3)).astype(np.float32)


def _close(a, b, rel=1e-4):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    np.testing.assert_allclose(a, b, rtol=rel, atol=rel * max(1.0, np.abs(b).max()))


def _conv_names(depth):
    return [name for name, _, _ in perceptual._conv_specs(depth)]


def _kernels(net):
    return {n: (k.numpy(), b.numpy()) for n, k, b in zip(
        [x for x in net._plan if x.startswith("conv")], net._kernels, net._biases)}


# ----------------------------------------------------------------------------- architecture


def test_vgg19_names_and_shapes():
    names = ("input", "conv1_1", "conv1_2", "pool1", "conv3_2", "relu3_4", "pool3", "conv5_4",
             "pool5")
    net = VGGFeatures(depth=19, layers=names)
    out = net(_images())
    assert list(out) == list(names)
    expect = {"input": (32, 64, 3), "conv1_1": (32, 64, 64), "conv1_2": (32, 64, 64),
              "pool1": (16, 32, 64), "conv3_2": (8, 16, 256), "relu3_4": (8, 16, 256),
              "pool3": (4, 8, 256), "conv5_4": (2, 4, 512), "pool5": (1, 2, 512)}
    for name, shape in expect.items():
        assert tuple(out[name].shape) == (2,) + shape, name
    assert len(net._kernels) == 16
    assert np.all(out["conv5_4"].numpy() >= 0)  # post-ReLU
    # Symbolic (functional-API) use with unknown spatial size.
    sym = net(keras.Input((None, None, 3)))
    assert tuple(sym["conv3_2"].shape) == (None, None, None, 256)
    sym = net(keras.Input((32, 64, 3)))
    assert {n: tuple(t.shape[1:]) for n, t in sym.items()} == expect


def test_vgg16_names_shapes_and_truncation():
    net = VGGFeatures(depth=16, layers=("conv2_2", "conv3_3", "conv5_3"))
    out = net(_images())
    assert tuple(out["conv3_3"].shape) == (2, 8, 16, 256)
    assert tuple(out["conv5_3"].shape) == (2, 2, 4, 512)
    assert len(net._kernels) == 13
    # Only the convs up to the deepest request are created (CRN stops at conv5_2).
    assert len(VGGFeatures(depth=16, layers=("conv2_2",))._kernels) == 4
    assert len(VGGFeatures(depth=19).trainable_weights) == 0
    assert len(VGGFeatures(depth=19)._kernels) == 14  # default stops at conv5_2
    with pytest.raises(ValueError, match="conv3_4"):
        VGGFeatures(depth=16, layers=("conv3_4",))
    with pytest.raises(ValueError):
        VGGFeatures(depth=18)
    with pytest.raises(ValueError):
        VGGFeatures(pooling="sum")


def test_input_feature_is_rgb_minus_mean():
    x = _images()
    out = VGGFeatures(layers=("input",))(x)
    np.testing.assert_allclose(out["input"].numpy(), x - MEAN_RGB, rtol=0, atol=1e-4)


def test_avg_and_max_pooling():
    x = _images()
    avg = VGGFeatures(layers=("conv1_2", "pool1"), pooling="avg")(x)
    mx = VGGFeatures(layers=("conv1_2", "pool1"), pooling="max")(x)
    c = avg["conv1_2"].numpy()
    np.testing.assert_array_equal(c, mx["conv1_2"].numpy())  # same weights before pooling
    blocks = c.reshape(2, H // 2, 2, W // 2, 2, 64)
    _close(avg["pool1"].numpy(), blocks.mean(axis=(2, 4)), rel=1e-5)
    _close(mx["pool1"].numpy(), blocks.max(axis=(2, 4)), rel=1e-6)
    assert np.abs(avg["pool1"].numpy() - mx["pool1"].numpy()).max() > 1.0


def test_random_weights_deterministic():
    a = VGGFeatures(layers=("conv3_2",))
    b = VGGFeatures(layers=("conv3_2", "conv5_2"))
    ka, kb = _kernels(a), _kernels(b)
    for name in ka:  # Same conv weights however deep the net is built.
        np.testing.assert_array_equal(ka[name][0], kb[name][0])
        assert not ka[name][1].any()  # zero bias
    x = _images()
    np.testing.assert_array_equal(a(x)["conv3_2"].numpy(), b(x)["conv3_2"].numpy())
    assert a.weights_source == "random"
    assert not np.array_equal(ka["conv1_2"][0][..., :64], ka["conv2_1"][0][..., :64, :64])


# ----------------------------------------------------------------------------- MatConvNet


def _write_matconvnet(path, params, depth=19, layout="meta", mean=MEAN_RGB, skip=(),
                      override=None):
    """Writes a simplenn file shaped like imagenet-vgg-verydeep-19.mat (conv part only)."""
    override = override or {}
    layers = []
    for b, n in enumerate(perceptual._BLOCK_CONVS[depth], start=1):
        for c in range(1, n + 1):
            name = f"conv{b}_{c}"
            if name in skip:
                continue
            k, bias = override.get(name, params.get(name, (np.zeros((1, 1)), np.zeros(1))))
            layer = {"name": name, "type": "conv", "stride": np.array([1.0, 1.0]),
                     "pad": np.array([1.0, 1.0, 1.0, 1.0])}
            if layout == "meta":  # beta-15+ cell {kernel, bias}, bias stored as a row
                weights = np.empty((1, 2), dtype=object)
                weights[0, 0], weights[0, 1] = k, np.reshape(bias, (1, -1))
                layer["weights"] = weights
            else:  # pre-beta-15 separate fields, bias as a column
                layer["filters"], layer["biases"] = k, np.reshape(bias, (-1, 1))
            layers += [layer, {"name": f"relu{b}_{c}", "type": "relu"}]
        layers.append({"name": f"pool{b}", "type": "pool", "method": "max",
                       "pool": np.array([2.0, 2.0]), "stride": np.array([2.0, 2.0]),
                       "pad": np.zeros(4)})
    cell = np.empty((1, len(layers)), dtype=object)
    for i, layer in enumerate(layers):
        cell[0, i] = layer
    if layout == "meta":
        norm = {"averageImage": np.reshape(mean, (1, 1, 3)), "imageSize": np.array([224.0, 224, 3])}
        scipy.io.savemat(path, {"layers": cell, "meta": {"normalization": norm}})
    else:
        avg = np.broadcast_to(np.reshape(mean, (1, 1, 3)), (224, 224, 3)).copy()
        scipy.io.savemat(path, {"layers": cell, "normalization": {"averageImage": avg}})


@pytest.fixture(scope="module")
def random19():
    net = VGGFeatures(layers=("conv1_2", "pool2", "conv3_2", "conv5_4"))
    params = _kernels(net)
    rng = np.random.default_rng(7)  # nonzero biases so a bias mix-up cannot pass
    for name, (k, b) in params.items():
        b[:] = rng.normal(0, 0.1, b.shape)
        net._biases[_conv_names(19).index(name)].assign(b)
    return net, params


@pytest.mark.parametrize("layout", ["meta", "legacy"])
def test_matconvnet_loads_exactly(tmp_path, random19, layout):
    ref, params = random19
    path = str(tmp_path / "imagenet-vgg-verydeep-19.mat")
    _write_matconvnet(path, params, layout=layout)
    net = VGGFeatures(layers=ref.feature_names, weights=path)
    assert net.weights_source == "matconvnet"
    got = _kernels(net)
    assert set(got) == set(_conv_names(19))
    for name, (k, b) in params.items():
        np.testing.assert_array_equal(got[name][0], k)  # HWIO as stored, no transpose
        np.testing.assert_array_equal(got[name][1], b)
    np.testing.assert_allclose(net.mean_rgb, MEAN_RGB, rtol=1e-6)
    x = _images()
    a, b = net(x), ref(x)
    for name in ref.feature_names:
        _close(a[name].numpy(), b[name].numpy(), rel=1e-5)


def test_matconvnet_mean_is_read_from_file(tmp_path, random19):
    path = str(tmp_path / "m.mat")
    _write_matconvnet(path, random19[1], mean=np.array([100.0, 110.0, 120.0]))
    net = VGGFeatures(layers=("input",), weights=path)
    x = _images()
    _close(net(x)["input"].numpy(), x - np.array([100.0, 110.0, 120.0], np.float32), rel=1e-6)


def test_matconvnet_errors(tmp_path, random19):
    params = random19[1]
    missing = str(tmp_path / "nope.mat")
    with pytest.raises(PerceptualWeightsError, match="nope.mat"):
        VGGFeatures(weights=missing)
    corrupt = tmp_path / "corrupt.mat"
    corrupt.write_bytes(b"this is not a MATLAB file at all" * 10)
    with pytest.raises(PerceptualWeightsError, match="corrupt.mat"):
        VGGFeatures(weights=str(corrupt))
    no_layers = str(tmp_path / "nolayers.mat")
    scipy.io.savemat(no_layers, {"foo": np.zeros(3)})
    with pytest.raises(PerceptualWeightsError, match="nolayers.mat.*layers"):
        VGGFeatures(weights=no_layers)
    bad = str(tmp_path / "badshape.mat")
    wrong = (np.zeros((3, 3, 64, 100), np.float32), np.zeros(100, np.float32))
    _write_matconvnet(bad, params, override={"conv2_1": wrong})
    with pytest.raises(PerceptualWeightsError, match=r"badshape\.mat.*conv2_1"):
        VGGFeatures(layers=("conv3_2",), weights=bad)
    # A request that stops before the bad layer does not read it.
    VGGFeatures(layers=("conv1_2",), weights=bad)
    hole = str(tmp_path / "hole.mat")
    _write_matconvnet(hole, params, skip=("conv3_1",))
    with pytest.raises(PerceptualWeightsError, match=r"hole\.mat.*conv3_1"):
        VGGFeatures(layers=("conv3_2",), weights=hole)
    # A VGG-19 file must not be silently wired up as VGG-16.
    with pytest.raises(PerceptualWeightsError, match="VGG-16"):
        VGGFeatures(depth=16, layers=("conv1_2",), weights=str(tmp_path / "badshape.mat"))
    with pytest.raises(PerceptualWeightsError, match="expected"):
        VGGFeatures(weights=str(tmp_path / "weights.npz"))


# ----------------------------------------------------------------------------- keras .h5


def _write_legacy_notop_h5(path, model):
    """Writes weights the way keras caches vgg19_..._notop.h5 (legacy weights-only HDF5)."""
    with h5py.File(path, "w") as f:
        names = [layer.name for layer in model.layers]
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        for layer in model.layers:
            g = f.create_group(layer.name)
            values = layer.get_weights()
            wnames = [f"{layer.name}_W_1:0", f"{layer.name}_b_1:0"][: len(values)]
            g.attrs["weight_names"] = np.array([n.encode() for n in wnames])
            for n, v in zip(wnames, values):
                g.create_dataset(n, data=v)


@pytest.fixture(scope="module")
def keras_vgg19(tmp_path_factory):
    model = keras.applications.VGG19(weights=None, include_top=False)
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if layer.get_weights():  # nonzero biases so a bias mix-up cannot pass
            k, b = layer.get_weights()
            layer.set_weights([k, rng.normal(0, 0.1, b.shape).astype(np.float32)])
    d = tmp_path_factory.mktemp("h5")
    native = str(d / "vgg19.weights.h5")
    model.save_weights(native)
    legacy = str(d / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
    _write_legacy_notop_h5(legacy, model)
    return model, {"native": native, "legacy": legacy}


def _keras_block_outputs(model, x_bgr, names):
    sub = keras.Model(model.input, [model.get_layer(n).output for n in names])
    return [o.numpy() for o in sub(x_bgr)]


@pytest.mark.parametrize("fmt", ["native", "legacy"])
def test_h5_matches_keras_bgr_model(keras_vgg19, fmt):
    model, paths = keras_vgg19
    ours = ("conv1_2", "pool1", "conv3_2", "conv5_4")
    theirs = ("block1_conv2", "block1_pool", "block3_conv2", "block5_conv4")
    net = VGGFeatures(layers=ours, pooling="max", weights=paths[fmt])
    assert net.weights_source == "h5"
    x = _images()
    got = net(x)
    bgr = x[..., ::-1] - MEAN_RGB[::-1]  # keras "caffe" preprocessing
    for name, ref in zip(ours, _keras_block_outputs(model, bgr, theirs)):
        _close(got[name].numpy(), ref, rel=1e-4)
    # Negative control: feeding keras RGB (no flip) gives clearly different features, so the
    # check above really tests the channel-order handling.
    wrong = _keras_block_outputs(model, x - MEAN_RGB, ("block1_conv2",))[0]
    assert np.abs(wrong - got["conv1_2"].numpy()).max() > 1e-2 * np.abs(wrong).max()


def test_h5_errors(tmp_path):
    with pytest.raises(PerceptualWeightsError, match="absent.h5"):
        VGGFeatures(weights=str(tmp_path / "absent.h5"))
    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(PerceptualWeightsError, match="junk.weights.h5"):
        VGGFeatures(weights=str(junk))


# ----------------------------------------------------------------------------- imagenet/auto


def _fail_download(depth):
    raise OSError("simulated: no network")


def test_auto_falls_back_to_random_loudly(monkeypatch, capsys):
    monkeypatch.setattr(perceptual, "download_imagenet_vgg", _fail_download)
    logged = []
    monkeypatch.setattr(perceptual.logging, "warning", lambda msg, *a: logged.append(msg % a))
    before = socket.getdefaulttimeout()
    net = VGGFeatures(layers=("conv2_2",), weights="auto")
    assert net.weights_source == "random"
    assert socket.getdefaulttimeout() == before
    err = capsys.readouterr().err
    for text in (err, "\n".join(logged)):
        assert "RANDOM" in text and "simulated: no network" in text
        assert "--vgg_weights=/path/imagenet-vgg-verydeep-19.mat" in text
        assert "--vgg_weights=/path/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in text
        assert "~/.keras/models/" in text
    ref = VGGFeatures(layers=("conv2_2",))
    np.testing.assert_array_equal(net._kernels[3].numpy(), ref._kernels[3].numpy())


def test_imagenet_strict_raises(monkeypatch):
    monkeypatch.setattr(perceptual, "download_imagenet_vgg", _fail_download)
    with pytest.raises(PerceptualWeightsError, match="vgg16_weights_tf_dim_ordering"):
        VGGFeatures(depth=16, weights="imagenet")


def test_imagenet_uses_downloader_with_timeout(monkeypatch, keras_vgg19, tmp_path):
    model, paths = keras_vgg19
    seen = {}

    def fake_download(depth):
        seen["timeout"], seen["depth"] = socket.getdefaulttimeout(), depth
        return model

    monkeypatch.setattr(perceptual, "download_imagenet_vgg", fake_download)
    monkeypatch.setattr(perceptual, "_keras_cache_paths", lambda d: (str(tmp_path / "none.h5"),))
    before = socket.getdefaulttimeout()
    net = VGGFeatures(layers=("conv2_2",), pooling="max", weights="imagenet")
    assert net.weights_source == "imagenet"
    assert seen == {"timeout": perceptual._DOWNLOAD_TIMEOUT_S, "depth": 19}
    assert socket.getdefaulttimeout() == before
    x = _images()
    via_h5 = VGGFeatures(layers=("conv2_2",), pooling="max", weights=paths["native"])
    np.testing.assert_array_equal(net(x)["conv2_2"].numpy(), via_h5(x)["conv2_2"].numpy())


# ----------------------------------------------------------------------------- execution modes


def test_gradient_reaches_input():
    net = VGGFeatures(layers=("conv1_2", "conv3_2"))
    x = tf.constant(_images(n=1))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = net(x)
        loss = tf.reduce_mean(out["conv1_2"]) + tf.reduce_mean(out["conv3_2"])
    g = tape.gradient(loss, x).numpy()
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 0


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_recomputed_stages_give_the_same_features_and_gradients(pooling):
    # conv2_1 sits inside a stage, pool3 ends one, conv4_2 is in the last, truncated one.
    vgg = VGGFeatures(depth=19, layers=("input", "conv2_1", "pool3", "conv4_2"), pooling=pooling)
    rgb = tf.constant(np.random.default_rng(0).uniform(0, 255, (2, 32, 48, 3)), tf.float32)

    @tf.function
    def features_and_gradient():
        with tf.GradientTape() as tape:
            tape.watch(rgb)
            features = vgg(rgb)
            loss = tf.add_n([tf.reduce_mean(tf.square(f)) for f in features.values()])
        return features, tape.gradient(loss, rgb)

    def forward_convolutions(function):  # Conv2D ops: the backward pass's are Conv2DBackprop*
        return sum(op.type == "Conv2D" for op in function.get_concrete_function().graph.get_operations())

    plain = features_and_gradient()
    plain_convolutions = forward_convolutions(features_and_gradient)
    vgg.recompute = True
    features_and_gradient = tf.function(features_and_gradient.python_function)
    recomputed = features_and_gradient()
    # The backward pass runs every stage forward again: conv1_1 .. conv4_2 are 10 convolutions.
    assert forward_convolutions(features_and_gradient) == 2 * plain_convolutions == 20
    for name in plain[0]:
        np.testing.assert_allclose(recomputed[0][name].numpy(), plain[0][name].numpy(), rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(recomputed[1].numpy(), plain[1].numpy(), rtol=1e-4,
                               atol=1e-6 * float(tf.reduce_max(tf.abs(plain[1]))))


def test_tf_function_unknown_shape_and_xla():
    net = VGGFeatures(layers=("conv2_2", "pool3"))
    spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    graph_fn = tf.function(lambda x: net(x), input_signature=[spec])
    xla_fn = tf.function(lambda x: net(x), jit_compile=True)
    for h, w in ((32, 64), (48, 16)):
        x = _images(n=1, h=h, w=w)
        eager = net(x)
        for fn in (graph_fn, xla_fn):
            out = fn(tf.constant(x))
            assert tuple(out["pool3"].shape) == (1, h // 8, w // 8, 256)
            _close(out["conv2_2"].numpy(), eager["conv2_2"].numpy(), rel=1e-4)


def test_mirrored_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        net = VGGFeatures(layers=("conv2_2",))
    x = _images(n=2)
    out = strategy.run(tf.function(lambda t: net(t)["conv2_2"]), args=(tf.constant(x),))
    out = strategy.experimental_local_results(out)[0]
    _close(out.numpy(), VGGFeatures(layers=("conv2_2",))(x)["conv2_2"].numpy(), rel=1e-4)


def test_mixed_bfloat16_policy():
    net = VGGFeatures(layers=("conv2_2",), dtype="mixed_bfloat16")
    assert all(v.dtype == "float32" for v in net.weights)
    x = _images(n=1)
    out = net(x)["conv2_2"]
    assert out.dtype == tf.bfloat16
    ref = VGGFeatures(layers=("conv2_2",))(x)["conv2_2"].numpy()
    err = np.abs(out.numpy().astype(np.float32) - ref).max()
    assert err < 0.05 * np.abs(ref).max()


def test_config_roundtrip():
    net = VGGFeatures(depth=16, layers=("conv1_1", "pool2"), pooling="max", name="vgg")
    cfg = net.get_config()
    clone = VGGFeatures.from_config(cfg)
    assert (clone.depth, clone.feature_names, clone.pooling) == (16, ("conv1_1", "pool2"), "max")
    assert not clone.trainable


# ----------------------------------------------------------------------------- LPIPS weights

#: The shipped LPIPS file is PyPI lpips 0.1.4's ``lpips/weights/v0.1/vgg.pth``: its size and
#: sha256 (the wheel's RECORD lists the same digest), fixed here so a changed copy fails.
LPIPS_FILE_BYTES = 7289
LPIPS_FILE_SHA256 = "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"


def _write_pth(path, arrays):
    """``arrays`` (name -> float32 array) as a torch.save zip state dict, written with the
    stand-in pickler of test_torch_files (no PyTorch)."""
    import collections

    from test_torch_files import Storage, Tensor, write_checkpoint

    state = collections.OrderedDict()
    for key, (name, value) in enumerate(arrays.items()):
        value = np.ascontiguousarray(value, np.float32)
        storage = Storage(str(key), "FloatStorage", value.astype("<f4").ravel())
        strides = [int(np.prod(value.shape[i + 1:])) for i in range(value.ndim)]
        state[name] = Tensor(storage, 0, value.shape, strides)
    return str(write_checkpoint(path, state))


def _lin_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {f"lin{i}.model.1.weight": rng.uniform(0, 1, (1, c, 1, 1)).astype(np.float32)
            for i, c in enumerate(perceptual.LPIPS_CHANNELS)}


def test_shipped_lpips_weights_are_the_official_file():
    import fnmatch
    import hashlib
    import os
    import tomllib

    from tfsynth.importing.torch_files import read_state_dict

    path = perceptual.BUILTIN_LPIPS_PATH
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) == LPIPS_FILE_BYTES
    assert hashlib.sha256(data).hexdigest() == LPIPS_FILE_SHA256
    folder = os.path.dirname(path)
    with open(os.path.join(folder, "README.md")) as f:
        assert LPIPS_FILE_SHA256 in f.read()  # the README states the digest the file has
    with open(os.path.join(folder, "LICENSE-lpips")) as f:
        license_text = f.read()
    assert license_text.startswith("Copyright (c) 2018, Richard Zhang")
    assert "Redistribution and use in source and binary forms" in license_text

    # Package data: every shipped file matches a pattern pyproject.toml gives tfsynth.weights.
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pyproject.toml"), "rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["tfsynth.weights"]
    for name in ("lpips_vgg_v0.1.pth", "LICENSE-lpips", "README.md"):
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name

    state = read_state_dict(path)  # independently of load_lpips_weights
    for source in (perceptual.BUILTIN_LPIPS, path):
        weights = perceptual.load_lpips_weights(source)
        assert [w.shape for w in weights] == [(64,), (128,), (256,), (512,), (512,)]
        for index, w in enumerate(weights):
            assert w.dtype == np.float32 and (w >= 0).all() and w.max() > 0
            np.testing.assert_array_equal(w, state[f"lin{index}.model.1.weight"].reshape(-1))
    # Not a stand-in of ones: LPIPS's fitted weights sum to far less than the channel counts.
    assert all(w.sum() < 0.25 * w.size for w in weights)


def test_lpips_npz_and_pth_forms_give_the_same_weights(tmp_path):
    official = perceptual.load_lpips_weights(perceptual.BUILTIN_LPIPS)
    np.savez(tmp_path / "short.npz", **{f"lin{i}": w for i, w in enumerate(official)})
    for index, w in enumerate(perceptual.load_lpips_weights(str(tmp_path / "short.npz"))):
        np.testing.assert_array_equal(w, official[index])

    arrays = _lin_arrays()
    pth = _write_pth(tmp_path / "mine.pth", arrays)  # the zip format, unlike the legacy shipped one
    np.savez(tmp_path / "mine.npz", **arrays)  # the state dict's names work in a .npz too
    from_pth = perceptual.load_lpips_weights(pth)
    from_npz = perceptual.load_lpips_weights(str(tmp_path / "mine.npz"))
    for index, (a, b) in enumerate(zip(from_pth, from_npz)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, arrays[f"lin{index}.model.1.weight"].reshape(-1))
    # The content decides the format, not the name (a run's copy has a fixed name).
    (tmp_path / "named_npz.npz").write_bytes((tmp_path / "mine.pth").read_bytes())
    (tmp_path / "named_pth.pth").write_bytes((tmp_path / "mine.npz").read_bytes())
    for name in ("named_npz.npz", "named_pth.pth"):
        for a, b in zip(perceptual.load_lpips_weights(str(tmp_path / name)), from_pth):
            np.testing.assert_array_equal(a, b)


def test_malformed_lpips_files_are_errors_naming_the_file(tmp_path):
    def refused(path, match):
        with pytest.raises(PerceptualWeightsError, match=match) as caught:
            perceptual.load_lpips_weights(str(path))
        assert str(path) in str(caught.value)

    refused(tmp_path / "absent.pth", "not found")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00not a checkpoint at all" * 10)
    refused(junk, "neither a .npz nor a readable PyTorch state dict")
    truncated = tmp_path / "truncated.pth"
    with open(perceptual.BUILTIN_LPIPS_PATH, "rb") as f:
        truncated.write_bytes(f.read()[:3000])
    refused(truncated, "PyTorch state dict")

    arrays = _lin_arrays()
    refused(_write_pth(tmp_path / "no_lin3.pth", {k: v for k, v in arrays.items() if not k.startswith("lin3")}),
            r"no array lin3 or lin3\.model\.1\.weight")
    refused(_write_pth(tmp_path / "short_lin2.pth", {**arrays, "lin2.model.1.weight": np.ones((1, 200, 1, 1))}),
            "lin2 has 200 weights, LPIPS VGG needs 256")
    refused(_write_pth(tmp_path / "negative.pth", {**arrays, "lin4.model.1.weight": -np.ones((1, 512, 1, 1))}),
            "lin4 has negative")
    refused(_write_pth(tmp_path / "other.pth", {"features.0.weight": np.ones((64, 3, 3, 3))}),
            r"no array lin0 .*features\.0\.weight")


# ----------------------------------------------------------------------------- torchvision VGG

def _torchvision_state(depth, seed=0, upto=None):
    """A state dict laid out as torchvision's ``vgg<depth>()`` (random values): each conv at its
    index in ``features``, a (small, ignored) classifier; only the convs before ``upto`` when given."""
    rng = np.random.default_rng(seed)
    indices = {16: (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
               19: (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)}[depth]
    state = {}
    for index, (name, cin, cout) in zip(indices, perceptual._conv_specs(depth)):
        if name == upto:
            break
        state[f"features.{index}.weight"] = rng.standard_normal((cout, cin, 3, 3), np.float32) * 0.05
        state[f"features.{index}.bias"] = rng.standard_normal(cout, np.float32)
    state["classifier.0.weight"] = rng.standard_normal((4, 8), np.float32)  # ignored by the loader
    state["classifier.0.bias"] = np.zeros(4, np.float32)
    return state


@pytest.fixture(scope="module")
def torchvision16(tmp_path_factory):
    state = _torchvision_state(16)
    return _write_pth(tmp_path_factory.mktemp("torchvision") / "vgg16-random.pth", state), state


def test_torchvision_vgg16_state_dict_loads_transposed(torchvision16):
    path, state = torchvision16
    net = VGGFeatures(depth=16, layers=perceptual.LPIPS_LAYERS, pooling="max", weights=path)
    assert net.weights_source == "torchvision"
    kernels = _kernels(net)
    assert list(kernels) == _conv_names(16)
    std = np.float32(perceptual.TORCHVISION_STD_RGB)
    for index, name in zip((0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28), _conv_names(16)):
        kernel, bias = kernels[name]
        expected = state[f"features.{index}.weight"].transpose(2, 3, 1, 0)  # OIHW -> HWIO
        if name == "conv1_1":  # torchvision's 1/std on the [0, 1] scale, folded into the kernel
            np.testing.assert_allclose(kernel, expected / (255 * std)[None, None, :, None], rtol=1e-6)
        else:
            np.testing.assert_array_equal(kernel, expected)
        np.testing.assert_array_equal(bias, state[f"features.{index}.bias"])
    np.testing.assert_allclose(net.mean_rgb, 255 * np.float32(perceptual.TORCHVISION_MEAN_RGB), rtol=1e-6)


def test_torchvision_weights_use_torchvision_normalisation(torchvision16):
    """0..255 RGB in gives the activations torchvision's VGG computes on (x / 255 - mean) / std."""
    path, state = torchvision16
    net = VGGFeatures(depth=16, layers=("conv1_1", "conv1_2"), pooling="max", weights=path)
    x = _images()
    normalised = (x / 255 - np.float32(perceptual.TORCHVISION_MEAN_RGB)) / np.float32(perceptual.TORCHVISION_STD_RGB)
    expected = tf.constant(normalised)
    for index in (0, 2):  # conv1_1, conv1_2, PyTorch's padding 1 = SAME
        kernel = state[f"features.{index}.weight"].transpose(2, 3, 1, 0)
        expected = tf.nn.relu(tf.nn.conv2d(expected, kernel, 1, "SAME") + state[f"features.{index}.bias"])
        if index == 0:
            first = expected
    out = net(x)
    _close(out["conv1_1"].numpy(), first.numpy())
    _close(out["conv1_2"].numpy(), expected.numpy())


def test_torchvision_errors_name_the_file_and_tensor(tmp_path, torchvision16):
    def refused(path, match, depth=16):
        with pytest.raises(PerceptualWeightsError, match=match) as caught:
            VGGFeatures(depth=depth, layers=("conv5_3",), weights=str(path))
        assert str(path) in str(caught.value)

    # Only the convs the checks reach are written: they run in network order and stop at the first.
    wrong = _torchvision_state(16, upto="conv3_3")
    wrong["features.12.weight"] = wrong["features.12.weight"][..., :1]  # conv3_2 as 3x1
    refused(_write_pth(tmp_path / "wrong_shape.pth", wrong),
            r"tensor features\.12\.weight \(conv3_2\) has shape \(256, 256, 3, 1\), .* needs \(256, 256, 3, 3\)")
    missing = _torchvision_state(16, upto="conv3_3")
    del missing["features.7.weight"]
    refused(_write_pth(tmp_path / "missing.pth", missing), r"tensor features\.7\.weight \(conv2_2\) missing")
    batch_norm = {**_torchvision_state(16, upto="conv1_2"), "features.1.running_mean": np.zeros(64, np.float32)}
    refused(_write_pth(tmp_path / "vgg16_bn.pth", batch_norm), r"tensor features\.1\.running_mean .*no conv")
    refused(_write_pth(tmp_path / "generator.pth", {"model.1.weight": np.ones((8, 3, 3, 3))}),
            r"no features\.<i> tensors.*model\.1\.weight")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00" * 64)
    refused(junk, "not a readable PyTorch state dict")
    refused(tmp_path / "absent.pth", "not found")
    # VGG-16's file as VGG-19: conv4_1 sits at index 17, which VGG-19 gives a ReLU.
    refused(torchvision16[0], r"tensor features\.17\.weight .*no conv of torchvision's VGG-19", depth=19)


@pytest.mark.family("fastgan")
def test_fastgan_uses_the_shipped_lpips_weights_by_default(tmp_path):
    from family_support import smoke_config
    from tfsynth.importing.torch_files import read_state_dict
    from tfsynth.models.fastgan import LPIPS_PTH_COPY, FastGAN, FastGANConfig
    from tfsynth.run_dir import copy_run_files

    assert FastGANConfig().lpips_weights == perceptual.BUILTIN_LPIPS
    model = FastGAN(smoke_config("fastgan"))  # vgg_weights=random; lpips_weights the default
    assert model.run_files() == {LPIPS_PTH_COPY: perceptual.BUILTIN_LPIPS_PATH}
    copy_run_files(model, str(tmp_path))
    with open(perceptual.BUILTIN_LPIPS_PATH, "rb") as f:
        assert (tmp_path / LPIPS_PTH_COPY).read_bytes() == f.read()  # the run keeps its own copy
    assert model.run_file(LPIPS_PTH_COPY) == str(tmp_path / LPIPS_PTH_COPY)
    model.build_loss_networks()
    state = read_state_dict(perceptual.BUILTIN_LPIPS_PATH)
    assert len(model.lpips_weights) == 5
    for index, w in enumerate(model.lpips_weights):
        np.testing.assert_array_equal(w.numpy(), state[f"lin{index}.model.1.weight"].reshape(-1))

    uniform = FastGAN(smoke_config("fastgan", lpips_weights="uniform"))
    assert uniform.run_files() == {}
    uniform.build_loss_networks()
    assert uniform.lpips_weights is None  # every channel weighs 1 (losses.lpips_distance)
