"""What a model reads, assembled from a dataset: its splits, its batches, and errors that name
the record at fault.

The model declares ``record_fields``, ``input_splits`` and ``example_transform``; this module
turns a dataset directory into the batches the training loop, ``bench`` and the tests feed it.
"""

from __future__ import annotations

import contextlib
import os

from tfsynth.data import pipelines, tfrecord

#: What each record field holds, for messages; and the dataset.json key that says it is there.
RECORD_FIELDS = {"label": ("label maps", "label_space"), "target": ("target photos (target/encoded)", "has_target"),
                 "instance": ("instance maps", "has_instance")}


def training_splits(model, data_dir: str, split_name: str) -> dict:
    """The splits feeding each of the model's input streams (one, or one per domain)."""
    return {stream: pipelines.load_split(data_dir, split)
            for stream, split in model.input_splits(split_name).items()}


def check_data_fits_model(model, splits: dict) -> None:
    """Fails early, naming the dataset, when its records lack what the model reads."""
    for split in splits.values():
        info, where = split.info, os.path.join(split.data_dir, tfrecord.DATASET_JSON)
        for field in model.record_fields:
            if field not in RECORD_FIELDS:
                continue
            what, key = RECORD_FIELDS[field]
            if not info.get(key):
                raise tfrecord.DataError(f"{where}: the records hold no {what}, which {type(model).__name__} "
                                         "with these hyper-parameters reads")


def _parse_options(model, split) -> dict:
    fields = model.record_fields
    return dict(num_classes=split.num_classes if "label" in fields else None,
                with_instance="instance" in fields, with_target="target" in fields)


def make_model_dataset(model, splits: dict, *, training: bool, **options):
    """Batches for ``model`` from ``splits``: plain, or ``{domain: batch}`` zipped with each
    domain shuffled on its own seed (unpaired data). ``options`` go to ``pipelines.make_dataset``."""
    import tensorflow as tf

    fields = model.record_fields

    def one(split, seed_offset):
        opts = dict(options)
        opts["seed"] = opts.get("seed", 0) + seed_offset
        return pipelines.make_dataset(
            split, transform=model.example_transform(training=training),
            with_label="label" in fields, with_instance="instance" in fields,
            with_target="target" in fields, **opts)

    if "" in splits:
        return one(splits[""], 0)
    return tf.data.Dataset.zip({domain: one(split, 1000 * i) for i, (domain, split) in enumerate(splits.items())})


def fixed_batches(model, data_dir: str, fallback_split: str, examples: int):
    """Unshuffled batches for sample grids and eval metrics: the dataset's val (else test) split
    when it has one for every stream, else ``fallback_split``; one batch of up to ``examples``.

    Returns:
      (dataset, the splits it reads).
    """
    available = tfrecord.read_dataset_json(data_dir).get("splits", {})
    split_name = next((name for name in ("val", "test")
                       if all(split in available for split in model.input_splits(name).values())),
                      fallback_split)
    splits = training_splits(model, data_dir, split_name)
    batch_size = min([examples] + [split.count for split in splits.values()])
    dataset = make_model_dataset(model, splits, training=False, batch_size=batch_size, shuffle=False, repeat=False)
    return dataset, splits


@contextlib.contextmanager
def naming_bad_records(model, splits: dict):
    """Re-raises a pipeline error as a DataError naming the shard, record and key.

    The streaming pipeline cannot say which shard failed; on an error the splits are scanned
    record by record (slow, but only then) to find it. Errors that no record explains pass on.
    """
    import tensorflow as tf

    try:
        yield
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as error:
        for split in splits.values():
            description = tfrecord.find_bad_record(split.files, **_parse_options(model, split))
            if description is not None:
                raise tfrecord.DataError(f"bad data: {description}") from None
        raise error
