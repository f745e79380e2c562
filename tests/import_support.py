"""Importing the originals' fixture checkpoints, serving the import and resuming it."""

import os

import numpy as np

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "originals")


def fixture(*parts: str) -> str:
    return os.path.join(FIXTURES, *parts)


def import_original(format_name: str, path: str, model_dir, *hparams: str, export: bool = True) -> str:
    """Imports ``path`` into ``model_dir`` as ``tfsynth.import_weights`` does; returns the export
    (written only with ``export``: the fast tier checks networks, the slow one what is served)."""
    from tfsynth import flags as tfsynth_flags
    from tfsynth.import_weights import import_run

    options = tfsynth_flags.parse_train_options([f"--hparams={text}" for text in hparams])
    return import_run(format_name, path, str(model_dir), options, export=export)


def serve(export_path: str, signature: str = "serving_default", **inputs) -> dict:
    """The export's ``signature`` on ``inputs`` (NumPy), as NumPy."""
    import tensorflow as tf

    function = tf.saved_model.load(export_path).signatures[signature]
    return {name: value.numpy() for name, value in function(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def assert_matches_original(actual, golden, what: str) -> None:
    """Within float32 rounding of the original's output: 1e-4 of its range (the fixtures' README)."""
    actual, golden = np.asarray(actual, np.float32), np.asarray(golden, np.float32)
    assert actual.shape == golden.shape, f"{what}: shape {actual.shape}, the original's {golden.shape}"
    tolerance = 1e-4 * max(1.0, float(np.abs(golden).max()))
    error = float(np.abs(actual - golden).max())
    assert error <= tolerance, f"{what}: max |tfsynth - original| = {error:.3g} > {tolerance:.3g}"


def resume_for_one_step(model_dir, *flags: str) -> dict:
    """One training step of the imported run, resumed in place (``train --model_dir``); its losses."""
    from tfsynth import flags as tfsynth_flags
    from tfsynth import training

    run = training.prepare(tfsynth_flags.parse_train_options(
        [f"--model_dir={model_dir}", "--train_steps=1", "--log_every=1", *flags]))
    losses = run.fit()
    assert losses and all(np.isfinite(value) for value in losses.values()), losses
    return losses
