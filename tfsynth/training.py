"""The model-agnostic training loop behind ``tfsynth.train`` (and the step ``tfsynth.bench`` times).

A custom loop rather than ``Model.fit``: it checkpoints the data iterator with the weights for an
exact resume, runs the same way under every tf.distribute strategy (``fit`` is broken under
MultiWorkerMirroredStrategy in Keras 3, keras#20585), and keeps its own step counter.

Distribution: every worker reads the global batch through a plain, checkpointable iterator, and
every replica slices its own part inside ``strategy.run`` (distributed iterators cannot be
checkpointed). So a run sees the same examples whatever its number of workers and devices, and
the chief's checkpoint resumes every worker; the chief alone writes checkpoints, logs, samples,
``config.json`` and the export.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import sys
import time

import numpy as np

from tfsynth import config as config_lib
from tfsynth import flags as tfsynth_flags
from tfsynth import nonfinite, registry, run_dir
from tfsynth.profiling import StepProfiler
from tfsynth.data import pipelines, tfrecord


class TrainingError(ValueError):
    """A bad flag combination or model_dir state; the message names the flag or file."""


# ---------------------------------------------------------------------------- configuration

def model_config(spec, flags_values) -> object:
    """The family's config from its defaults, every ``--hparams`` (left to right, later keys
    win) and ``--vgg_weights``."""
    model_class = spec.load()
    overrides = config_lib.parse_hparams(flags_values.hparams or [])
    if flags_values.vgg_weights:
        if "vgg_weights" not in {f.name for f in dataclasses.fields(model_class.config_class)}:
            raise TrainingError(f"--vgg_weights: model {spec.name} has no perceptual network")
        overrides["vgg_weights"] = flags_values.vgg_weights
    return config_lib.build_config(model_class.config_class, overrides)


def check_resume_config(model_dir: str, model_name: str, config) -> dict | None:
    """Refuses to resume a model_dir with a different model or hyper-parameters."""
    path = os.path.join(model_dir, run_dir.CONFIG_JSON)
    if not os.path.exists(path):
        return None
    saved = run_dir.read_json(path, "--model_dir")
    if not isinstance(saved, dict) or not isinstance(saved.get("hparams"), dict):
        raise TrainingError(f"{path}: damaged (no model and hparams in it), so the run cannot be "
                            "resumed safely; restore the file or use another --model_dir")
    if saved.get("model") != model_name:
        raise TrainingError(f"{path}: this model_dir holds a {saved.get('model')!r} model, not "
                            f"{model_name!r}; use another --model_dir")
    current = json.loads(json.dumps(config_lib.to_dict(config)))
    changed = {k: (saved["hparams"].get(k), v) for k, v in current.items()
               if k != "vgg_weights" and saved["hparams"].get(k) != v}
    if changed:
        detail = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise TrainingError(f"{path}: hyper-parameters differ from the run being resumed ({detail}); "
                            "rerun with the same flags or use another --model_dir")
    return saved


def check_resume_data(saved: dict | None, model_dir: str, flags_values, data_dir: str, splits: dict) -> None:
    """Refuses to resume on other data, another batch size or another shard layout: the
    checkpointed data position is only meaningful for the same input pipeline."""
    if not saved:
        return
    path = os.path.join(model_dir, run_dir.CONFIG_JSON)
    data, runtime = saved.get("data") or {}, saved.get("runtime") or {}
    before = data.get("dir")
    if before and not same_data_dir(before, data_dir):
        raise TrainingError(f"--train_data={flags_values.train_data}: the run in {model_dir} trained on "
                            f"{before}, not {data_dir}; resume with the same data or use another --model_dir")
    batch = runtime.get("global_batch_size")
    if batch is not None and batch != flags_values.global_batch_size:
        raise TrainingError(f"--global_batch_size={flags_values.global_batch_size}: the run being resumed "
                            f"used {batch} ({path}), and its checkpointed data position holds batches of that "
                            "size; rerun with the same value or use another --model_dir")
    for split in splits.values():
        shards = (data.get("shards") or {}).get(split.name)
        if shards is not None and shards != len(split.files):
            raise TrainingError(f"--train_data={flags_values.train_data}: split {split.name!r} now has "
                                f"{len(split.files)} shard(s), the run being resumed read {shards} ({path}); "
                                "its checkpointed data position needs the same shards: convert with "
                                f"--num_shards={shards} or use another --model_dir")


def same_data_dir(first: str, second: str) -> bool:
    """Whether two dataset paths are one dataset: the same folder, or the same built-in scenes,
    whose cache folders are named after their size, count and seed wherever the cache lies."""
    first, second = os.path.realpath(first), os.path.realpath(second)
    if first == second:
        return True
    return (os.path.basename(first) == os.path.basename(second)
            and all(os.path.basename(os.path.dirname(path)) == "synthetic" for path in (first, second)))


def resolve_steps(flags_values, examples: int) -> int:
    if flags_values.train_steps:
        return flags_values.train_steps
    if flags_values.epochs:
        return max(1, math.ceil(flags_values.epochs * examples / flags_values.global_batch_size))
    raise TrainingError("give --train_steps or --epochs")


def print_summary(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(title, flush=True)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}", flush=True)


def network_rows(model, loss_networks: dict | None = None) -> list[tuple[str, str]]:
    rows = [(name, f"{count:,} parameters") for name, count in model.parameter_counts().items()]
    for name, network in (loss_networks or {}).items():
        source = getattr(network, "weights_source", "")
        rows.append((name, f"{int(network.count_params()):,} parameters (frozen loss network, "
                           f"weights: {source})"))
    return rows


# ------------------------------------------------------------------------------- components

def make_step_function(model, strategy, step_counter, finite_flag: bool = False):
    """One distributed training step from an iterator.

    The step is traced once per phase (the set of optimizer groups active at the current
    step, ``model.enter_phase``), so a recipe that switches optimizers mid-run gets a new
    graph at the switch and keeps it on a resume past it.

    Returns:
      ``step(iterator) -> losses``, or ``-> (losses, all losses finite)`` with ``finite_flag``.
    """
    import tensorflow as tf

    from tfsynth import distribute
    from tfsynth.records import numeric

    replicas = strategy.num_replicas_in_sync

    def replica_step(batch):
        # Every worker reads the whole global batch and each replica, on any worker, trains on
        # its slice: the same examples and augmentations as one process, whatever the number of
        # workers, and one data position (the chief's, checkpointed) that resumes every worker.
        index = tf.distribute.get_replica_context().replica_id_in_sync_group
        share = tf.shape(tf.nest.flatten(batch)[0])[0] // replicas
        local = tf.nest.map_structure(lambda value: value[index * share:(index + 1) * share], batch)
        return model.train_step(numeric(local))

    def distributed_step(iterator):
        per_replica = strategy.run(replica_step, (next(iterator),))
        losses = {name: strategy.reduce("MEAN", value, axis=None) for name, value in per_replica.items()}
        step_counter.assign_add(1)
        if not finite_flag:
            return losses
        # One boolean over every term, in the graph: the loop reads it instead of every loss.
        return losses, tf.reduce_all([tf.reduce_all(tf.math.is_finite(tf.cast(value, tf.float32)))
                                      for value in losses.values()])

    traced = {}

    def step(iterator):
        phase = model.enter_phase(int(step_counter.numpy()))
        if phase not in traced:
            traced[phase] = tf.function(distributed_step)
        return traced[phase](iterator)

    return step


class RunCheckpoints:
    """The run's checkpoints as each worker of a (multi-worker) run sees them.

    Every worker saves, since a save may all-reduce variables (a collective every worker must
    join), but only the chief into ``model_dir/checkpoints``: another worker writes to a scratch
    folder there and deletes it at once. Every worker resumes from the chief's checkpoints, so
    ``model_dir`` must be on storage all workers read (a shared filesystem, a gs:// bucket).
    """

    def __init__(self, checkpoint, model_dir: str, max_to_keep: int, worker_index: int = 0):
        import tensorflow as tf

        directory = os.path.join(model_dir, "checkpoints")
        self.chief = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)
        self.writer = self.chief if worker_index == 0 else tf.train.CheckpointManager(
            checkpoint, os.path.join(directory, f".worker-{worker_index}"), max_to_keep=1)

    @property
    def checkpoints(self) -> list[str]:
        """The chief's checkpoint prefixes, oldest first."""
        return self.chief.checkpoints

    def save(self, step: int) -> str:
        """Saves at ``step``; returns the chief's checkpoint path."""
        path = self.writer.save(checkpoint_number=step)
        if self.writer is not self.chief:
            shutil.rmtree(self.writer.directory, ignore_errors=True)
        return os.path.join(self.chief.directory, os.path.basename(path))


def summary_writer(model_dir: str, name: str, is_chief: bool):
    """``logs/<name>``'s writer on the chief; elsewhere one that writes nothing (TensorBoard would
    show one curve per worker)."""
    import tensorflow as tf

    if is_chief:
        return tf.summary.create_file_writer(os.path.join(model_dir, "logs", name))
    return tf.summary.create_noop_writer()


def restore_or_warm_start(checkpoint, manager, model, init_from: str | None) -> tuple[str, str | None]:
    """Resumes from the newest checkpoint that restores, else warm-starts or starts afresh.

    Returns:
      (what was done, for the log; the checkpoint restored or None).
    """
    if manager.checkpoints:
        path = run_dir.restore_newest(checkpoint, manager.checkpoints, log=lambda line: print(line, flush=True))
        return f"resumed from {path}", path
    if init_from:
        copied, skipped = warm_start(model, init_from)
        return f"warm start from {init_from}: {copied} layers copied, skipped {skipped or 'none'}", None
    return "from scratch", None


def warm_start(model, source: str) -> tuple[int, list[str]]:
    """Copies network weights from another run, layer by layer where names and shapes match.

    The source's own config.json rebuilds its model, so e.g. CRN 512p starts from every module
    of a 256p run except the new top module and output (the original's fine-tuning recipe).
    """
    source_model, _ = run_dir.load_model(source, purpose="networks", flag="--init_from")
    copied, skipped = 0, []
    for name, network in model.networks.items():
        source_layers = {layer.name: layer for layer in source_model.networks.get(name, network).layers}
        for layer in network.layers:
            donor = source_layers.get(layer.name)
            donor_weights = donor.get_weights() if donor is not None else None
            if donor_weights and [w.shape for w in donor_weights] == [w.shape for w in layer.get_weights()]:
                layer.set_weights(donor_weights)
                copied += 1
            elif layer.weights:
                skipped.append(layer.name)
    return copied, skipped


def training_splits(model, data_dir: str, split_name: str) -> dict:
    """The splits feeding each of the model's input streams (one, or one per domain)."""
    return {stream: pipelines.load_split(data_dir, split)
            for stream, split in model.input_splits(split_name).items()}


#: What each record field holds, for messages; and the dataset.json key that says it is there.
RECORD_FIELDS = {"label": ("label maps", "label_space"), "target": ("target photos (target/encoded)", "has_target"),
                 "instance": ("instance maps", "has_instance")}


def check_data_fits_model(model, splits: dict) -> None:
    """Fails early, naming the dataset, when its records lack what the model reads."""
    for split in splits.values():
        info, where = split.info, os.path.join(split.data_dir, tfrecord.DATASET_JSON)
        for field in model.record_fields:
            if field not in RECORD_FIELDS:
                continue
            what, key = RECORD_FIELDS[field]
            if not info.get(key):
                raise TrainingError(f"{where}: the records hold no {what}, which {type(model).__name__} "
                                    "with these hyper-parameters reads")


def parse_options(model, split) -> dict:
    fields = model.record_fields
    return dict(num_classes=split.num_classes if "label" in fields else None,
                with_instance="instance" in fields, with_target="target" in fields)


def make_model_dataset(model, splits: dict, *, training: bool, **options):
    """Batches for ``model`` from ``splits``: plain, or ``{domain: batch}`` zipped with each
    domain shuffled on its own seed (unpaired data)."""
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
            description = tfrecord.find_bad_record(split.files, **parse_options(model, split))
            if description is not None:
                raise tfrecord.DataError(f"bad data: {description}") from None
        raise error


# ---------------------------------------------------------------------------------- the run

def main(flags_values) -> None:
    spec = registry.get(flags_values.model)
    try:
        model_dir = flags_values.model_dir
        if model_dir and os.path.exists(model_dir) and not os.path.isdir(model_dir):
            raise TrainingError(f"--model_dir={model_dir} is a file, not a run directory")
        config = model_config(spec, flags_values)
        if flags_values.dry_run:
            model = spec.load()(config)
            print_summary(f"{spec.name}: {spec.summary}", network_rows(model) + hparam_rows(config))
            return
        train(flags_values, spec, config)
    except (tfrecord.DataError, TrainingError, config_lib.HParamsError, run_dir.RunDirError,
            nonfinite.NonFiniteError) as error:
        sys.exit(f"error: {error}")


def check_recompute(spec, flags_values) -> None:
    """--recompute needs a family that declares what it recomputes."""
    if flags_values.recompute and not spec.load().recomputes:
        raise TrainingError(f"--recompute: {spec.name} has no network it can recompute (its dropout masks or "
                            "batch statistics would change when run again)")


def hparam_rows(config) -> list[tuple[str, str]]:
    """The resolved hyper-parameters that differ from the family's defaults, for the log."""
    changed = config_lib.non_default_values(config)
    text = ", ".join(f"{key}={value}" for key, value in changed.items()) or "the family's defaults"
    return [("hparams", text)]


def train(flags_values, spec, config) -> None:
    import keras
    import tensorflow as tf

    from tfsynth import distribute, export, summaries
    from tfsynth.records import numeric

    model_dir = flags_values.model_dir
    check_recompute(spec, flags_values)
    saved = check_resume_config(model_dir, spec.name, config)
    strategy = distribute.make_strategy(flags_values.strategy, flags_values.cpu_devices)
    precision, precision_reason = distribute.resolve_precision(flags_values.mixed_precision)
    distribute.set_precision(precision)
    keras.utils.set_random_seed(flags_values.seed)
    if flags_values.deterministic:
        tf.config.experimental.enable_op_determinism()
    jit = distribute.resolve_jit_compile(flags_values.jit_compile)

    data_dir = pipelines.resolve_data_dir(flags_values.train_data, flags_values.seed)
    worker_index = distribute.worker_index(strategy)
    if flags_values.global_batch_size % strategy.num_replicas_in_sync:
        raise TrainingError(f"--global_batch_size={flags_values.global_batch_size} must be divisible "
                            f"by the {strategy.num_replicas_in_sync} replicas")

    os.makedirs(model_dir, exist_ok=True)
    model_class = spec.load()
    label_space = tfrecord.read_dataset_json(data_dir).get("label_space") or "cityscapes35"
    with strategy.scope():
        model = model_class(config, source_label_space=label_space)
    splits = training_splits(model, data_dir, flags_values.train_split)
    check_data_fits_model(model, splits)
    check_resume_data(saved, model_dir, flags_values, data_dir, splits)
    run_dir.copy_run_files(model, model_dir)  # after the checks: a refused resume leaves the run untouched
    examples = max(split.count for split in splits.values())  # an epoch covers the larger domain
    steps_per_epoch = max(1, examples // flags_values.global_batch_size)
    total_steps = resolve_steps(flags_values, examples)
    with strategy.scope():
        loss_networks = model.prepare_training(
            steps_per_epoch=steps_per_epoch, float16_loss_scaling=precision == "float16", seed=flags_values.seed)
        if jit:
            model.enable_xla()
        if flags_values.recompute:
            model.enable_recompute()
        step_counter = tf.Variable(0, dtype=tf.int64, name="step", trainable=False)

    dataset = make_model_dataset(model, splits, training=True, batch_size=flags_values.global_batch_size,
                                 seed=flags_values.seed)
    iterator = iter(dataset)
    checkpoint = tf.train.Checkpoint(step=step_counter, data=iterator, **model.checkpoint_items())
    is_chief = worker_index == 0
    manager = RunCheckpoints(checkpoint, model_dir, flags_values.keep_checkpoints, worker_index)
    origin, last_saved = restore_or_warm_start(checkpoint, manager, model, flags_values.init_from)
    # Attached after the restore: a checkpoint from before the counter existed restores without
    # it (and the counter starts at 0), a newer one restores it on attachment.
    checkpoint.skipped_steps = tf.Variable(0, dtype=tf.int64, name="skipped_steps", trainable=False)
    guard = nonfinite.Guard(model.checkpoint_items(), flags_values.on_nan)
    if is_chief:
        write_config(model_dir, spec.name, config, flags_values, data_dir, splits, label_space)

    split_text = ", ".join(f"{stream + ' = ' if stream else ''}{split.name}: {split.count}"
                           for stream, split in splits.items())
    print_summary(f"{spec.name}: {spec.summary}", network_rows(model, loss_networks) + [
        ("data", f"{data_dir} [{split_text} examples, {label_space}]"),
        ("strategy", f"{type(strategy).__name__}, {strategy.num_replicas_in_sync} replica(s), "
                     f"XLA {'on' if jit else 'off'}, precision {precision} ({precision_reason})"),
        *([("memory", f"--recompute: {model.recomputes}, recomputed in the backward pass")]
          if flags_values.recompute else []),
        ("steps", f"{total_steps} x global batch {flags_values.global_batch_size}"),
        ("model_dir", f"{model_dir} ({origin})"),
    ] + hparam_rows(config))

    sample_data, sample_splits = make_sample_dataset(flags_values, model, data_dir, flags_values.num_samples)
    with naming_bad_records(model, sample_splits):
        sample_batch = next(iter(sample_data))
        eval_batches = (list(make_sample_dataset(flags_values, model, data_dir, flags_values.eval_examples)[0])
                        if flags_values.eval_every else [])
    eval_fn = tf.function(model.eval_metrics)
    eval_writer = summary_writer(model_dir, "eval", is_chief)
    sample_fn = tf.function(model.sample_columns)
    step_fn = make_step_function(model, strategy, step_counter, finite_flag=True)
    writer = summary_writer(model_dir, "train", is_chief)
    samples_dir = os.path.join(model_dir, "samples")

    start_step = int(step_counter.numpy())
    start_time = time.time()
    profiler = StepProfiler(tfsynth_flags.profile_range(flags_values.profile_steps) if is_chief else None,
                            os.path.join(model_dir, "logs"))
    while int(step_counter.numpy()) < total_steps:
        guard.before_step()
        profiler.before(int(step_counter.numpy()) + 1)
        with naming_bad_records(model, splits):
            losses, losses_finite = step_fn(iterator)
        step = int(step_counter.numpy())
        profiler.after(step)
        if not guard.after_step(step, losses, losses_finite, last_saved):
            checkpoint.skipped_steps.assign_add(1)
            print(f"step {step}: skipped ({nonfinite.describe_losses(losses)}; --on_nan=skip_step), "
                  f"{int(checkpoint.skipped_steps)} skipped so far", flush=True)
        if step % flags_values.log_every == 0 or step == total_steps:
            values = {name: float(value) for name, value in losses.items()}
            log_progress(step, total_steps, start_step, start_time, values, flags_values.global_batch_size)
            if is_chief:
                rates = {f"learning_rate/{k}": float(keras.ops.convert_to_numpy(v))
                         for k, v in model.learning_rates().items()}
                skipped = ({"train/skipped_steps": int(checkpoint.skipped_steps)}
                           if flags_values.on_nan == "skip_step" else {})
                summaries.write_scalars({f"loss/{k}": v for k, v in values.items()} | rates | skipped, step, writer)
        if is_chief and (step % flags_values.image_every == 0 or step == total_steps):
            grid = summaries.image_grid(sample_fn(sample_batch))
            summaries.write_grid(grid, step, writer, samples_dir)
        if is_chief and eval_batches and (step % flags_values.eval_every == 0 or step == total_steps):
            metrics = mean_metrics([eval_fn(numeric(batch)) for batch in eval_batches])
            if metrics:
                summaries.write_scalars(metrics, step, eval_writer, prefix="eval/")
                print(f"eval at step {step}: " + "  ".join(f"{k}={v:.4g}" for k, v in metrics.items()),
                      flush=True)
        if step % flags_values.checkpoint_every == 0 or step == total_steps:
            guard.check_state(step, "a checkpoint", last_saved)
            last_saved = manager.save(step)
            print(f"saved checkpoint {last_saved}", flush=True)
    profiler.stop()
    writer.flush()
    eval_writer.flush()
    skipped = int(checkpoint.skipped_steps)
    skipped_text = f" ({skipped} step(s) dropped for non-finite values)" if skipped else ""
    print(f"Training done at step {int(step_counter.numpy())}{skipped_text}. TensorBoard: tensorboard "
          f"--logdir={model_dir}/logs  samples: {samples_dir}", flush=True)

    def ordered_batches(split_name):
        return make_model_dataset(model, training_splits(model, data_dir, split_name), training=False,
                                  batch_size=flags_values.global_batch_size, shuffle=False,
                                  repeat=False, drop_remainder=False)

    if model.finish_training(ordered_batches):
        guard.check_state(int(step_counter.numpy()), "a checkpoint", last_saved)
        print(f"saved checkpoint {manager.save(int(step_counter.numpy()))} "
              "(with the state computed after training)", flush=True)
    if flags_values.export and is_chief:
        guard.check_state(int(step_counter.numpy()), "the export", last_saved)
        path = export.export_model(model, run_dir.next_export_dir(model_dir), model_name=spec.name)
        spatial = next(iter(model.serving_endpoints())).spatial_input
        example = f"--input={spatial.kind.upper()}S --output=OUT" if spatial else "--num_samples=16 --output=OUT"
        print(f"Exported SavedModel: {path}  (try: python -m tfsynth.infer --saved_model={path} {example})",
              flush=True)


def mean_metrics(results: list[dict]) -> dict:
    """Means over eval batches of each metric."""
    return {name: float(np.mean([float(result[name]) for result in results])) for name in (results or [{}])[0]}


def make_sample_dataset(flags_values, model, train_data_dir: str, examples: int):
    """Fixed batches for grids and eval metrics: --eval_data, else a val/test split, else train.

    Returns:
      (dataset, the splits it reads).
    """
    data_dir = (pipelines.resolve_data_dir(flags_values.eval_data, flags_values.seed)
                if flags_values.eval_data else train_data_dir)
    available = tfrecord.read_dataset_json(data_dir).get("splits", {})
    split_name = next((name for name in ("val", "test")
                       if all(split in available for split in model.input_splits(name).values())),
                      flags_values.train_split)
    splits = training_splits(model, data_dir, split_name)
    batch_size = min([examples] + [split.count for split in splits.values()])
    dataset = make_model_dataset(model, splits, training=False, batch_size=batch_size,
                                 shuffle=False, repeat=False)
    return dataset, splits


def write_config(model_dir, model_name, config, flags_values, data_dir, splits, label_space) -> None:
    runtime = {name: flags_values[name].value for name in (
        "train_data", "eval_data", "train_split", "global_batch_size", "train_steps", "epochs",
        "strategy", "jit_compile", "mixed_precision", "recompute", "seed", "deterministic", "log_every",
        "image_every", "checkpoint_every", "init_from")}
    resolved = {
        "model": model_name,
        "hparams": config_lib.to_dict(config),
        "runtime": runtime,
        "data": {"dir": data_dir, "splits": {split.name: split.count for split in splits.values()},
                 "shards": {split.name: len(split.files) for split in splits.values()},
                 "label_space": label_space},
    }
    run_dir.write_config(model_dir, resolved)


def log_progress(step, total, start_step, start_time, losses, batch_size) -> None:
    elapsed = max(time.time() - start_time, 1e-9)
    rate = (step - start_step) / elapsed
    eta = (total - step) / rate if rate > 0 else float("inf")
    loss_text = "  ".join(f"{name}={value:.4g}" for name, value in losses.items())
    eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "?"
    print(f"step {step}/{total}  {loss_text}  {rate:.2f} steps/s  {rate * batch_size:.2f} img/s  "
          f"eta {eta_text}", flush=True)
