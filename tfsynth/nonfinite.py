"""``--on_nan``: a NaN or infinity never reaches a checkpoint or an export.

Three checks, priced by how often they run:

* every step, the losses are reduced to one boolean inside the traced step; reading it adds no
  wait, since the loop reads the step counter after every step anyway;
* before every checkpoint and the export, every variable of the checkpointed state is checked:
  an update can overflow the weights while the losses it came from were finite, and then the
  next checkpoint would hold infinities (a pass over the weights, at checkpoint rate only);
* ``skip_step`` alone keeps a copy of that state, refreshed before each step and put back after
  a step whose losses or updated state are not finite, so the step is dropped whichever family's
  ``train_step`` made it (GAN steps update several optimizers in sequence, so making each update
  conditional would need every family's cooperation). It costs a second copy of the weights and
  optimizer slots in memory and two passes over them per step, paid only when asked for.
"""

from __future__ import annotations

import math

POLICIES = ("stop", "skip_step")

#: ``skip_step`` gives up after this many dropped steps in a row: a state whose every batch
#: gives NaN has diverged, and going back to it again and again cannot recover.
MAX_SKIPPED_IN_A_ROW = 10


class NonFiniteError(ValueError):
    """Training produced a NaN or infinity; the message names the step and the loss or variable."""


def state_variables(items: dict) -> list[tuple[str, object]]:
    """``(name, tf.Variable)`` for every variable under ``items`` (by checkpoint key: networks,
    optimizers, extra state), distributed variables split into their per-device parts so that a
    copy restores each replica's own value (image pools differ per replica)."""
    import keras
    import tensorflow as tf

    found, seen = [], set()
    for key, item in items.items():
        view = tf.train.TrackableView(item)
        for node in view.descendants():
            if isinstance(node, keras.Variable):
                name, variable = node.path, node.value
            elif isinstance(node, tf.Variable):
                name, variable = node.name, node
            else:
                continue
            for part in getattr(variable, "values", (variable,)):
                if id(part) not in seen:
                    seen.add(id(part))
                    found.append((f"{key}/{name}", part))
    return found


def describe_losses(losses: dict) -> str:
    """The non-finite terms of ``losses`` (tensors), e.g. ``loss p0=nan, total=nan``."""
    values = {name: float(value) for name, value in losses.items()}
    bad = {name: value for name, value in values.items() if not math.isfinite(value)}
    return "non-finite loss " + ", ".join(f"{name}={value}" for name, value in bad.items())


class Guard:
    """Applies ``--on_nan`` to the training loop (see the module docstring).

    Args:
      items: what the checkpoint holds besides the step counter and the data position.
      policy: ``stop`` or ``skip_step``.
    """

    def __init__(self, items: dict, policy: str):
        import tensorflow as tf

        if policy not in POLICIES:
            raise ValueError(f"--on_nan must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.policy = policy
        self._variables = state_variables(items)
        floats = [variable for _, variable in self._variables if variable.dtype.is_floating]

        def all_finite():
            return tf.reduce_all([tf.reduce_all(tf.math.is_finite(variable)) for variable in floats])

        self._state_is_finite = tf.function(all_finite)
        self._copy, self._skipped_in_a_row = None, 0
        if policy == "skip_step":
            live = [variable for _, variable in self._variables]
            copies = []
            for variable in live:
                with tf.device(variable.device):
                    copies.append(tf.Variable(variable.read_value(), trainable=False))

            def keep():
                for copy, variable in zip(copies, live):
                    copy.assign(variable)

            def put_back():
                for copy, variable in zip(copies, live):
                    variable.assign(copy)

            self._copy, self._keep, self._put_back = copies, tf.function(keep), tf.function(put_back)

    def before_step(self) -> None:
        """``skip_step``: copies the state the step may have to be undone to."""
        if self._copy is not None:
            self._keep()

    def after_step(self, step: int, losses: dict, losses_finite, last_checkpoint: str | None) -> bool:
        """Whether step ``step`` stands. ``stop`` raises on a non-finite loss; ``skip_step`` puts
        the state from before the step back (also when the update made a weight non-finite) and
        returns False.

        Raises:
          NonFiniteError: under ``stop``, naming the step and the loss terms.
        """
        if bool(losses_finite) and (self._copy is None or bool(self._state_is_finite())):
            self._skipped_in_a_row = 0
            return True
        problem = describe_losses(losses) if not bool(losses_finite) else self.describe_state()
        if self._copy is None:
            raise NonFiniteError(f"step {step}: {problem}; stopped before saving it (--on_nan=stop). "
                                 f"{_kept(last_checkpoint)} Lower the learning rate, or rerun with "
                                 "--on_nan=skip_step to drop such steps")
        self._put_back()
        self._skipped_in_a_row += 1
        if self._skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
            raise NonFiniteError(f"step {step}: {problem}; {MAX_SKIPPED_IN_A_ROW} steps in a row were dropped "
                                 "(--on_nan=skip_step): training has diverged, which dropping steps cannot "
                                 f"undo. {_kept(last_checkpoint)} Lower the learning rate")
        return False

    def check_state(self, step: int, what: str, last_checkpoint: str | None) -> None:
        """Refuses to write ``what`` (a checkpoint, the export) from a non-finite state."""
        if not bool(self._state_is_finite()):
            raise NonFiniteError(f"step {step}: {self.describe_state()}; not writing {what}. "
                                 f"{_kept(last_checkpoint)} Lower the learning rate")

    def describe_state(self) -> str:
        """The first variable holding a NaN or infinity, e.g. ``non-finite weights in generator/...``."""
        import numpy as np

        for name, variable in self._variables:
            if variable.dtype.is_floating and not np.all(np.isfinite(variable.numpy())):
                return f"non-finite weights in {name}"
        return "no non-finite weights"


def _kept(last_checkpoint: str | None) -> str:
    return (f"The last good checkpoint, {last_checkpoint}, is kept." if last_checkpoint
            else "No checkpoint was written.")
