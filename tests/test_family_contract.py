"""The family contract, checked once for every registered model on its tiny configuration.

A new family passes this file by adding ``configs/smoke/<name>_tiny.flags``: its config
round-trips through JSON, ``--dry_run`` prints its networks, one step moves every trainable
variable with finite losses under the one loss-tag scheme, the export holds the serving state
and nothing else and equals the eager functions at every endpoint, two devices train exactly as
one, and a run killed after a checkpoint resumes to the uninterrupted run's state.
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from cli_support import REPO_ROOT, cli_env, run_module
from family_support import first_batch, smoke_flagfile, tiny_family
from tfsynth import config as config_lib
from tfsynth import registry

FAMILIES = sorted(registry.MODELS)

#: Switched off for that check only, by design: pix2pix's batch norm takes per-replica
#: statistics (at the paper's batch of 1 that is the paper's own normalisation) and its dropout
#: masks are drawn per replica.
DISTRIBUTION_CHECK_HPARAMS = {"pix2pix": "norm=instance,dropout=0"}


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, cache_dir):
    """(name, model prepared for training, data dir, its first batch)."""
    import keras

    keras.utils.set_random_seed(0)
    model, data_dir, _ = tiny_family(request.param)
    model.prepare_training()
    return request.param, model, data_dir, first_batch(model, data_dir)


def test_every_family_has_a_smoke_config():
    missing = [name for name in FAMILIES if not os.path.exists(smoke_flagfile(name))]
    assert not missing, f"add configs/smoke/<name>_tiny.flags for {missing}"


def test_config_round_trips_through_json(family):
    _, model, _, _ = family
    saved = json.loads(json.dumps(config_lib.to_dict(model.config)))
    assert config_lib.build_config(type(model.config), base=saved) == model.config


def test_one_step_moves_every_trainable_variable_with_finite_losses(family):
    import tensorflow as tf

    from tfsynth import training
    from tfsynth.data import batches

    name, model, data_dir, _ = family
    before = {f"{net}/{v.path}": v.numpy() for net, network in model.networks.items()
              for v in network.trainable_weights}
    splits = batches.training_splits(model, data_dir, "train")
    iterator = iter(batches.make_model_dataset(model, splits, training=True, batch_size=2, seed=5))
    losses = training.make_step_function(model, tf.distribute.get_strategy(), tf.Variable(0, dtype=tf.int64))(
        iterator)
    assert all(np.isfinite(float(value)) for value in losses.values()), losses
    # One tag scheme: the trained network's total is "total"; discriminator terms under "D/".
    assert "total" in losses
    assert all("/" not in key or key.startswith("D/") for key in losses), sorted(losses)
    assert ("D/total" in losses) == ("D" in model.optimizers)
    after = {f"{net}/{v.path}": v.numpy() for net, network in model.networks.items()
             for v in network.trainable_weights}
    unmoved = [key for key in before if np.array_equal(before[key], after[key])]
    assert not unmoved, f"{name}: not updated by a training step: {unmoved}"


def test_export_holds_the_serving_state_only_and_equals_the_eager_endpoints(family, tmp_path):
    import tensorflow as tf

    from tfsynth import export, run_dir
    from tfsynth.endpoints import Endpoint

    name, model, _, batch = family
    path = export.export_model(model, str(tmp_path / "1"), model_name=name)
    loaded = tf.saved_model.load(path)

    # The variables of the export are exactly the serving state's (generators, EMA, centres),
    # and its trainable ones add up to the parameters --dry_run prints for those networks.
    state = model.serving_state()
    expected = sorted(int(np.prod(v.shape)) for v in model.serving_variables())
    assert sorted(int(np.prod(v.shape)) for v in loaded.variables) == expected
    counts = model.parameter_counts()
    printed = sum(counts[key] for key in state if key in counts)
    assert sum(int(np.prod(v.shape)) for v in loaded.trainable_variables) == printed

    # The recorded declaration round-trips, and every endpoint's signature equals its eager function.
    info = run_dir.read_export_info(path)
    endpoints = model.serving_endpoints()
    assert info["endpoints"] == list(endpoints)
    assert [Endpoint.from_json(e.to_json()) for e in endpoints] == list(endpoints)
    for endpoint, function in endpoints.items():
        inputs = model.record_inputs(endpoint, _records(batch))
        served = loaded.signatures[endpoint.signature_name(inputs)](**inputs)
        eager = function(**inputs)
        assert set(served) == set(endpoint.outputs)
        for output in endpoint.outputs:
            expected = eager[output].numpy()
            if output != "label":
                expected = np.clip(np.round(expected), 0, 255)
            # Exported and eager graphs may fuse ops differently: one grey level.
            assert served[output].dtype == tf.uint8
            assert np.abs(served[output].numpy().astype(int) - expected.astype(int)).max() <= 1, (name, output)
    assert "serving_default" in loaded.signatures

    # One trace serves every size within max_size: calls at two sizes add none.
    for endpoint in endpoints:
        sizes = [model.training_size or (64, 64)]
        if endpoint.spatial_input is not None:
            multiple = model.size_multiple * endpoint.scale
            sizes.append((sizes[0][0] + multiple, sizes[0][1] + 2 * multiple))
        inputs = [endpoint.zero_inputs(size, model.latent_size) for size in sizes]
        function = getattr(loaded, endpoint.signature_name(inputs[0]))
        for size, values in zip(sizes, inputs):
            outputs = function(*values.values())  # the export's functions take positional inputs
            assert tuple(outputs[endpoint.outputs[0]].shape[1:3]) == tuple(size), (name, endpoint.name)
        assert function.experimental_get_tracing_count() == 1, (name, endpoint.name)
        assert len(function.concrete_functions) == 1, (name, endpoint.name)


def _records(batch):
    """A paired batch as it is, or the first stream of an unpaired one ({domain: batch})."""
    return batch if "image" in batch else next(iter(batch.values()))


@pytest.mark.parametrize("name", FAMILIES)
def test_two_devices_train_exactly_as_one(name, cache_dir):
    script = os.path.join(REPO_ROOT, "tests", "distributed_check.py")
    result = subprocess.run([sys.executable, script, name, DISTRIBUTION_CHECK_HPARAMS.get(name, "")],
                            cwd=REPO_ROOT, env=cli_env(cache_dir), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
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


RECOMPUTING = [name for name in FAMILIES if registry.get(name).load().recomputes]


@pytest.mark.parametrize("name", RECOMPUTING)
def test_recompute_changes_no_update(name, cache_dir):
    """--recompute trades time for memory only: the step's updates are the same (each group's
    optimizer swapped for SGD with rate 1, so an update is its gradient, unnormalised)."""
    import keras
    import tensorflow as tf

    updates, forward_convolutions = [], []
    for recompute in (False, True):
        keras.utils.set_random_seed(0)
        model, data_dir, _ = tiny_family(name)
        model.prepare_training()
        for group in model._groups:
            group.optimizer = keras.optimizers.SGD(1.0)
            group.optimizer.build(group.variables())
        if recompute:
            model.enable_recompute()
        variables = [v for network in model.networks.values() for v in network.trainable_weights]
        before = [v.numpy() for v in variables]
        step, batch = tf.function(model.train_step), first_batch(model, data_dir)
        step(batch)
        updates.append([v.numpy() - start for v, start in zip(variables, before)])
        graph = step.get_concrete_function(batch).graph
        forward_convolutions.append(sum(op.type == "Conv2D" for op in graph.get_operations()))
    assert forward_convolutions[1] > forward_convolutions[0]  # the backward pass runs forward again
    assert any(np.abs(update).max() > 0 for update in updates[0])
    for plain, recomputed, variable in zip(*updates, variables):
        np.testing.assert_allclose(recomputed, plain, rtol=1e-4, atol=1e-6 * np.abs(plain).max(), err_msg=variable.path)


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


@pytest.mark.parametrize("name", FAMILIES)
def test_resume_after_kill_equals_the_uninterrupted_run(name, tmp_path, cache_dir):
    flagfile = smoke_flagfile(name)
    steps = ["--train_steps=4", "--checkpoint_every=2", "--image_every=100", "--export=false"]
    run_module(cache_dir, "tfsynth.train", f"--flagfile={flagfile}", f"--model_dir={tmp_path / 'reference'}",
               *steps)
    train_killed_after_checkpoint(cache_dir, flagfile, tmp_path / "resumed", 2, *steps)
    result = run_module(cache_dir, "tfsynth.train", f"--flagfile={flagfile}", f"--model_dir={tmp_path / 'resumed'}",
                        *steps)
    assert "resumed from" in result.stdout and "step 4/4" in result.stdout and "step 1/4" not in result.stdout
    # Every weight, optimizer slot, step counter and pool entry.
    assert_same_state(checkpoint_state(tmp_path / "reference"), checkpoint_state(tmp_path / "resumed"))


def test_every_config_parses_and_builds(tmp_path, cache_dir):
    """Every flagfile in configs/ (paper, quickstart and smoke) through --dry_run, in one process."""
    configs = sorted(os.path.join(root, name) for root, _, names in os.walk(os.path.join(REPO_ROOT, "configs"))
                     for name in names if name.endswith(".flags"))
    script = (
        "import contextlib, io, json, sys\n"
        "from tfsynth import train, training\n"
        "from tfsynth import flags as tfsynth_flags\n"
        "counts = {}\n"
        "for path in sys.argv[1:]:\n"
        "    train.FLAGS.unparse_flags()\n"
        "    train.FLAGS(['train', f'--flagfile={path}', '--model_dir=/nonexistent', '--dry_run'])\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        training.describe(tfsynth_flags.train_options(train.FLAGS))\n"
        "    counts[path] = out.getvalue()\n"
        "print(json.dumps(counts))\n")
    result = subprocess.run([sys.executable, "-c", script, *configs], cwd=REPO_ROOT, env=cli_env(cache_dir),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(printed) == configs
    for path, text in printed.items():
        assert "parameters" in text and "hparams" in text, (path, text)
    # The paper configurations print the papers' counts without reading data.
    paper_counts = {"crn_cityscapes_256p.flags": ["97,875,483"], "pix2pix_cityscapes.flags": ["54,413,955", "2,768,705"],
                    "pix2pixhd_cityscapes_512p.flags": ["182,546,755", "2,801,601"],
                    "pix2pixhd_cityscapes_1024p.flags": ["182,857,059", "2,801,601"],
                    "cyclegan_cityscapes.flags": ["7,837,699", "2,764,737"],
                    "style_transfer.flags": ["1,679,235"], "super_resolution_x4.flags": ["401,859"],
                    "fastgan_256.flags": ["29,127,846", "11,526,160"], "fastgan_512.flags": ["29,174,392", "11,526,496"],
                    "fastgan_1024.flags": ["29,176,512", "11,528,192"],
                    "super_resolution_x8.flags": ["438,915"]}
    for config, counts in paper_counts.items():
        text = printed[os.path.join(REPO_ROOT, "configs", config)]
        assert all(f"{count} parameters" in text for count in counts), (config, text)
    for name in FAMILIES:
        model, _, _ = tiny_family(name)
        text = printed[smoke_flagfile(name)]
        for network, count in model.parameter_counts().items():
            assert f"{network}  " in text and f"{count:,} parameters" in text, (name, network, text)
    assert not os.path.exists("/nonexistent")


# ------------------------------------------------------------------ lifecycle hooks (tests/phased_family.py)

@pytest.fixture
def phased(monkeypatch):
    import phased_family

    monkeypatch.setitem(registry.MODELS, phased_family.SPEC.name, phased_family.SPEC)
    return phased_family


def test_optimizer_phases_switch_at_the_declared_step(phased, cache_dir):
    import keras
    import tensorflow as tf

    from tfsynth import training
    from tfsynth.data import batches
    from tfsynth.models.crn import module_height

    keras.utils.set_random_seed(0)
    model, data_dir, _ = tiny_family("crn", model_class=phased.PhasedCRN)
    model.prepare_training()
    coarse = [v for layer in model.generator.layers if (module_height(layer.name) or 99) < 16
              for v in layer.trainable_variables]
    start = [v.numpy() for v in coarse]
    splits = batches.training_splits(model, data_dir, "train")
    iterator = iter(batches.make_model_dataset(model, splits, training=True, batch_size=2, seed=5))
    step = training.make_step_function(model, tf.distribute.get_strategy(), tf.Variable(0, dtype=tf.int64))
    for _ in range(phased.SWITCH_STEP):
        step(iterator)
    assert coarse and all(np.array_equal(a, v.numpy()) for a, v in zip(start, coarse))  # frozen
    assert int(model.optimizers["G_fine"].iterations) == phased.SWITCH_STEP
    assert int(model.optimizers["G"].iterations) == 0  # built from the start, untouched until the switch
    step(iterator)
    assert all(not np.array_equal(a, v.numpy()) for a, v in zip(start, coarse))
    assert int(model.optimizers["G"].iterations) == 1 and int(model.optimizers["G_fine"].iterations) == 2


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
