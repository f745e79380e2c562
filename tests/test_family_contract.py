"""The family contract, checked once for every registered model on its tiny configuration.

A new family passes this file (and ``test_family_resume.py``) by adding
``configs/smoke/<name>_tiny.flags``: its config round-trips through JSON and ``config.json``,
``--dry_run`` prints its networks, one step through the loop's API moves every trainable variable
with finite losses under the one loss-tag scheme, the export holds the serving state and nothing
else and equals the eager functions at every endpoint, and ``--recompute`` changes no update.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cli_support import REPO_ROOT, cli_env
from family_support import first_batch, smoke_flagfile, tiny_family
from tfsynth import config as config_lib
from tfsynth import registry, run_dir

FAMILIES = sorted(registry.MODELS)


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, cache_dir, tmp_path_factory):
    """One step of the family's smoke configuration through the loop's API, in this process:
    (name, the run, its trainable weights before the step, the step's losses, a first batch)."""
    from tfsynth import flags as tfsynth_flags
    from tfsynth import training

    name = request.param
    # Op determinism is a process-wide switch: this process runs other tests after these.
    run = training.prepare(tfsynth_flags.parse_train_options([
        f"--flagfile={smoke_flagfile(name)}", f"--model_dir={tmp_path_factory.mktemp(name)}", "--train_steps=1",
        "--deterministic=false"]))
    before = trainable_values(run.model)
    losses = run.fit()
    return name, run, before, losses, first_batch(run.model, run.data_dir)


def trainable_values(model) -> dict:
    return {f"{net}/{v.path}": v.numpy() for net, network in model.networks.items() for v in network.trainable_weights}


@pytest.mark.unit
def test_every_family_has_a_smoke_config():
    missing = [name for name in FAMILIES if not os.path.exists(smoke_flagfile(name))]
    assert not missing, f"add configs/smoke/<name>_tiny.flags for {missing}"


@pytest.mark.unit
def test_config_round_trips_through_json(family):
    _, run, _, _, _ = family
    saved = json.loads(json.dumps(config_lib.to_dict(run.model.config)))
    assert config_lib.build_config(type(run.model.config), base=saved) == run.model.config
    assert run_dir.read_config(run.options.model_dir)["hparams"] == saved


@pytest.mark.unit
def test_one_step_moves_every_trainable_variable_with_finite_losses(family):
    name, run, before, losses, _ = family
    assert losses and all(np.isfinite(value) for value in losses.values()), losses
    # One tag scheme: the trained network's total is "total"; discriminator terms under "D/".
    assert "total" in losses
    assert all("/" not in key or key.startswith("D/") for key in losses), sorted(losses)
    assert ("D/total" in losses) == ("D" in run.model.optimizers)
    after = trainable_values(run.model)
    unmoved = [key for key in before if np.array_equal(before[key], after[key])]
    assert not unmoved, f"{name}: not updated by a training step: {unmoved}"


@pytest.mark.unit
def test_export_holds_the_serving_state_only_and_equals_the_eager_endpoints(family, tmp_path):
    import tensorflow as tf

    from tfsynth import export
    from tfsynth.endpoints import Endpoint

    name, run, _, _, batch = family
    model = run.model
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


RECOMPUTING = [name for name in FAMILIES if registry.get(name).load().recomputes]


@pytest.mark.slow
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


@pytest.mark.paper
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
    # The resolved hyper-parameters that differ from the family's defaults.
    assert "generator=resnet_6blocks" in printed[os.path.join(REPO_ROOT, "configs", "cyclegan_cityscapes.flags")]
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


@pytest.mark.slow
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


