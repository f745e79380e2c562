"""NVIDIA/pix2pixHD's checkpoints: the ``checkpoints/NAME`` folder its training writes.

The format
----------
``Pix2PixHDModel.save(epoch)`` writes one PyTorch state dict per network (``torch.save`` of
``network.state_dict()``; read here without PyTorch) next to the options file ``opt.txt``:

- ``<epoch>_net_G.pth``: the generator. ``GlobalGenerator`` (``--netG global``) is one
  ``nn.Sequential`` ``model``: reflection pad + 7x7 conv at index 1, the stride-2 convs at 4, 7, ..,
  one ``ResnetBlock`` per index (``model.<i>.conv_block.1`` and ``.5`` are its two convs), the
  ``ConvTranspose2d`` s every 3 indices, and the 7x7 output conv 4 indices after the last of them.
  ``LocalEnhancer`` (``--netG local``) holds that trunk without its output conv (``model.*``, built
  with 2 ngf filters) plus the enhancer's front end ``model1_1`` (7x7 conv at 1, stride-2 conv at
  4) and back end ``model1_2`` (residual blocks at 0 .., the transposed conv, the output conv 4
  indices later). Instance norms have no affine parameters, so they hold no tensors; every
  convolution keeps its bias.
- ``<epoch>_net_D.pth``: the ``MultiscaleDiscriminator``: per scale ``i`` and block ``j`` the conv
  ``scale<i>_layer<j>.0`` (``getIntermFeat``, i.e. with the feature-matching loss), or, without
  that loss, one ``nn.Sequential`` per scale, ``layer<i>.<k>`` (convs at k = 0, 2, 5, 8, ..). The
  original runs the parameters of scale ``num_D - 1 - s`` on the input average-pooled ``s`` times,
  so tfsynth's ``D<s>`` (which judges the input pooled ``s`` times) gets ``scale<num_D-1-s>``.
- ``<epoch>_net_E.pth`` (``--instance_feat``): the feature ``Encoder``, laid out as the global
  generator without residual blocks and with ``feat_num`` output channels.
- ``opt.txt``: ``name: value`` lines between two banner lines.

The epoch read is ``latest`` when its G exists, else the highest numbered one. PATH may also be
a G file itself; its D and E are then the same folder's files of the same epoch prefix.

How the options map (the architecture is read off the tensors; ``opt.txt``, where present,
must agree with them and gives what the tensors cannot)
-------------------------------------------------------------------------------------------
- netG -> ``generator``; ngf -> ``base_filters`` (the local enhancer's; its G1 has twice as many);
  n_downsample_global, n_blocks_global, n_blocks_local -> ``global_downsamplings``,
  ``global_blocks``, ``local_blocks``. tfsynth's local generator has one enhancer:
  ``n_local_enhancers`` > 1 is refused.
- not no_instance -> ``instance_edges``; instance_feat, feat_num, nef, n_downsample_E ->
  ``instance_features``, ``feature_channels``, ``encoder_filters``, ``encoder_downsamplings``.
  Without ``opt.txt`` they come from G's input channels: 35 labels, then 1 edge channel, then the
  features (the original can only encode instance features with instance maps).
- num_D, n_layers_D, ndf -> ``discriminator_scales``, ``discriminator_layers``,
  ``discriminator_filters``.
- lambda_feat -> ``lambda_feature`` and ``lambda_vgg`` (the original weighs both terms with it);
  no_ganFeat_loss, no_vgg_loss -> 0 for that term; no_lsgan -> ``gan_mode`` vanilla.
- lr, beta1, niter, niter_decay, niter_fix_global, n_clusters, no_flip -> ``learning_rate``,
  ``beta_1``, ``epochs_constant``, ``epochs_decay``, ``epochs_fix_global``, ``num_clusters``,
  ``flip``.
- loadSize / fineSize / resize_or_crop -> ``image_size``: scale_width trains on loadSize-wide
  images, height loadSize / 2 for Cityscapes' 2:1 frames; the crops on fineSize squares.
- label_nc 35 = Cityscapes' 35 label ids: the import takes the original's ids (``cityscapes35``).

What tfsynth cannot express is one ``ImportFailure`` line naming it: another label_nc (0: image
inputs), norm batch, output_nc other than 3, more than one local enhancer, label_feat (features
averaged per label region rather than per instance). The original's training-only options
without a counterpart (its image pool) are listed in a printed line. The K-means feature clusters
(``features_clustered_*.npy``, a pickled object file) are not read: ``finish_training`` computes
tfsynth's own.
"""

