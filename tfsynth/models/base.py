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

    def __init__(self, config, source_label_space: str = "cityscapes35", **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.source_label_space = source_label_space
        self.networks: dict[str, keras.Model] = {}
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

    # ------------------------------------------------------------------ family interface
    def optimizer_groups(self) -> list[OptimizerGroup]:
        raise NotImplementedError

    def compute_losses(self, batch: dict, training: bool = True) -> dict:
        raise NotImplementedError

    def generate(self, inputs: dict):
        """Deployed generator: float images [N, K, H, W, 3] on the 0..255 scale."""
        raise NotImplementedError

    def sample_columns(self, batch: dict) -> list:
        """uint8 [B, H, W, 3] tensors tiled left to right in the sample grid."""
        raise NotImplementedError

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

    def extra_state(self) -> dict:
        """Trackables besides networks and optimizers that a checkpoint must hold."""
        return {}

    # ------------------------------------------------------------------ training machinery
    def prepare_training(self, float16_loss_scaling: bool = False) -> dict:
        """Builds the loss networks, then every optimizer on its own variables, now.

        Returns the loss networks by name (for the start-up summary).

        Lazily built optimizers break under MirroredStrategy and lose their state on restore
        (TF_NOTES Q1, Q6), so this runs inside the strategy scope before the first step.
        """
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
        """Jit-compiles the per-replica gradient computation only.

        Compiling the whole distributed step fails under MirroredStrategy (TF_NOTES Q1); the
        all-reduce and optimizer update stay outside XLA.
        """
        self._gradient_fn = tf.function(self._compute_gradients, jit_compile=True)

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
        """One optimisation step on this replica's share of the batch; returns its losses."""
        # Record keys (strings) are for error messages; XLA cannot take them as arguments.
        batch = {name: value for name, value in batch.items() if value.dtype != tf.string}
        gradients, losses = self._gradient_fn(batch)
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
        return {name: int(net.count_params()) for name, net in self.networks.items()}
