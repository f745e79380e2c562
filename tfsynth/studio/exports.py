"""What the studio serves, derived from the exports' declarations (``tfsynth_export.json``).

Pure Python (no TensorFlow): a bad ``--saved_model`` is refused before anything heavy loads,
and the ``--serving_url`` mode never imports TensorFlow for the models at all.
"""

from __future__ import annotations

import dataclasses
import math
import os

from tfsynth import run_dir
from tfsynth.parsing import parse_named_paths
from tfsynth.endpoints import Endpoint

#: Input kinds the page can make from a painted scene: the label and instance maps, one seed
#: per image, and a style choice per instance.
PAINTED_KINDS = ("label", "instance", "seed", "cluster_map")


class StudioError(ValueError):
    """A flag or an export the studio cannot use; the message names it."""


@dataclasses.dataclass(frozen=True)
class StudioModel:
    """One loaded export, as the page drives it.

    Attributes:
      name: the model's name in the REST paths (``/v1/models/<name>``), from ``--saved_model``.
      path: the export directory.
      endpoint: the endpoint the page calls (the first whose inputs a painted scene provides).
      signature_name: its signature with every input the page sends.
      size: (height, width) the page renders at: the size the model trained at.
      info: the export's ``tfsynth_export.json``.
    """

    name: str
    path: str
    endpoint: Endpoint
    signature_name: str
    size: tuple[int, int]
    info: dict

    def to_json(self) -> dict:
        """The model as the page sees it (``/studio/v1/config``)."""
        return {
            "name": self.name,
            "family": self.info.get("model"),
            "signature_name": self.signature_name,
            "inputs": [{"name": spec.name, "kind": spec.kind} for spec in self.sent_inputs],
            "outputs": list(self.endpoint.outputs),
            "num_outputs": self.info.get("num_outputs", 1),
            "size": list(self.size),
            "max_size": self.info["max_size"],
            "size_multiple": self.info["size_multiple"],
            # Styles per class id for a cluster_map input; None when the export offers no choice.
            "style_clusters": self.info.get("style_clusters"),
        }

    @property
    def sent_inputs(self) -> tuple:
        return tuple(spec for spec in self.endpoint.inputs if spec.kind in PAINTED_KINDS)


def parse_saved_models(text: str) -> list[tuple[str, str]]:
    """``"crn:PATH,pix2pixhd:PATH"`` -> [(name, path)]; a bare PATH is named after its run."""
    try:
        models = parse_named_paths(text, lambda path: os.path.basename(os.path.dirname(os.path.dirname(
            os.path.normpath(path)))) or "model")
    except ValueError as error:
        raise StudioError(f"--saved_model: {error}, e.g. crn:runs/quickstart/export/1") from None
    for name, _ in models:
        if not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise StudioError(f"--saved_model: model name {name!r} must be letters, digits, '_', '-' or '.' "
                              "(it is part of the REST path /v1/models/<name>)")
    return models


def painted_endpoint(info: dict) -> Endpoint | None:
    """The first endpoint that renders a label map and needs nothing a painted scene lacks."""
    for endpoint in info["endpoints"]:
        spatial = endpoint.spatial_input
        if spatial is None or spatial.kind != "label":
            continue
        if all(spec.kind in PAINTED_KINDS or spec.optional for spec in endpoint.inputs) and \
                set(endpoint.outputs) & {"image", "images"}:
            return endpoint
    return None


def render_size(info: dict, path: str) -> tuple[int, int]:
    """The size the model trained at, within the export's size rules."""
    size = info.get("training_size")
    if not size:
        raise StudioError(f"--saved_model: {path} records no training size; export it again with this tfsynth")
    multiple, largest = info["size_multiple"], info["max_size"]
    height, width = (min(largest, math.ceil(side / multiple) * multiple) for side in size)
    return height, width


def load_models(text: str) -> list[StudioModel]:
    """The ``--saved_model`` exports the studio can drive; an export it cannot is an error."""
    models = []
    for name, path in parse_saved_models(text):
        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            raise StudioError(f"--saved_model: {path} is not a SavedModel directory (export/<version>)")
        info = run_dir.read_export_info(path)
        endpoint = painted_endpoint(info)
        if endpoint is None:
            raise StudioError(f"--saved_model: {name} ({path}) serves no label -> image endpoint "
                              f"(it serves {', '.join(e.name for e in info['endpoints'])}); the studio paints label maps")
        sent = [spec.name for spec in endpoint.inputs if spec.kind in PAINTED_KINDS]
        models.append(StudioModel(name, path, endpoint, endpoint.signature_name(sent), render_size(info, path), info))
    spaces = {model.info["label_space"] for model in models}
    if len(spaces) > 1:
        raise StudioError("--saved_model: the studio paints in one label space, but the exports take "
                          + ", ".join(f"{m.name}: {m.info['label_space']}" for m in models))
    return models


def canvas_size(models: list[StudioModel]) -> tuple[int, int]:
    """The painting size: the first model's size times the smallest whole factor that covers every
    model's, so the first model sees the painting unresampled and no model sees it upsampled."""
    height, width = models[0].size
    factor = max(math.ceil(max(m.size[0] / height, m.size[1] / width)) for m in models)
    return height * factor, width * factor


def label_space_json(name: str) -> dict:
    """Classes with names, colours and whether they have instances (Cityscapes' ``hasInstances``,
    from the official table: the "things" a stroke paints as a new instance)."""
    from cityscapesscripts.helpers.labels import name2label

    from tfsynth.data import labels

    space = labels.get_label_space(name)
    return {"name": space.name, "classes": [
        {"id": index, "name": class_name, "color": list(color),
         "thing": bool(getattr(name2label.get(class_name), "hasInstances", False))}
        for index, (class_name, color) in enumerate(zip(space.class_names, space.colors))]}