from __future__ import annotations

import os
import re

from tfsynth.importing.formats import Original
from tfsynth.importing.tensors import ImportFailure, Tensors, conv_kernel, conv_transpose_kernel, identity
from tfsynth.importing.torch_files import read_state_dict

#: tfsynth's pix2pixhd reads Cityscapes' label ids (its label space ``cityscapes35``).
LABEL_CLASSES = 35
_NET_FILE = re.compile(r"(.+)_net_([GDE])\.pth")
_CONV = (conv_kernel, identity)
_CONV_T = (conv_transpose_kernel, identity)


def read(path: str) -> Original:
    files = _locate(path)
    options = _read_options(files["opt"]) if files["opt"] else {}
    generator = Tensors(read_state_dict(files["G"]), files["G"])
    found = _generator_architecture(generator)
    networks = {"G": generator}
    for kind in ("D", "E"):
        if files[kind]:
            networks[kind] = Tensors(read_state_dict(files[kind]), files[kind])
    if "D" in networks:
        found.update(_discriminator_architecture(networks["D"]))
    if "E" in networks:
        found.update(_encoder_architecture(networks["E"]))
    hparams = _hparams(found, options, files, networks)
    for kind, what in (("D", "the discriminators start"), ("E", "the encoder starts")):
        wanted = kind == "D" or hparams.get("instance_features")
        if wanted and kind not in networks:
            print(f"pix2pixhd import: no {files['prefix']}_net_{kind}.pth beside {files['G']}: {what} fresh",
                  flush=True)

    def set_weights(model) -> None:
        _set_generator(model.generator, model.config, generator)
        if "D" in networks:
            _set_discriminators(model.discriminators, networks["D"])
        if "E" in networks:
            if not model.config.instance_features:
                raise ImportFailure(f"{files['E']}: an encoder, but the generator takes no encoded features "
                                    "(instance_features=False)")
            _set_encoder(model.encoder, model.config, networks["E"])
        for tensors in networks.values():
            tensors.check_all_used()

    source = ", ".join(files[kind] for kind in ("G", "D", "E", "opt") if files[kind])
    return Original(model="pix2pixhd", hparams=hparams, set_weights=set_weights, source=source,
                    label_space="cityscapes35")


# ------------------------------------------------------------------------------------- files

def _locate(path: str) -> dict:
    """The G, D, E files of one epoch and ``opt.txt`` (None where absent)."""
    if os.path.isfile(path):
        folder, match = os.path.dirname(path), _NET_FILE.fullmatch(os.path.basename(path))
        prefix = match[1] if match and match[2] == "G" else None
        files = {"G": path, "prefix": prefix or os.path.splitext(os.path.basename(path))[0]}
    elif os.path.isdir(path):
        folder = path
        prefixes = {m[1] for name in os.listdir(path) if (m := _NET_FILE.fullmatch(name)) and m[2] == "G"}
        if not prefixes:
            raise ImportFailure(f"{path}: no <epoch>_net_G.pth (pix2pixHD's checkpoints/NAME folder holds "
                                "latest_net_G.pth or 10_net_G.pth ...)")
        numbered = [p for p in prefixes if p.isdigit()]
        # The original's --which_epoch defaults to latest; else the most trained epoch.
        prefix = "latest" if "latest" in prefixes else max(numbered, key=int) if numbered else sorted(prefixes)[-1]
        files = {"G": os.path.join(path, f"{prefix}_net_G.pth"), "prefix": prefix}
    else:
        raise ImportFailure(f"{path}: no such file or folder (give pix2pixHD's checkpoints/NAME folder or a "
                            "<epoch>_net_G.pth)")
    for kind in ("D", "E"):
        candidate = os.path.join(folder, f"{files['prefix']}_net_{kind}.pth")
        files[kind] = candidate if prefix and os.path.isfile(candidate) else None
    opt = os.path.join(folder, "opt.txt")
    files["opt"] = opt if os.path.isfile(opt) else None
    clusters = [name for name in os.listdir(folder or ".") if name.startswith("features_clustered")]
    if clusters:
        print(f"pix2pixhd import: {', '.join(sorted(clusters))} not read (pickled objects); tfsynth clusters the "
              "encoded features itself after training (finish_training)", flush=True)
    return files


