"""A test family whose loss is NaN at one chosen step, on top of CRN: a bad batch on demand.

The step that turns NaN is counted by a variable of the model itself, outside its checkpointed
state, so ``--on_nan=skip_step`` putting the state back does not make the same step NaN again.

Run as a script it is ``tfsynth.train`` with this family registered as ``nan_crn``.
"""

import os
import sys

import tensorflow as tf

from tfsynth import registry
from tfsynth.models.crn import CRN

#: The training step (1-based) whose generator loss is NaN.
NAN_STEP = 3
SPEC = registry.ModelSpec("nan_crn", "nan_family", "NaNCRN", "CRN whose loss is NaN at step 3 (tests)")


class NaNCRN(CRN):
    def __init__(self, config, source_label_space="cityscapes35", **kwargs):
        super().__init__(config, source_label_space, **kwargs)
        # Per replica (ON_READ): under MirroredStrategy every replica counts its own calls.
        self.loss_calls = tf.Variable(0, dtype=tf.int64, trainable=False, name="loss_calls",
                                      synchronization=tf.VariableSynchronization.ON_READ,
                                      aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def compute_losses(self, batch, training=True):
        losses = super().compute_losses(batch, training)
        if training:
            self.loss_calls.assign_add(1)
            poison = tf.where(tf.equal(self.loss_calls, NAN_STEP), float("nan"), 0.0)
            losses["total"] = losses["total"] + poison
        return losses


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    registry.MODELS[SPEC.name] = SPEC
    from tfsynth import train

    train.run()
