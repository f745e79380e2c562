"""Model families by name.

An explicit table. Each entry names the module and class rather than importing them, so that
flag parsing (which needs only the names) stays free of the TensorFlow import and a wrong flag
fails in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import importlib


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Where a family lives and what it is.

    Attributes:
      name: the ``--model`` value.
      module: the family's module (one file per family).
      class_name: its ``SynthesisModel`` subclass.
      summary: one line for ``--help``.
    """

    name: str
    module: str
    class_name: str
    summary: str

    def load(self):
        """The model class (imports TensorFlow)."""
        return getattr(importlib.import_module(self.module), self.class_name)


MODELS = {
    "crn": ModelSpec("crn", "tfsynth.models.crn", "CRN",
                     "Cascaded Refinement Networks (Chen & Koltun 2017): labels -> photo"),
    "pix2pix": ModelSpec("pix2pix", "tfsynth.models.pix2pix", "Pix2Pix",
                         "pix2pix (Isola et al. 2017): paired translation, U-Net + PatchGAN, cGAN + L1"),
    "pix2pixhd": ModelSpec("pix2pixhd", "tfsynth.models.pix2pixhd", "Pix2PixHD",
                           "pix2pixHD (Wang et al. 2018): coarse-to-fine G, multi-scale D, instance maps and styles"),
    "cyclegan": ModelSpec("cyclegan", "tfsynth.models.cyclegan", "CycleGAN",
                          "CycleGAN (Zhu et al. 2017): unpaired translation with cycle consistency"),
    "style_transfer": ModelSpec("style_transfer", "tfsynth.models.perceptual_transform", "StyleTransfer",
                                "Johnson et al. 2016: real-time style transfer with perceptual losses"),
    "super_resolution": ModelSpec("super_resolution", "tfsynth.models.perceptual_transform", "SuperResolution",
                                  "Johnson et al. 2016: x4 / x8 super-resolution with a VGG feature loss"),
    "fastgan": ModelSpec("fastgan", "tfsynth.models.fastgan", "FastGAN",
                         "FastGAN (Liu et al. 2021): few-shot unconditional synthesis, SLE generator, auto-encoding D"),
    "segmenter": ModelSpec("segmenter", "tfsynth.models.segmenter", "Segmenter",
                           "Residual encoder-decoder segmenter, for FCN-style scores of generated images"),
}


def get(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(sorted(MODELS))}") from None