def _read_options(path: str) -> dict[str, str]:
    """``opt.txt``: ``name: value`` lines (values as text) between the banner lines."""
    options = {}
    with open(path, encoding="utf-8", errors="replace") as file:
        for line in file:
            name, colon, value = line.strip().partition(": ")
            if colon and re.fullmatch(r"\w+", name):
                options[name] = value.strip()
            elif line.strip().endswith(":") and re.fullmatch(r"\w+", line.strip()[:-1]):
                options[line.strip()[:-1]] = ""  # an empty value (load_pretrain: )
    return options


# ------------------------------------------------------------------------------ architecture

def _indices(tensors: Tensors, pattern: str) -> list[int]:
    return sorted({int(m[1]) for name in tensors.names() if (m := re.fullmatch(pattern, name))})


def _trunk_layout(tensors: Tensors, prefix: str, has_output: bool, blocks_allowed: bool, what: str):
    """Downsamplings and residual blocks of a GlobalGenerator-like ``nn.Sequential`` ``prefix``,
    from where its convolutions sit; refuses any other layout."""
    p = re.escape(prefix)
    convs = _indices(tensors, rf"{p}\.(\d+)\.weight")
    blocks = _indices(tensors, rf"{p}\.(\d+)\.conv_block\.1\.weight") if blocks_allowed else []
    # The initial conv, d down, d up (and the output conv): the count gives d.
    depth, odd = divmod(len(convs) - 1 - has_output, 2)
    expected_convs = ([1] + [4 + 3 * i for i in range(depth)]
                      + [4 + 3 * depth + len(blocks) + 3 * i for i in range(depth)]
                      + ([5 + 6 * depth + len(blocks)] if has_output else []))
    expected_blocks = [4 + 3 * depth + b for b in range(len(blocks))]
    if odd or depth < 0 or convs != expected_convs or blocks != expected_blocks:
        raise ImportFailure(f"{tensors.source}: the tensors {prefix}.* are not a pix2pixHD {what} (convolutions at "
                            f"{prefix} indices {convs}, residual blocks at {blocks}); is this a pix2pixHD "
                            "checkpoint?")
    return depth, len(blocks)


def _generator_architecture(tensors: Tensors) -> dict:
    if not tensors.names(r"^model\.1\.weight$"):
        raise ImportFailure(f"{tensors.source}: tensor 'model.1.weight' is missing: not a pix2pixHD generator "
                            f"(its tensors: {', '.join(tensors.names()[:6])} ..)")
    enhancers = {int(m[1]) for name in tensors.names() if (m := re.match(r"model(\d+)_[12]\.", name))}
    found = {}
    if enhancers:
        if enhancers != {1}:
            raise ImportFailure(f"{tensors.source}: n_local_enhancers={max(enhancers)} (tensors model{max(enhancers)}"
                                "_1.*): tfsynth's local generator has one enhancer")
        found["netG"], found["n_local_enhancers"] = "local", 1
        found["ngf"] = tensors.shape("model1_1.1.weight")[0]
        blocks = _indices(tensors, r"model1_2\.(\d+)\.conv_block\.1\.weight")
        found["n_blocks_local"] = len(blocks)
        if blocks != list(range(len(blocks))):
            raise ImportFailure(f"{tensors.source}: residual blocks at model1_2 indices {blocks}: not a pix2pixHD "
                                "local enhancer")
    else:
        found["netG"] = "global"
        found["ngf"] = tensors.shape("model.1.weight")[0]
    found["n_downsample_global"], found["n_blocks_global"] = _trunk_layout(
        tensors, "model", found["netG"] == "global", True, "GlobalGenerator")
    found["G_input_nc"] = tensors.shape("model.1.weight")[1]
    return found


