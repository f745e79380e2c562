"""FastGAN-pytorch's ``<iter>.pth``, imported: the EMA generator renders the original's images,
D scores them as the original did, the export serves them, and the run trains on.

The fixture is ``29.pth`` of a tiny run of the original code (ngf = ndf = 4, nz 256, 256x256);
the goldens are the original's eval-mode outputs on ``noise_z.npy``. The shared
fixture ``all_<iter>.pth`` (21 MB) is not copied: its container is tested on a file written
here from ``29.pth``.
"""

import collections
import os

import numpy as np
import pytest

from import_support import assert_matches_original, fixture, import_original, resume_for_one_step, serve

pytestmark = [pytest.mark.family("fastgan")]

CHECKPOINT = fixture("fastgan", "29.pth")
#: tfsynth's noise layers and the original's NoiseInjection modules (UpBlockComp's 2nd and 6th).
NOISE_MODULES = {f"feat_{size}_noise{index}": f"feat_{size}.{module}"
                 for size in (8, 32, 128) for index, module in ((1, 2), (2, 6))}


def nhwc(array):
    return np.transpose(array, (0, 2, 3, 1))


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("fastgan") / "run"
    return model_dir, import_original("fastgan", CHECKPOINT, model_dir, export=False)


@pytest.fixture(scope="module")
def restored(imported):
    """The imported run's model with every network restored from the import's checkpoint (step 0,
    named: test_imported_run_trains_on adds step 1)."""
    import tensorflow as tf

    from tfsynth import run_dir

    model_dir, _ = imported
    saved = run_dir.read_config(str(model_dir))
    model = run_dir.build_model(saved)
    tf.train.Checkpoint(**model.networks, **model.extra_state()).restore(
        os.path.join(model_dir, "checkpoints", "ckpt-0")).assert_existing_objects_matched().expect_partial()
    return model, saved


@pytest.fixture
def original_noise(monkeypatch):
    """The original's NoiseInjection draws the goldens used (it draws noise in eval mode too),
    fed to tfsynth's noise layers in place of their seeded draws."""
    import tensorflow as tf

    from tfsynth.layers.noise import NoiseInjection

    draws = np.load(fixture("fastgan", "noise_injection.npz"))

    def call(self, inputs):
        x, _ = inputs
        return x + self.weight * tf.constant(nhwc(draws[NOISE_MODULES[self.name]]))

    monkeypatch.setattr(NoiseInjection, "call", call)


@pytest.mark.unit
def test_imported_ema_generator_and_discriminator_compute_the_originals_outputs(restored, original_noise):
    model, saved = restored
    assert saved["model"] == "fastgan" and saved["imported"]["iteration"] == 29
    assert {key: saved["hparams"][key] for key in ("resolution", "latent_size", "generator_filters",
                                                   "discriminator_filters", "decoder_filters")} == {
        "resolution": 256, "latent_size": 256, "generator_filters": 4, "discriminator_filters": 4,
        "decoder_filters": 32}
    # <iter>.pth holds one generator: the live one starts from the same weights as the EMA.
    assert all(np.array_equal(a, b) for a, b in zip(model.generator.get_weights(), model.generator_ema.get_weights()))

    z = np.load(fixture("fastgan", "noise_z.npy"))
    image, small = model.generator_ema([z, np.zeros((2, 2), np.int64)], training=False)
    golden = nhwc(np.load(fixture("fastgan", "G_ema_eval_out.npy")))
    assert_matches_original(image, golden, "the EMA generator's image (eval mode)")

    # D on the golden image and G's small image (which the original computed to float rounding:
    # a wrong to_128 would show in rf_small's logits); the original's output is cat(rf_big.view(-1),
    # rf_small.view(-1)) over the batch, tfsynth's per example [rf_big 5x5 | rf_small 5x5].
    logits = model.critic([golden, small.numpy()], training=False).numpy()
    original = np.load(fixture("fastgan", "D_out_eval.npy"))
    assert_matches_original(logits, np.concatenate([original[:50].reshape(2, 25), original[50:].reshape(2, 25)], 1),
                            "D's logits (eval mode)")


@pytest.mark.slow
def test_imported_export_renders_the_originals_images_from_their_latents(tmp_path):
    """The export's ``from_latent`` on the original's z. It draws its noise maps from a fixed
    seed, not the original's draws: their whole contribution to the golden is below 8.6e-5
    (meta.json's noise_injection_contribution_max_abs), 0.011 of a level, so within one level."""
    export = import_original("fastgan", CHECKPOINT, tmp_path / "run")
    served = serve(export, "from_latent", z=np.load(fixture("fastgan", "noise_z.npy")))["image"]
    golden = np.clip(np.round((nhwc(np.load(fixture("fastgan", "G_ema_eval_out.npy"))) + 1) * 127.5), 0, 255)
    assert served.shape == (2, 256, 256, 3)
    assert np.abs(served.astype(np.float32) - golden).max() <= 1


