"""The model-agnostic training loop: ``prepare(options)`` builds a run, ``Run.fit()`` trains it.

``tfsynth.train`` builds :class:`TrainOptions` from its flags, calls these two and exports;
``tfsynth.bench`` builds its run through the same ``prepare`` and times its step. Nothing here
reads a flag or imports a command.

A custom loop rather than ``Model.fit``: it checkpoints the data iterator with the weights for an
exact resume, runs the same way under every tf.distribute strategy (``fit`` is broken under
MultiWorkerMirroredStrategy in Keras 3, keras#20585), and keeps its own step counter.

Distribution: every worker reads the global batch through a plain, checkpointable iterator, and
every replica slices its own part inside ``strategy.run`` (distributed iterators cannot be
checkpointed). So a run sees the same examples whatever its number of workers and devices, and
the chief's checkpoint resumes every worker; the chief alone writes checkpoints, logs, samples
and ``config.json``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time

import numpy as np

from tfsynth import config as config_lib
from tfsynth import distribute, nonfinite, registry, run_dir
from tfsynth.console import format_duration, print_summary
from tfsynth.data import batches, pipelines, tfrecord
from tfsynth.profiling import StepProfiler


class TrainingError(ValueError):
    """A bad option combination; the message names the flag."""


#: What a run can fail with that the user can fix; commands print these as one ``error:`` line.
USER_ERRORS = (TrainingError, tfrecord.DataError, config_lib.HParamsError, run_dir.RunDirError,
               nonfinite.NonFiniteError, distribute.StrategyError)


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """Everything a training run is told, besides the family's hyper-parameters' values.

    The fields are ``tfsynth.train``'s flags of the same names (``tfsynth/flags.py`` has their
    help); ``runtime`` ones are recorded in ``config.json``.
    """

    #: The family; None: the resumed run's (``config.json``), else :data:`DEFAULT_MODEL`.
    model: str | None = None
    model_dir: str | None = None
    train_data: str = "synthetic"
    eval_data: str | None = None
    train_split: str = "train"
    global_batch_size: int = 1
    train_steps: int | None = None
    epochs: float | None = None
    strategy: str = "auto"
    cpu_devices: int = 1
    jit_compile: str = "auto"
    mixed_precision: str = "none"
    recompute: bool = False
    seed: int = 0
    deterministic: bool = False
    log_every: int = 50
    image_every: int = 500
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    #: (first, last) 1-based steps traced with the profiler, or None.
    profile_steps: tuple[int, int] | None = None
    hparams: tuple[str, ...] = ()
    vgg_weights: str | None = None
    init_from: str | None = None
    num_samples: int = 2
    eval_every: int = 0
    eval_examples: int = 16
    on_nan: str = "stop"
    worker_timeout: float = 600.0

    #: The fields ``config.json`` records under ``runtime``.
    RUNTIME = ("train_data", "eval_data", "train_split", "global_batch_size", "train_steps", "epochs",
               "strategy", "jit_compile", "mixed_precision", "recompute", "seed", "deterministic", "log_every",
               "image_every", "checkpoint_every", "init_from")

    def runtime(self) -> dict:
        return {name: getattr(self, name) for name in self.RUNTIME}


# ---------------------------------------------------------------------------- configuration

#: The family trained when neither ``--model`` nor a resumed run names one: the flagship.
DEFAULT_MODEL = "crn"


def with_resumed_model(options: TrainOptions, resumed: dict | None) -> TrainOptions:
    """``options`` with the family named: ``--model``, else the resumed run's, else the default."""
    if options.model:
        return options
    return dataclasses.replace(options, model=(resumed or {}).get("model") or DEFAULT_MODEL)


def model_config(options: TrainOptions, resumed: dict | None = None):
    """The family's config from its defaults, the resumed run's hyper-parameters (when it is the
    same family: a run resumes with its own unless flags change them, which is then refused),
    every ``hparams`` entry (left to right, later keys win) and ``vgg_weights``."""
    spec = registry.get(options.model)
    model_class = spec.load()
    overrides = config_lib.parse_hparams(list(options.hparams))
    if options.vgg_weights:
        if "vgg_weights" not in {f.name for f in dataclasses.fields(model_class.config_class)}:
            raise TrainingError(f"--vgg_weights: model {spec.name} has no perceptual network")
        overrides["vgg_weights"] = options.vgg_weights
    base = resumed["hparams"] if resumed and resumed.get("model") == spec.name else None
    return config_lib.build_config(model_class.config_class, overrides, base=base)


