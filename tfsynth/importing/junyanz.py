"""pix2pix and CycleGAN checkpoints of junyanz/pytorch-CycleGAN-and-pix2pix.

The format
----------
The original's ``BaseModel.save_networks(epoch)`` writes one ``torch.save(net.state_dict())`` file
per network into ``checkpoints/NAME``: pix2pix ``<epoch>_net_G.pth`` and ``<epoch>_net_D.pth``,
CycleGAN ``<epoch>_net_G_A.pth``, ``_G_B``, ``_D_A`` and ``_D_B``, where ``<epoch>`` is ``latest``,
an epoch number or ``iter_<N>`` (``--save_by_iter``). Next to them ``train_opt.txt`` records every
option as a ``name: value`` line (``[default: ...]`` marks the ones given on the command line);
``test.py`` adds ``test_opt.txt``. ``--from=junyanz:PATH`` takes that folder (the ``latest`` files
when present, else the highest epoch, else the highest ``iter_<N>``) or one generator file
(``*_net_G.pth``, ``*_net_G_A.pth``), whose folder then gives the same epoch's other files and the
options. Generators are required; a discriminator that is not there starts fresh (a note says so).

Keys are PyTorch module paths (``nn.Sequential`` indices), so they encode the architecture:

- U-Net (``unet_N``): nested ``UnetSkipConnectionBlock``s; the outermost is ``model.model.``, its
  submodule ``model.model.1.model.``, and every deeper one is the previous plus ``3.model.``.
  Outermost: 0 downconv, 3 upconv (biased). Intermediate: 1 downconv, 2 norm, 5 upconv, 6 norm
  (7 is the Dropout, which has no state). Innermost: 1 downconv, 3 upconv, 4 norm. log2(N) is the
  number of blocks.
- ResNet (``resnet_<B>blocks``): ``model.1`` 7x7, ``model.4`` and ``model.7`` strided 3x3, blocks
  ``model.10 .. model.9+B`` (``conv_block.1`` and ``conv_block.5``; ``.6`` with dropout), then
  ``model.10+B`` and ``model.13+B`` transposed, ``model.17+B`` the 7x7 output.
- PatchGAN (``basic`` / ``n_layers``): ``model.0`` then per layer a conv at ``2 + 3i`` and its norm
  at ``3 + 3i``, the logits last. PixelGAN (``pixel``): ``net.0``, ``net.2``, norm ``net.3``,
  ``net.5``.
- With ``--norm batch`` convolutions followed by a norm have no bias and the norms hold
  ``weight``/``bias``/``running_mean``/``running_var`` (+ ``num_batches_tracked``, dropped);
  with ``--norm instance`` (``InstanceNorm2d(affine=False)``) the norms hold nothing and the
  convolutions keep their bias. PyTorch < 0.4 also saved instance norms' unused running
  statistics; the original deletes them when it loads, and so does this importer.
- The PixelGAN's last conv has a bias only with instance norm (``bias=use_bias``); tfsynth's
  always has one, set to zero when the original has none.

Layouts: ``Conv2d`` OIHW becomes Keras' HWIO, ``ConvTranspose2d`` IOHW Keras' HWOI (no spatial
flip: both compute the adjoint of the same correlation); BatchNorm ``weight``, ``bias``,
``running_mean``, ``running_var`` are Keras' gamma, beta, moving mean and moving variance.

How the options map
-------------------
The architecture is read off the tensors (U-Net depth, ResNet block count, ngf, ndf, D's layers,
the norm, channel counts); where ``train_opt.txt`` states the same thing it must agree, or the
import fails naming both. The training options come from ``train_opt.txt`` only. Original option
-> tfsynth hparam (pix2pix / CycleGAN where they differ):

- ``--netG unet_N`` -> ``generator=unet_N`` (pix2pix); ``--netG resnet_<B>blocks`` ->
  ``generator=resnet_<B>blocks`` (CycleGAN).
- ``--ngf`` -> ``base_filters``; ``--ndf`` -> ``discriminator_filters``.
- ``--netD basic|n_layers|pixel`` and ``--n_layers_D`` -> ``discriminator`` and
  ``discriminator_layers`` (pix2pix); CycleGAN has the PatchGAN only (``discriminator_layers``).
- ``--norm batch|instance`` -> ``norm`` (pix2pix); CycleGAN is instance norm only.
- ``--no_dropout`` -> ``dropout`` 0 (else 0.5) with ``dropout_placement=pytorch`` (pix2pix; the
  Dropout layers have no state, so only this option shows them); CycleGAN has no dropout.
- ``--gan_mode vanilla|lsgan`` -> ``gan_mode``; ``--lr`` -> ``learning_rate``; ``--beta1`` ->
  ``beta_1``; ``--n_epochs``, ``--n_epochs_decay`` (``niter``, ``niter_decay`` in old files) ->
  ``epochs_constant``, ``epochs_decay``.
- ``--load_size``, ``--crop_size`` (``loadSize``, ``fineSize``) -> ``load_size``, ``crop_size``
  (CycleGAN: squares); ``--no_flip`` -> ``flip=False``.
- ``--lambda_L1`` -> ``lambda_l1``; ``--lambda_A``, ``--lambda_B``, ``--lambda_identity``,
  ``--pool_size`` -> ``lambda_a``, ``lambda_b``, ``lambda_identity``, ``pool_size`` (CycleGAN).
- ``--eval`` (recorded in ``test_opt.txt`` only) -> ``test_mode=eval`` (pix2pix).
- ``--input_nc 3 --output_nc 3`` only: pix2pix's input is the original's aligned A photo, so
  ``label_input=image`` (the ``translate`` image -> image export).

Without a ``test_opt.txt`` that records ``--eval``, pix2pix keeps tfsynth's default
``test_mode=paper``, the closest to the original ``test.py``'s default (batch norm on each test
image's own statistics; the original also keeps dropout on there, tfsynth's exports never); give
``--hparams=test_mode=eval`` for the running averages.
Architectures tfsynth has no equivalent for (a ResNet pix2pix, a U-Net or batch-norm or dropout
CycleGAN, a PixelGAN CycleGAN D, ``--norm none``, other channel counts) fail with one line naming
the variant. Training options tfsynth does not have (``--gan_mode wgangp``, ``--lr_policy`` other
than linear, ``--preprocess`` other than resize_and_crop) are left at tfsynth's default, with a
printed note.
"""

