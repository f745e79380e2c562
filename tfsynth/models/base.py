"""What every model family shares: the family contract.

A family subclasses :class:`SynthesisModel` and declares

* ``networks``: what is trained, checkpointed and counted by ``--dry_run``;
* ``training_size`` and ``num_outputs`` (constructor arguments): the size it trains at and the
  images it renders per input;
* ``record_fields``: which fields of a record its batches carry (``image``, ``label`` ...);
* ``optimizer_groups(steps_per_epoch)``: which loss trains which variables with which
  optimizer, and from which step to which (a family whose recipe changes optimizers mid-run
  lists both phases; epoch-based schedules count in ``steps_per_epoch``);
* ``compute_losses(batch)`` (or its own ``train_step``): the paper's objective, on batches
  whose string record keys the loop has stripped; its random draws come from the base's
  ``step_seed`` / ``replica_seed`` / ``example_seeds``, never from a global generator;
* ``serving_endpoints()``: what it serves (:mod:`tfsynth.endpoints`), each with the function
  that computes it; ``serving_state_keys`` names the state an export holds;
* optionally ``extra_state()`` (checkpointed, not trained: image pools, EMA weights),
  ``run_files()`` (files training reads besides the records, which the run directory copies;
  the family reads ``run_file(name)``, checked by ``check_run_file``) and
  ``finish_training(data)`` (work after the last step whose result the export carries).

Export, infer, evaluate and the training loop derive everything else from these, so an entry
point never names a family. The training step itself (gradient tapes, replica scaling, loss
scaling, optional XLA on the per-replica gradient function) lives once in
:mod:`tfsynth.gradients`, a mixin of :class:`SynthesisModel`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Callable

import keras
import tensorflow as tf

from tfsynth.endpoints import Endpoint
from tfsynth.gradients import GradientEngine
from tfsynth.records import record_can_feed, record_source

#: Room for the examples of one step in an example's seed (updates so far * this + index).
MAX_GLOBAL_BATCH = 2**16


@dataclasses.dataclass
class OptimizerGroup:
    """One optimizer minimising one loss over some variables, during some steps.

    Attributes:
      loss: key of the loss it minimises, in the losses a step returns.
      optimizer: the Keras optimizer (built on ``variables`` by the model).
      variables: callable returning the trainable variables this group updates.
      name: the group's name in checkpoints and ``learning_rate/<name>`` summaries ("G", "D").
      start_step, stop_step: the group updates at steps ``start_step <= step < stop_step``
        (``None``: to the end). Groups of later phases are built, checkpointed and restored
        from the start, so a resume across a switch finds their state.
    """

    loss: str
    optimizer: keras.optimizers.Optimizer
    variables: Callable[[], list]
    name: str = "G"
    start_step: int = 0
    stop_step: int | None = None

    def active_at(self, step: int) -> bool:
        return self.start_step <= step and (self.stop_step is None or step < self.stop_step)


class SynthesisModel(GradientEngine, keras.Model):
    """Base class of the model families; see the module docstring.

    Args:
      config: the family's frozen config dataclass.
      source_label_space: label space of the data the model reads (``dataset.json``).
      training_size: (height, width) the model trains at, which exports record and evaluate
        feeds inputs at; the default ``example_transform`` resizes to it. None: no one size.
      num_outputs: images rendered per input (CRN renders K at once).
    """

    config_class: type = None
    #: The label space the networks consume, when it differs by family (CRN: cityscapes20).
    label_space: str | None = None
    #: Keys of ``networks`` / ``extra_state()`` that an export holds (never discriminators,
    #: pools or optimizer slots).
    serving_state_keys: tuple[str, ...] = ("generator",)
    #: What ``--recompute`` recomputes in the backward pass instead of keeping (the networks run
    #: through :meth:`run_network`, and the VGG loss network stage by stage), for the log; None:
    #: the flag is refused. Never a network with dropout or batch statistics, which would draw
    #: other masks or update its statistics again when recomputed.
    recomputes: str | None = None

    def __init__(self, config, source_label_space: str = "cityscapes35", *,
                 training_size: tuple[int, int] | None = None, num_outputs: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.source_label_space = source_label_space
        self.training_size = tuple(training_size) if training_size else None
        self.num_outputs = num_outputs
        self.networks: dict[str, keras.Model] = {}
        if self.label_space:
            from tfsynth.data import labels

            self.num_classes = labels.get_label_space(self.label_space).num_classes
            self.label_lut = tf.constant(labels.mapping_table(source_label_space, self.label_space))
        self._recompute = False
        self._loss_networks: dict = {}
        #: Where ``run_files`` were copied (set by ``run_dir.copy_run_files``); None outside a run.
        self.run_files_dir: str | None = None
        # The run's seed, checkpointed: a resume draws as the run it continues, whatever --seed.
        self.training_seed = tf.Variable(0, dtype=tf.int64, trainable=False, name="training_seed")
        # fit() never calls the model, so Keras would consider it unbuilt.
        self.built = True

    @property
    def size_multiple(self) -> int:
        """Input heights and widths must be multiples of this (the total downsampling)."""
        return 1

    @property
    def latent_size(self) -> int | None:
        """Length of the latent vectors of unconditional models (``latent`` inputs); None otherwise."""
        return None

    @property
    def record_fields(self) -> tuple[str, ...]:
        """Fields of each record the model reads (``image``, ``label``, ``instance``, ``target``)."""
        return ("image", "label")

    # ------------------------------------------------------------------ family interface
    def optimizer_groups(self, steps_per_epoch: int) -> list[OptimizerGroup]:
        """The optimizer groups of every phase; ``steps_per_epoch`` converts epoch-based
        schedules (linear decay, phase switches) to steps."""
        raise NotImplementedError

    def compute_losses(self, batch: dict, training: bool = True) -> dict:
        """The objective as a dict of scalar local-batch means (``total`` is the generator's);
        families whose paper orders several updates write ``train_step`` instead."""
        raise NotImplementedError

    def serving_endpoints(self) -> dict[Endpoint, Callable]:
        """What the export serves: each :class:`Endpoint` with its function, which takes the
        declared inputs by name (as tensors of the declared dtypes) and returns the declared
        outputs as float tensors on the 0..255 scale (``label``: integer ids). The first
        endpoint is also ``serving_default``."""
        raise NotImplementedError

    def sample_columns(self, batch: dict) -> list:
        """uint8 [B, H, W, 3] tensors tiled left to right in the sample grid."""
        raise NotImplementedError

    def label_ids(self, source_ids):
        """Ids in the data's label space -> ids in the model's ``label_space`` (one table lookup)."""
        return tf.gather(self.label_lut, tf.cast(source_ids, tf.int32))

    def input_splits(self, split: str) -> dict[str, str]:
        """Which dataset split feeds each input stream.

        Paired models read one stream, ``{"": split}``, and get plain batches. Unpaired families
        return ``{domain: split}`` (e.g. ``{"A": "trainA", "B": "trainB"}``); each stream is
        shuffled on its own seed, even when two read the same split, and batches arrive as
        ``{domain: batch}``.
        """
        return {"": split}

    def example_transform(self, training: bool):
        """``fn(example, seed) -> example`` for tf.data; by default resize to ``training_size``."""
        if self.training_size is None:
            return None
        from tfsynth.data import transforms

        return lambda example, seed: transforms.resize(example, self.training_size)

    def run_files(self) -> dict[str, str | bytes]:
        """The files training reads besides the records (a style image, LPIPS weights): each
        one's name in the run directory, with its source, a path or the content itself (a
        built-in default). ``run_dir.copy_run_files`` copies them into the run, so that a
        resume, an export or a moved run never depends on the original path."""
        return {}

    def check_run_file(self, name: str, path: str) -> None:
        """Raises ``tfrecord.DataError`` naming ``path`` when it is no usable ``name`` (a source
        is checked before it is copied, a copy in the run before it is used again); by default
        every readable file is."""
        del name, path

    def run_file(self, name: str) -> str | None:
        """The path to read the run file ``name`` from: the run directory's copy once
        ``run_dir.copy_run_files`` made it, else its source (a model used outside a run); None
        when ``run_files`` does not name it, or gives its content and it is not copied yet."""
        source = self.run_files().get(name)
        if source is not None and self.run_files_dir is not None:
            return os.path.join(self.run_files_dir, name)
        return source if isinstance(source, str) else None

    def serving_metadata(self) -> dict:
        """Facts about the serving state that a client needs to build an endpoint's inputs, beyond
        the declaration (pix2pixHD: how many cluster styles each class offers); JSON values,
        recorded in ``tfsynth_export.json`` beside the endpoints."""
        return {}

    def build_loss_networks(self) -> dict:
        """Creates frozen networks used only by the losses (VGG); returns them by name."""
        return {}

    def extra_state(self) -> dict:
        """Trackables besides networks and optimizers that a checkpoint must hold (image pools,
        EMA weights, cluster centres); those named in ``serving_state_keys`` are exported too."""
        return {}

    def finish_training(self, make_dataset: Callable) -> bool:
        """Work after the last training step whose result the export carries (pix2pixHD's
        K-means over encoded features). ``make_dataset(split)`` gives unshuffled, unaugmented
        batches of the training data. Runs again on a rerun of a finished run, so it must be
        repeatable. Returns whether it changed checkpointed state (then it is saved again)."""
        del make_dataset
        return False

    # ------------------------------------------------------------------ derived from the above
    def serving_state(self) -> dict:
        """What an export holds and restores, by checkpoint key: Keras layers or models (a
        family keeps non-network serving state, e.g. cluster centres, as a layer's weights)."""
        state = {**self.networks, **self.extra_state()}
        missing = [key for key in self.serving_state_keys if key not in state]
        if missing:
            raise KeyError(f"{type(self).__name__}.serving_state_keys names {missing}, which are "
                           "neither networks nor extra_state")
        not_layers = [key for key in self.serving_state_keys if not isinstance(state[key], keras.layers.Layer)]
        if not_layers:
            # An export lists (and TF Serving restores) the variables of Keras layers only.
            raise TypeError(f"{type(self).__name__}: serving state {not_layers} must be Keras layers or models")
        return {key: state[key] for key in self.serving_state_keys}

    def serving_variables(self) -> list:
        """Every variable an export holds."""
        return [variable for item in self.serving_state().values() for variable in item.weights]

    def endpoint(self, name: str | None = None):
        """(Endpoint, function) by signature name; the first endpoint for None or serving_default."""
        endpoints = self.serving_endpoints()
        if name in (None, "serving_default"):
            return next(iter(endpoints.items()))
        for endpoint, function in endpoints.items():
            if endpoint.name == name:
                return endpoint, function
        raise KeyError(f"{type(self).__name__} has no endpoint {name!r}; it serves "
                       f"{', '.join(e.name for e in endpoints)}")

    def record_inputs(self, endpoint: Endpoint, batch: dict) -> dict:
        """The inputs of ``endpoint`` taken from a batch of records (``Input.source``); optional
        inputs the batch cannot feed are left out. A ``latent`` input fed from ``index`` gets
        the latents of those seeds (``seeded.latents_from_seeds``), as a ``seed`` input would."""
        inputs = {}
        for spec in endpoint.inputs:
            if not record_can_feed(batch, spec):
                continue
            value = record_source(batch, spec.source, self.source_label_space, endpoint.scale)
            if spec.kind == "latent":
                from tfsynth import seeded

                value = seeded.latents_from_seeds(value, self.latent_size)
            inputs[spec.name] = value
        return inputs

    def eval_metrics(self, batch: dict) -> dict:
        """Cheap metrics for ``--eval_every`` (batch means), from the default endpoint: PSNR and
        SSIM of its image against the reference it declares, and the mean pairwise pixel
        distance between the outputs of multi-output endpoints."""
        endpoint, function = self.endpoint()
        # Unpaired batches ({domain: batch}) hold no pairs to compare.
        if endpoint.reference is None or "image" not in endpoint.outputs or "image" not in batch:
            return {}
        outputs = function(**self.record_inputs(endpoint, batch))
        image = tf.clip_by_value(outputs["image"], 0.0, 255.0)
        real = tf.cast(record_source(batch, endpoint.reference, self.source_label_space), tf.float32)
        metrics = {"psnr": tf.reduce_mean(tf.image.psnr(image, real, 255.0)),
                   "ssim": tf.reduce_mean(tf.image.ssim(image, real, 255.0))}
        if "images" in outputs and outputs["images"].shape[1] > 1:
            images = tf.clip_by_value(outputs["images"], 0.0, 255.0)
            count = images.shape[1]
            pairs = [tf.reduce_mean(tf.abs(images[:, i] - images[:, j]))
                     for i in range(count) for j in range(i + 1, count)]
            metrics["diversity_pixel_l1"] = tf.add_n(pairs) / len(pairs)
        return metrics

    # ------------------------------------------------------------------ training machinery
    def prepare_training(self, steps_per_epoch: int = 1, float16_loss_scaling: bool = False, seed: int = 0) -> dict:
        """Builds the loss networks, then every optimizer (of every phase) on its own variables, now.

        ``steps_per_epoch`` goes to ``optimizer_groups``; ``seed`` (the run's ``--seed``) is where
        every random draw of a step starts (``step_seed``; a restored checkpoint brings its own).
        Returns the loss networks by name (for the start-up summary).

        Lazily built optimizers break under MirroredStrategy and lose their state on restore
        (docs/tensorflow-notes.md Q1, Q6), so this runs inside the strategy scope before the first step.
        """
        self.training_seed.assign(seed)
        loss_networks = self._loss_networks = self.build_loss_networks()
        self._groups = self.optimizer_groups(steps_per_epoch)
        names = [group.name for group in self._groups]
        if len(set(names)) != len(names):
            raise ValueError(f"{type(self).__name__}: optimizer group names must be unique, got {names}")
        for group in self._groups:
            if float16_loss_scaling:
                group.optimizer = keras.optimizers.LossScaleOptimizer(group.optimizer)
            group.optimizer.build(group.variables())
        self.enter_phase(0)
        return loss_networks

    # The random draws of a training step (dropout masks, latents, noise, augmentations) are pure
    # functions of these seeds, which derive from the run's seed and the checkpointed optimizer
    # steps alone: no global generator, so a resume draws exactly as the uninterrupted run.
    def step_seed(self, salt: int = 0):
        """This training step's seed pair (int64 [2]) for the draw ``salt``, the same on every
        replica: ``fold_in([run seed, updates so far], salt)``. Read it before the step's first
        update."""
        return _fold_in(tf.stack([self.training_seed.read_value(), self._updates_so_far()]), salt)

    def replica_seed(self, salt: int = 0):
        """This step's seed pair on this replica (int64 [2]): ``fold_in(step_seed(salt), replica)``,
        so that replicas draw independently (dropout masks of each replica's share)."""
        return _fold_in(self.step_seed(salt), _replica_id())

    def example_seeds(self, count: int):
        """Seed pairs (int64 [count, 2]) of this replica's ``count`` examples: ``[run seed, updates
        so far * MAX_GLOBAL_BATCH + the example's place in the global batch]``, so that one
        device and several draw alike for an example."""
        index = tf.cast(_replica_id() * count + tf.range(count), tf.int64)
        return tf.stack([tf.fill([count], self.training_seed.read_value()),
                         self._updates_so_far() * MAX_GLOBAL_BATCH + index], axis=1)

    def _updates_so_far(self):
        # Every group's optimizer steps: checkpointed, and growing at every step in every phase.
        return tf.add_n([tf.constant(0, tf.int64)] + [tf.cast(group.optimizer.iterations, tf.int64)
                                                       for group in self._groups])

    def enable_recompute(self) -> None:
        """``--recompute``: trade time for memory, as ``recomputes`` says (after
        ``prepare_training``; docs/performance.md has what it costs)."""
        from tfsynth.perceptual import VGGFeatures

        self._recompute = True
        for network in self._loss_networks.values():
            if isinstance(network, VGGFeatures):
                network.recompute = True

    def run_network(self, network: keras.Model, inputs, training: bool):
        """``network(inputs)``; with ``--recompute`` in training, its activations are not kept
        for the backward pass but recomputed there, after the networks that follow it have
        freed theirs: the peak holds the larger of the two sets, not both."""
        if training and self._recompute:
            return tf.recompute_grad(lambda x: network(x, training=True))(inputs)
        return network(inputs, training=training)

    def checkpoint_items(self) -> dict:
        items = dict(self.networks)
        items.update({f"optimizer_{name}": opt for name, opt in self.optimizers.items()})
        items.update(self.extra_state())
        return items

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per network (running statistics are buffers, as the papers count)."""
        return {name: sum(int(math.prod(w.shape)) for w in net.trainable_weights)
                for name, net in self.networks.items()}


def _fold_in(seed, data):
    """Another seed pair (int64 [2]) from ``seed`` and ``data``: philox's ``stateless_fold_in``."""
    return tf.cast(tf.random.experimental.stateless_fold_in(seed, data, alg="philox"), tf.int64)


def _replica_id():
    context = tf.distribute.get_replica_context()
    return context.replica_id_in_sync_group if context is not None else 0  # 0: cross-replica context


def moving_average_update(average: keras.Model, source: keras.Model, decay: float,
                          average_buffers: bool = True) -> None:
    """``average <- decay * average + (1 - decay) * source``, weight by weight (EMA of a
    generator: not trained, checkpointed, and exported instead of the raw weights).

    With ``average_buffers=False`` only the weights that are trainable in ``source`` are
    averaged and the others (batch-norm running statistics, spectral-norm vectors) are copied,
    as FastGAN's reference averages ``G.parameters()`` and leaves the buffers alone.
    """
    for target, value in zip(average.weights, source.weights):
        update = tf.cast(value, target.dtype)
        if average_buffers or value.trainable:
            update = decay * target + (1.0 - decay) * update
        target.assign(update)

