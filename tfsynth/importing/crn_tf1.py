"""The original CRN code's checkpoints (CQFIO/PhotographicImageSynthesis, TF1 + slim).

Its ``tf.train.Saver`` writes a name-based checkpoint: per module of height ``h`` the scopes
``g_<h>_conv1`` and ``g_<h>_conv2``, each with ``weights`` (HWIO, no bias: slim drops it when a
normaliser follows) and ``LayerNorm/beta|gamma``, and the output scope ``g_<top>_conv100`` with
``weights`` and ``biases``; Adam's slots (``<var>/Adam``, ``<var>/Adam_1``) and
``beta1_power``/``beta2_power`` sit beside them and are left out. TensorFlow 2 reads the bundle
with ``tf.train.load_checkpoint``: no TF1 is needed.

Everything tfsynth's config needs is in the shapes: the module heights and the top one, the
widths (the original's rule, 1024 channels up to 64 rows and 512 up to 256, or that rule capped
by ``max_channels``), and K from the output's 3K channels. The aspect ratio is the original's 2:1.
"""

from __future__ import annotations

import re

from tfsynth.importing.formats import Original
from tfsynth.importing.tensors import ImportFailure, Tensors
from tfsynth.models.crn import CRNConfig

_OPTIMIZER_STATE = re.compile(r"(/Adam(_1)?$|^beta[12]_power$)")


def read(path: str) -> Original:
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(path)
        names = sorted(reader.get_variable_to_shape_map())
        arrays = {name: reader.get_tensor(name) for name in names}
    except (tf.errors.OpError, ValueError, IndexError) as error:  # IndexError: a truncated data file
        reason = (getattr(error, "message", None) or str(error) or type(error).__name__).splitlines()[0]
        raise ImportFailure(f"{path}: not a TensorFlow checkpoint the original CRN code wrote ({reason})") from None
    tensors = Tensors(arrays, path, ignored=lambda name: bool(_OPTIMIZER_STATE.search(name)))
    tops = [int(match[1]) for name in names if (match := re.fullmatch(r"g_(\d+)_conv100/weights", name))]
    heights = sorted(int(match[1]) for name in names if (match := re.fullmatch(r"g_(\d+)_conv1/weights", name)))
    if len(tops) != 1 or not heights:
        raise ImportFailure(f"{path}: no CRN generator in this checkpoint (no g_<h>_conv1/weights and "
                            f"one g_<h>_conv100/weights among {len(names)} variables)")
    top = tops[0]
    if heights != [heights[0] * 2**level for level in range(len(heights))] or heights[-1] != top:
        raise ImportFailure(f"{path}: module heights {heights} are not a cascade doubling up to the output's "
                            f"module g_{top}")
    widths = {height: tensors.shape(f"g_{height}_conv1/weights")[3] for height in heights}
    output_channels = tensors.shape(f"g_{top}_conv100/weights")[3]
    if output_channels % 3:
        raise ImportFailure(f"{path}: g_{top}_conv100/weights has {output_channels} output channels, not 3K")
    hparams = {"image_size": (top, 2 * top), "coarsest_height": heights[0],
               "max_channels": _width_cap(widths, path), "num_outputs": output_channels // 3}

    def set_weights(model) -> None:
        generator = model.generator
        for height in heights:
            for conv in ("conv1", "conv2"):
                scope = f"g_{height}_{conv}"
                tensors.assign(generator.get_layer(scope), [f"{scope}/weights"])
                tensors.assign(generator.get_layer(f"{scope}_norm"),
                               [f"{scope}/LayerNorm/gamma", f"{scope}/LayerNorm/beta"])
        tensors.assign(generator.get_layer(f"g_{top}_output"),
                       [f"g_{top}_conv100/weights", f"g_{top}_conv100/biases"])
        tensors.check_all_used()

    return Original(model="crn", hparams=hparams, set_weights=set_weights, source=path, label_space="cityscapes20")


def _width_cap(widths: dict[int, int], path: str) -> int:
    """``max_channels`` for the module widths found: 0 for the original's own, else the cap."""
    def rule(cap: int) -> dict[int, int]:
        config = CRNConfig(max_channels=cap)
        return {height: config.module_width(height) for height in widths}

    for cap in (0, max(widths.values())):
        if rule(cap) == widths:
            return cap
    raise ImportFailure(f"{path}: module widths {widths} follow neither the original's rule "
                        f"({rule(0)}) nor that rule capped at one width")
