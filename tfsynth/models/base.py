"""What every model family shares: networks, optimizers, and one generic training step.

A family subclasses :class:`SynthesisModel` and supplies

* its networks in ``self.networks`` (what is trained, checkpointed and counted),
* ``optimizer_groups()``: which loss trains which variables with which optimizer,
* ``compute_losses(batch)``: the paper's objective as a dict of scalar losses,
* ``generate(inputs)``: the deployed generator with its pre- and post-processing,
* ``sample_columns(batch)``: the image columns of its TensorBoard grid.

The training step itself (gradient tapes, replica scaling, loss scaling, optional XLA on the
per-replica gradient function) lives here once, so entry points need no per-model branches.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import keras
import tensorflow as tf


@dataclasses.dataclass
class OptimizerGroup:
    """One optimizer minimising one loss over some variables.

    Attributes:
      loss: key of the loss in ``compute_losses``' result.
      optimizer: the Keras optimizer (built on ``variables`` by the model).
      variables: callable returning the trainable variables this group updates.
    """

    loss: str
    optimizer: keras.optimizers.Optimizer
    variables: Callable[[], list]


def numeric(batch):
    """The batch without its string record keys (they are for error messages; XLA takes none)."""
    return {name: numeric(value) if isinstance(value, dict) else value
            for name, value in batch.items() if isinstance(value, dict) or value.dtype != tf.string}


def scale_for_replicas(loss):
    """Scales a local-batch mean loss so that SUM-reduced gradients equal the global mean.

    Keras optimizers all-reduce gradients with SUM across replicas, so each replica must
    contribute ``local_mean / num_replicas`` (``tf.nn.compute_average_loss`` semantics; local
    batches are equal because the pipeline drops remainders). This is the only place where
    losses are scaled for distribution.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / tf.cast(replicas, loss.dtype) if replicas > 1 else loss