from __future__ import annotations

import os
import re

import numpy as np

from tfsynth.importing.formats import Original
from tfsynth.importing.tensors import ImportFailure, Tensors, conv_kernel, conv_transpose_kernel, identity

#: ``<epoch>_net_<network>.pth`` as ``save_networks`` names its files.
_FILE = re.compile(r"^(?P<epoch>.+)_net_(?P<net>G_A|G_B|D_A|D_B|G|D)\.pth$")
_NETWORKS = {"pix2pix": ("G", "D"), "cyclegan": ("G_A", "G_B", "D_A", "D_B")}
_GENERATORS = {"pix2pix": ("G",), "cyclegan": ("G_A", "G_B")}
#: Option names of older releases of the original -> today's.
_ALIASES = {"which_model_netG": "netG", "which_model_netD": "netD", "loadSize": "load_size",
            "fineSize": "crop_size", "niter": "n_epochs", "niter_decay": "n_epochs_decay"}


def read(path: str) -> Original:
    family, folder, epoch, files = _locate(path)
    options, options_files = _read_options(folder)
    notes = []
    tensors = {net: _tensors(file) for net, file in files.items()}
    for net in _NETWORKS[family]:
        if net not in files and net.startswith("D"):
            notes.append(f"no {epoch}_net_{net}.pth: {net} starts fresh")
    if "train_opt.txt" not in options_files:
        notes.append("no train_opt.txt: the architecture is read off the tensors, training options are "
                     "tfsynth's defaults")
    if family == "pix2pix":
        hparams, set_weights = _pix2pix(tensors, options, notes)
    else:
        hparams, set_weights = _cyclegan(tensors, options, notes)
    for note in notes:
        print(f"junyanz import: {note}", flush=True)
    read_files = [os.path.basename(file) for file in files.values()] + options_files
    source = f"{folder}: {', '.join(read_files)}" + "".join(f"; {note}" for note in notes)
    iteration = int(epoch[5:]) if re.fullmatch(r"iter_\d+", epoch) else None
    return Original(model=family, hparams=hparams, set_weights=set_weights, source=source,
                    iteration=iteration)


