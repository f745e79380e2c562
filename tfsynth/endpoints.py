"""What a family serves, declared as data: the contract between a family and the commands.

A family lists its :class:`Endpoint` s (``SynthesisModel.serving_endpoints``). From that
declaration alone

* ``tfsynth.export`` builds one SavedModel signature per endpoint, checks inputs in the graph
  (id range, size, size multiple) and adds ``predict_png`` for the first endpoint that reads a
  file, and records the declaration in ``tfsynth_export.json``;
* ``tfsynth.infer`` knows which files or numbers to read for each input (``Input.kind``) and
  which PNGs to write for each output;
* ``tfsynth.evaluate`` knows how to feed each input from an evaluation record
  (``Input.source``), what the output is compared with (``Endpoint.reference``), and so which
  metrics apply.

This module is pure Python (no TensorFlow), so the commands read an export's declaration before
they pay for the TensorFlow import.
"""

from __future__ import annotations

import dataclasses

#: Input kinds: what an input is, and how ``infer`` reads it.
#:   label     uint8 [N, H, W] class ids (``--input``: 8-bit id PNGs or colour-coded label images)
#:   instance  int32 [N, H, W] instance ids (``--instance``: 16-bit instanceIds PNGs)
#:   image     uint8 [N, H, W, 3] photos (``--input``: PNG or JPEG files)
#:   seed      int64 [N] one seed per output image (``--num_samples`` and ``--seed`` for
#:             unconditional models; ``--seed`` for every input of conditional ones)
#:   latent    float32 [N, D] latent vectors (not read from files; ``seed`` is their file-free form)
#:   cluster_map  int32 [N, H, W] a style (cluster index) per instance, read at its pixels; -1:
#:             drawn from the seed (pix2pixHD's instance styles; not read from files). The
#:             export records how many styles each class offers as ``style_clusters`` (one
#:             count per class id) in ``tfsynth_export.json``
INPUT_KINDS = {
    "label": ("uint8", (None, None, None)),
    "instance": ("int32", (None, None, None)),
    "image": ("uint8", (None, None, None, 3)),
    "seed": ("int64", (None,)),
    "latent": ("float32", (None, None)),
    "cluster_map": ("int32", (None, None, None)),
}
#: The dimensions of each kind, for messages.
DIMENSION_NAMES = {"label": ("N", "H", "W"), "instance": ("N", "H", "W"), "image": ("N", "H", "W", "3"),
                   "seed": ("N",), "latent": ("N", "D"), "cluster_map": ("N", "H", "W")}
#: Kinds read from files on disk (and so able to take a PNG-bytes signature).
FILE_KINDS = ("label", "instance", "image")

#: Output kinds: uint8 ``image`` [N, H, W, 3], ``images`` [N, K, H, W, 3] (K diverse outputs),
#: ``label`` [N, H, W] class ids.
OUTPUT_KINDS = ("image", "images", "label")

#: Where ``evaluate`` takes an input (``Input.source``) or the reference of an output
#: (``Endpoint.reference``) from an evaluation record: a record field (``image``, ``label``,
#: ``instance``, ``target``), ``label_color`` (the label map drawn in its palette, as
#: colour-label models read it), ``degraded_image`` (the record's photo blurred and downsampled
#: by the endpoint's ``scale`` with ``data.transforms.degrade_for_super_resolution``: the
#: low-resolution input of a super-resolution model, whose ``reference`` is then ``image``), or
#: ``index`` (the example's position: seeds of unconditional models), or ``none`` (an optional
#: input no record feeds, e.g. a user's style choice).
SOURCES = ("image", "label", "instance", "target", "label_color", "degraded_image", "index", "none")

#: Sources computed from another record field, and that field.
DERIVED_SOURCES = {"label_color": "label", "degraded_image": "image"}


def record_field(source: str) -> str:
    """The record field a source is read or computed from (``degraded_image`` -> ``image``)."""
    return DERIVED_SOURCES.get(source, source)