def build_model(spec, config, label_space: str = "cityscapes35"):
    """The family's model for ``config``, reading data in ``label_space``; a value the networks
    cannot be built with (a negative width the config let through) is an ``HParamsError``."""
    try:
        return spec.load()(config, source_label_space=label_space)
    except (TypeError, ValueError) as error:
        raise config_lib.HParamsError(f"--hparams: {spec.name} cannot be built with these hyper-parameters "
                                      f"({error})") from None


def resolve_steps(options: TrainOptions, examples: int) -> int:
    if options.train_steps:
        return options.train_steps
    if options.epochs:
        return max(1, math.ceil(options.epochs * examples / options.global_batch_size))
    bad = "" if options.epochs is None else f" (--epochs={options.epochs:g} trains nothing)"
    raise TrainingError(f"give --train_steps or --epochs{bad}")


def network_rows(model, loss_networks: dict | None = None) -> list[tuple[str, str]]:
    rows = [(name, f"{count:,} parameters") for name, count in model.parameter_counts().items()]
    for name, network in (loss_networks or {}).items():
        source = getattr(network, "weights_source", "")
        rows.append((name, f"{int(network.count_params()):,} parameters (frozen loss network, "
                           f"weights: {source})"))
    return rows


def hparam_rows(config) -> list[tuple[str, str]]:
    """The resolved hyper-parameters that differ from the family's defaults, for the log."""
    changed = config_lib.non_default_values(config)
    text = ", ".join(f"{key}={value}" for key, value in changed.items()) or "the family's defaults"
    return [("hparams", text)]


def describe(options: TrainOptions) -> None:
    """``--dry_run``: builds the networks and prints their parameter counts, reading no data."""
    resumed = run_dir.resumed_config(options.model_dir) if options.model_dir else None
    options = with_resumed_model(options, resumed)
    spec = registry.get(options.model)
    config = model_config(options, resumed)
    model = build_model(spec, config)
    print_summary(f"{spec.name}: {spec.summary}", network_rows(model) + hparam_rows(config))


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

    from tfsynth.records import numeric

    replicas = strategy.num_replicas_in_sync

    def replica_step(batch):
        # Every worker reads the whole global batch and each replica, on any worker, trains on
        # its slice: the same examples and augmentations as one process, whatever the number of
        # workers, and one data position (the chief's, checkpointed) that resumes every worker.
        index = tf.distribute.get_replica_context().replica_id_in_sync_group
        share = tf.shape(tf.nest.flatten(batch)[0])[0] // replicas
        local = tf.nest.map_structure(lambda value: value[index * share:(index + 1) * share], batch)
        return model.train_step(local)

    def distributed_step(iterator):
        # Record keys are strings for the pipeline's error messages; the step is numbers only.
        per_replica = strategy.run(replica_step, (numeric(next(iterator)),))
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
            traced[phase] = tf.function(distributed_step, autograph=False)
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


def _say(line: str) -> None:
    print(line, flush=True)


def mean_metrics(results: list[dict]) -> dict:
    """Means over eval batches of each metric."""
    return {name: float(np.mean([float(result[name]) for result in results])) for name in (results or [{}])[0]}


def progress_line(step: int, total: int, steps_per_second: float, losses: dict, batch_size: int) -> str:
    """``step S/T  losses  R steps/s  I img/s  eta D``."""
    eta = (total - step) / steps_per_second if steps_per_second > 0 else float("inf")
    loss_text = "  ".join(f"{name}={value:.4g}" for name, value in losses.items())
    return (f"step {step}/{total}  {loss_text}  {steps_per_second:.2f} steps/s  "
            f"{steps_per_second * batch_size:.2f} img/s  eta {format_duration(eta)}")


# ---------------------------------------------------------------------------------- the run

