"""The gradient engine every family's training step runs on: gradient tapes, the scaling of
losses for replicas and for float16, optional XLA on the per-replica gradient function, and the
optimizer groups active at a step.

:class:`GradientEngine` is a mixin of :class:`tfsynth.models.base.SynthesisModel`: the default
``train_step`` updates every active group from one forward pass; families whose paper orders
the updates (GANs: D then G, or G then D) write their own ``train_step`` with
``group_gradients`` / ``apply_group_gradients`` (and ``tape_watching`` for a tape that spans
another group's update).
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf


def scale_for_replicas(loss):
    """Scales a local-batch mean loss so that SUM-reduced gradients equal the global mean:
    ``loss / replicas``.

    Keras optimizers all-reduce gradients with SUM across replicas, so each replica must
    contribute ``local_mean / num_replicas`` (``tf.nn.compute_average_loss`` semantics; local
    batches are equal because the pipeline drops remainders). With :func:`global_batch_sum`,
    the only place where losses are scaled for distribution.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / tf.cast(replicas, loss.dtype) if replicas > 1 else loss


def global_batch_sum(values):
    """A loss that sums per-example ``values`` [N] over the global batch, as a reference
    written for one device does (``.sum()``): ``mean(values) * N * replicas``, which
    :func:`scale_for_replicas` turns back into this replica's share of the sum."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return tf.reduce_mean(values) * tf.cast(tf.shape(values)[0] * replicas, values.dtype)


@contextlib.contextmanager
def tape_watching(variables):
    """A gradient tape that records only what depends on ``variables``: it can span another
    optimizer group's update (GAN steps that take G's loss through the just-updated D) without
    keeping any of that update's intermediates."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch([variable.value for variable in variables])
        yield tape


class GradientEngine:
    """Computes and applies the gradients of the optimizer groups active at a step.

    Expects ``compute_losses`` (the default step's objective) and sets ``self._groups`` (every
    ``OptimizerGroup``, built by ``prepare_training``) and ``self._active`` (this phase's).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._groups = []
        self._active = []
        self._xla = False
        self._gradient_fn = self._compute_gradients

    def enter_phase(self, step: int) -> tuple[str, ...]:
        """Activates the groups that update at ``step``; returns their names (the phase's key:
        the training loop traces one step function per phase)."""
        self._active = [group for group in self._groups if group.active_at(step)]
        return tuple(group.name for group in self._active)

    @property
    def optimizers(self) -> dict[str, keras.optimizers.Optimizer]:
        return {group.name: group.optimizer for group in self._groups}

    def learning_rates(self) -> dict:
        return {name: optimizer.learning_rate for name, optimizer in self.optimizers.items()}

    def enable_xla(self) -> None:
        """Jit-compiles the per-replica gradient computations only.

        Compiling the whole distributed step fails under MirroredStrategy (docs/tensorflow-notes.md Q1); the
        all-reduce and optimizer update stay outside XLA.
        """
        self._xla = True
        self._gradient_fn = tf.function(self._compute_gradients, jit_compile=True)

    def group_gradients(self, loss_name: str, loss_fn, *args):
        """Gradients of ``loss_fn(*args)[0][loss_name]`` for the active group minimising it.

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

        if self._xla:
            compute = tf.function(compute, jit_compile=True)
        return compute(*args)

    def scale_group_loss(self, loss_name: str, loss):
        """``loss`` as the active group minimising it differentiates it (replica scaling, then
        loss scaling): for a family that records a loss on its own tape, e.g. because another
        group updates between the forward pass and the loss (FastGAN's G after D)."""
        return self._group(loss_name).optimizer.scale_loss(scale_for_replicas(loss))

    def apply_group_gradients(self, loss_name: str, gradients) -> None:
        group = self._group(loss_name)
        group.optimizer.apply_gradients(zip(gradients, group.variables()))

    def _group(self, loss_name: str):
        for group in self._active:
            if group.loss == loss_name:
                return group
        raise KeyError(f"no active optimizer group for loss {loss_name!r}")

    def _compute_gradients(self, batch):
        with tf.GradientTape(persistent=True) as tape:
            losses = self.compute_losses(batch, training=True)
            scaled = [
                group.optimizer.scale_loss(scale_for_replicas(losses[group.loss]))
                for group in self._active
            ]
        gradients = [tape.gradient(loss, group.variables()) for loss, group in zip(scaled, self._active)]
        del tape
        return gradients, losses

    def train_step(self, batch):
        """One optimisation step on this replica's share of the batch; returns its losses.

        The default updates every active group from one forward pass; families whose paper
        orders the updates override this with ``group_gradients`` / ``apply_group_gradients``.
        """
        gradients, losses = self._gradient_fn(batch)
        for group, grads in zip(self._active, gradients):
            group.optimizer.apply_gradients(zip(grads, group.variables()))
        return losses