class SynthesisModel(keras.Model):
    """Base class of the model families; see the module docstring.

    Args:
      config: the family's frozen config dataclass.
      source_label_space: label space of the data the model reads (``dataset.json``).
    """

    config_class: type = None
    #: "label_to_image", "image_to_image" or "unconditional": selects the export signatures.
    export_kind: str = "label_to_image"
    #: The label space the networks consume, when it differs by family (CRN: cityscapes20).
    label_space: str | None = None
    #: What the model reads from each record besides ``image``.
    uses_label: bool = True
    uses_instance: bool = False
    uses_target: bool = False

    def __init__(self, config, source_label_space: str = "cityscapes35", **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.source_label_space = source_label_space
        self.networks: dict[str, keras.Model] = {}
        if self.label_space:
            from tfsynth.data import labels

            self.num_classes = labels.get_label_space(self.label_space).num_classes
            self.label_lut = tf.constant(labels.mapping_table(source_label_space, self.label_space))
        self._gradient_fn = self._compute_gradients
        # fit() never calls the model, so Keras would consider it unbuilt.
        self.built = True

    @property
    def num_outputs(self) -> int:
        """Images rendered per input (CRN renders K at once)."""
        return getattr(self.config, "num_outputs", 1)

    @property
    def size_multiple(self) -> int:
        """Input heights and widths must be multiples of this (the total downsampling)."""
        return 1

    @property
    def training_size(self) -> tuple[int, int] | None:
        """(height, width) the model trains at: ``config.image_size``, or a square ``crop_size``."""
        size = getattr(self.config, "image_size", None)
        if size:
            return tuple(size)
        crop = getattr(self.config, "crop_size", None)
        if not crop:
            return None
        return tuple(crop) if isinstance(crop, (tuple, list)) else (crop, crop)

    # ------------------------------------------------------------------ family interface
    def optimizer_groups(self) -> list[OptimizerGroup]:
        raise NotImplementedError

    def compute_losses(self, batch: dict, training: bool = True) -> dict:
        raise NotImplementedError

    def generate(self, inputs: dict):
        """Deployed generator: float images [N, K, H, W, 3] on the 0..255 scale."""
        raise NotImplementedError

    def translation_names(self) -> list[str]:
        """image_to_image models: the named translations to export (the first is the default)."""
        raise NotImplementedError

    def translate(self, name: str, images):
        """image_to_image models: uint8 [N, H, W, 3] -> float [N, H, W, 3] on the 0..255 scale."""
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
        """``fn(example, seed) -> example`` for tf.data; by default resize to ``config.image_size``."""
        size = getattr(self.config, "image_size", None)
        if size is None:
            return None
        from tfsynth.data import transforms

        return lambda example, seed: transforms.resize(example, tuple(size))

    def build_loss_networks(self) -> dict:
        """Creates frozen networks used only by the losses (VGG); returns them by name."""
        return {}

    def eval_metrics(self, batch: dict) -> dict:
        """Cheap metrics for ``--eval_every`` (batch means): for label -> image models PSNR and
        SSIM of the first output against the real photo, and the mean pairwise pixel distance
        between the outputs of multi-output models. Families may add their own."""
        if self.export_kind != "label_to_image":
            return {}
        images = tf.clip_by_value(self.generate(batch), 0.0, 255.0)  # [B, K, H, W, 3]
        real = tf.cast(batch["image"], tf.float32)
        metrics = {"psnr": tf.reduce_mean(tf.image.psnr(images[:, 0], real, 255.0)),
                   "ssim": tf.reduce_mean(tf.image.ssim(images[:, 0], real, 255.0))}
        outputs = images.shape[1]
        if outputs and outputs > 1:
            pairs = [tf.reduce_mean(tf.abs(images[:, i] - images[:, j]))
                     for i in range(outputs) for j in range(i + 1, outputs)]
            metrics["diversity_pixel_l1"] = tf.add_n(pairs) / len(pairs)
        return metrics

    def extra_state(self) -> dict:
        """Trackables besides networks and optimizers that a checkpoint must hold."""
        return {}

    # ------------------------------------------------------------------ training machinery
    def prepare_training(self, steps_per_epoch: int = 1, float16_loss_scaling: bool = False) -> dict:
        """Builds the loss networks, then every optimizer on its own variables, now.

        ``steps_per_epoch`` lets epoch-based schedules (linear decay) count in steps.
        Returns the loss networks by name (for the start-up summary).

        Lazily built optimizers break under MirroredStrategy and lose their state on restore
        (TF_NOTES Q1, Q6), so this runs inside the strategy scope before the first step.
        """
        self.steps_per_epoch = steps_per_epoch
        loss_networks = self.build_loss_networks()
        self._groups = self.optimizer_groups()
        for group in self._groups:
            if float16_loss_scaling:
                group.optimizer = keras.optimizers.LossScaleOptimizer(group.optimizer)
            group.optimizer.build(group.variables())
        return loss_networks

    @property
    def optimizers(self) -> dict[str, keras.optimizers.Optimizer]:
        return {group.loss: group.optimizer for group in self._groups}

    def enable_xla(self) -> None:
        """Jit-compiles the per-replica gradient computations only.

        Compiling the whole distributed step fails under MirroredStrategy (TF_NOTES Q1); the
        all-reduce and optimizer update stay outside XLA.
        """
        self._xla = True
        self._gradient_fn = tf.function(self._compute_gradients, jit_compile=True)

    # Sequential updates (GANs: D then G, or G then D, as each paper's code orders them) are
    # written in a family's own ``train_step`` with these two helpers.
    def group_gradients(self, loss_name: str, loss_fn, *args):
        """Gradients of ``loss_fn(*args)[0][loss_name]`` for that group's variables.

        ``loss_fn`` returns ``(losses, extras)``: a dict of scalar losses (local-batch means)
        and any tensors the caller needs next (e.g. generated images). Under XLA the whole
        computation is compiled, per replica.

        Returns:
          (gradients, losses, extras).
        """
        group = self._group(loss_name)

        def compute(*inner):
            with tf.GradientTape() as tape:
                losses, extras = loss_fn(*inner)
                scaled = group.optimizer.scale_loss(scale_for_replicas(losses[loss_name]))
            return tape.gradient(scaled, group.variables()), losses, extras

        if getattr(self, "_xla", False):
            compute = tf.function(compute, jit_compile=True)
        return compute(*args)

    def apply_group_gradients(self, loss_name: str, gradients) -> None:
        group = self._group(loss_name)
        group.optimizer.apply_gradients(zip(gradients, group.variables()))

    def _group(self, loss_name: str) -> OptimizerGroup:
        for group in self._groups:
            if group.loss == loss_name:
                return group
        raise KeyError(f"no optimizer group for loss {loss_name!r}")

    def _compute_gradients(self, batch):
        with tf.GradientTape(persistent=True) as tape:
            losses = self.compute_losses(batch, training=True)
            scaled = [
                group.optimizer.scale_loss(scale_for_replicas(losses[group.loss]))
                for group in self._groups
            ]
        gradients = [tape.gradient(loss, group.variables()) for loss, group in zip(scaled, self._groups)]
        del tape
        return gradients, losses

    def train_step(self, batch):
        """One optimisation step on this replica's share of the batch; returns its losses.

        The default updates every group from one forward pass; families whose paper orders the
        updates override this with ``group_gradients`` / ``apply_group_gradients``.
        """
        gradients, losses = self._gradient_fn(numeric(batch))
        for group, grads in zip(self._groups, gradients):
            group.optimizer.apply_gradients(zip(grads, group.variables()))
        return losses

    def learning_rates(self) -> dict:
        return {name: optimizer.learning_rate for name, optimizer in self.optimizers.items()}

    def checkpoint_items(self) -> dict:
        items = dict(self.networks)
        items.update({f"optimizer_{name}": opt for name, opt in self.optimizers.items()})
        items.update(self.extra_state())
        return items

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per network (running statistics are buffers, as the papers count)."""
        return {name: sum(int(math.prod(w.shape)) for w in net.trainable_weights)
                for name, net in self.networks.items()}
