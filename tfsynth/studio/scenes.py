"""Scenes to start painting from: built-in synthetic streets, dataset examples, uploaded PNGs.

A scene is a label map (uint8 class ids) and an instance map (int32, Cityscapes convention:
class * 1000 + k for things, the class id for stuff) at the canvas size; the page receives it as
nested lists, the format of TF Serving's JSON instances.
"""

from __future__ import annotations

import binascii
import base64
import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from tfsynth.data import labels

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The label space the built-in scenes and Cityscapes records are drawn in.
SYNTHETIC_LABEL_SPACE = "cityscapes35"


class SceneError(ValueError):
    """A scene that cannot be used (a bad upload, an unknown example); the message says why."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def resize_nearest(ids: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An id map at ``size`` (height, width); nearest neighbour, since ids are not quantities."""
    if ids.shape == tuple(size):
        return ids
    mode = "I" if ids.dtype != np.uint8 else "L"
    resized = Image.fromarray(ids.astype(np.int32 if mode == "I" else np.uint8), mode).resize(
        (size[1], size[0]), Image.NEAREST)
    return np.asarray(resized).astype(ids.dtype)


def scene_json(key: str, label: np.ndarray, instance: np.ndarray, size: tuple[int, int]) -> dict:
    label, instance = resize_nearest(label, size), resize_nearest(instance.astype(np.int32), size)
    return {"key": key, "height": size[0], "width": size[1],
            "label": label.tolist(), "instance": instance.tolist()}


def stuff_instances(label: np.ndarray) -> np.ndarray:
    """The instance map of a scene without one: every region its class id (no thing instances)."""
    return label.astype(np.int32)


def synthetic_scene(index: int, size: tuple[int, int], label_space: str) -> dict:
    """Built-in street scene ``index`` (``tfsynth.data.synthetic``) at the canvas size."""
    from tfsynth.data import synthetic

    if label_space != SYNTHETIC_LABEL_SPACE:
        raise SceneError(f"the built-in scenes are drawn in {SYNTHETIC_LABEL_SPACE}; these exports take {label_space}")
    if not 0 <= index < 1_000_000:
        raise SceneError(f"scene index must be 0..999999, got {index}")
    # Rendered at least 32 px a side (the generator's minimum), then resized to the canvas.
    scene = synthetic.render_scene(0, index, max(size[0], 32), max(size[1], 32))
    return scene_json(scene.key, scene.label, scene.instance, size)


def example_files(data_dir: str, split: str, label_space: str) -> list[str]:
    """The shards of a split of a TFRecord dataset whose label maps are in ``label_space``
    (checked without TensorFlow, so a wrong ``--examples`` fails at once).

    Raises:
      tfrecord.DataError: naming the directory, split or label space at fault.
    """
    from tfsynth.data import pipelines, tfrecord

    info = tfrecord.read_dataset_json(data_dir)
    if info.get("label_space") != label_space:
        raise tfrecord.DataError(f"{data_dir} holds {info.get('label_space') or 'no'} label maps; "
                                 f"the exports take {label_space}")
    return pipelines.load_split(data_dir, split).files


class Examples:
    """The first records of TFRecord shards (``--examples``), label and instance maps only,
    decoded on request."""

    def __init__(self, files: list[str], limit: int = 100):
        import tensorflow as tf

        spec = {name: tf.io.FixedLenFeature([], tf.string, default_value="")
                for name in ("image/key", "label/encoded", "instance/encoded")}
        self.records = []
        for serialized in tf.data.TFRecordDataset(files).take(limit):
            features = tf.io.parse_single_example(serialized, spec)
            self.records.append({name.split("/")[0]: features[name].numpy() for name in spec})

    @property
    def keys(self) -> list[str]:
        return [record["image"].decode("utf-8", "replace") for record in self.records]

    def scene(self, index: int, size: tuple[int, int], label_space: str) -> dict:
        if not 0 <= index < len(self.records):
            raise SceneError(f"no example {index}: --examples holds {len(self.records)}", status=404)
        record = self.records[index]
        label = decode_label(record["label"], label_space, "label")
        instance = (decode_instance(record["instance"], label.shape, "instance") if record["instance"]
                    else stuff_instances(label))
        return scene_json(self.keys[index], label, instance, size)