# ------------------------------------------------------------------------------------ files

def _locate(path: str):
    """(family, folder, epoch, {network: file}) for a checkpoints/NAME folder or a G file."""
    if os.path.isdir(path):
        folder = path
        found = {}
        for name in sorted(os.listdir(folder)):
            if match := _FILE.match(name):
                found.setdefault(match["epoch"], {})[match["net"]] = os.path.join(folder, name)
        families = {family for nets in found.values() for family, generators in _GENERATORS.items()
                    if any(net in nets for net in generators)}
        if not families:
            raise ImportFailure(f"{path}: no <epoch>_net_G.pth (pix2pix) or <epoch>_net_G_A.pth (CycleGAN) "
                                "here; give the original's checkpoints/NAME folder")
        if len(families) > 1:
            raise ImportFailure(f"{path}: holds both pix2pix's <epoch>_net_G.pth and CycleGAN's "
                                "<epoch>_net_G_A.pth files; give the generator file to import")
        family = families.pop()
        epochs = [epoch for epoch, nets in found.items() if any(net in nets for net in _GENERATORS[family])]
        epoch = _newest(epochs, path)
    else:
        if not os.path.exists(path):
            raise ImportFailure(f"{path}: no such file or folder")
        folder = os.path.dirname(path) or "."
        match = _FILE.match(os.path.basename(path))
        if not match:
            raise ImportFailure(f"{path}: not named <epoch>_net_G.pth or <epoch>_net_G_A.pth as the original's "
                                "save_networks names its files; give the file under that name or its folder")
        if match["net"].startswith("D"):
            raise ImportFailure(f"{path}: a discriminator; give the generator file ({match['epoch']}_net_G.pth "
                                f"or {match['epoch']}_net_G_A.pth) or the folder")
        family = "cyclegan" if match["net"] in ("G_A", "G_B") else "pix2pix"
        epoch = match["epoch"]
    files = {}
    for net in _NETWORKS[family]:
        file = os.path.join(folder, f"{epoch}_net_{net}.pth")
        if os.path.isfile(file):
            files[net] = file
        elif net in _GENERATORS[family]:
            raise ImportFailure(f"{file}: missing; a {family} checkpoint needs "
                                f"{' and '.join(f'{epoch}_net_{g}.pth' for g in _GENERATORS[family])}")
    return family, folder, epoch, files


def _newest(epochs: list[str], path: str) -> str:
    """``latest``, else the highest epoch number, else the highest ``iter_<N>``."""
    if "latest" in epochs:
        return "latest"
    numbers = [epoch for epoch in epochs if epoch.isdigit()]
    if numbers:
        return max(numbers, key=int)
    iterations = [epoch for epoch in epochs if re.fullmatch(r"iter_\d+", epoch)]
    if iterations:
        return max(iterations, key=lambda epoch: int(epoch[5:]))
    if len(epochs) == 1:
        return epochs[0]
    raise ImportFailure(f"{path}: several checkpoints and none is latest or numbered "
                        f"({', '.join(sorted(epochs))}); give the generator file to import")


def _tensors(file: str) -> Tensors:
    from tfsynth.importing.torch_files import read_state_dict

    arrays = read_state_dict(file)

    def ignored(name: str) -> bool:
        # num_batches_tracked is a counter, not a weight. PyTorch < 0.4 also saved running
        # statistics for InstanceNorm2d(affine=False); they sit where no weight is (a batch norm
        # always has one), instance norm never uses them, and the original deletes them on load.
        if name.endswith(".num_batches_tracked"):
            return True
        module, _, leaf = name.rpartition(".")
        return leaf in ("running_mean", "running_var") and f"{module}.weight" not in arrays

    return Tensors(arrays, file, ignored=ignored)


