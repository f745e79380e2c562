"""pytorch/examples' fast_neural_style ``TransformerNet`` state dicts (``.pth``, ``.model``).

``neural_style.py train`` saves ``transformer.state_dict()`` as
``epoch_<e>_<time>_<content weight>_<style weight>.model`` (torch's zip format since 1.6); the
example's released models (``saved_models/candy.pth``, ``mosaic.pth``, ``rain_princess.pth``,
``udnie.pth``) are pre-1.6 files written by PyTorch <= 0.3, whose ``InstanceNorm2d`` tracked
running statistics: they hold ``in<k>.running_mean``/``running_var`` beside every norm's
affine parameters. The example's ``stylize()`` deletes those before loading and so does this
importer: instance norm always normalises with each image's own statistics, so they were never
used. ``torch_files`` reads both formats without PyTorch.

The names: ``conv1``..``conv3`` (the 9x9 and the two strided ConvLayers), ``res<k>.conv1|conv2``
(the residual blocks), ``deconv1``, ``deconv2`` (UpsampleConvLayers) and ``deconv3`` (the
output), each ``<layer>.conv2d.weight|bias`` in PyTorch's OIHW layout; the norms ``in1``..``in5``
and ``res<k>.in1|in2``, each ``.weight|bias``. They become the ``style_transfer`` family with
``architecture=pytorch_examples`` and ``norm=instance``; the widths are read off the shapes
(``base_filters`` from ``conv1``) and the number of residual blocks off the names, so a network
trained at another width imports as well. The example's other options (content and style
weights, image size) are not in the file: the family's defaults or ``--hparams`` give them.
"""

from __future__ import annotations

import re

from tfsynth.importing.formats import Original
from tfsynth.importing.tensors import ImportFailure, Tensors, conv_kernel
from tfsynth.importing.torch_files import read_state_dict

#: What the example's stylize() deletes before load_state_dict: PyTorch <= 0.3's running statistics.
RUNNING_STATISTICS = re.compile(r"in\d+\.running_(mean|var)$")
_RESIDUAL = re.compile(r"res(\d+)\.conv1\.conv2d\.weight")


def layer_pairs(residual_blocks: int) -> list[tuple[str, str, str]]:
    """(tfsynth layer, original module, kind) of every weighted layer, in the network's order;
    kind is "conv" (``<module>.conv2d.weight|bias``) or "norm" (``<module>.weight|bias``)."""
    pairs = [("initial", "conv1", "conv"), ("initial_norm", "in1", "norm"),
             ("down1", "conv2", "conv"), ("down1_norm", "in2", "norm"),
             ("down2", "conv3", "conv"), ("down2_norm", "in3", "norm")]
    for block in range(1, residual_blocks + 1):
        for conv in (1, 2):
            pairs += [(f"res{block}_conv{conv}", f"res{block}.conv{conv}", "conv"),
                      (f"res{block}_conv{conv}_norm", f"res{block}.in{conv}", "norm")]
    pairs += [("up1", "deconv1", "conv"), ("up1_norm", "in4", "norm"),
              ("up2", "deconv2", "conv"), ("up2_norm", "in5", "norm"),
              ("output", "deconv3", "conv")]
    return pairs


def read(path: str) -> Original:
    tensors = Tensors(read_state_dict(path), path, ignored=lambda name: bool(RUNNING_STATISTICS.search(name)))
    names = tensors.names()
    if "conv1.conv2d.weight" not in tensors:
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        raise ImportFailure(f"{path}: not a fast_neural_style TransformerNet state dict (no 'conv1.conv2d.weight' "
                            f"among its {len(names)} tensors: {shown or 'none'})")
    blocks = sorted(int(match[1]) for name in names if (match := _RESIDUAL.fullmatch(name)))
    if blocks != list(range(1, len(blocks) + 1)):
        raise ImportFailure(f"{path}: residual blocks {blocks} are not numbered res1 .. res<n>")
    first = tensors.shape("conv1.conv2d.weight")
    if len(first) != 4:
        raise ImportFailure(f"{path}: tensor 'conv1.conv2d.weight' has shape {first}, not a convolution's "
                            "[out, in, kh, kw]")
    hparams = {"architecture": "pytorch_examples", "norm": "instance", "base_filters": first[0],
               "residual_blocks": len(blocks)}

    def set_weights(model) -> None:
        network = model.generator
        for layer_name, module, kind in layer_pairs(len(blocks)):
            layer = network.get_layer(layer_name)
            if kind == "norm":  # InstanceNorm2d's weight and bias are GroupNormalization's gamma, beta
                tensors.assign(layer, [f"{module}.weight", f"{module}.bias"])
                continue
            weight = f"{module}.conv2d.weight"
            if len(tensors.shape(weight)) != 4:  # before conv_kernel's transpose, which needs 4 axes
                raise ImportFailure(f"{path}: tensor {weight!r} has shape {tensors.shape(weight)}, layer "
                                    f"{layer_name} expects a convolution's [out, in, kh, kw]")
            tensors.assign(layer, [weight, f"{module}.conv2d.bias"], [conv_kernel, lambda bias: bias])
        tensors.check_all_used()

    return Original(model="style_transfer", hparams=hparams, set_weights=set_weights, source=path)
