"""Tiny models of every registered family, built in-process from their smoke flagfiles."""

import os
import shlex

from cli_support import REPO_ROOT


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