def _read_options(folder: str) -> tuple[dict[str, str], list[str]]:
    """``train_opt.txt`` (and ``eval`` from ``test_opt.txt``) as name -> value text."""
    options, read_files = {}, []
    for name in ("train_opt.txt", "test_opt.txt"):
        file = os.path.join(folder, name)
        if not os.path.isfile(file):
            continue
        with open(file, encoding="utf-8", errors="replace") as f:
            parsed = _parse_options(f.read())
        if name == "train_opt.txt":
            options.update(parsed)
        elif "eval" in parsed:
            options["eval"] = parsed["eval"]
        read_files.append(name)
    return options, read_files


def _parse_options(text: str) -> dict[str, str]:
    """``print_options``' lines: ``{name:>25}: {value:<30}`` and, for options given on the command
    line, a tab and ``[default: ...]``."""
    options = {}
    for line in text.splitlines():
        line = line.split("\t[default:")[0]
        name, sep, value = line.partition(":")
        if sep and name.strip() and not name.strip().startswith("-"):
            name = name.strip()
            options[_ALIASES.get(name, name)] = value.strip()
    if "gan_mode" not in options and "no_lsgan" in options:  # before --gan_mode (2019)
        options["gan_mode"] = "vanilla" if _bool(options["no_lsgan"]) else "lsgan"
    return options


def _bool(text: str) -> bool:
    return text.strip().lower() in ("true", "1")


def _number(options: dict, name: str, kind=int):
    try:
        return kind(options[name])
    except ValueError:
        raise ImportFailure(f"train_opt.txt: {name}={options[name]!r} is not a number") from None


# ------------------------------------------------------------------------------ architectures

def _check(options: dict, name: str, found, file: str, what: str | None = None) -> None:
    """An option the tensors also show must say the same."""
    if name in options and options[name] != str(found):
        raise ImportFailure(f"train_opt.txt says {name}={options[name]}, but {file} holds "
                            f"{what or f'{name}={found}'}")


def _unet_prefix(level: int) -> str:
    """The state-dict prefix of U-Net block ``level`` (0 = outermost)."""
    return "model.model." + "1.model." * (level >= 1) + "3.model." * max(level - 1, 0)


def _unet(g: Tensors) -> dict:
    """netG, ngf, norm and channel counts of a U-Net generator's state dict."""
    if "model.model.0.weight" not in g:
        if "model.1.weight" in g and g.shape("model.1.weight")[2:] == (7, 7):
            # The authors' pretrained CycleGANs are one direction saved as latest_net_G.pth.
            raise ImportFailure(f"{g.source}: a ResNet generator (netG=resnet_*): tfsynth's pix2pix has only the "
                                "U-Net generators (unet_N); no tensor 'model.model.0.weight'. A CycleGAN imports "
                                "from its two generators named <epoch>_net_G_A.pth and <epoch>_net_G_B.pth")
        raise ImportFailure(f"{g.source}: not a U-Net generator of the original: no tensor 'model.model.0.weight'")
    levels = 1
    while f"{_unet_prefix(levels)}1.weight" in g:
        levels += 1
    if levels < 5:
        raise ImportFailure(f"{g.source}: a U-Net of {levels} levels; the original builds at least 5 "
                            f"(no tensor '{_unet_prefix(levels)}1.weight')")
    e1 = g.shape("model.model.0.weight")
    return {"netG": f"unet_{2**levels}", "ngf": e1[0], "input_nc": e1[1],
            "output_nc": g.shape("model.model.3.weight")[1], "norm": _norm_kind(g, _unet_prefix(1), "1.", "2.")}