def _discriminator_architecture(tensors: Tensors) -> dict:
    scaled = [(int(m[1]), int(m[2])) for name in tensors.names()
              if (m := re.fullmatch(r"scale(\d+)_layer(\d+)\.0\.weight", name))]
    if scaled:
        scales, layers = sorted({s for s, _ in scaled}), sorted({j for _, j in scaled})
        layout, first = "scale<i>_layer<j>", "scale0_layer0.0.weight"
    else:
        convs = _indices(tensors, r"layer0\.(\d+)\.weight")
        scales = sorted({int(m[1]) for name in tensors.names() if (m := re.fullmatch(r"layer(\d+)\..*", name))})
        # Without intermediate features a scale is one Sequential: conv, LeakyReLU, then
        # (conv, norm, LeakyReLU) per block, then the logits conv.
        layers = list(range(len(convs)))
        if convs != [0] + [2 + 3 * j for j in range(len(convs) - 1)]:
            layers = []
        layout, first = "layer<i>", "layer0.0.weight"
    if not scales or scales != list(range(len(scales))) or len(layers) < 3 or layers != list(range(len(layers))):
        raise ImportFailure(f"{tensors.source}: not a pix2pixHD MultiscaleDiscriminator (expected tensors "
                            f"scale<i>_layer<j>.0.weight or layer<i>.<k>.weight; it holds "
                            f"{', '.join(tensors.names()[:6])} ..)")
    return {"num_D": len(scales), "n_layers_D": len(layers) - 2, "ndf": tensors.shape(first)[0],
            "D_layout": layout, "D_input_nc": tensors.shape(first)[1]}


def _encoder_architecture(tensors: Tensors) -> dict:
    if not tensors.names(r"^model\.1\.weight$"):
        raise ImportFailure(f"{tensors.source}: tensor 'model.1.weight' is missing: not a pix2pixHD encoder")
    depth, _ = _trunk_layout(tensors, "model", True, False, "Encoder")
    return {"nef": tensors.shape("model.1.weight")[0], "n_downsample_E": depth,
            "feat_num": tensors.shape(f"model.{5 + 6 * depth}.weight")[0]}


# ------------------------------------------------------------------------------------ hparams

def _flag(options: dict, name: str, default: bool = False) -> bool:
    return options[name].lower() == "true" if name in options else default


