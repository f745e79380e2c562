"""Frozen VGG-16/19 feature extractors for perceptual (feature-matching) losses.

CRN (Chen & Koltun 2017) compares images through VGG-19 activations computed with *average*
pooling on mean-subtracted RGB in the 0..255 range; pix2pixHD and Johnson et al. use the same
network with max pooling. :class:`VGGFeatures` covers both and loads the ImageNet weights from
keras.applications (downloaded or pre-seeded ``*_notop.h5``), from the MatConvNet file
``imagenet-vgg-verydeep-19.mat`` that CRN used, or from torchvision's ``vgg16-*.pth`` /
``vgg19-*.pth`` state dict (the network pix2pixHD's VGG loss and LPIPS were built on).

Every weight source is converted to one internal convention at load time: RGB input on the 0..255
scale minus an RGB mean, kernels in TF's HWIO layout. The Caffe-converted keras weights expect BGR,
so the input channel axis of their first kernel is reversed; this is exactly equivalent to feeding
BGR and keeps the graph identical for all sources. torchvision's weights expect RGB in [0, 1]
normalised per channel by a mean and a standard deviation; that affine map is folded the same way
(the mean, times 255, is the subtracted one, and conv1_1's input channels are divided by 255 times
the deviation).
"""

from __future__ import annotations

import functools
import os
import re
import socket
import sys
import zipfile
from typing import Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfsynth.importing.torch_files import TorchFileError, read_state_dict

# Channel mean of the ImageNet training set, RGB order, 0..255 scale (the value the VGG authors
# published; keras' "caffe" preprocessing uses the same numbers in BGR order).
IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)
# torchvision's ImageNet normalisation, RGB on the [0, 1] scale: its VGG weights were trained on
# (x - mean) / std, not on Caffe's mean-subtracted 0..255 BGR.
TORCHVISION_MEAN_RGB = (0.485, 0.456, 0.406)
TORCHVISION_STD_RGB = (0.229, 0.224, 0.225)
_BLOCK_CONVS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
_WIDTHS = (64, 128, 256, 512, 512)
_RANDOM_SEED = 1234
_DOWNLOAD_TIMEOUT_S = 15.0


class PerceptualWeightsError(ValueError):
    """VGG weights were requested from a source that is missing, unreadable or malformed."""


#: LPIPS v0.1 on VGG-16 (Zhang et al. 2018): the features it compares and their channels.
LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
LPIPS_CHANNELS = (64, 128, 256, 512, 512)


#: The ``lpips_weights`` name of the LPIPS v0.1 VGG weights shipped with tfsynth.
BUILTIN_LPIPS = "lpips_v0.1"
#: Where the shipped file lies: ``lpips/weights/v0.1/vgg.pth`` of PyPI's lpips 0.1.4, unmodified
#: (BSD 2-clause; tfsynth/weights/README.md).
BUILTIN_LPIPS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "lpips_vgg_v0.1.pth")


def lpips_weights_path(name_or_path: str) -> str:
    """The file that ``name_or_path`` names: the shipped file for :data:`BUILTIN_LPIPS`, else the
    path itself."""
    return BUILTIN_LPIPS_PATH if name_or_path == BUILTIN_LPIPS else name_or_path


