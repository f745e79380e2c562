"""The family contract's promises that take several processes or several runs, for every
registered family on its tiny configuration: a run stopped after a checkpoint resumes to the
uninterrupted run's state, and two devices train exactly as one.

Resume is proven with a real ``kill -9`` in subprocesses for one ordinary family (CRN) and for the
phased test family (every lifecycle hook, across an optimizer switch); for the others, in this
process, by a run that stops at its checkpoint and a new run that resumes from it.
"""

import glob
import json
import os
import shutil

import numpy as np
import pytest

from cli_support import REPO_ROOT, run_module
from family_support import assert_same_state, checkpoint_state, smoke_flagfile, train_killed_after_checkpoint
from tfsynth import registry

pytestmark = pytest.mark.slow

FAMILIES = sorted(registry.MODELS)

#: Switched off for that check only, by design: pix2pix's batch norm takes per-replica
#: statistics (at the paper's batch of 1 that is the paper's own normalisation) and its dropout
#: masks are drawn per replica.
DISTRIBUTION_CHECK_HPARAMS = {"pix2pix": "norm=instance,dropout=0"}

#: Steps of the resume checks: the reference trains STEPS in one go; the other stops at the
#: checkpoint after STOP and resumes.
STEPS, STOP = 4, 2
STEP_FLAGS = [f"--checkpoint_every={STOP}", "--image_every=100", "--export=false"]


def test_resume_after_kill_equals_the_uninterrupted_run(tmp_path, cache_dir):
    flagfile = smoke_flagfile("crn")
    steps = [f"--train_steps={STEPS}", *STEP_FLAGS]
    run_module(cache_dir, "tfsynth.train", f"--flagfile={flagfile}", f"--model_dir={tmp_path / 'reference'}",
               *steps)
    train_killed_after_checkpoint(cache_dir, flagfile, tmp_path / "resumed", STOP, *steps)
    result = run_module(cache_dir, "tfsynth.train", f"--flagfile={flagfile}", f"--model_dir={tmp_path / 'resumed'}",
                        *steps)
    assert "resumed from" in result.stdout and f"step {STEPS}/{STEPS}" in result.stdout
    assert "step 1/" not in result.stdout
    # Every weight, optimizer slot, step counter and pool entry.
    assert_same_state(checkpoint_state(tmp_path / "reference"), checkpoint_state(tmp_path / "resumed"))


@pytest.mark.parametrize("family", [name for name in FAMILIES if name != "crn"])
def test_a_resumed_run_equals_the_uninterrupted_run(family, tmp_path, cache_dir, capsys):
    import tensorflow as tf

    from tfsynth import flags as tfsynth_flags
    from tfsynth import training

    def train(model_dir):
        training.prepare(tfsynth_flags.parse_train_options([
            f"--flagfile={smoke_flagfile(family)}", f"--model_dir={model_dir}", f"--train_steps={STEPS}",
            *STEP_FLAGS])).fit()

    train(tmp_path / "reference")
    # The run as a kill after ckpt-STOP leaves it: the reference's files up to that checkpoint.
    shutil.copytree(tmp_path / "reference", tmp_path / "resumed", ignore=shutil.ignore_patterns("export"))
    checkpoints = tmp_path / "resumed" / "checkpoints"
    for path in glob.glob(str(checkpoints / f"ckpt-{STEPS}.*")):
        os.remove(path)
    state = tf.train.get_checkpoint_state(str(checkpoints))
    kept = [i for i, path in enumerate(state.all_model_checkpoint_paths) if not path.endswith(f"ckpt-{STEPS}")]
    paths = [state.all_model_checkpoint_paths[i] for i in kept]
    tf.compat.v1.train.update_checkpoint_state(
        str(checkpoints), paths[-1], paths,
        all_model_checkpoint_timestamps=[state.all_model_checkpoint_timestamps[i] for i in kept])
    capsys.readouterr()
    train(tmp_path / "resumed")  # a new model, optimizers and iterator, restored from ckpt-STOP
    printed = capsys.readouterr().out
    assert f"resumed from {checkpoints / f'ckpt-{STOP}'}" in printed
    assert f"step {STOP + 1}/{STEPS}" in printed and f"step {STOP}/{STEPS}" not in printed
    assert_same_state(checkpoint_state(tmp_path / "reference"), checkpoint_state(tmp_path / "resumed"))


