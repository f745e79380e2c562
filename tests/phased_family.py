"""A test family that uses every lifecycle hook of the contract, on top of CRN.

* two optimizer phases: until ``SWITCH_STEP`` only the modules at height >= 16 train (as
  pix2pixHD first trains its local enhancer alone), then every module with a fresh Adam;
* state that is checkpointed and exported but never trained: an EMA copy of the generator,
  which the export serves instead of the raw weights (as FastGAN does);
* work after the last step that the export carries (as pix2pixHD's K-means): the mean colour
  of the EMA generator's outputs over the training set, which serving subtracts.

Run as a script it is ``tfsynth.train`` with this family registered as ``phased_crn``.
"""

import os
import sys

import keras
import tensorflow as tf

from tfsynth import registry
from tfsynth.layers import StoredTensor
from tfsynth.models.base import OptimizerGroup, moving_average_update
from tfsynth.models.crn import CRN, module_height

SWITCH_STEP = 2
EMA_DECAY = 0.5
SPEC = registry.ModelSpec("phased_crn", "phased_family", "PhasedCRN", "CRN with every lifecycle hook (tests)")


def register():
    registry.MODELS[SPEC.name] = SPEC


class PhasedCRN(CRN):
    serving_state_keys = ("generator_ema", "output_mean")

    def __init__(self, config, source_label_space="cityscapes35", **kwargs):
        super().__init__(config, source_label_space, **kwargs)
        self.generator_ema = keras.models.clone_model(self.generator)
        self.generator_ema.set_weights(self.generator.get_weights())
        self.output_mean = StoredTensor((3,), name="output_mean")

    def extra_state(self):
        return {"generator_ema": self.generator_ema, "output_mean": self.output_mean}

    def fine_variables(self):
        return [v for layer in self.generator.layers if (module_height(layer.name) or 0) >= 16
                for v in layer.trainable_variables]

    def optimizer_groups(self, steps_per_epoch):
        return [OptimizerGroup("total", keras.optimizers.Adam(1e-3), self.fine_variables, name="G_fine",
                               stop_step=SWITCH_STEP),
                OptimizerGroup("total", keras.optimizers.Adam(1e-3), lambda: self.generator.trainable_variables,
                               name="G", start_step=SWITCH_STEP)]

    def train_step(self, batch):
        losses = super().train_step(batch)
        moving_average_update(self.generator_ema, self.generator, EMA_DECAY)
        return losses

    def render_ema(self, label):
        one_hot = tf.one_hot(tf.cast(self.label_ids(label), tf.int32), self.num_classes)
        return self.generator_ema(one_hot, training=False)

    def finish_training(self, make_dataset):
        total, count = tf.zeros([3]), 0
        for batch in make_dataset("train"):
            images = self.render_ema(batch["label"])
            total += tf.reduce_sum(images, axis=[0, 1, 2, 3])
            count += int(tf.size(images)) // 3
        self.output_mean.assign(total / count)
        return True

    def serving_endpoints(self):
        def render(label):
            images = self.render_ema(label) - self.output_mean.value + 127.5
            return {"image": images[:, 0], "images": images}

        return {self.RENDER: render}


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    register()
    from tfsynth import train

    train.run()