@dataclasses.dataclass
class Run:
    """A model with its data, ready to train (``fit``) or to time (``bench``).

    With ``options.model_dir`` it is a training run: its directory holds ``config.json``, the
    family's run files and the checkpoints, and ``fit`` resumes from them.
    """

    options: TrainOptions
    spec: registry.ModelSpec
    config: object
    model: object
    strategy: object
    precision: str
    precision_reason: str
    jit: bool
    data_dir: str
    label_space: str
    splits: dict
    loss_networks: dict
    total_steps: int | None
    #: The ``config.json`` of the run resumed (None: a new run).
    resumed: dict | None = None
    #: The checkpoint ``fit`` saved or restored last (what an export after it holds).
    last_checkpoint: str | None = None

    @property
    def worker_index(self) -> int:
        return distribute.worker_index(self.strategy)

    @property
    def is_chief(self) -> bool:
        return self.worker_index == 0

    def dataset(self):
        """The shuffled, augmented, repeated training batches (seeded by ``options.seed``)."""
        return batches.make_model_dataset(self.model, self.splits, training=True,
                                          batch_size=self.options.global_batch_size, seed=self.options.seed)

    def ordered_batches(self, split_name: str):
        """Unshuffled, unaugmented batches of one split, read once (work after training)."""
        return batches.make_model_dataset(self.model, batches.training_splits(self.model, self.data_dir, split_name),
                                          training=False, batch_size=self.options.global_batch_size,
                                          shuffle=False, repeat=False, drop_remainder=False)

    def fit(self) -> dict:
        """Trains to ``total_steps`` from the newest checkpoint (or the warm start), then runs
        the family's work after training; leaves the final state checkpointed and checked finite.

        Returns:
          the losses of the last step run here (empty when the run had already finished).
        """
        import keras
        import tensorflow as tf

        from tfsynth import summaries
        from tfsynth.records import numeric

        options, model, model_dir = self.options, self.model, self.options.model_dir
        if not model_dir:
            raise TrainingError("--model_dir: training needs a run directory")
        if self.jit:
            model.enable_xla()
        with self.strategy.scope():
            step_counter = tf.Variable(0, dtype=tf.int64, name="step", trainable=False)
        iterator = iter(self.dataset())
        checkpoint = tf.train.Checkpoint(step=step_counter, data=iterator, **model.checkpoint_items())
        is_chief = self.is_chief
        if is_chief:
            run_dir.remove_leftovers(model_dir, log=_say)
        run_dir.recover_checkpoint_state(model_dir, log=_say)
        manager = RunCheckpoints(checkpoint, model_dir, options.keep_checkpoints, self.worker_index)
        origin, last_saved = self._restore_or_warm_start(checkpoint, manager)
        # Attached after the restore: a checkpoint from before these existed restores without them
        # (the counter starts at 0, the seed is the run's --seed), a newer one restores them on
        # attachment.
        checkpoint.skipped_steps = tf.Variable(0, dtype=tf.int64, name="skipped_steps", trainable=False)
        checkpoint.training_seed = model.training_seed
        guard = nonfinite.Guard(model.checkpoint_items(), options.on_nan)
        if is_chief:
            self._write_config()
        self._print_start(origin)

        sample_data, sample_splits = self._fixed_batches(options.num_samples)
        with batches.naming_bad_records(model, sample_splits):
            sample_batch = next(iter(sample_data))
            eval_batches = list(self._fixed_batches(options.eval_examples)[0]) if options.eval_every else []
        eval_fn = tf.function(model.eval_metrics)
        eval_writer = summary_writer(model_dir, "eval", is_chief)
        sample_fn = tf.function(model.sample_columns)
        step_fn = make_step_function(model, self.strategy, step_counter, finite_flag=True)
        writer = summary_writer(model_dir, "train", is_chief)
        samples_dir = os.path.join(model_dir, "samples")

        total, values = self.total_steps, {}
        start_step, start_time = int(step_counter.numpy()), time.time()
        profiler = StepProfiler(options.profile_steps if is_chief else None, os.path.join(model_dir, "logs"))
        while int(step_counter.numpy()) < total:
            guard.before_step()
            profiler.before(int(step_counter.numpy()) + 1)
            with batches.naming_bad_records(model, self.splits), distribute.naming_lost_workers(
                    self.strategy, int(step_counter.numpy()) + 1, last_saved):
                losses, losses_finite = step_fn(iterator)
            step = int(step_counter.numpy())
            profiler.after(step)
            if not guard.after_step(step, losses, losses_finite, last_saved):
                checkpoint.skipped_steps.assign_add(1)
                print(f"step {step}: skipped ({nonfinite.describe_losses(losses)}; --on_nan=skip_step), "
                      f"{int(checkpoint.skipped_steps)} skipped so far", flush=True)
            if step % options.log_every == 0 or step == total:
                values = {name: float(value) for name, value in losses.items()}
                rate = (step - start_step) / max(time.time() - start_time, 1e-9)
                print(progress_line(step, total, rate, values, options.global_batch_size), flush=True)
                if is_chief:
                    rates = {f"learning_rate/{k}": float(keras.ops.convert_to_numpy(v))
                             for k, v in model.learning_rates().items()}
                    skipped = ({"train/skipped_steps": int(checkpoint.skipped_steps)}
                               if options.on_nan == "skip_step" else {})
                    summaries.write_scalars({f"loss/{k}": v for k, v in values.items()} | rates | skipped,
                                            step, writer)
            if is_chief and (step % options.image_every == 0 or step == total):
                summaries.write_grid(summaries.image_grid(sample_fn(sample_batch)), step, writer, samples_dir)
            if is_chief and eval_batches and (step % options.eval_every == 0 or step == total):
                metrics = mean_metrics([eval_fn(numeric(batch)) for batch in eval_batches])
                if metrics:
                    summaries.write_scalars(metrics, step, eval_writer, prefix="eval/")
                    print(f"eval at step {step}: " + "  ".join(f"{k}={v:.4g}" for k, v in metrics.items()),
                          flush=True)
            if step % options.checkpoint_every == 0 or step == total:
                guard.check_state(step, "a checkpoint", last_saved)
                last_saved = manager.save(step)
                print(f"saved checkpoint {last_saved}", flush=True)
        profiler.stop()
        writer.flush()
        eval_writer.flush()
        step = int(step_counter.numpy())
        skipped = int(checkpoint.skipped_steps)
        skipped_text = f" ({skipped} step(s) dropped for non-finite values)" if skipped else ""
        print(f"Training done at step {step}{skipped_text}. TensorBoard: tensorboard "
              f"--logdir={model_dir}/logs  samples: {samples_dir}", flush=True)
        if model.finish_training(self.ordered_batches):
            guard.check_state(step, "a checkpoint", last_saved)
            last_saved = manager.save(step)
            print(f"saved checkpoint {last_saved} (with the state computed after training)", flush=True)
        # What the caller exports next is what was checked and saved last.
        guard.check_state(step, "the export", last_saved)
        self.last_checkpoint = last_saved
        return values

    def _restore_or_warm_start(self, checkpoint, manager) -> tuple[str, str | None]:
        """Resumes from the newest checkpoint that restores, else warm-starts or starts afresh.

        Returns:
          (what was done, for the log; the checkpoint restored or None).
        """
        import tensorflow as tf

        if manager.checkpoints:
            if not run_dir.holds_training_state(manager.checkpoints[-1]):
                # An import (tfsynth.import_weights): networks only; optimizers and data start afresh.
                networks = tf.train.Checkpoint(step=checkpoint.step, **self.model.networks,
                                               **self.model.extra_state())
                path = run_dir.restore_newest(networks, manager.checkpoints[-1:], log=_say)
                return f"started from the imported weights {path}", path
            path = run_dir.restore_newest(checkpoint, manager.checkpoints, log=_say)
            return f"resumed from {path}", path
        if run_dir.checkpoint_files(manager.chief.directory):  # never start over on top of them
            raise run_dir.RunDirError(f"--model_dir={self.options.model_dir}: {manager.chief.directory} holds "
                                      "checkpoints this run cannot find; move them away to start over")
        if self.options.init_from:
            copied, skipped = warm_start(self.model, self.options.init_from)
            return (f"warm start from {self.options.init_from}: {copied} layers copied, "
                    f"skipped {skipped or 'none'}"), None
        return "from scratch", None

    def _fixed_batches(self, examples: int):
        """(batches for grids or eval metrics: --eval_data, else the train data's val/test split
        or its train split; the splits read)."""
        options = self.options
        data_dir = (pipelines.resolve_data_dir(options.eval_data, options.seed) if options.eval_data
                    else self.data_dir)
        return batches.fixed_batches(self.model, data_dir, options.train_split, examples)

    def _write_config(self) -> None:
        splits = self.splits.values()
        run_dir.write_config(self.options.model_dir, {
            "model": self.spec.name,
            "hparams": config_lib.to_dict(self.config),
            "runtime": self.options.runtime(),
            "data": {"dir": self.data_dir, "splits": {split.name: split.count for split in splits},
                     "shards": {split.name: len(split.files) for split in splits},
                     "shard_bytes": {split.name: run_dir.shard_bytes(split.files) for split in splits},
                     "label_space": self.label_space},
            **{key: self.resumed[key] for key in ("imported",) if key in (self.resumed or {})},
        })

    def _print_start(self, origin: str) -> None:
        options = self.options
        split_text = ", ".join(f"{stream + ' = ' if stream else ''}{split.name}: {split.count}"
                               for stream, split in self.splits.items())
        print_summary(f"{self.spec.name}: {self.spec.summary}", network_rows(self.model, self.loss_networks) + [
            ("data", f"{self.data_dir} [{split_text} examples, {self.label_space}]"),
            ("strategy", f"{type(self.strategy).__name__}, {self.strategy.num_replicas_in_sync} replica(s), "
                         f"XLA {'on' if self.jit else 'off'}, precision {self.precision} ({self.precision_reason})"),
            *([("memory", f"--recompute: {self.model.recomputes}, recomputed in the backward pass")]
              if options.recompute else []),
            ("steps", f"{self.total_steps} x global batch {options.global_batch_size}"),
            ("model_dir", f"{options.model_dir} ({origin})"),
        ] + hparam_rows(self.config))


