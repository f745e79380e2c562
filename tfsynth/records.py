"""Endpoint inputs from batches of records: what :mod:`tfsynth.endpoints` declares as an
``Input.source`` or ``Endpoint.reference``, taken or computed from the record fields.

Beside the declaration (pure Python) because this needs TensorFlow; the models' ``eval_metrics``
and ``tfsynth.evaluate`` read records through it.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfsynth.endpoints import record_field


def numeric(batch):
    """The batch without its string record keys (they are for error messages; XLA takes none)."""
    return {name: numeric(value) if isinstance(value, dict) else value
            for name, value in batch.items() if isinstance(value, dict) or value.dtype != tf.string}


def record_can_feed(batch: dict, spec) -> bool:
    """Whether a batch holds what ``spec`` (an endpoint ``Input``) is taken from."""
    field = "image" if spec.source == "index" else record_field(spec.source)
    return field in batch


def record_source(batch: dict, source: str, label_space: str, scale: int = 1):
    """A tensor for ``Input.source`` / ``Endpoint.reference`` from a batch of records (``scale``:
    the endpoint's, by which ``degraded_image`` is downsampled)."""
    if source == "degraded_image":
        from tfsynth.data import transforms

        return transforms.degrade_for_super_resolution(batch["image"], scale)
    if source == "label_color":
        from tfsynth.data import labels

        # Padded to 256 ids: ids outside the label space are drawn black.
        palette = tf.constant(labels.colorize(np.arange(256), label_space))
        return tf.gather(palette, tf.cast(batch["label"], tf.int32))
    if source == "index":
        return tf.range(tf.shape(batch["image"])[0], dtype=tf.int64)
    return batch[source]
