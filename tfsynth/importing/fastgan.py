"""FastGAN-pytorch checkpoints (odegeasslbc/FastGAN-pytorch), imported into tfsynth's ``fastgan``.

The format
----------
The original ``train.py`` saves two files at its save iterations, both ``torch.save`` of a dict:

- ``<iter>.pth``: ``{'g': G's state dict, 'd': D's state dict}``, written while the EMA parameters
  are loaded into G: its *parameters* are the EMA generator's, its *buffers* (batch-norm running
  statistics, spectral-norm ``weight_u`` / ``weight_v``) the live generator's. The file the
  original ``eval.py`` loads.
- ``all_<iter>.pth``: ``{'g': the live G, 'd', 'g_ema': the EMA parameters as a bare list in
  ``G.parameters()`` order, 'opt_g', 'opt_d': the Adam states}``.

``train.py`` wraps both networks in ``nn.DataParallel``, so every key starts with ``module.``
(dropped here). Every convolution is a ``torch.nn.utils.spectral_norm`` hook: ``<m>.weight_orig``
(the parameter), ``<m>.weight_u`` and ``<m>.weight_v`` (buffers), no ``<m>.weight``.

Where the tensors go
--------------------
tfsynth's EMA generator (``generator_ema``, exported and sampled) and the live one
(``generator``, trained on) are two networks of the same layers:

- ``<iter>.pth``: both start from ``'g'``, the weights the original's own samples come from.
- ``all_<iter>.pth``: the live generator from ``'g'``, the EMA from ``'g_ema'`` with ``'g'``'s
  buffers (what ``<iter>.pth`` holds). The optimizer states are not imported: tfsynth's Adam
  starts from zero moments.

Layers by name (tfsynth's on the right; ``r`` a resolution):

- G: ``init.init.0`` (ConvTranspose2d 4x4 on the 1x1 latent) -> ``init_conv`` (the same
  weights as a 4x4 convolution of the latent padded by 3: transposed and flipped), ``init.init.1``
  -> ``init_bn``; ``feat_r.{1,2,3,5,6,7}`` (conv, noise, BN, conv, noise, BN; r = 8, 32, 128,
  512) -> ``feat_r_{conv1,noise1,bn1,conv2,noise2,bn2}``; ``feat_r.{1,2}`` (the other r) ->
  ``feat_r_{conv,bn}``; ``se_r.main.{1,3}`` -> ``se_r_{conv4,conv1}``; ``to_big`` -> ``to_big``;
  ``to_128`` -> ``to_small``.
- D: ``down_from_big.0`` -> ``stem_conv`` (256; ``stem_conv256`` at 512; at 1024
  ``.0, .2, .3`` -> ``stem_conv512, stem_conv256, stem_bn256``); ``down_k`` (k = 4 .. 64, the
  trunk's k-fold downsamplings from 256) -> ``down_{512/k}`` with ``main.{0,1,3,4}`` ->
  ``_main1_{conv,bn}, _main2_{conv,bn}`` and ``direct.{1,2}`` -> ``_direct_{conv,bn}``;
  ``se_a_b`` -> ``se_{512/a}_{512/b}``; ``rf_big.{0,1,3}`` -> ``rf_big_{conv1,bn,conv4}``;
  ``down_from_small.0`` -> ``small_conv``, ``down_from_small.{2,3,4}.main.{0,1}`` ->
  ``small_down_{32,16,8}_{conv,bn}``; ``rf_small`` -> ``rf_small``; the three
  ``decoder_*.main.{1..4}.{1,2}`` and ``.main.5`` -> ``decoder_*_up{16..128}_{conv,bn}`` and
  ``decoder_*_output``.
- Convolution kernels OIHW -> HWIO; batch norm weight, bias, running mean and variance as they
  are (both use epsilon 1e-5); ``num_batches_tracked`` is dropped (nothing reads it).

Spectral norm. In eval mode the original convolves with ``weight_orig / sigma``, sigma =
``u . (W v)`` from the stored vectors (no power iteration; W = ``weight_orig`` as an
[out, in k k] matrix). tfsynth's :class:`~tfsynth.layers.spectral.SpectralConv2D` keeps the raw
kernel and one vector u, and every forward pass takes one power-iteration step from u:
``sigma(u) = |W W^T u| / |W^T u|``. It has no v, so the stored u alone would give another
sigma (the step it takes is one the original did not); and ``W / sigma`` does not depend on the
kernel's scale, so scaling the kernel cannot help either. The kernel is therefore
``weight_orig`` itself (the trainable parameter, as in the original) and u is chosen so that
``sigma(u)`` is the original's sigma: from the stored u, moved along the fractional power
iteration ``u(a) = U diag(s^-a) U^T u`` (U, s: W's left singular vectors and values), which
lowers ``sigma(u(a))`` monotonically as ``a`` grows, to the ``a`` that hits it. The stored u is
kept as it is where it already gives that sigma. Every inference forward then computes the
original's eval-mode weight, and training goes on from a u next to the original's.

Everything the config needs is in the shapes: nz and ngf from ``init.init.0`` ([nz, 32 ngf, 4,
4]), the image size from the last ``feat_r`` (256, 512 or 1024; the original knows no other),
ndf from ``rf_big.0`` ([16 ndf, 8 ndf, 1, 1]), the decoders' base width from
``decoder_big.main.1.1`` ([8 base, ...]).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import numpy as np

from tfsynth.importing.formats import Original
from tfsynth.importing.tensors import ImportFailure, Tensors, conv_kernel
from tfsynth.importing.torch_files import read_torch_file

#: State-dict entries that are buffers, not parameters: they are not in ``'g_ema'``.
_BUFFER = re.compile(r"\.(weight_u|weight_v|running_mean|running_var|num_batches_tracked)$")
_IGNORED = re.compile(r"\.num_batches_tracked$")
#: The original's image sizes; its generator blocks that inject noise (UpBlockComp).
_RESOLUTIONS = (256, 512, 1024)
_NOISY = (8, 32, 128, 512)
#: Beyond this relative gap between the original's sigma and the nearest tfsynth can reach the
#: import fails (the vectors cannot belong to the weight); beyond _REPORT it says so.
_REFUSE, _REPORT = 1e-3, 1e-6


def read(path: str) -> Original:
    checkpoint = read_torch_file(path)
    name = os.path.basename(path)
    if not isinstance(checkpoint, Mapping) or not {"g", "d"} <= set(checkpoint):
        found = ", ".join(repr(key) for key in list(checkpoint)[:8]) if isinstance(checkpoint, Mapping) else \
            type(checkpoint).__name__
        raise ImportFailure(f"{path}: not a FastGAN-pytorch checkpoint (a dict with 'g' and 'd'; found {found})")
    generator = Tensors(_state_dict(checkpoint, "g", path), f"{path} ['g']",
                        ignored=lambda key: bool(_IGNORED.search(key)))
    discriminator = Tensors(_state_dict(checkpoint, "d", path), f"{path} ['d']",
                            ignored=lambda key: bool(_IGNORED.search(key)))
    match = re.fullmatch(r"(?:all_)?(\d+)\.pth", name)
    iteration = int(match[1]) if match else None

    others = sorted(str(key) for key in set(checkpoint) - {"g", "d", "g_ema"})
    if "g_ema" in checkpoint:
        ema = _ema_tensors(checkpoint["g_ema"], generator, path)
        print(f"{name}: the live generator from 'g', the EMA generator (exported) from 'g_ema' with 'g''s "
              "batch-norm statistics and spectral-norm vectors", flush=True)
    else:
        ema = generator
        print(f"{name}: 'g' holds the EMA weights (with the live generator's batch-norm statistics): the EMA "
              "generator (exported) and the live generator both start from it", flush=True)
    if others:
        print(f"{name}: not imported: {', '.join(others)} (optimizer states: tfsynth's Adam starts from zero "
              "moments)", flush=True)

    hparams = _hparams(generator, discriminator, path)
    resolution = hparams["resolution"]

    def set_weights(model) -> None:
        reports: list[str] = []
        _set_generator(model.generator_ema, ema, resolution, reports)
        _set_generator(model.generator, generator, resolution, reports)
        _set_discriminator(model.discriminator, discriminator, resolution, reports)
        for tensors in (ema, generator, discriminator):
            tensors.check_all_used()
        if reports:
            print(f"{name}: spectral norm: tfsynth's nearest sigma differs from the original's by more than "
                  f"{_REPORT:g} (relative) at {'; '.join(reports[:6])}"
                  f"{f' and {len(reports) - 6} more' if len(reports) > 6 else ''}", flush=True)

    return Original(model="fastgan", hparams=hparams, set_weights=set_weights, source=path, iteration=iteration)


# ----------------------------------------------------------------------------------- reading

def _state_dict(checkpoint: Mapping, key: str, path: str) -> dict[str, np.ndarray]:
    state = checkpoint[key]
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, np.ndarray)
                                                 for k, v in state.items()):
        raise ImportFailure(f"{path}: entry {key!r} is not a state dict (names -> tensors)")
    # nn.DataParallel's prefix, which train.py always adds (eval.py strips it the same way).
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _ema_tensors(ema, generator: Tensors, path: str) -> Tensors:
    """'g_ema' (G's parameters in order, no names) named after 'g''s parameters, with 'g''s
    buffers: the EMA generator that ``<iter>.pth`` holds."""
    if not isinstance(ema, (list, tuple)) or not all(isinstance(value, np.ndarray) for value in ema):
        raise ImportFailure(f"{path}: entry 'g_ema' is not a list of tensors (G's parameters in order)")
    # A state dict lists each module's parameters before its buffers and the modules in the
    # order parameters() visits them, so the parameters keep their order among the names.
    parameters = [key for key in generator.names() if not _BUFFER.search(key)]
    if len(ema) != len(parameters):
        raise ImportFailure(f"{path}: entry 'g_ema' holds {len(ema)} tensors, 'g' has {len(parameters)} "
                            "parameters; is 'g_ema' this generator's average?")
    arrays = {key: generator.peek(key) for key in generator.names() if _BUFFER.search(key)}
    arrays.update(zip(parameters, ema))
    return Tensors(arrays, f"{path} ['g_ema'] (named as 'g''s parameters, with 'g''s buffers)",
                   ignored=lambda key: bool(_IGNORED.search(key)))


def _hparams(generator: Tensors, discriminator: Tensors, path: str) -> dict:
    if "init.init.0.weight_orig" not in generator or "rf_big.0.weight_orig" not in discriminator:
        raise ImportFailure(f"{path}: no FastGAN generator and discriminator here ('g' needs "
                            "'init.init.0.weight_orig', 'd' needs 'rf_big.0.weight_orig')")
    init = generator.shape("init.init.0.weight_orig")  # ConvTranspose2d [nz, 2 nfc[4], 4, 4]
    if len(init) != 4 or init[1] % 32 or init[2:] != (4, 4):
        raise ImportFailure(f"{path} ['g']: tensor 'init.init.0.weight_orig' has shape {init}, not "
                            "[nz, 32 ngf, 4, 4] for an integer ngf")
    resolutions = sorted(int(m[1]) for key in generator.names(r"^feat_\d+\.1\.weight_orig$")
                         if (m := re.match(r"feat_(\d+)\.", key)))
    top = resolutions[-1] if resolutions else 0
    if top not in _RESOLUTIONS or resolutions != [2**k for k in range(3, top.bit_length())]:
        raise ImportFailure(f"{path} ['g']: generator modules feat_{resolutions}: the original builds "
                            "feat_8 .. feat_256, 512 or 1024, one per doubling")
    to_big = generator.shape("to_big.weight_orig")
    if to_big[0] != 3:
        raise ImportFailure(f"{path} ['g']: tensor 'to_big.weight_orig' makes {to_big[0]} channels (nc="
                            f"{to_big[0]}); tfsynth's FastGAN makes RGB images (nc=3) only")
    rf_big = discriminator.shape("rf_big.0.weight_orig")  # [nfc[8] = 16 ndf, nfc[16] = 8 ndf, 1, 1]
    if len(rf_big) != 4 or rf_big[0] % 16 or rf_big[0] != 2 * rf_big[1]:
        raise ImportFailure(f"{path} ['d']: tensor 'rf_big.0.weight_orig' has shape {rf_big}, not "
                            "[16 ndf, 8 ndf, 1, 1] for an integer ndf")
    decoder = discriminator.shape("decoder_big.main.1.1.weight_orig")  # [2 * 4 base, ...]
    if decoder[0] % 8:
        raise ImportFailure(f"{path} ['d']: tensor 'decoder_big.main.1.1.weight_orig' has {decoder[0]} "
                            "output channels, not 8 x the decoders' base width")
    return {"resolution": top, "latent_size": init[0], "generator_filters": init[1] // 32,
            "discriminator_filters": rf_big[0] // 16, "decoder_filters": decoder[0] // 8}


# ------------------------------------------------------------------------------ the layers

def _set_generator(network, tensors: Tensors, resolution: int, reports: list) -> None:
    _spectral(network.get_layer("init_conv"), tensors, "init.init.0", reports, transposed=True)
    _batch_norm(network.get_layer("init_bn"), tensors, "init.init.1")
    size = 8
    while size <= resolution:
        module = f"feat_{size}"
        if size in _NOISY:
            for index, (conv, noise, norm) in enumerate(((1, 2, 3), (5, 6, 7)), start=1):
                _spectral(network.get_layer(f"{module}_conv{index}"), tensors, f"{module}.{conv}", reports)
                tensors.assign(network.get_layer(f"{module}_noise{index}"), [f"{module}.{noise}.weight"])
                _batch_norm(network.get_layer(f"{module}_bn{index}"), tensors, f"{module}.{norm}")
        else:
            _spectral(network.get_layer(f"{module}_conv"), tensors, f"{module}.1", reports)
            _batch_norm(network.get_layer(f"{module}_bn"), tensors, f"{module}.2")
        if 64 <= size <= 512:
            _spectral(network.get_layer(f"se_{size}_conv4"), tensors, f"se_{size}.main.1", reports)
            _spectral(network.get_layer(f"se_{size}_conv1"), tensors, f"se_{size}.main.3", reports)
        size *= 2
    _spectral(network.get_layer("to_big"), tensors, "to_big", reports)
    _spectral(network.get_layer("to_small"), tensors, "to_128", reports)


def _set_discriminator(network, tensors: Tensors, resolution: int, reports: list) -> None:
    layer = network.get_layer
    if resolution == 256:
        _spectral(layer("stem_conv"), tensors, "down_from_big.0", reports)
    elif resolution == 512:
        _spectral(layer("stem_conv256"), tensors, "down_from_big.0", reports)
    else:
        _spectral(layer("stem_conv512"), tensors, "down_from_big.0", reports)
        _spectral(layer("stem_conv256"), tensors, "down_from_big.2", reports)
        _batch_norm(layer("stem_bn256"), tensors, "down_from_big.3")
    # The trunk starts at 256 whatever the image size: the original's down_k (k-fold from 256,
    # 4 .. 64) is tfsynth's block that ends at 512 / k.
    for factor in (4, 8, 16, 32, 64):
        ours, theirs = f"down_{512 // factor}", f"down_{factor}"
        for part, (conv, norm) in (("main1", ("main.0", "main.1")), ("main2", ("main.3", "main.4")),
                                   ("direct", ("direct.1", "direct.2"))):
            _spectral(layer(f"{ours}_{part}_conv"), tensors, f"{theirs}.{conv}", reports)
            _batch_norm(layer(f"{ours}_{part}_bn"), tensors, f"{theirs}.{norm}")
    for small, big in ((2, 16), (4, 32), (8, 64)):
        for ours, theirs in (("conv4", "main.1"), ("conv1", "main.3")):
            _spectral(layer(f"se_{512 // small}_{512 // big}_{ours}"), tensors, f"se_{small}_{big}.{theirs}",
                      reports)
    _spectral(layer("rf_big_conv1"), tensors, "rf_big.0", reports)
    _batch_norm(layer("rf_big_bn"), tensors, "rf_big.1")
    _spectral(layer("rf_big_conv4"), tensors, "rf_big.3", reports)
    _spectral(layer("small_conv"), tensors, "down_from_small.0", reports)
    for index, size in ((2, 32), (3, 16), (4, 8)):
        _spectral(layer(f"small_down_{size}_conv"), tensors, f"down_from_small.{index}.main.0", reports)
        _batch_norm(layer(f"small_down_{size}_bn"), tensors, f"down_from_small.{index}.main.1")
    _spectral(layer("rf_small"), tensors, "rf_small", reports)
    for decoder in ("decoder_big", "decoder_part", "decoder_small"):
        inner = layer(decoder)
        for index, size in ((1, 16), (2, 32), (3, 64), (4, 128)):
            _spectral(inner.get_layer(f"{decoder}_up{size}_conv"), tensors, f"{decoder}.main.{index}.1", reports)
            _batch_norm(inner.get_layer(f"{decoder}_up{size}_bn"), tensors, f"{decoder}.main.{index}.2")
        _spectral(inner.get_layer(f"{decoder}_output"), tensors, f"{decoder}.main.5", reports)


def _batch_norm(layer, tensors: Tensors, module: str) -> None:
    tensors.assign(layer, [f"{module}.{name}" for name in ("weight", "bias", "running_mean", "running_var")])


def _spectral(layer, tensors: Tensors, module: str, reports: list, transposed: bool = False) -> None:
    """``<module>.weight_orig`` -> the kernel, and the u that makes tfsynth's sigma the original's
    eval-mode sigma (the module docstring says why and how)."""
    weight_name, u_name, v_name = (f"{module}.{suffix}" for suffix in ("weight_orig", "weight_u", "weight_v"))
    weight = tensors.peek(weight_name)
    if weight.ndim != 4:
        raise ImportFailure(f"{tensors.source}: tensor {weight_name!r} has shape {tuple(weight.shape)}, "
                            f"layer {layer.name} expects a 4-d kernel")
    # Spectral norm's matrix: rows are the output channels (dim 1 of a ConvTranspose2d weight).
    matrix = (weight.transpose(1, 0, 2, 3) if transposed else weight).astype(np.float64)
    matrix = matrix.reshape(matrix.shape[0], -1)

    def kernel(value):
        if not transposed:
            return conv_kernel(value)
        # ConvTranspose2d [in, out, kh, kw] on a 1x1 input == a "valid" convolution of the input
        # padded by k - 1 with the kernel flipped: [kh, kw, in, out], reversed in kh and kw.
        return np.transpose(value, (2, 3, 0, 1))[::-1, ::-1]

    def vector(stored_u):
        stored_v = tensors.take(v_name)
        for name, array, length in ((u_name, stored_u, matrix.shape[0]), (v_name, stored_v, matrix.shape[1])):
            if array.shape != (length,):
                raise ImportFailure(f"{tensors.source}: tensor {name!r} has shape {tuple(array.shape)}, "
                                    f"{weight_name} {tuple(weight.shape)} needs ({length},)")
        u, gap = spectral_u(matrix, stored_u.astype(np.float64), stored_v.astype(np.float64))
        if gap is None or gap > _REFUSE:
            sigma = float(stored_u.astype(np.float64) @ matrix @ stored_v.astype(np.float64))
            raise ImportFailure(f"{tensors.source}: tensors {u_name!r} and {v_name!r} give sigma = u.(W v) = "
                                f"{sigma:.6g}, which no spectral-norm vector of {weight_name} reaches "
                                "(are they this weight's?)")
        if gap > _REPORT:
            reports.append(f"{module} ({gap:.1e})")
        return u[None, :]

    tensors.assign(layer, [weight_name, u_name], [kernel, vector])


def spectral_u(matrix: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, float | None]:
    """A u for which one power-iteration step on ``matrix`` ([out, in], float64) gives the sigma
    ``u . (matrix v)`` of the stored vectors: ``|W W^T u'| / |W^T u'| = u . (W v)``.

    Returns ``(u', gap)``, gap the relative difference of the sigma reached (the nearest one when
    the target lies outside tfsynth's reach, which is [s_min, s_max] of W) from the target;
    gap None when the target is not positive.
    """
    target = float(u @ matrix @ v)
    if not target > 0:
        return u, None
    # W's left singular vectors and squared singular values, from the [out, out] Gram matrix (an
    # SVD of the [out, in k k] matrix itself costs 100 times more and gives nothing more here).
    squares, left = np.linalg.eigh(matrix @ matrix.T)
    coefficients = left.T @ u
    keep = (squares > squares.max() * 1e-12) & (np.abs(coefficients) > 1e-30)
    left, squares, coefficients = left[:, keep], squares[keep], coefficients[keep]
    if not squares.size:
        return u, None
    log_squares, log_coefficients = np.log(squares), np.log(np.abs(coefficients))

    def u_at(a):  # U diag(s^-a) U^T u, normalised; in logarithms, as s^-a spans many decades
        logs = log_coefficients - a / 2 * log_squares
        scaled = np.sign(coefficients) * np.exp(logs - logs.max())
        vector = left @ scaled
        return vector / np.linalg.norm(vector)

    def sigma_at(a):  # |W W^T u(a)| / |W^T u(a)| = sqrt(sum c^2 s^4 / sum c^2 s^2), c = U^T u(a)
        logs = 2 * log_coefficients + (1 - a) * log_squares
        weights = np.exp(logs - logs.max())
        return float(np.sqrt(np.sum(weights * squares) / np.sum(weights)))

    start = sigma_at(0.0)
    if abs(start / target - 1) <= 1e-9:  # the stored u already gives it: keep it as it is
        return u, abs(start / target - 1)
    # sigma(u(a)) falls monotonically in a (weight moves to the smaller singular values); a < 0
    # is more power iteration, a > 0 less. Bracket the target, then bisect.
    step = 1.0 if start > target else -1.0
    low, high = 0.0, step
    while (sigma_at(high) - target) * step > 0 and abs(high) < 1e6:
        low, high = high, 2 * high
    if (sigma_at(high) - target) * step > 0:  # out of reach: the nearest is the end of the range
        return u_at(high), abs(sigma_at(high) / target - 1)
    for _ in range(200):
        middle = (low + high) / 2
        if (sigma_at(middle) - target) * step > 0:
            low = middle
        else:
            high = middle
        if abs(high - low) <= 1e-15 * max(1.0, abs(high)):
            break
    best = (low + high) / 2
    return u_at(best), abs(sigma_at(best) / target - 1)