def _hparams(found: dict, options: dict, files: dict, networks: dict) -> dict:
    """tfsynth's config from the tensors, and from ``opt.txt`` what the tensors do not hold."""
    opt_path = files["opt"]

    def number(name, default, kind=int):
        try:
            return kind(options[name]) if name in options else default
        except ValueError:
            raise ImportFailure(f"{opt_path}: {name}: {options[name]!r} is not a number") from None

    # What the tensors say, where opt.txt also says it, must agree.
    for name, value in found.items():
        if name in options and name not in ("G_input_nc", "D_input_nc", "D_layout"):
            stated = options[name] if name == "netG" else number(name, None)
            if stated != value:
                kind = "E" if name in ("nef", "n_downsample_E", "feat_num") else "D" if name in (
                    "num_D", "n_layers_D", "ndf") else "G"
                raise ImportFailure(f"{opt_path}: {name}: {options[name]}, but {files[kind]} holds {name}={value}")

    label_nc, output_nc = number("label_nc", LABEL_CLASSES), number("output_nc", 3)
    if label_nc != LABEL_CLASSES:
        what = "image inputs (label_nc 0)" if label_nc == 0 else f"{label_nc} label classes"
        raise ImportFailure(f"{opt_path}: label_nc: {label_nc}: tfsynth's pix2pixhd takes Cityscapes' 35 label ids "
                            f"(label_nc 35), not {what}")
    if output_nc != 3:
        raise ImportFailure(f"{opt_path}: output_nc: {output_nc}: tfsynth's pix2pixhd renders RGB (output_nc 3)")
    if options.get("norm", "instance") != "instance":
        raise ImportFailure(f"{opt_path}: norm: {options['norm']}: tfsynth's pix2pixhd has instance norms only")
    if _flag(options, "label_feat"):
        raise ImportFailure(f"{opt_path}: label_feat: True: tfsynth averages the encoded features per instance "
                            "(--instance_feat), not per label region")

    input_nc = found["G_input_nc"]
    if options:
        edges = not _flag(options, "no_instance")
        features = _flag(options, "instance_feat")
        feat_num = number("feat_num", 3) if features else 0
        if input_nc != LABEL_CLASSES + edges + feat_num:
            raise ImportFailure(f"{files['G']}: tensor 'model.1.weight' takes {input_nc} input channels, but "
                                f"{opt_path} gives {LABEL_CLASSES} labels + {int(edges)} edge + {feat_num} feature "
                                "channels")
    else:
        # Without options: labels, then the edge map, then the features; the original encodes
        # instance features only with instance maps, so features imply the edge channel.
        extra = input_nc - LABEL_CLASSES
        if extra < 0:
            raise ImportFailure(f"{files['G']}: tensor 'model.1.weight' takes {input_nc} input channels: tfsynth's "
                                f"pix2pixhd takes Cityscapes' {LABEL_CLASSES} one-hot labels (+ instance edges, + "
                                "encoded features); is this a pix2pixHD label-to-image generator?")
        edges, features = extra >= 1, extra >= 2
        feat_num = found.get("feat_num", extra - 1) if features else 0
        if features and feat_num != extra - 1:
            raise ImportFailure(f"{files['G']}: tensor 'model.1.weight' takes {input_nc} input channels, not "
                                f"{LABEL_CLASSES} labels + 1 edge + the encoder's {feat_num} features")
    if "E" in networks and not features:
        raise ImportFailure(f"{files['E']}: an encoder, but {files['G']} takes no encoded features "
                            f"({input_nc} input channels)")

    hparams = {
        "generator": found["netG"],
        "base_filters": found["ngf"],
        "global_downsamplings": found["n_downsample_global"],
        "global_blocks": found["n_blocks_global"],
        "discriminator_scales": found.get("num_D", number("num_D", 2)),
        "discriminator_layers": found.get("n_layers_D", number("n_layers_D", 3)),
        "discriminator_filters": found.get("ndf", number("ndf", 64)),
        "instance_edges": edges,
        "instance_features": features,
    }
    if found["netG"] == "local":
        hparams["local_blocks"] = found["n_blocks_local"]
        hparams["epochs_fix_global"] = number("niter_fix_global", 0)
    if features:
        hparams.update(feature_channels=feat_num, encoder_filters=found.get("nef", number("nef", 16)),
                       encoder_downsamplings=found.get("n_downsample_E", number("n_downsample_E", 4)))

    lambda_feat = number("lambda_feat", 10.0, float)
    # A discriminator without intermediate features was trained without feature matching.
    no_feature_matching = _flag(options, "no_ganFeat_loss", found.get("D_layout") == "layer<i>")
    hparams["lambda_feature"] = 0.0 if no_feature_matching else lambda_feat
    hparams["lambda_vgg"] = 0.0 if _flag(options, "no_vgg_loss") else lambda_feat
    if options:
        hparams.update(gan_mode="vanilla" if _flag(options, "no_lsgan") else "lsgan",
                       learning_rate=number("lr", 2e-4, float), beta_1=number("beta1", 0.5, float),
                       epochs_constant=number("niter", 100), epochs_decay=number("niter_decay", 100),
                       num_clusters=number("n_clusters", 10), flip=not _flag(options, "no_flip"))
        size = _image_size(options, number)
        if size:
            hparams["image_size"] = size
        if number("pool_size", 0):
            print(f"pix2pixhd import: {opt_path}: pool_size {options['pool_size']}: tfsynth's pix2pixhd trains its "
                  "discriminators on the current fakes (no image pool)", flush=True)
    return hparams


