"""Trains a tiny CRN for two steps on one device and mirrored over two logical CPUs, from the
same weights and batches, with plain SGD (Adam's scale invariance would hide a wrong
per-replica loss scaling; TF_NOTES Q1), and prints the largest weight difference as JSON.

Run as a script: the logical devices must be configured before TensorFlow initialises.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfsynth import distribute  # noqa: E402

mirrored = distribute.make_strategy("mirrored", cpu_devices=2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfsynth import training  # noqa: E402
from tfsynth.data import pipelines  # noqa: E402
from tfsynth.models import base, crn  # noqa: E402


class SGDCRN(crn.CRN):
    def optimizer_groups(self):
        return [base.OptimizerGroup("total", keras.optimizers.SGD(0.5), self.trainable_generator_variables)]


config = crn.CRNConfig(image_size=(32, 64), max_channels=16, num_outputs=3, vgg_weights="random")
split = pipelines.load_split(pipelines.resolve_data_dir("synthetic:32x64:20"), "train")


def train(strategy, initial=None):
    with strategy.scope():
        model = SGDCRN(config, source_label_space=split.label_space)
        model.prepare_training()
        if initial is not None:
            model.generator.set_weights(initial)
        step = tf.Variable(0, dtype=tf.int64)
    start = [w.copy() for w in model.generator.get_weights()]
    dataset = pipelines.make_dataset(split, batch_size=2, transform=model.example_transform(True), seed=3)
    iterator = iter(dataset)
    step_fn = training.make_step_function(model, strategy, step)
    for _ in range(2):
        step_fn(iterator)
    return start, model.generator.get_weights()


start, single = train(tf.distribute.get_strategy())
_, multi = train(mirrored, initial=start)
print(json.dumps({
    "replicas": mirrored.num_replicas_in_sync,
    "update_size": float(max(np.abs(a - b).max() for a, b in zip(single, start))),
    "max_difference": float(max(np.abs(a - b).max() for a, b in zip(single, multi))),
}))
