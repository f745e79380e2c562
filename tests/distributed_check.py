"""Trains a family's tiny model for two steps on one device and mirrored over two logical CPUs,
from the same weights and batches, with plain SGD (Adam's scale invariance would hide a wrong
per-replica loss scaling; docs/tensorflow-notes.md Q1), and prints the largest weight difference as JSON.

    python tests/distributed_check.py FAMILY [EXTRA_HPARAMS]

Run as a script: the logical devices must be configured before TensorFlow initialises. GAN
steps run their D and G updates as in training, each all-reduced on its own.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tfsynth import distribute  # noqa: E402

mirrored = distribute.make_strategy("mirrored", cpu_devices=2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from family_support import tiny_family  # noqa: E402
from tfsynth import training  # noqa: E402
from tfsynth.data import batches  # noqa: E402

FAMILY = sys.argv[1]
EXTRA_HPARAMS = sys.argv[2] if len(sys.argv) > 2 else ""
STEPS = 2


def with_sgd(model):
    """Every optimizer group of ``model`` minimised by SGD instead."""
    groups = model.optimizer_groups

    def sgd_groups(steps_per_epoch):
        result = groups(steps_per_epoch)
        for group in result:
            group.optimizer = keras.optimizers.SGD(0.005)
        return result

    model.optimizer_groups = sgd_groups
    return model


def weights(model):
    return {f"{name}/{variable.path}": variable.numpy() for name, network in model.networks.items()
            for variable in network.trainable_weights}


def rounding_perturbed(value):
    """``value`` with every element moved by +-2^-23 of itself (a float32 rounding step)."""
    if value.dtype != np.float32:
        return value
    signs = np.random.default_rng(1).choice([-1.0, 1.0], size=value.shape).astype(np.float32)
    return value * (1 + signs * np.float32(2.0**-23))


def train(strategy, initial=None, perturb=False):
    """(starting weights by network, weights by path before and after ``STEPS`` steps); with
    ``perturb``, each starting weight is first moved by about one float32 rounding step."""
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model, data_dir, _ = tiny_family(FAMILY, EXTRA_HPARAMS)
        with_sgd(model).prepare_training()
        if initial is not None:
            for name, network in model.networks.items():
                network.set_weights(initial[name] if not perturb else [rounding_perturbed(w) for w in initial[name]])
        step = tf.Variable(0, dtype=tf.int64)
    start = {name: network.get_weights() for name, network in model.networks.items()}
    before = weights(model)
    splits = batches.training_splits(model, data_dir, "train")
    dataset = batches.make_model_dataset(model, splits, training=True, batch_size=2, seed=3)
    iterator = iter(dataset)
    step_fn = training.make_step_function(model, strategy, step)
    for _ in range(STEPS):
        step_fn(iterator)
    return start, before, weights(model)


def largest_difference(a, b):
    return float(max(np.abs(a[k] - b[k]).max() for k in a))


start, before, single = train(tf.distribute.get_strategy())
_, _, multi = train(mirrored, initial=start)
update_size = largest_difference(single, before)
max_difference = largest_difference(single, multi)
# How far float rounding alone moves the result: one device again from starting weights moved
# by a rounding step. Measured only when the devices differ by more than 1e-3 of an update,
# where a step's sensitivity to rounding (max-pool ties, ReLU kinks) may be the reason.
rounding_sensitivity = None
if max_difference >= 1e-3 * update_size:
    _, _, perturbed = train(tf.distribute.get_strategy(), initial=start, perturb=True)
    rounding_sensitivity = largest_difference(single, perturbed)
print(json.dumps({
    "replicas": mirrored.num_replicas_in_sync,
    "variables": len(single),
    "update_size": update_size,
    "max_difference": max_difference,
    "rounding_sensitivity": rounding_sensitivity,
}))
