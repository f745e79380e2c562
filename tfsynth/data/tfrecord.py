"""The TFRecord schema: encoding, sharded writing, parsing.

One ``tf.train.Example`` per example, in shards ``<split>-00000-of-000NN.tfrecord`` with a
``dataset.json`` beside them. Images are stored encoded (PNG or JPEG); label maps as 8-bit PNG
ids in the dataset's label space; instance maps as 16-bit PNG. ``image/key`` carries the source
file name so that every later error can name the example at fault.

Writing validates everything a reader would otherwise trip on (sizes, id range, dtypes), so a
bad record is never written. Reading validates again in the graph, since records can come from
elsewhere, and names the record key in the error.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import struct

import numpy as np
from PIL import Image

DATASET_JSON = "dataset.json"
SHARD_PATTERN = "{split}-{index:05d}-of-{count:05d}.tfrecord"
_SHARD_RE = re.compile(r"^(?P<split>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.tfrecord$")


class DataError(ValueError):
    """Bad input data; the message names the file, record or flag at fault."""


@dataclasses.dataclass
class Example:
    """One decoded example, numpy side.

    Attributes:
      key: source file name (or a synthetic key), used in every error message.
      image: uint8 [H, W, 3] photo.
      label: uint8 [H, W] class ids, or None for image-only datasets.
      instance: int [H, W] instance ids (Cityscapes convention), or None.
      target: uint8 [H, W, 3] second photo of a photo->photo pair, or None.
    """

    key: str
    image: np.ndarray
    label: np.ndarray | None = None
    instance: np.ndarray | None = None
    target: np.ndarray | None = None


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 [H,W], uint8 [H,W,3] or uint16 [H,W] array."""
    if array.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"PNG encoding needs uint8 or uint16, got {array.dtype}")
    buffer = io.BytesIO()  # Pillow infers mode I;16 for 2-D uint16
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def encode_jpeg(array: np.ndarray, quality: int = 95) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def validate(example: Example, num_classes: int | None) -> None:
    """Raises DataError naming ``example.key`` when the example is inconsistent."""
    key = example.key
    image = example.image
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise DataError(f"{key}: image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    size = image.shape[:2]
    for name in ("label", "instance", "target"):
        value = getattr(example, name)
        if value is not None and value.shape[:2] != size:
            raise DataError(
                f"{key}: {name} size {value.shape[1]}x{value.shape[0]} does not match image size "
                f"{size[1]}x{size[0]} (width x height)"
            )
    if example.label is not None:
        if example.label.ndim != 2:
            raise DataError(f"{key}: label must be a 2-D id map, got shape {example.label.shape}")
        if num_classes is not None and example.label.size and example.label.max() >= num_classes:
            raise DataError(
                f"{key}: label id {int(example.label.max())} is outside the label space "
                f"(ids 0..{num_classes - 1})"
            )
    if example.instance is not None and (example.instance.min() < 0 or example.instance.max() > 65535):
        raise DataError(f"{key}: instance ids must fit in uint16")


def serialize(example: Example, *, image_format: str = "png", num_classes: int | None = None) -> bytes:
    """Validates and serializes one example to ``tf.train.Example`` bytes."""
    import tensorflow as tf

    validate(example, num_classes)

    def _bytes(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def _int(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    encode_image = encode_jpeg if image_format == "jpeg" else encode_png
    height, width = example.image.shape[:2]
    feature = {
        "image/encoded": _bytes(encode_image(example.image)),
        "image/format": _bytes(image_format.encode()),
        "image/height": _int(height),
        "image/width": _int(width),
        "image/key": _bytes(example.key.encode()),
    }
    if example.label is not None:
        feature["label/encoded"] = _bytes(encode_png(example.label.astype(np.uint8)))
    if example.instance is not None:
        feature["instance/encoded"] = _bytes(encode_png(example.instance.astype(np.uint16)))
    if example.target is not None:
        feature["target/encoded"] = _bytes(encode_image(example.target))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


class ShardedWriter:
    """Writes examples round-robin into ``num_shards`` shards of one split.

    Shards are written under temporary names and renamed on ``close``, so an interrupted
    conversion never leaves files that look complete. When fewer examples than shards were
    written (bad examples skipped), the empty shards are dropped and the rest renumbered: readers
    refuse empty shards.
    """

    def __init__(self, out_dir: str, split: str, num_shards: int, **serialize_options):
        import tensorflow as tf

        os.makedirs(out_dir, exist_ok=True)
        self._out_dir, self._split = out_dir, split
        self.paths = [self._shard_path(i, num_shards) for i in range(num_shards)]
        self._partials = [path + ".partial" for path in self.paths]
        self._writers = [tf.io.TFRecordWriter(partial) for partial in self._partials]
        self._options = serialize_options
        self.count = 0

    def _shard_path(self, index: int, count: int) -> str:
        return os.path.join(self._out_dir, SHARD_PATTERN.format(split=self._split, index=index, count=count))

    def write(self, example: Example) -> None:
        record = serialize(example, **self._options)
        self._writers[self.count % len(self._writers)].write(record)
        self.count += 1

    def close(self) -> None:
        for writer in self._writers:
            writer.close()
        kept = max(1, min(self.count, len(self._partials)))  # round-robin fills the first shards
        for partial in self._partials[kept:]:
            os.remove(partial)
        self.paths = [self._shard_path(i, kept) for i in range(kept)]
        for partial, path in zip(self._partials, self.paths):
            os.replace(partial, path)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self.close()
        else:  # leave no half-written split that a later run could mistake for data
            for writer, partial in zip(self._writers, self._partials):
                writer.close()
                os.remove(partial)


def write_dataset_json(out_dir: str, info: dict) -> str:
    path = os.path.join(out_dir, DATASET_JSON)
    with open(path, "w") as f:
        json.dump(info, f, indent=2, sort_keys=True)
    return path


def read_dataset_json(data_dir: str) -> dict:
    path = os.path.join(data_dir, DATASET_JSON)
    if not os.path.isdir(data_dir):
        raise DataError(f"data directory {data_dir} does not exist")
    if not os.path.exists(path):
        raise DataError(f"{path} is missing: is {data_dir} a tfsynth TFRecord dataset?")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not valid JSON: {error}") from None


def is_shard_name(name: str) -> bool:
    """Whether ``name`` is a shard file name (``<split>-NNNNN-of-MMMMM.tfrecord``)."""
    return _SHARD_RE.match(name) is not None


def count_records(path: str) -> int:
    """The records in a TFRecord file, read from its framing alone (cheap: 8 bytes a record).

    Each record is a little-endian uint64 length, a 4-byte CRC of it, the data and a 4-byte CRC
    of the data; the data is skipped. A file that ends inside a record is an error.

    Raises:
      DataError: naming ``path``, for a truncated or corrupt file.
    """
    size = os.path.getsize(path)
    count = offset = 0
    with open(path, "rb") as f:
        while offset < size:
            f.seek(offset)
            header = f.read(8)
            end = offset + 12 + (struct.unpack("<Q", header)[0] if len(header) == 8 else size) + 4
            if end > size:
                raise DataError(f"{path}: record {count} runs past the end of the file (a truncated "
                                "or corrupt TFRecord); convert the dataset again")
            offset, count = end, count + 1
    return count


def list_shards(data_dir: str, split: str) -> list[str]:
    """The complete, sorted shard list of ``split``; a missing or incomplete split is an error."""
    names = [m for m in map(_SHARD_RE.match, sorted(os.listdir(data_dir))) if m and m["split"] == split]
    if not names:
        available = sorted({m["split"] for m in map(_SHARD_RE.match, os.listdir(data_dir)) if m})
        raise DataError(
            f"no shards of split {split!r} in {data_dir} (splits found: {', '.join(available) or 'none'})"
        )
    expected = int(names[0]["count"])
    indices = sorted(int(m["index"]) for m in names if int(m["count"]) == expected)
    if indices != list(range(expected)):
        missing = sorted(set(range(expected)) - set(indices))
        raise DataError(f"split {split!r} in {data_dir} is incomplete: shards {missing} of {expected} missing")
    return [os.path.join(data_dir, m.string) for m in names]


# ----------------------------------------------------------------------------- graph side

FEATURE_KEYS = ("image/encoded", "image/format", "image/key", "label/encoded",
                "instance/encoded", "target/encoded")


def parse(serialized, *, num_classes: int | None = None, with_instance: bool = False,
          with_target: bool = False):
    """Parses and decodes one serialized example into a dict of tensors.

    Returns ``image`` uint8 [H,W,3], ``key`` string, and where present ``label`` uint8 [H,W],
    ``instance`` int32 [H,W], ``target`` uint8 [H,W,3]. Sizes and label ids are checked in the
    graph; a failing check raises InvalidArgumentError whose message contains the record key.
    """
    import tensorflow as tf

    spec = {name: tf.io.FixedLenFeature([], tf.string, default_value="") for name in FEATURE_KEYS}
    features = tf.io.parse_single_example(serialized, spec)
    key = features["image/key"]
    image = tf.io.decode_image(features["image/encoded"], channels=3, expand_animations=False)
    out = {"key": key, "image": image}
    size = tf.shape(image)[:2]

    checks = []

    def check(condition, message):
        # Assert (not assert_equal) so the record key is part of the error message.
        checks.append(tf.debugging.Assert(condition, [message, "record key:", key], summarize=4))

    def check_size(name, tensor):
        check(tf.reduce_all(tf.equal(tf.shape(tensor)[:2], size)),
              f"{name} and image sizes differ")

    if num_classes is not None:
        label = tf.io.decode_png(features["label/encoded"], channels=1)[..., 0]
        check_size("label", label)
        check(tf.reduce_max(tf.cast(label, tf.int32)) < num_classes,
              f"label id outside the label space (ids 0..{num_classes - 1})")
        out["label"] = label
    if with_instance:
        instance = tf.io.decode_png(features["instance/encoded"], channels=1, dtype=tf.uint16)[..., 0]
        check_size("instance", instance)
        out["instance"] = tf.cast(instance, tf.int32)
    if with_target:
        target = tf.io.decode_image(features["target/encoded"], channels=3, expand_animations=False)
        check_size("target", target)
        out["target"] = target
    with tf.control_dependencies(checks):
        return {name: tf.identity(value) for name, value in out.items()}


def find_bad_record(files: list[str], **parse_options) -> str | None:
    """Reads ``files`` record by record, eagerly; describes the first bad record, or None.

    The streaming pipeline's own errors cannot say which shard failed; this slow scan runs only
    after such an error, to name the file, the record index and the key.
    """
    import tensorflow as tf

    for path in files:
        index = -1
        try:
            for index, record in enumerate(tf.data.TFRecordDataset(path)):
                try:
                    parse(record, **parse_options)
                except (tf.errors.InvalidArgumentError, ValueError) as error:
                    return f"{path}, record {index}: {_first_line(error)}"
        except tf.errors.DataLossError as error:
            return f"{path}: corrupt TFRecord after record {index} ({_first_line(error)})"
    return None


def _first_line(error: Exception) -> str:
    """The error message on one line; for failed in-graph checks, just the check's own data
    (message and record key), without TensorFlow's "Expected ... to be true" preamble."""
    message = getattr(error, "message", None) or str(error)
    _, marker, data = message.partition("Summarized data:")
    text = data if marker else message
    return " ".join(part.strip().strip("b'\"") for part in text.strip().splitlines() if part.strip())