def _resnet(g: Tensors) -> dict:
    """netG, ngf, norm, dropout and channel counts of a ResNet generator's state dict."""
    if "model.model.0.weight" in g:
        raise ImportFailure(f"{g.source}: a U-Net generator (netG=unet_*, tensor 'model.model.0.weight'): "
                            "tfsynth's CycleGAN has only the ResNet generators (resnet_<n>blocks)")
    blocks = 0
    while f"model.{10 + blocks}.conv_block.1.weight" in g:
        blocks += 1
    if not blocks:
        raise ImportFailure(f"{g.source}: not a ResNet generator of the original: no tensor "
                            "'model.10.conv_block.1.weight'")
    initial = g.shape("model.1.weight")
    # A block with dropout is [pad, conv, norm, relu, Dropout, pad, conv, norm]: its second conv
    # moves from index 5 to 6. With batch norm, index 6 is the norm (1-D) instead.
    second = "model.10.conv_block.6.weight"
    dropout = second in g and len(g.shape(second)) == 4
    return {"netG": f"resnet_{blocks}blocks", "ngf": initial[0], "input_nc": initial[1],
            "output_nc": g.shape(f"model.{17 + blocks}.weight")[0], "norm": _norm_kind(g, "model.", "4.", "5."),
            "dropout": dropout, "blocks": blocks}


def _norm_kind(tensors: Tensors, prefix: str, conv: str, norm: str) -> str:
    """batch (the norm has a weight, the conv no bias), instance (the conv keeps its bias), or none."""
    if f"{prefix}{norm}weight" in tensors:
        return "batch"
    if f"{prefix}{conv}bias" in tensors:
        return "instance"
    return "none"


def _discriminator(d: Tensors) -> dict:
    """netD, ndf, n_layers_D, norm and input channels of a discriminator's state dict."""
    if "net.0.weight" in d:
        first = d.shape("net.0.weight")
        return {"netD": "pixel", "ndf": first[0], "channels": first[1], "n_layers_D": None,
                "norm": _norm_kind(d, "net.", "2.", "3.")}
    if "model.0.weight" not in d or len(d.shape("model.0.weight")) != 4:
        raise ImportFailure(f"{d.source}: not a discriminator of the original: no tensor 'model.0.weight' "
                            "(PatchGAN) or 'net.0.weight' (PixelGAN)")
    convs = [int(match[1]) for name in d.names(r"^model\.\d+\.weight$")
             if (match := re.match(r"model\.(\d+)\.", name)) and len(d.shape(name)) == 4]
    layers = (max(convs) - 2) // 3
    first = d.shape("model.0.weight")
    return {"netD": "basic" if layers == 3 else "n_layers", "ndf": first[0], "channels": first[1],
            "n_layers_D": layers, "norm": _norm_kind(d, "model.", "2.", "3.") if layers else "none"}


def _check_norm(kind: str, file: str, supported: tuple[str, ...], family: str) -> None:
    if kind not in supported:
        what = {"batch": "BatchNorm2d tensors", "instance": "convolutions biased, no norm tensors",
                "none": "no norm tensors, convolutions without bias"}[kind]
        raise ImportFailure(f"{file}: norm={kind} ({what}): tfsynth's {family} supports "
                            f"norm={' or '.join(supported)}")


def _check_discriminator(found: dict, options: dict, file: str, channels: int) -> None:
    if found["channels"] != channels:
        raise ImportFailure(f"{file}: 'model.0.weight' takes {found['channels']} channels, the generator's "
                            f"images need a discriminator on {channels}")
    _check(options, "ndf", found["ndf"], file)
    if options.get("netD") in ("basic", "n_layers", "pixel"):
        kind = "pixel" if found["netD"] == "pixel" else "PatchGAN"
        wanted = "pixel" if options["netD"] == "pixel" else "PatchGAN"
        if kind != wanted:
            raise ImportFailure(f"train_opt.txt says netD={options['netD']}, but {file} holds a {kind} "
                                "discriminator")
        if options["netD"] == "basic" and found["n_layers_D"] != 3:
            raise ImportFailure(f"train_opt.txt says netD=basic, but {file} holds {found['n_layers_D']} "
                                "strided layers")
        if options["netD"] == "n_layers":
            _check(options, "n_layers_D", found["n_layers_D"], file)