def prepare(options: TrainOptions) -> Run:
    """Builds the run ``options`` describe: every check first, then the model, its data, its
    loss networks and optimizers (in the strategy's scope).

    With ``options.model_dir`` (training) it also refuses a resume with another model,
    hyper-parameters or data, and only then creates the directory and copies the family's run
    files into it; without (``bench``) it writes nothing.
    """
    import keras
    import tensorflow as tf

    model_dir = options.model_dir
    if model_dir and os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise TrainingError(f"--model_dir={model_dir} is a file, not a run directory")
    saved = run_dir.resumed_config(model_dir) if model_dir else None
    options = with_resumed_model(options, saved)
    spec = registry.get(options.model)
    config = model_config(options, saved)
    if options.recompute and not spec.load().recomputes:
        raise TrainingError(f"--recompute: {spec.name} has no network it can recompute (its dropout masks or "
                            "batch statistics would change when run again)")
    run_dir.check_resume_config(saved, model_dir, spec.name, config)
    strategy = distribute.make_strategy(options.strategy, options.cpu_devices, options.worker_timeout, log=_say)
    if options.global_batch_size % strategy.num_replicas_in_sync:
        raise TrainingError(f"--global_batch_size={options.global_batch_size} must be divisible "
                            f"by the {strategy.num_replicas_in_sync} replicas")
    precision, precision_reason = distribute.resolve_precision(options.mixed_precision)
    distribute.set_precision(precision)
    keras.utils.set_random_seed(options.seed)
    if options.deterministic:
        tf.config.experimental.enable_op_determinism()
    jit = distribute.resolve_jit_compile(options.jit_compile)

    data_dir = pipelines.resolve_data_dir(options.train_data, options.seed)
    label_space = tfrecord.read_dataset_json(data_dir).get("label_space") or "cityscapes35"
    with strategy.scope():
        model = build_model(spec, config, label_space)
    splits = batches.training_splits(model, data_dir, options.train_split)
    batches.check_data_fits_model(model, splits)
    examples = max(split.count for split in splits.values())  # an epoch covers the larger domain
    steps_per_epoch = max(1, examples // options.global_batch_size)
    total_steps = None
    if model_dir:
        total_steps = resolve_steps(options, examples)
        run_dir.check_resume_data(saved, model_dir, train_data=options.train_data, data_dir=data_dir,
                                  global_batch_size=options.global_batch_size, splits=splits)
        os.makedirs(model_dir, exist_ok=True)
        run_dir.copy_run_files(model, model_dir)  # after the checks: a refused resume leaves the run untouched
    with strategy.scope():
        loss_networks = model.prepare_training(
            steps_per_epoch=steps_per_epoch, float16_loss_scaling=precision == "float16", seed=options.seed)
        if options.recompute:
            model.enable_recompute()
    return Run(options=options, spec=spec, config=config, model=model, strategy=strategy, precision=precision,
               precision_reason=precision_reason, jit=jit, data_dir=data_dir, label_space=label_space,
               splits=splits, loss_networks=loss_networks, total_steps=total_steps, resumed=saved)