def b64_png(value, what: str) -> bytes:
    """The bytes of ``{"b64": ...}`` (TF Serving's JSON encoding of bytes), checked to be a PNG."""
    if not isinstance(value, dict) or not isinstance(value.get("b64"), str):
        raise SceneError(f'{what}: expected {{"b64": "<base64 PNG>"}}')
    try:
        data = base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise SceneError(f"{what}: not valid base64") from None
    if not data.startswith(PNG_SIGNATURE):
        raise SceneError(f"{what}: not a PNG file (upload the label map as a PNG)")
    return data


def _open_png(data: bytes, what: str, max_size: int | None) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        # The size is in the header: refuse a huge image before decoding its pixels.
        if max_size is not None and max(image.size) > max_size:
            raise SceneError(f"{what}: {image.size[1]}x{image.size[0]} is larger than the exports' "
                             f"max_size {max_size}")
        image.load()
        return image
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise SceneError(f"{what}: not a readable PNG ({error})") from None


def decode_label(data: bytes, label_space: str, what: str, max_size: int | None = None) -> np.ndarray:
    """uint8 [H, W] ids of an uploaded label PNG, read as ``tfsynth.infer`` and the converter read
    a label file (``sources.label_ids``): ids, a palette image through its colours when they are
    the label space's, or a colour image drawn exactly in them; a photo or ids outside the label
    space are refused."""
    from tfsynth.data import sources, tfrecord

    image = _open_png(data, what, max_size)
    space = labels.get_label_space(label_space)
    try:
        return sources.check_id_range(sources.label_ids(image, what, colors=space, palette=space), what,
                                      space.num_classes)
    except tfrecord.DataError as error:
        raise SceneError(str(error)) from None


def decode_instance(data: bytes, shape: tuple[int, int], what: str) -> np.ndarray:
    """int32 [H, W] instance ids from a 16-bit (or 8-bit) grey PNG of the label map's size."""
    image = _open_png(data, what, max(shape))
    if image.mode not in ("L", "I;16", "I"):
        raise SceneError(f"{what}: expected a grey PNG of instance ids (8 or 16 bit), got mode {image.mode}")
    ids = np.asarray(image).astype(np.int32)
    if ids.shape != tuple(shape):
        raise SceneError(f"{what}: {ids.shape[0]}x{ids.shape[1]} differs from the label map's {shape[0]}x{shape[1]}")
    return ids


def uploaded_scene(body: dict, size: tuple[int, int], label_space: str, max_size: int) -> dict:
    """``{"label": {"b64"}, "instance": {"b64"} (optional)}`` -> a scene at the canvas size."""
    if not isinstance(body, dict) or "label" not in body:
        raise SceneError('expected {"label": {"b64": ...}, "instance": {"b64": ...} (optional)}')
    label = decode_label(b64_png(body["label"], "label"), label_space, "label", max_size)
    instance = (decode_instance(b64_png(body["instance"], "instance"), label.shape, "instance")
                if body.get("instance") is not None else stuff_instances(label))
    return scene_json("upload", label, instance, size)


def encode_png(body: dict, label_space: str, max_size: int) -> bytes:
    """``{"kind": "label" | "instance", "ids": [[...]]}`` -> an 8-bit label or 16-bit instance PNG."""
    from tfsynth.data import tfrecord

    kinds = {"label": (np.uint8, labels.get_label_space(label_space).num_classes), "instance": (np.uint16, 65536)}
    if not isinstance(body, dict) or body.get("kind") not in kinds:
        raise SceneError('expected {"kind": "label" or "instance", "ids": [[...], ...]}')
    dtype, limit = kinds[body["kind"]]
    try:
        ids = np.asarray(body.get("ids"))
    except ValueError:
        raise SceneError("ids: rows of different lengths") from None
    if ids.ndim != 2 or ids.dtype.kind not in "iu" or 0 in ids.shape:
        raise SceneError("ids: expected a non-empty [height][width] list of integers")
    if max(ids.shape) > max_size:
        raise SceneError(f"ids: {ids.shape[0]}x{ids.shape[1]} is larger than the exports' max_size {max_size}")
    if ids.min() < 0 or ids.max() >= limit:
        raise SceneError(f"ids: {body['kind']} ids must be 0..{limit - 1}")
    return tfrecord.encode_png(ids.astype(dtype))