def _training_options(options: dict, notes: list, family: str) -> dict:
    """The options both families share, as tfsynth hparams."""
    hparams = {}

    def number(name, field, kind=float):
        if name in options:
            hparams[field] = _number(options, name, kind)

    number("lr", "learning_rate")
    number("beta1", "beta_1")
    number("n_epochs", "epochs_constant", int)
    number("n_epochs_decay", "epochs_decay", int)
    if "no_flip" in options:
        hparams["flip"] = not _bool(options["no_flip"])
    gan_mode = options.get("gan_mode")
    if gan_mode in ("vanilla", "lsgan"):
        hparams["gan_mode"] = gan_mode
    elif gan_mode:
        notes.append(f"gan_mode={gan_mode} has no tfsynth equivalent in {family}: training uses tfsynth's default "
                     "(choose one with --hparams=gan_mode=...)")
    if options.get("lr_policy", "linear") != "linear":
        notes.append(f"lr_policy={options['lr_policy']}: tfsynth decays linearly (epochs_constant, epochs_decay)")
    if options.get("preprocess", "resize_and_crop") != "resize_and_crop":
        notes.append(f"preprocess={options['preprocess']}: tfsynth resizes to load_size and crops crop_size")
    return hparams


def _assign_conv(tensors: Tensors, layer, prefix: str, transform=conv_kernel) -> None:
    """A conv layer from ``<prefix>weight`` (and ``<prefix>bias`` where the layer has a bias)."""
    names = [f"{prefix}weight"] + ([f"{prefix}bias"] if layer.use_bias else [])
    tensors.assign(layer, names, [transform, identity][:len(names)])


def _assign_norm(tensors: Tensors, layer, prefix: str) -> None:
    """A batch norm from PyTorch's four tensors; an instance norm (no affine) holds nothing."""
    if layer.weights:
        tensors.assign(layer, [f"{prefix}weight", f"{prefix}bias", f"{prefix}running_mean", f"{prefix}running_var"])


def _assign_patch_discriminator(tensors: Tensors, network, layers: int) -> None:
    _assign_conv(tensors, network.get_layer("conv1"), "model.0.")
    for index in range(1, layers + 1):
        _assign_conv(tensors, network.get_layer(f"conv{index + 1}"), f"model.{3 * index - 1}.")
        _assign_norm(tensors, network.get_layer(f"conv{index + 1}_norm"), f"model.{3 * index}.")
    _assign_conv(tensors, network.get_layer("logits"), f"model.{3 * layers + 2}.")
    tensors.check_all_used()


def _assign_pixel_discriminator(tensors: Tensors, network) -> None:
    _assign_conv(tensors, network.get_layer("conv1"), "net.0.")
    _assign_conv(tensors, network.get_layer("conv2"), "net.2.")
    _assign_norm(tensors, network.get_layer("conv2_norm"), "net.3.")
    logits = network.get_layer("logits")
    if "net.5.bias" in tensors:
        _assign_conv(tensors, logits, "net.5.")
    else:
        # The original's last 1x1 conv has a bias only with instance norm (bias=use_bias);
        # tfsynth's always has one: zero computes the same logits.
        tensors.assign(logits, ["net.5.weight", None], [conv_kernel, identity])
        logits.bias.assign(np.zeros(logits.bias.shape, np.float32))
    tensors.check_all_used()


# ------------------------------------------------------------------------------------ pix2pix

