"""The checkpoint formats ``tfsynth.import_weights`` reads, and what reading one yields."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Callable

#: ``--from=FORMAT:PATH``: each format's module (with ``read(path) -> Original``) and what it reads.
FORMATS = {
    "crn_tf1": ("tfsynth.importing.crn_tf1",
                "the original CRN code's TF1 checkpoint (a model.ckpt prefix or its folder)"),
    "junyanz": ("tfsynth.importing.junyanz",
                "pix2pix or CycleGAN of junyanz/pytorch-CycleGAN-and-pix2pix (its checkpoints/NAME folder)"),
    "pix2pixhd": ("tfsynth.importing.pix2pixhd", "NVIDIA/pix2pixHD (its checkpoints/NAME folder)"),
    "fastgan": ("tfsynth.importing.fastgan", "FastGAN-pytorch (all_<iter>.pth or <iter>.pth)"),
    "fast_neural_style": ("tfsynth.importing.fast_neural_style",
                          "pytorch/examples' fast_neural_style TransformerNet (a .pth or .model state dict)"),
}


@dataclasses.dataclass
class Original:
    """An original checkpoint, read: the tfsynth model it becomes, and how to fill it.

    Attributes:
      model: the registry name of the family.
      hparams: hyper-parameters read off the tensors' names and shapes (and the original's option
        file, where it wrote one); the user's ``--hparams`` apply on top.
      set_weights: sets every weight of a built model of that family from the checkpoint; raises
        ``ImportFailure`` naming the tensor that does not fit.
      source: the files read, for the log and ``config.json``.
      label_space: the ids the imported model's exports take (the original's own label ids), or
        None for the family's default.
      iteration: the original's training iteration, where the checkpoint records it.
    """

    model: str
    hparams: dict
    set_weights: Callable[[object], None]
    source: str
    label_space: str | None = None
    iteration: int | None = None


def names() -> list[str]:
    return sorted(FORMATS)


def read(format_name: str, path: str) -> Original:
    module_name, _ = FORMATS[format_name]
    return importlib.import_module(module_name).read(path)