@pytest.fixture
def phased(monkeypatch):
    import phased_family

    monkeypatch.setitem(registry.MODELS, phased_family.SPEC.name, phased_family.SPEC)
    return phased_family


def test_hooks_survive_kill_across_the_switch_and_the_export_serves_their_state(phased, tmp_path, cache_dir):
    import tensorflow as tf

    from tfsynth import run_dir

    script = os.path.join(REPO_ROOT, "tests", "phased_family.py")
    flagfile = smoke_flagfile("crn")
    steps = ["--model=phased_crn", "--train_steps=4", "--checkpoint_every=2", "--image_every=100"]
    reference = run_module(cache_dir, script, f"--flagfile={flagfile}", f"--model_dir={tmp_path / 'reference'}",
                           *steps)
    assert "(with the state computed after training)" in reference.stdout
    train_killed_after_checkpoint(cache_dir, flagfile, tmp_path / "resumed", phased.SWITCH_STEP, *steps,
                                  module=script)
    run_module(cache_dir, script, f"--flagfile={flagfile}", f"--model_dir={tmp_path / 'resumed'}", *steps)
    expected, actual = checkpoint_state(tmp_path / "reference"), checkpoint_state(tmp_path / "resumed")
    assert any(key.startswith("generator_ema/") for key in expected)
    assert any(key.startswith("optimizer_G_fine/") for key in expected)
    assert_same_state(expected, actual)

    # The export holds the EMA weights and the state computed after training, not the raw generator.
    model, _ = run_dir.load_model(str(tmp_path / "reference"), purpose="networks")
    tf.train.Checkpoint(**model.serving_state()).restore(
        tf.train.latest_checkpoint(str(tmp_path / "reference" / "checkpoints"))).expect_partial()
    assert float(tf.reduce_max(tf.abs(model.output_mean.value))) > 0
    loaded = tf.saved_model.load(str(tmp_path / "reference" / "export" / "1"))
    exported = sorted(float(np.sum(v.numpy())) for v in loaded.variables)
    serving = sorted(float(np.sum(v.numpy())) for v in model.serving_variables())
    raw = sorted(float(np.sum(v.numpy())) for v in model.generator.variables)
    np.testing.assert_allclose(exported, serving, rtol=1e-6)
    assert len(exported) == len(raw) + 1 and not np.allclose(exported[: len(raw)], raw)
    label = tf.constant(np.random.default_rng(0).integers(0, 34, (1, 32, 64), dtype=np.uint8))
    served = loaded.signatures["serving_default"](label=label)["images"].numpy()
    eager = np.clip(np.round(model.serving_endpoints()[model.RENDER](label)["images"].numpy()), 0, 255)
    assert np.abs(served.astype(int) - eager).max() <= 1


@pytest.mark.parametrize("family", FAMILIES)
def test_two_devices_train_exactly_as_one(family, cache_dir):
    script = os.path.join(REPO_ROOT, "tests", "distributed_check.py")
    result = run_module(cache_dir, script, family, DISTRIBUTION_CHECK_HPARAMS.get(family, ""))
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["update_size"] > 1e-3  # the weights did move
    # A wrongly scaled loss or a missing all-reduce differs by a good part of an update. Where
    # float rounding alone moves a step further than 1e-3 of an update (FastGAN's LPIPS term:
    # its gradient goes through VGG's max pooling, whose choice near a tie follows rounding;
    # reversing the batch on one device changes its first gradient by 1.5 % too), two devices
    # may differ by up to twice what a rounding step of the starting weights makes.
    bound = max(1e-3 * report["update_size"], 2 * (report["rounding_sensitivity"] or 0.0))
    assert report["max_difference"] < bound, report


