"""Tiny models of every registered family, built in-process from their smoke flagfiles."""

import os
import shlex
import signal
import subprocess
import sys

import numpy as np

from cli_support import REPO_ROOT, cli_env


def smoke_flagfile(name: str) -> str:
    """``configs/smoke/<name>_tiny.flags``: every registered family has one (the contract test
    fails for a family without it)."""
    return os.path.join(REPO_ROOT, "configs", "smoke", f"{name}_tiny.flags")


def read_flagfile(path: str) -> dict:
    """``--key=value`` lines of a flagfile; repeated keys (``--hparams``) collect in a list."""
    values = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("--"):
                continue
            key, _, value = line[2:].partition("=")
            value = shlex.split(value)[0] if value else ""
            values.setdefault(key, []).append(value)
    return values


def smoke_config(name: str, **overrides):
    """Family ``name``'s config at its smoke configuration, with ``overrides`` (field=value):
    the one tiny configuration tests build their models from."""
    import dataclasses

    from tfsynth import config as config_lib
    from tfsynth import registry

    flag_values = read_flagfile(smoke_flagfile(name))
    values = config_lib.parse_hparams(flag_values.get("hparams", []))
    if "vgg_weights" in flag_values:
        values["vgg_weights"] = flag_values["vgg_weights"][-1]
    config = config_lib.build_config(registry.get(name).load().config_class, values)
    return dataclasses.replace(config, **overrides)


def tiny_family(name: str, extra_hparams: str = "", model_class=None):
    """(model, data dir, flag values) of family ``name`` at its smoke configuration (built as
    ``model_class``, a subclass, when given)."""
    from tfsynth import config as config_lib
    from tfsynth import registry
    from tfsynth.data import pipelines, tfrecord

    flag_values = read_flagfile(smoke_flagfile(name))
    model_class = model_class or registry.get(name).load()
    overrides = config_lib.parse_hparams(flag_values.get("hparams", []) + [extra_hparams])
    if "vgg_weights" in flag_values:
        overrides["vgg_weights"] = flag_values["vgg_weights"][-1]
    config = config_lib.build_config(model_class.config_class, overrides)
    data_dir = pipelines.resolve_data_dir(flag_values["train_data"][-1])
    label_space = tfrecord.read_dataset_json(data_dir).get("label_space") or "cityscapes35"
    model = model_class(config, source_label_space=label_space)
    return model, data_dir, flag_values


def first_batch(model, data_dir: str, batch_size: int = 2, training: bool = True):
    """The first training batch of ``model`` (fixed seed)."""
    from tfsynth.data import batches

    splits = batches.training_splits(model, data_dir, "train")
    dataset = batches.make_model_dataset(model, splits, training=training, batch_size=batch_size, seed=3)
    return next(iter(dataset))


def checkpoint_state(model_dir):
    """Every tensor of the latest checkpoint but the data iterator's serialized state."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")))
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if "ITERATOR_STATE" not in key and not key.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


def train_killed_after_checkpoint(cache_dir, flagfile, model_dir, checkpoint, *args, module="tfsynth.train"):
    """Starts a run and kill -9s it as soon as ``ckpt-<checkpoint>`` is on disk."""
    target = [module] if module.endswith(".py") else ["-m", module]
    process = subprocess.Popen([sys.executable, *target, f"--flagfile={flagfile}", f"--model_dir={model_dir}",
                                *args], cwd=REPO_ROOT, env=cli_env(cache_dir), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:
        if line.startswith("saved checkpoint") and f"ckpt-{checkpoint}" in line.split()[2]:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=300)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"


def assert_same_state(expected, actual):
    assert expected.keys() == actual.keys() and expected
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key)