@dataclasses.dataclass(frozen=True)
class Input:
    """One named input of an endpoint.

    Attributes:
      name: the signature's input name (``label``, ``image``, ``seed`` ...).
      kind: one of ``INPUT_KINDS``; sets dtype and shape, and how ``infer`` reads it.
      source: where ``evaluate`` takes it from in a record (``SOURCES``).
      optional: the endpoint also works without it (a second signature omits it).
    """

    name: str
    kind: str
    source: str
    optional: bool = False

    def __post_init__(self):
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"input {self.name!r}: kind must be one of {', '.join(INPUT_KINDS)}")
        if self.source not in SOURCES:
            raise ValueError(f"input {self.name!r}: source must be one of {', '.join(SOURCES)}")
        if self.source == "none" and not self.optional:
            raise ValueError(f"input {self.name!r}: an input no record feeds must be optional")

    @property
    def dtype(self) -> str:
        return INPUT_KINDS[self.kind][0]

    @property
    def shape(self) -> tuple:
        return INPUT_KINDS[self.kind][1]

    def describe(self) -> str:
        """``label uint8 [N, H, W]``: the input as a person would write it in an error message."""
        return f"{self.name} {self.dtype} [{', '.join(DIMENSION_NAMES[self.kind])}]"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One served function of a family.

    Attributes:
      name: the signature name (the first endpoint is also ``serving_default``).
      inputs: its inputs; the first file-read input sets the spatial size of the call.
      outputs: output names from ``OUTPUT_KINDS``; the family's function returns them as float
        tensors on the 0..255 scale (or ids), and the export rounds and casts them.
      scale: output height / input height (4 for super-resolution x4; 1 otherwise).
      reference: the record field an output should reproduce, for PSNR/SSIM (``image`` for
        paired label -> photo), or None when there is no paired target.
      conditioned_on_labels: outputs should depict the input label map, so the segmentation
        score applies.
    """

    name: str
    inputs: tuple[Input, ...]
    outputs: tuple[str, ...] = ("image",)
    scale: int = 1
    reference: str | None = None
    conditioned_on_labels: bool = False

    def __post_init__(self):
        unknown = set(self.outputs) - set(OUTPUT_KINDS)
        if unknown:
            raise ValueError(f"endpoint {self.name!r}: unknown outputs {sorted(unknown)}")
        if self.reference is not None and self.reference not in SOURCES:
            raise ValueError(f"endpoint {self.name!r}: reference must be one of {', '.join(SOURCES)}")

    @property
    def spatial_input(self) -> Input | None:
        """The input whose height and width set the output's (None for unconditional models)."""
        return next((i for i in self.inputs if i.kind in FILE_KINDS), None)

    @property
    def png_input(self) -> Input | None:
        """The one required file input a ``predict_png`` signature can take as PNG bytes."""
        required = [i for i in self.inputs if not i.optional]
        if len(required) == 1 and required[0].kind in ("label", "image"):
            return required[0]
        return None

    def zero_inputs(self, output_size, latent_size: int | None = None) -> dict:
        """A batch of one of zeros for each required input, sized so the output is
        ``output_size`` (H, W): what a benchmark or a shape test feeds."""
        import tensorflow as tf

        height, width = (side // self.scale for side in output_size)
        fill = {"N": 1, "H": height, "W": width, "3": 3, "D": latent_size}
        return {spec.name: tf.zeros([fill[d] for d in DIMENSION_NAMES[spec.kind]], spec.dtype)
                for spec in self.inputs if not spec.optional}

    def signature_name(self, given) -> str:
        """The signature serving this endpoint when only the inputs named in ``given`` are
        passed: ``name``, or ``name_without_<optional>[_<optional>...]``."""
        dropped = [spec.name for spec in self.inputs if spec.optional and spec.name not in given]
        return f"{self.name}_without_{'_'.join(dropped)}" if dropped else self.name

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Endpoint":
        return cls(**{**data, "inputs": tuple(Input(**i) for i in data["inputs"]),
                      "outputs": tuple(data["outputs"])})