def _image_size(options: dict, number) -> tuple[int, int] | None:
    """The training size the original's data loader gives (resize_or_crop)."""
    mode = options.get("resize_or_crop", "scale_width")
    load, fine = number("loadSize", 1024), number("fineSize", 512)
    if mode == "scale_width":
        return (load // 2, load)  # width loadSize, Cityscapes' 2:1 frames
    if mode in ("resize_and_crop", "crop", "scale_width_and_crop"):
        return (fine, fine)
    print(f"pix2pixhd import: resize_or_crop {mode}: the training size is the data's own; tfsynth keeps its "
          "default image_size (give --hparams=image_size=HxW)", flush=True)
    return None


# ------------------------------------------------------------------------------------ weights

def _conv(tensors: Tensors, layer, name: str, transposed: bool = False) -> None:
    tensors.assign(layer, [f"{name}.weight", f"{name}.bias"], _CONV_T if transposed else _CONV)


def _set_trunk(network, tensors: Tensors, layer: str, prefix: str, downsamplings: int, blocks: int,
               output: str | None) -> None:
    """G1 or E: ``<layer>_initial``, ``_down<i>``, ``_res<b>_conv1|2``, ``_up<i>`` (, the output)
    from the ``nn.Sequential`` ``prefix``, by the original's indices."""
    _conv(tensors, network.get_layer(f"{layer}_initial"), f"{prefix}.1")
    for i in range(downsamplings):
        _conv(tensors, network.get_layer(f"{layer}_down{i + 1}"), f"{prefix}.{4 + 3 * i}")
    first_block = 4 + 3 * downsamplings
    for b in range(blocks):
        for conv, index in (("conv1", 1), ("conv2", 5)):  # ReflectionPad, Conv, IN, ReLU, ReflectionPad, Conv, IN
            _conv(tensors, network.get_layer(f"{layer}_res{b + 1}_{conv}"),
                  f"{prefix}.{first_block + b}.conv_block.{index}")
    first_up = first_block + blocks
    for i in range(downsamplings):
        _conv(tensors, network.get_layer(f"{layer}_up{i + 1}"), f"{prefix}.{first_up + 3 * i}", transposed=True)
    if output:
        # ConvTranspose, IN, ReLU, then ReflectionPad and the output conv.
        _conv(tensors, network.get_layer(output), f"{prefix}.{first_up + 3 * downsamplings + 1}")


def _set_generator(generator, config, tensors: Tensors) -> None:
    local = config.generator == "local"
    _set_trunk(generator, tensors, "g", "model", config.global_downsamplings, config.global_blocks,
               None if local else "g_output")
    if not local:
        return
    _conv(tensors, generator.get_layer("l_initial"), "model1_1.1")
    _conv(tensors, generator.get_layer("l_down1"), "model1_1.4")
    for b in range(config.local_blocks):
        for conv, index in (("conv1", 1), ("conv2", 5)):
            _conv(tensors, generator.get_layer(f"l_res{b + 1}_{conv}"), f"model1_2.{b}.conv_block.{index}")
    _conv(tensors, generator.get_layer("l_up1"), f"model1_2.{config.local_blocks}", transposed=True)
    _conv(tensors, generator.get_layer("l_output"), f"model1_2.{config.local_blocks + 4}")


def _set_encoder(encoder, config, tensors: Tensors) -> None:
    _set_trunk(encoder, tensors, "e", "model", config.encoder_downsamplings, 0, "e_output")


def _set_discriminators(discriminators: list, tensors: Tensors) -> None:
    count = len(discriminators)
    intermediate = bool(tensors.names(r"^scale\d+_layer\d+\."))
    for scale, discriminator in enumerate(discriminators):
        # The original's scale num_D - 1 - s judges the input pooled s times.
        original = count - 1 - scale
        blocks = [layer for layer in discriminator.layers if re.fullmatch(r"block\d+", layer.name)]
        for j, layer in enumerate(blocks):
            name = f"scale{original}_layer{j}.0" if intermediate else f"layer{original}.{0 if j == 0 else 3 * j - 1}"
            _conv(tensors, layer, name)