def _is_npz(path: str) -> bool:
    # A .npz is a zip of .npy members; torch.save's zip format holds data.pkl and raw records,
    # never a .npy, and its legacy format is no zip at all. So the content decides, not the name
    # (a run's copy keeps one name whatever its source was called).
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith(".npy") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_lpips_weights(path: str) -> list[np.ndarray]:
    """The five non-negative channel weights of LPIPS v0.1's VGG ``lin`` layers.

    ``path`` is :data:`BUILTIN_LPIPS` (``"lpips_v0.1"``: the official weights shipped with
    tfsynth), the official ``vgg.pth`` itself or another PyTorch state dict of the same layout
    (read without PyTorch, by :func:`tfsynth.importing.torch_files.read_state_dict`; keys
    ``lin0.model.1.weight`` .. ``lin4.model.1.weight``), or a ``.npz`` with one array per layer
    (keys ``lin0`` .. ``lin4``, or the state dict's names). Each layer has 64, 128, 256, 512, 512
    elements, in any shape (the state dict's [1, C, 1, 1] works).

    Raises:
      PerceptualWeightsError: naming the file: missing or unreadable, a missing layer, a wrong
        size or a negative weight.
    """
    path = lpips_weights_path(path)
    if not os.path.isfile(path):
        raise PerceptualWeightsError(f"LPIPS weights file not found: {path}")
    if _is_npz(path):
        try:
            with np.load(path) as data:
                arrays = dict(data)
        except Exception as e:  # zipfile, pickle and value errors all mean "not an .npz of arrays".
            raise PerceptualWeightsError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    else:
        try:
            arrays = read_state_dict(path)
        except TorchFileError as e:
            raise PerceptualWeightsError(
                f"{path}: neither a .npz nor a readable PyTorch state dict ({e.reason})") from None
    weights = []
    for index, channels in enumerate(LPIPS_CHANNELS):
        value = arrays.get(f"lin{index}", arrays.get(f"lin{index}.model.1.weight"))
        if value is None:
            keys = sorted(arrays)
            listed = ", ".join(keys[:8]) + (", ..." if len(keys) > 8 else "")
            raise PerceptualWeightsError(
                f"{path}: no array lin{index} or lin{index}.model.1.weight (keys: {listed or 'none'})")
        value = np.asarray(value, np.float32).reshape(-1)
        if value.size != channels:
            raise PerceptualWeightsError(f"{path}: lin{index} has {value.size} weights, LPIPS VGG needs {channels}")
        # LPIPS's trainer clamps the lin weights to >= 0 after every step; a negative one would
        # let a distance go below zero, so such a file holds no LPIPS weights.
        if not (np.isfinite(value).all() and (value >= 0).all()):
            raise PerceptualWeightsError(f"{path}: lin{index} has negative or non-finite weights")
        weights.append(value)
    return weights


def _keras_notop_filename(depth: int) -> str:
    return f"vgg{depth}_weights_tf_dim_ordering_tf_kernels_notop.h5"


def _howto(depth: int) -> str:
    return (
        "To use real ImageNet VGG weights without network access, pass one of\n"
        f"  --vgg_weights=/path/imagenet-vgg-verydeep-{depth}.mat   (MatConvNet; the file CRN used)\n"
        f"  --vgg_weights=/path/{_keras_notop_filename(depth)}   (keras.applications)\n"
        f"  --vgg_weights=/path/vgg{depth}-*.pth   (torchvision's state dict)\n"
        f"or copy {_keras_notop_filename(depth)} into ~/.keras/models/ (the keras download cache)."
    )


def _keras_cache_paths(depth: int) -> Tuple[str, ...]:
    # Mirrors keras.utils.get_file: $KERAS_HOME or ~/.keras, falling back to /tmp/.keras when
    # the home directory is read-only.
    home = os.path.expanduser(os.environ.get("KERAS_HOME") or os.path.join("~", ".keras"))
    name = _keras_notop_filename(depth)
    return (os.path.join(home, "models", name), os.path.join("/tmp", ".keras", "models", name))


def _keras_vgg(depth: int, weights):
    ctor = keras.applications.VGG19 if depth == 19 else keras.applications.VGG16
    return ctor(include_top=False, weights=weights)


def download_imagenet_vgg(depth: int) -> keras.Model:
    """Returns keras.applications VGG-``depth`` (no top) with ImageNet weights.

    Downloads into the keras cache on first use. Module-level so tests can monkeypatch it.
    """
    return _keras_vgg(depth, "imagenet")