def _pix2pix(tensors: dict[str, Tensors], options: dict, notes: list):
    g = tensors["G"]
    found = _unet(g)
    for name in ("netG", "ngf", "input_nc", "output_nc"):
        _check(options, name, found[name], g.source)
    if "netG" in options and not options["netG"].startswith("unet_"):
        raise ImportFailure(f"train_opt.txt: netG={options['netG']}: tfsynth's pix2pix has only the U-Net "
                            "generators")
    _check_norm(found["norm"], g.source, ("batch", "instance"), "pix2pix")
    _check(options, "norm", found["norm"], g.source)
    if (found["input_nc"], found["output_nc"]) != (3, 3):
        raise ImportFailure(f"{g.source}: input_nc={found['input_nc']}, output_nc={found['output_nc']} "
                            "('model.model.0.weight', 'model.model.3.weight'): tfsynth's pix2pix translates "
                            "3-channel images only")
    if options.get("model", "pix2pix") not in ("pix2pix", "test"):
        raise ImportFailure(f"train_opt.txt says model={options['model']}, but the folder holds pix2pix's net_G")
    hparams = {
        "generator": found["netG"], "base_filters": found["ngf"], "norm": found["norm"],
        "label_input": "image",  # G reads a 3-channel photo (the original's aligned A images)
        # The Dropout(0.5) of the PyTorch U-Net follows its intermediate ngf*8 blocks; its keys
        # do not show it (a Dropout has no state), so only --no_dropout says it is absent.
        "dropout": 0.0 if _bool(options.get("no_dropout", "False")) else 0.5,
        "dropout_placement": "pytorch",
        **_training_options(options, notes, "pix2pix"),
    }
    for name, field, kind in (("lambda_L1", "lambda_l1", float), ("load_size", "load_size", int),
                              ("crop_size", "crop_size", int)):
        if name in options:
            hparams[field] = _number(options, name, kind)
    if "eval" in options:
        hparams["test_mode"] = "eval" if _bool(options["eval"]) else "paper"
    if "pool_size" in options and _number(options, "pool_size") > 0:
        notes.append(f"pool_size={options['pool_size']}: tfsynth's pix2pix has no image pool")
    d = tensors.get("D")
    if d is not None:
        found_d = _discriminator(d)
        _check_discriminator(found_d, options, d.source, 6)
        if found_d["norm"] != found["norm"]:
            raise ImportFailure(f"{d.source}: norm={found_d['norm']}, the generator's is {found['norm']}")
        hparams["discriminator"] = found_d["netD"]
        hparams["discriminator_filters"] = found_d["ndf"]
        if found_d["n_layers_D"] is not None:
            hparams["discriminator_layers"] = found_d["n_layers_D"]
    else:
        if options.get("netD") in ("basic", "n_layers", "pixel"):
            hparams["discriminator"] = options["netD"]
        for name, field in (("ndf", "discriminator_filters"), ("n_layers_D", "discriminator_layers")):
            if name in options:
                hparams[field] = _number(options, name)

    def set_weights(model) -> None:
        cfg = model.config
        generator, levels = model.generator, cfg.num_downs
        _assign_conv(g, generator.get_layer("e1"), "model.model.0.")
        for level in range(1, levels):
            prefix = _unet_prefix(level)
            encoder, decoder = f"e{level + 1}", f"d{levels - level}"
            _assign_conv(g, generator.get_layer(encoder), f"{prefix}1.")
            if level < levels - 1:
                _assign_norm(g, generator.get_layer(f"{encoder}_norm"), f"{prefix}2.")
                up, norm = "5.", "6."
            else:  # innermost: [LeakyReLU, downconv, ReLU, upconv, norm]
                up, norm = "3.", "4."
            _assign_conv(g, generator.get_layer(decoder), f"{prefix}{up}", conv_transpose_kernel)
            _assign_norm(g, generator.get_layer(f"{decoder}_norm"), f"{prefix}{norm}")
        _assign_conv(g, generator.get_layer(f"d{levels}"), "model.model.3.", conv_transpose_kernel)
        g.check_all_used()
        if d is not None:
            if cfg.discriminator == "pixel":
                _assign_pixel_discriminator(d, model.discriminator)
            else:
                _assign_patch_discriminator(d, model.discriminator,
                                            3 if cfg.discriminator == "basic" else cfg.discriminator_layers)

    return hparams, set_weights


# ----------------------------------------------------------------------------------- CycleGAN