@pytest.mark.slow
def test_imported_run_trains_on(imported):
    model_dir, _ = imported
    resume_for_one_step(model_dir, "--train_data=synthetic:256x256:2", "--vgg_weights=random")
    assert os.path.exists(os.path.join(model_dir, "checkpoints", "ckpt-1.index"))


# ---------------------------------------------------------------------------- bad checkpoints

def write_fastgan_checkpoint(path, contents):
    """``contents`` (dicts, lists, NumPy arrays, plain values) as a torch.save zip file, written as
    test_torch_files writes its checkpoints."""
    from test_torch_files import Storage, Tensor, write_checkpoint

    keys = iter(range(10**6))

    def convert(value):
        if isinstance(value, dict):
            return collections.OrderedDict((key, convert(item)) for key, item in value.items())
        if isinstance(value, list):
            return [convert(item) for item in value]
        if not isinstance(value, np.ndarray):
            return value
        value = np.ascontiguousarray(value)
        long = value.dtype == np.int64
        storage = Storage(str(next(keys)), "LongStorage" if long else "FloatStorage",
                          value.astype("<i8" if long else "<f4").ravel())
        return Tensor(storage, 0, value.shape, [int(np.prod(value.shape[i + 1:])) for i in range(value.ndim)])

    return write_checkpoint(path, convert(contents))


@pytest.mark.unit
def test_all_checkpoint_gives_the_live_generator_g_and_the_ema_g_ema(tmp_path, restored, capsys):
    """``all_<iter>.pth``: 'g' the live generator, 'g_ema' the average as a bare list in
    parameters() order (with 'g''s buffers), optimizer states beside them. Written here from
    29.pth (the average) and a live generator whose parameters are all twice the average's."""
    import re

    from tfsynth.importing import formats
    from tfsynth.importing.torch_files import read_torch_file
    from tfsynth.models.fastgan import FastGAN, FastGANConfig

    expected, _ = restored
    parts = read_torch_file(CHECKPOINT)
    parameters = [key for key in parts["g"]
                  if not re.search(r"\.(weight_[uv]|running_mean|running_var|num_batches_tracked)$", key)]
    live = {key: 2 * value if key in parameters else value for key, value in parts["g"].items()}
    adam = {"state": {}, "param_groups": [{"lr": 0.0002, "betas": (0.5, 0.999), "eps": 1e-08}]}
    path = write_fastgan_checkpoint(tmp_path / "all_29.pth", {
        "g": live, "d": parts["d"], "g_ema": [parts["g"][key] for key in parameters], "opt_g": adam, "opt_d": adam})

    original = formats.read("fastgan", path)
    assert original.iteration == 29 and "not imported: opt_d, opt_g" in capsys.readouterr().out
    model = FastGAN(FastGANConfig(**original.hparams))
    original.set_weights(model)
    for ours, theirs in zip(model.generator_ema.get_weights(), expected.generator_ema.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    # The live generator: twice the parameters, the same buffers (spectral norm's u does not
    # depend on the kernel's scale).
    for ours, theirs in zip(model.generator.weights, expected.generator.weights):
        np.testing.assert_allclose(ours.numpy(), (2 if theirs.trainable else 1) * theirs.numpy(), rtol=1e-6)


@pytest.mark.parametrize("change, message", [
    (lambda parts: parts["g"].__setitem__("module.feat_16.2.running_var", np.ones(33, np.float32)),
     r"\['g'\]: tensor 'feat_16.2.running_var' has shape \(33,\), layer feat_16_bn expects \(32,\)"),
    (lambda parts: parts["d"].pop("module.rf_small.weight_v"), r"\['d'\]: tensor 'rf_small.weight_v' is missing"),
    (lambda parts: parts.pop("d"), "not a FastGAN-pytorch checkpoint"),
], ids=["wrong_shape", "missing_tensor", "no_discriminator"])
@pytest.mark.unit
def test_bad_checkpoint_names_the_tensor_and_leaves_nothing(tmp_path, change, message):
    from tfsynth.importing.tensors import ImportFailure
    from tfsynth.importing.torch_files import read_torch_file

    parts = read_torch_file(CHECKPOINT)
    change(parts)
    path = write_fastgan_checkpoint(tmp_path / "29.pth", parts)
    with pytest.raises(ImportFailure, match=message):
        import_original("fastgan", path, tmp_path / "run")
    assert sorted(os.listdir(tmp_path)) == ["29.pth"]