def _from_keras_model(model, depth: int):
    params = {}
    for b, n in enumerate(_BLOCK_CONVS[depth], start=1):
        for c in range(1, n + 1):
            kernel, bias = model.get_layer(f"block{b}_conv{c}").get_weights()
            params[f"conv{b}_{c}"] = (np.asarray(kernel, np.float32), np.asarray(bias, np.float32))
    # Caffe-converted weights read BGR: reversing conv1_1's input channels makes them read RGB.
    k, bias = params["conv1_1"]
    params["conv1_1"] = (np.ascontiguousarray(k[:, :, ::-1, :]), bias)
    return params, np.asarray(IMAGENET_MEAN_RGB, np.float32)


def _load_h5(path: str, depth: int):
    if not os.path.isfile(path):
        raise PerceptualWeightsError(f"VGG weights file not found: {path}\n{_howto(depth)}")
    model = _keras_vgg(depth, None)
    try:
        model.load_weights(path)
    except Exception as e:  # h5py/keras raise many types; all mean "not usable".
        raise PerceptualWeightsError(
            f"{path}: cannot load as keras.applications VGG-{depth} (include_top=False) weights: "
            f"{type(e).__name__}: {e}"
        ) from e
    return _from_keras_model(model, depth)


def _field(obj, name):
    """Reads a field of a loadmat result (dict at top level, mat_struct below), else None."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _load_matconvnet(path: str, depth: int, needed: Sequence[str]):
    """Reads a MatConvNet "simplenn" model (e.g. imagenet-vgg-verydeep-19.mat).

    Layout: ``layers`` is a cell array of structs with ``name``, ``type`` and, for convs,
    ``weights = {kernel [h, w, in, out], bias}`` (or ``filters``/``biases`` before beta-15). The
    mean is ``normalization.averageImage`` (older files) or ``meta.normalization.averageImage``.
    MatConvNet's Caffe importer already transposed kernels to [h, w, in, out] and flipped conv1_1
    to RGB, so they are TF's HWIO as stored.
    """
    import scipy.io  # Deferred: only this source needs scipy.

    if not os.path.isfile(path):
        raise PerceptualWeightsError(f"VGG weights file not found: {path}\n{_howto(depth)}")
    try:
        data = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as e:  # MatReadError, ValueError, NotImplementedError (v7.3 HDF5), ...
        raise PerceptualWeightsError(
            f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e})"
        ) from e
    if "layers" not in data and "net" in data:  # Saved as `save(f, 'net')` instead of -struct.
        data = {"layers": _field(data["net"], "layers"), "meta": _field(data["net"], "meta")}
    layers = data.get("layers")
    if layers is None:
        raise PerceptualWeightsError(
            f"{path}: no 'layers' field; expected a MatConvNet simplenn model such as "
            f"imagenet-vgg-verydeep-{depth}.mat"
        )
    by_name = {}
    for layer in np.atleast_1d(layers).ravel():
        by_name[str(_field(layer, "name"))] = layer
    params = {}
    for name, cin, cout in _conv_specs(depth):
        if name not in needed:
            continue
        layer = by_name.get(name)
        if layer is None or str(_field(layer, "type")) != "conv":
            raise PerceptualWeightsError(f"{path}: layer '{name}' missing or not of type 'conv'")
        w = _field(layer, "weights")
        pair = (w[0], w[1]) if np.ndim(w) == 1 and len(w) >= 2 else (
            _field(layer, "filters"), _field(layer, "biases"))
        if pair[0] is None or pair[1] is None:
            raise PerceptualWeightsError(f"{path}: layer '{name}' has no kernel/bias weights")
        kernel = np.asarray(pair[0], np.float32)
        bias = np.asarray(pair[1], np.float32).reshape(-1)
        if kernel.shape != (3, 3, cin, cout) or bias.shape != (cout,):
            raise PerceptualWeightsError(
                f"{path}: layer '{name}' kernel {kernel.shape} / bias {bias.shape}, expected "
                f"{(3, 3, cin, cout)} / {(cout,)}"
            )
        params[name] = (kernel, bias)
    convs = [n for n, l in by_name.items()
             if re.fullmatch(r"conv\d_\d", n) and str(_field(l, "type")) == "conv"]
    expected = sum(_BLOCK_CONVS[depth])
    if len(convs) != expected:  # A VGG-19 file silently mis-wired as VGG-16 would be wrong.
        raise PerceptualWeightsError(
            f"{path}: has {len(convs)} convB_C conv layers but VGG-{depth} has {expected} "
            "(wrong depth for this file?)"
        )
    norm = _field(data, "normalization")
    if norm is None:
        norm = _field(_field(data, "meta"), "normalization")
    avg = None if norm is None else _field(norm, "averageImage")
    mean = np.asarray(IMAGENET_MEAN_RGB, np.float32)
    if avg is not None and np.size(avg) >= 3 and np.size(avg) % 3 == 0:
        # Either a whole (224x224x3) image or a 1x1x3 colour; for VGG both are constant.
        # float64: a float32 running sum over 50k pixels drifts by ~0.05.
        mean = np.asarray(avg, np.float64).reshape(-1, 3).mean(axis=0).astype(np.float32)
    return params, mean


def _torchvision_indices(depth: int):
    """``{convB_C: i}``: the position of each conv in torchvision's ``vgg<depth>().features``,
    a Sequential where every conv is followed by a ReLU and every block by a max pool."""
    indices, position = {}, 0
    for b, n in enumerate(_BLOCK_CONVS[depth], start=1):
        for c in range(1, n + 1):
            indices[f"conv{b}_{c}"] = position
            position += 2  # the conv and its ReLU
        position += 1  # the block's pool
    return indices


def _load_torchvision(path: str, depth: int, needed: Sequence[str]):
    """Reads torchvision's ImageNet VGG (``vgg16-397923af.pth``, ``vgg19-dcbb9e9d.pth``): a
    state dict whose ``features.<i>.weight`` [out, in, 3, 3] and ``features.<i>.bias`` are the
    convs at torchvision's indices; ``classifier.*`` (the fully connected head) is not used.

    Kernels go from PyTorch's OIHW to HWIO. torchvision's network reads (RGB / 255 - mean) / std;
    with mean * 255 subtracted from the 0..255 input as for every source, dividing conv1_1's
    input channels by 255 * std gives exactly its first activations (and zero padding pads the
    same zeros in both), so the graph stays the same for every source.
    """
    if not os.path.isfile(path):
        raise PerceptualWeightsError(f"VGG weights file not found: {path}\n{_howto(depth)}")
    try:
        state = read_state_dict(path)
    except TorchFileError as e:
        raise PerceptualWeightsError(f"{path}: not a readable PyTorch state dict ({e.reason})") from None
    indices = _torchvision_indices(depth)
    expected = {}
    for name, cin, cout in _conv_specs(depth):
        expected[f"features.{indices[name]}.weight"] = (name, (cout, cin, 3, 3))
        expected[f"features.{indices[name]}.bias"] = (name, (cout,))
    features = [key for key in state if key.startswith("features.")]
    if not features:
        raise PerceptualWeightsError(
            f"{path}: no features.<i> tensors, so not a torchvision VGG-{depth} state dict "
            f"(keys: {', '.join(list(state)[:6]) or 'none'}{', ...' if len(state) > 6 else ''})")
    # Any other features.* tensor means another network: vgg*_bn's batch norms, or a VGG of the
    # other depth, whose convs sit at other indices.
    unexpected = [key for key in features if key not in expected]
    if unexpected:
        raise PerceptualWeightsError(
            f"{path}: tensor {unexpected[0]} {tuple(state[unexpected[0]].shape)} is no conv of "
            f"torchvision's VGG-{depth} (a batch-normalised VGG, or the other depth?)")
    params = {}
    for key, (name, shape) in expected.items():
        if key not in state:
            raise PerceptualWeightsError(
                f"{path}: tensor {key} ({name}) missing: not a torchvision VGG-{depth} state dict "
                "(the other depth?)")
        value = state[key]
        if tuple(value.shape) != shape:
            raise PerceptualWeightsError(
                f"{path}: tensor {key} ({name}) has shape {tuple(value.shape)}, torchvision's "
                f"VGG-{depth} needs {shape}")
        if name in needed:
            value = np.asarray(value, np.float32)
            kernel, bias = params.get(name, (None, None))
            if key.endswith(".weight"):
                kernel = np.ascontiguousarray(value.transpose(2, 3, 1, 0))  # OIHW -> HWIO
            else:
                bias = value
            params[name] = (kernel, bias)
    if "conv1_1" in params:  # absent when only the ``input`` feature is requested
        scale = 255.0 * np.asarray(TORCHVISION_STD_RGB, np.float32)
        kernel, bias = params["conv1_1"]
        params["conv1_1"] = (kernel / scale[None, None, :, None], bias)
    return params, 255.0 * np.asarray(TORCHVISION_MEAN_RGB, np.float32)


def _random_params(depth: int, needed: Sequence[str]):
    params = {}
    for i, (name, cin, cout) in enumerate(_conv_specs(depth)):
        if name in needed:
            # Seeded per layer so a conv's weights do not depend on how deep the net is built.
            rng = np.random.default_rng([_RANDOM_SEED, depth, i])
            limit = np.sqrt(6.0 / (9 * cin + 9 * cout))  # Glorot-uniform for a 3x3 kernel.
            kernel = rng.uniform(-limit, limit, (3, 3, cin, cout)).astype(np.float32)
            params[name] = (kernel, np.zeros((cout,), np.float32))
    return params, np.asarray(IMAGENET_MEAN_RGB, np.float32)


def _conv_specs(depth: int):
    specs, cin = [], 3
    for b, (n, width) in enumerate(zip(_BLOCK_CONVS[depth], _WIDTHS), start=1):
        for c in range(1, n + 1):
            specs.append((f"conv{b}_{c}", cin, width))
            cin = width
    return specs


def _plan(depth: int):
    """Feature names in network order: input, conv1_1, ..., pool1, ..., pool5."""
    names = ["input"]
    for b, n in enumerate(_BLOCK_CONVS[depth], start=1):
        names += [f"conv{b}_{c}" for c in range(1, n + 1)] + [f"pool{b}"]
    return names


def _stages(plan):
    """``plan`` after ``input``, cut after each pooling: [(conv1_1, conv1_2, pool1), (conv2_1, ..), ..]."""
    stages = [[]]
    for name in plan[1:]:
        stages[-1].append(name)
        if name.startswith("pool"):
            stages.append([])
    return [tuple(stage) for stage in stages if stage]


def _fetch_imagenet(depth: int, strict: bool):
    """Gets the keras ImageNet weights, giving a non-cached download a short timeout."""
    cached = any(os.path.isfile(p) for p in _keras_cache_paths(depth))
    old = socket.getdefaulttimeout()
    if not cached:  # Offline clusters otherwise hang for minutes on the connect.
        socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        return _from_keras_model(download_imagenet_vgg(depth), depth)
    except Exception as e:
        if strict:
            raise PerceptualWeightsError(
                f"weights='imagenet': could not load or download the keras.applications VGG-{depth} "
                f"ImageNet weights ({type(e).__name__}: {e}).\n{_howto(depth)}"
            ) from e
        notice = (
            f"!!! VGG-{depth} ImageNet weights unavailable ({type(e).__name__}: {e}); falling back "
            "to RANDOM VGG weights. Perceptual-loss quality will be MUCH lower and results will "
            f"not match the papers.\n{_howto(depth)}"
        )
        logging.warning(notice)
        print(notice, file=sys.stderr, flush=True)
        return None
    finally:
        socket.setdefaulttimeout(old)


@keras.saving.register_keras_serializable(package="tfsynth")
class VGGFeatures(keras.layers.Layer):
    """Frozen VGG-16/19 that maps RGB images to a dict of named activations.

    Only the convolutions up to the deepest requested feature are created and run (CRN stops at
    conv5_2). Variables are created at construction, so build it inside ``strategy.scope()`` when
    using a distribution strategy. Gradients flow to the input; no variable is trainable.

    Args:
        depth: 16 or 19.
        layers: Feature names: ``input`` (RGB minus mean), ``convB_C`` (post-ReLU; ``reluB_C`` is
            accepted as an alias), ``poolB``. The output dict is keyed by these names.
        pooling: ``"avg"`` (CRN) or ``"max"`` (original VGG); 2x2, stride 2, SAME padding.
        weights: ``"random"`` (seeded Glorot-uniform, zero bias), ``"imagenet"`` (keras
            download/cache; raises if unavailable), ``"auto"`` (imagenet, else random with a loud
            warning), or a path to a MatConvNet ``.mat``, a keras ``.h5``/``.weights.h5`` file or
            torchvision's ``vgg16-*.pth``/``vgg19-*.pth`` state dict (``.pth``/``.pt``). Each
            source keeps its own preprocessing: the Caffe-converted ones (imagenet, .mat, .h5)
            were trained on BGR 0..255 minus the ImageNet mean, torchvision's on RGB in [0, 1]
            normalised by mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225); both are
            folded into ``mean_rgb`` and conv1_1, so the input is 0..255 RGB either way.
        **kwargs: Passed to ``keras.layers.Layer`` (``name``, ``dtype`` e.g. ``"mixed_bfloat16"``).

    Attributes:
        weights_source: One of ``"imagenet"``, ``"matconvnet"``, ``"h5"``, ``"torchvision"``,
            ``"random"``.
        mean_rgb: The RGB mean subtracted from the 0..255 input (numpy, shape [3]); for
            torchvision, 255 times its mean. The ``input`` feature is the input minus it.

    Raises:
        PerceptualWeightsError: If a requested weight source is missing or malformed.
        ValueError: For an unknown depth, pooling or feature name.
    """

    def __init__(self, depth: int = 19,
                 layers: Sequence[str] = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2"),
                 pooling: str = "avg", weights: str = "random", **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if depth not in _BLOCK_CONVS:
            raise ValueError(f"depth must be 16 or 19, got {depth!r}")
        if pooling not in ("avg", "max"):
            raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")
        if isinstance(layers, str):
            layers = (layers,)
        plan = _plan(depth)
        canonical = {n: re.sub(r"^relu(\d_\d)$", r"conv\1", n) for n in layers}
        bad = [n for n, c in canonical.items() if c not in plan]
        if bad or not layers:
            raise ValueError(f"unknown VGG-{depth} feature(s) {bad or '(none given)'}; valid: {plan}")
        self.depth, self.pooling, self.weights_arg = depth, pooling, str(weights)
        self.feature_names = tuple(layers)
        self._canonical = canonical
        self._plan = plan[: max(plan.index(c) for c in canonical.values()) + 1]
        needed = [n for n in self._plan if n.startswith("conv")]

        loaded = None
        if weights in ("imagenet", "auto"):
            loaded = _fetch_imagenet(depth, strict=weights == "imagenet")
            self.weights_source = "imagenet" if loaded else "random"
        elif weights == "random":
            self.weights_source = "random"
        elif str(weights).lower().endswith(".mat"):
            loaded = _load_matconvnet(str(weights), depth, needed)
            self.weights_source = "matconvnet"
        elif str(weights).lower().endswith((".h5", ".hdf5")):
            loaded = _load_h5(str(weights), depth)
            self.weights_source = "h5"
        elif str(weights).lower().endswith((".pth", ".pt")):
            loaded = _load_torchvision(str(weights), depth, needed)
            self.weights_source = "torchvision"
        else:
            raise PerceptualWeightsError(
                f"weights={weights!r}: expected 'random', 'imagenet', 'auto', or a path ending in "
                f".mat (MatConvNet), .h5 (keras) or .pth (torchvision).\n{_howto(depth)}"
            )
        params, mean = loaded if loaded else _random_params(depth, needed)
        self.mean_rgb = mean
        logging.info("VGG-%d perceptual features %s: weights from %s (%s), %s pooling", depth,
                     list(self.feature_names), self.weights_source, self.weights_arg, pooling)
        #: --recompute: each stage's activations are recomputed in the backward pass, not kept.
        self.recompute = False
        self._conv_index = {name: index for index, name in enumerate(needed)}
        self._wanted = set(canonical.values())
        self._stages = _stages(self._plan)
        self._kernels, self._biases = [], []
        for name in needed:
            k, b = params[name]
            self._kernels.append(self._frozen(k, f"{name}_kernel"))
            self._biases.append(self._frozen(b, f"{name}_bias"))
        self._mean = self._frozen(mean, "mean_rgb")
        # Nothing depends on the input shape, so the layer is complete now; this also keeps
        # variable creation out of a later (possibly replica-context) first call.
        self.built = True

    def _frozen(self, value, name):
        # A callable initialiser hands the loaded array over without a Constant(...) broadcast.
        value = np.asarray(value, np.float32)
        return self.add_weight(shape=value.shape, initializer=lambda shape, dtype=None: value,
                               trainable=False, name=name)

    def call(self, rgb):
        """Computes the requested features.

        Args:
            rgb: float [N, H, W, 3] RGB on the 0..255 scale; H and W divisible by 16 (32 when
                pool5 is requested) keep every pooled map aligned.

        Returns:
            Dict from each requested name to a [N, h, w, C] tensor in the compute dtype.
        """
        dtype = self.compute_dtype
        x = tf.cast(rgb, dtype) - tf.cast(self._mean, dtype)
        feats = {"input": x}
        for stage in self._stages:
            run = functools.partial(self._run_stage, stage)
            # One stage's activations are recomputed at a time in the backward pass, so the
            # most a stage keeps is its own, not the whole network's.
            x, outputs = (tf.recompute_grad(run) if self.recompute else run)(x)
            feats.update(zip(self._stage_outputs(stage), outputs))
        return {n: feats[self._canonical[n]] for n in self.feature_names}

    def _stage_outputs(self, stage):
        return [name for name in stage if name in self._wanted]

    def _run_stage(self, stage, x):
        """One stage's layers on x -> (the last one's output, [the requested features in it])."""
        dtype = self.compute_dtype
        pool = tf.nn.avg_pool2d if self.pooling == "avg" else tf.nn.max_pool2d
        outputs = []
        for name in stage:
            if name.startswith("conv"):
                index = self._conv_index[name]
                k = tf.cast(self._kernels[index], dtype)
                b = tf.cast(self._biases[index], dtype)
                x = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, k, 1, "SAME"), b))
            else:
                x = pool(x, 2, 2, "SAME")
            if name in self._wanted:
                outputs.append(x)
        return x, outputs

    def compute_output_spec(self, rgb):
        # Shapes follow from the name (convB_C: width of block B; poolB: /2**B), so Keras need
        # not trace call() symbolically.
        spec = {}
        for req in self.feature_names:
            name = self._canonical[req]
            blk = int(name[4]) if name != "input" else 0
            c = _WIDTHS[blk - 1] if blk else 3
            s = 2 ** blk if name.startswith("pool") else 2 ** max(blk - 1, 0)
            hw = [None if d is None else -(-d // s) for d in rgb.shape[1:3]]
            spec[req] = keras.KerasTensor((rgb.shape[0], *hw, c), dtype=self.compute_dtype)
        return spec

    def get_config(self):
        return {**super().get_config(), "depth": self.depth, "layers": list(self.feature_names),
                "pooling": self.pooling, "weights": self.weights_arg}
