"""tf.data pipelines over tfsynth TFRecords, and the built-in synthetic data by name.

A pipeline yields dicts of uint8 tensors (``image``, ``label`` ids in the dataset's own label
space, optional ``instance`` / ``target``) and string ``key``s; conversion to float, one-hot and
the model's label space happens on the accelerator inside the model, so the input pipeline
stays cheap and the exported model applies the very same preprocessing.
"""

from __future__ import annotations

import dataclasses
import os
import re

from absl import logging

from tfsynth.data import tfrecord

SYNTHETIC_DEFAULT_SIZE = (256, 512)
SYNTHETIC_DEFAULT_COUNT = 500
_SYNTHETIC_RE = re.compile(r"^synthetic(?::(?P<h>\d+)x(?P<w>\d+))?(?::(?P<n>\d+))?$")


@dataclasses.dataclass
class Split:
    """One split of a dataset on disk.

    Attributes:
      data_dir: the dataset directory.
      name: split name ("train", "val", ...).
      files: its shard paths.
      info: the parsed ``dataset.json``.
    """

    data_dir: str
    name: str
    files: list[str]
    info: dict

    @property
    def count(self) -> int:
        return int(self.info.get("splits", {}).get(self.name, 0))

    @property
    def label_space(self) -> str | None:
        return self.info.get("label_space")

    @property
    def num_classes(self) -> int | None:
        from tfsynth.data.labels import get_label_space

        return get_label_space(self.label_space).num_classes if self.label_space else None


def cache_root() -> str:
    """$TFSYNTH_CACHE, or ~/.cache/tfsynth when it is unset or empty (an empty value would put
    the cache in whatever folder the command runs from)."""
    return os.environ.get("TFSYNTH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tfsynth")


def resolve_data_dir(spec: str, seed: int = 0) -> str:
    """A dataset directory for ``spec``: a path, or ``synthetic[:HxW[:N]]``.

    The synthetic scenes are rendered once into a cache directory named after size, count and
    seed; writing goes to a temporary directory renamed at the end, so an interrupted render
    is never mistaken for a finished one.
    """
    match = _SYNTHETIC_RE.match(spec)
    if not match:
        if not os.path.isdir(spec):
            raise tfrecord.DataError(f"--train_data/--eval_data: {spec} is not a directory "
                                     "(nor 'synthetic[:HxW[:N]]')")
        return spec
    height, width = (int(match["h"]), int(match["w"])) if match["h"] else SYNTHETIC_DEFAULT_SIZE
    count = int(match["n"]) if match["n"] else SYNTHETIC_DEFAULT_COUNT
    target = os.path.join(cache_root(), "synthetic", f"{height}x{width}-n{count}-s{seed}")
    if os.path.exists(os.path.join(target, tfrecord.DATASET_JSON)):
        return target
    from tfsynth.data import convert

    print(f"Rendering {count} built-in synthetic scenes at {height}x{width} into {target} (once)", flush=True)
    # build_synthetic stages in a temporary folder and renames it into place, so an interrupted
    # render is never mistaken for a finished one.
    convert.build_synthetic(target, num_train=count, num_val=max(1, count // 10),
                            height=height, width=width, seed=seed, log=logging.info)
    return target


def load_split(data_dir: str, split: str) -> Split:
    """The shards and metadata of ``split``; errors name the directory, split, shard or file.

    The shards' records are counted (from the TFRecord framing: a few bytes per record) and
    must match ``dataset.json``: epochs, schedules and shuffle buffers are sized from its count,
    so a wrong count would silently train for the wrong number of steps.
    """
    info = tfrecord.read_dataset_json(data_dir)
    files = tfrecord.list_shards(data_dir, split)
    where = os.path.join(data_dir, tfrecord.DATASET_JSON)
    count = info.get("splits", {}).get(split) if isinstance(info.get("splits"), dict) else None
    if count == 0:
        raise tfrecord.DataError(f"split {split!r} of {data_dir} is empty (dataset.json counts 0 examples)")
    counted = 0
    for path in files:
        records = tfrecord.count_records(path)
        if records == 0:
            raise tfrecord.DataError(f"{path}: empty shard (no records); convert the dataset again")
        counted += records
    if isinstance(count, bool) or count != counted:
        said = (f"says split {split!r} has {count!r} examples" if count is not None
                else f"has no count for split {split!r}")
        raise tfrecord.DataError(f"{where} {said}, but its {len(files)} shard(s) hold {counted} records; "
                                 "convert the dataset again (or correct the count)")
    return Split(data_dir, split, files, info)


def make_dataset(split: Split, *, batch_size: int, transform=None, shuffle: bool = True,
                 repeat: bool = True, seed: int = 0, with_label: bool = True,
                 with_instance: bool = False, with_target: bool = False,
                 drop_remainder: bool = True, batch_by_size: bool = False):
    """Batches of decoded examples from ``split``, in a seeded, reproducible order.

    Args:
      split: from :func:`load_split`.
      batch_size: examples per batch (this worker's share of the global batch).
      drop_remainder: drop a last, smaller batch (training: replicas always get equal shares;
        evaluation keeps it).
      transform: optional ``fn(example, seed) -> example``, seed a stateless [2] int64 seed.
      shuffle, repeat: shuffle files and examples (reshuffled every epoch); repeat forever.
      seed: seeds every random choice, so two runs see the same sequence.
      batch_by_size: batch examples of one height and width together (evaluation of records
        kept at their own sizes, such as a folder of photos); batches then follow the sizes'
        order of completion, not the records' order.
    """
    import tensorflow as tf

    files = tf.data.Dataset.from_tensor_slices(split.files)
    if shuffle:
        files = files.shuffle(len(split.files), seed=seed, reshuffle_each_iteration=True)
    records = files.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(split.files)),
                               num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def parse(serialized):
        return tfrecord.parse(serialized, num_classes=split.num_classes if with_label else None,
                              with_instance=with_instance, with_target=with_target)

    if shuffle:
        records = records.shuffle(min(max(split.count, 1), 256), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        records = records.repeat()
    # Shuffled as serialized records, which take a fraction of the decoded examples' memory.
    seeded = tf.data.Dataset.zip(tf.data.Dataset.random(seed=seed).batch(2), records)
    transform = transform or (lambda example, _: example)
    examples = seeded.map(lambda example_seed, serialized: transform(parse(serialized), example_seed),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if batch_by_size:
        def size_key(example):
            height, width = tf.unstack(tf.shape(example["image"], out_type=tf.int64)[:2])
            return height * (1 << 32) + width

        batches = examples.group_by_window(
            size_key, lambda _, same_size: same_size.batch(batch_size, drop_remainder=drop_remainder),
            window_size=batch_size)
    else:
        batches = examples.batch(batch_size, drop_remainder=drop_remainder)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return batches.with_options(options).prefetch(tf.data.AUTOTUNE)