def _cyclegan(tensors: dict[str, Tensors], options: dict, notes: list):
    generators = {net: _resnet(tensors[net]) for net in ("G_A", "G_B")}
    for net, found in generators.items():
        file = tensors[net].source
        for name in ("netG", "ngf"):
            _check(options, name, found[name], file)
        if "netG" in options and not options["netG"].startswith("resnet_"):
            raise ImportFailure(f"train_opt.txt: netG={options['netG']}: tfsynth's CycleGAN has only the ResNet "
                                "generators")
        _check_norm(found["norm"], file, ("instance",), "CycleGAN")
        _check(options, "norm", found["norm"], file)
        if found["dropout"]:
            raise ImportFailure(f"{file}: ResNet blocks with Dropout (no_dropout=False; tensor "
                                "'model.10.conv_block.6.weight'): tfsynth's CycleGAN generators have no dropout")
        if (found["input_nc"], found["output_nc"]) != (3, 3):
            raise ImportFailure(f"{file}: input_nc={found['input_nc']}, output_nc={found['output_nc']} "
                                "('model.1.weight', last conv): tfsynth's CycleGAN translates 3-channel "
                                "images only")
    if generators["G_A"] != generators["G_B"]:
        raise ImportFailure(f"{tensors['G_B'].source}: {generators['G_B']['netG']} ngf={generators['G_B']['ngf']}, "
                            f"but G_A is {generators['G_A']['netG']} ngf={generators['G_A']['ngf']}")
    if options.get("model", "cycle_gan") not in ("cycle_gan", "test"):
        raise ImportFailure(f"train_opt.txt says model={options['model']}, but the folder holds CycleGAN's net_G_A")
    found = generators["G_A"]
    hparams = {"generator": found["netG"], "base_filters": found["ngf"],
               **_training_options(options, notes, "CycleGAN")}
    for name, field, kind in (("lambda_A", "lambda_a", float), ("lambda_B", "lambda_b", float),
                              ("lambda_identity", "lambda_identity", float), ("pool_size", "pool_size", int)):
        if name in options:
            hparams[field] = _number(options, name, kind)
    for name in ("load_size", "crop_size"):
        if name in options:
            hparams[name] = (_number(options, name),) * 2  # the original's images are square
    discriminators = {net: _discriminator(tensors[net]) for net in ("D_A", "D_B") if net in tensors}
    for net, found_d in discriminators.items():
        file = tensors[net].source
        if found_d["netD"] == "pixel":
            raise ImportFailure(f"{file}: a PixelGAN discriminator (netD=pixel, tensor 'net.0.weight'): tfsynth's "
                                "CycleGAN has only the PatchGAN")
        _check_discriminator(found_d, options, file, 3)
        _check_norm(found_d["norm"], file, ("instance",), "CycleGAN")
        hparams["discriminator_filters"] = found_d["ndf"]
        hparams["discriminator_layers"] = found_d["n_layers_D"]
    if len(discriminators) == 2 and discriminators["D_A"] != discriminators["D_B"]:
        raise ImportFailure(f"{tensors['D_B'].source}: another architecture than {tensors['D_A'].source}")
    if not discriminators:
        if options.get("netD") == "pixel":
            raise ImportFailure("train_opt.txt: netD=pixel: tfsynth's CycleGAN has only the PatchGAN")
        if "ndf" in options:
            hparams["discriminator_filters"] = _number(options, "ndf")
        if options.get("netD") == "n_layers" and "n_layers_D" in options:
            hparams["discriminator_layers"] = _number(options, "n_layers_D")

    def set_weights(model) -> None:
        blocks = model.config.residual_blocks
        for net in ("G_A", "G_B"):
            g, network = tensors[net], model.networks[net]
            _assign_conv(g, network.get_layer("initial"), "model.1.")
            _assign_conv(g, network.get_layer("down1"), "model.4.")
            _assign_conv(g, network.get_layer("down2"), "model.7.")
            for block in range(1, blocks + 1):
                prefix = f"model.{9 + block}.conv_block."
                _assign_conv(g, network.get_layer(f"res{block}_conv1"), f"{prefix}1.")
                _assign_conv(g, network.get_layer(f"res{block}_conv2"), f"{prefix}5.")
            _assign_conv(g, network.get_layer("up1"), f"model.{10 + blocks}.", conv_transpose_kernel)
            _assign_conv(g, network.get_layer("up2"), f"model.{13 + blocks}.", conv_transpose_kernel)
            _assign_conv(g, network.get_layer("output"), f"model.{17 + blocks}.")
            g.check_all_used()
        for net in ("D_A", "D_B"):
            if net in tensors:
                _assign_patch_discriminator(tensors[net], model.networks[net], model.config.discriminator_layers)

    return hparams, set_weights
