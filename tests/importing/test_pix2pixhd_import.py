"""NVIDIA/pix2pixHD's checkpoints folder, imported: G, every D scale and E compute what the
original computed, the export serves it, and the run trains on.

Fixtures (tests/fixtures/originals/pix2pixhd): ``global/`` is a GlobalGenerator (4 downsamplings)
with labels + instance edges; ``local/`` a LocalEnhancer (its G1 with 2 downsamplings) fed the
instance-averaged features of the encoder as well.
"""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from import_support import assert_matches_original, fixture, import_original, resume_for_one_step, serve
from tfsynth.importing.tensors import ImportFailure

pytestmark = [pytest.mark.family("pix2pixhd")]


def golden(folder, name, key=None):
    """A golden NCHW array, as NHWC."""
    array = np.load(fixture("pix2pixhd", folder, name))
    return (array[key] if key else array).transpose(0, 2, 3, 1)


def label_and_instance(folder):
    """The original's inputs as tfsynth's exports take them: uint8 label ids, int32 instance ids."""
    label = np.load(fixture("pix2pixhd", folder, "label.npy"))[:, 0].astype(np.uint8)
    return label, np.load(fixture("pix2pixhd", folder, "inst.npy"))[:, 0]


def photo_uint8():
    """local/'s real image: the original fed ToTensor + Normalize of 8-bit pixels, k / 127.5 - 1."""
    image = golden("local", "image.npy")
    pixels = np.round((image + 1) * 127.5)
    assert np.abs(pixels / 127.5 - 1 - image).max() < 1e-5
    return pixels.astype(np.uint8)


def _import(tmp_path_factory, folder):
    model_dir = tmp_path_factory.mktemp(f"pix2pixhd_{folder}") / "run"
    return model_dir, import_original("pix2pixhd", fixture("pix2pixhd", folder), model_dir, export=False)


@pytest.fixture(scope="module")
def imported_global(tmp_path_factory):
    return _import(tmp_path_factory, "global")


@pytest.fixture(scope="module")
def imported_local(tmp_path_factory):
    return _import(tmp_path_factory, "local")


def check_discriminators(model, folder, semantic):
    """Every scale and block of D on cat(input_label, G_out), as the original's netD ran."""
    import tensorflow as tf

    from tfsynth.layers.discriminators import multiscale_outputs

    fake = golden(folder, "G_out.npy")
    outputs = multiscale_outputs(model.discriminators, tf.concat([semantic, fake], axis=-1))
    assert len(outputs) == 2 and all(len(scale) == 5 for scale in outputs)
    for i, scale in enumerate(outputs):
        for j, output in enumerate(scale):
            assert_matches_original(output, golden(folder, "D_out.npz", f"out{i}_layer{j}"), f"D scale {i} block {j}")


@pytest.mark.unit
def test_global_networks_compute_what_the_original_computed(imported_global):
    from tfsynth import run_dir

    model_dir, _ = imported_global
    model, name = run_dir.load_model(str(model_dir), purpose="networks")
    config = model.config
    assert name == "pix2pixhd" and config.generator == "global" and not config.instance_features
    assert (config.base_filters, config.global_downsamplings, config.global_blocks) == (8, 4, 3)
    assert tuple(config.image_size) == (64, 128)
    # The family's own encoding of label ids + instance ids is the original's encode_input.
    semantic = model.semantic_input(*label_and_instance("global"))
    np.testing.assert_array_equal(semantic.numpy(), golden("global", "input_label.npz", "input_label"))
    assert_matches_original(model.generate(semantic), golden("global", "G_out.npy"), "global G")
    check_discriminators(model, "global", semantic)


@pytest.mark.unit
def test_local_networks_compute_what_the_original_computed(imported_local):
    from tfsynth import run_dir

    model_dir, _ = imported_local
    model, _ = run_dir.load_model(str(model_dir), purpose="networks")
    config = model.config
    assert config.generator == "local" and config.instance_features
    assert (config.base_filters, config.global_downsamplings, config.global_blocks, config.local_blocks) == (8, 2, 3, 2)
    assert (config.feature_channels, config.encoder_filters, config.encoder_downsamplings) == (3, 8, 4)
    label, instance = label_and_instance("local")
    semantic = model.semantic_input(label, instance)
    np.testing.assert_array_equal(semantic.numpy(), golden("local", "input_label.npz", "input_label"))
    # E on the photo, averaged per instance (the original's Encoder.forward): G's feature input.
    features = model.encode(photo_uint8(), instance)
    assert_matches_original(features, golden("local", "E_out_instance_mean.npy"), "E, instance-averaged")
    assert_matches_original(model.generate(semantic, features), golden("local", "G_out.npy"), "local G")
    check_discriminators(model, "local", semantic)


def served_golden(folder):
    """The original's output as the export maps outputs: (x + 1) * 127.5, rounded, clipped."""
    return np.clip(np.round((golden(folder, "G_out.npy") + 1) * 127.5), 0, 255)


@pytest.mark.slow
def test_global_export_serves_the_originals_output(tmp_path):
    export = import_original("pix2pixhd", fixture("pix2pixhd", "global"), tmp_path / "run")
    label, instance = label_and_instance("global")
    served = serve(export, label=label, instance=instance)["image"]
    assert served.dtype == np.uint8
    assert np.abs(served.astype(np.float32) - served_golden("global")).max() <= 1


@pytest.mark.slow
def test_local_export_encodes_the_photos_styles_as_the_original(tmp_path):
    export = import_original("pix2pixhd", fixture("pix2pixhd", "local"), tmp_path / "run")
    label, instance = label_and_instance("local")
    served = serve(export, "encode_style", label=label, instance=instance, image=photo_uint8())["image"]
    assert np.abs(served.astype(np.float32) - served_golden("local")).max() <= 1


@pytest.mark.slow
def test_imported_run_trains_on(imported_local):
    # local/ holds every kind of network (G1 and the enhancer, E, both D scales); global/'s run
    # trains through the same code with fewer of them, and its step would add ~10 s to the file.
    model_dir, _ = imported_local
    losses = resume_for_one_step(model_dir, "--train_data=synthetic:64x128:2", "--vgg_weights=random")
    assert {"gan", "feature_matching", "vgg", "D/total"} <= set(losses)
    assert os.path.exists(os.path.join(model_dir, "checkpoints", "ckpt-1.index"))


@pytest.mark.unit
def test_fixture_copies_are_the_originals_bytes():
    """Every file copied into tests/fixtures has the size and sha256 its generator recorded."""
    with open(fixture("pix2pixhd", "meta.json")) as file:
        recorded = json.load(file)["files"]
    copied = [f"{folder}/{name}" for folder in ("global", "local")
              for name in sorted(os.listdir(fixture("pix2pixhd", folder)))]
    assert len(copied) == 19
    for name in copied:
        with open(fixture("pix2pixhd", name), "rb") as file:
            data = file.read()
        digest = hashlib.sha256(data).hexdigest()
        assert (len(data), digest) == (recorded[name]["bytes"], recorded[name]["sha256"]), name


# ---------------------------------------------------------------------------------- hostile

def _copy(tmp_path, folder, names=("latest_net_G.pth", "latest_net_D.pth", "opt.txt")):
    copy = tmp_path / "checkpoints"
    copy.mkdir()
    for name in names:
        shutil.copyfile(fixture("pix2pixhd", folder, name), copy / name)
    return copy


def _refused(path, tmp_path, match):
    with pytest.raises(ImportFailure, match=match):
        import_original("pix2pixhd", str(path), tmp_path / "run")
    assert not os.path.exists(tmp_path / "run")
    assert not [name for name in os.listdir(tmp_path) if "import" in name]


@pytest.mark.unit
def test_a_cyclegan_generator_is_refused_naming_its_first_tensor(tmp_path):
    # CycleGAN's ResNet generator has the GlobalGenerator's very layout; its 3 RGB input channels
    # are what give it away.
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    shutil.copyfile(fixture("cyclegan", "latest_net_G_A.pth"), folder / "latest_net_G.pth")
    _refused(folder, tmp_path, r"'model\.1\.weight' takes 3 input channels")


@pytest.mark.unit
def test_a_folder_without_a_generator_is_refused(tmp_path):
    _refused(fixture("crn"), tmp_path, r"no <epoch>_net_G\.pth")


@pytest.mark.unit
def test_a_generator_tensor_of_another_shape_is_named(tmp_path):
    from test_torch_files import Storage, Tensor, write_checkpoint

    from tfsynth.importing.torch_files import read_state_dict

    folder = _copy(tmp_path, "global")
    arrays = read_state_dict(folder / "latest_net_G.pth")
    arrays["model.19.weight"] = np.zeros((128, 48, 3, 3), np.float32)  # the first ConvTranspose2d, widened
    state = {}
    for key, (name, array) in enumerate(arrays.items()):
        strides = tuple(int(s) // array.itemsize for s in array.strides)
        state[name] = Tensor(Storage(str(key), "FloatStorage", array.ravel()), 0, array.shape, strides)
    write_checkpoint(folder / "latest_net_G.pth", state)
    _refused(folder, tmp_path, r"'model\.19\.weight' has shape \(128, 48, 3, 3\), layer g_up1 expects")


@pytest.mark.unit
def test_options_that_contradict_the_tensors_are_named(tmp_path):
    folder = _copy(tmp_path, "global")
    text = (folder / "opt.txt").read_text().replace("n_downsample_global: 4", "n_downsample_global: 3")
    (folder / "opt.txt").write_text(text)
    _refused(folder, tmp_path, r"n_downsample_global: 3, but .*latest_net_G\.pth holds n_downsample_global=4")


@pytest.mark.unit
def test_a_configuration_tfsynth_cannot_express_is_one_line(tmp_path):
    folder = _copy(tmp_path, "global")
    (folder / "opt.txt").write_text((folder / "opt.txt").read_text().replace("norm: instance", "norm: batch"))
    _refused(folder, tmp_path, r"opt\.txt: norm: batch: tfsynth's pix2pixhd has instance norms only")


@pytest.mark.unit
def test_the_generator_file_alone_imports_with_a_fresh_discriminator(tmp_path, capsys):
    from tfsynth.importing import formats

    folder = _copy(tmp_path, "local", ("latest_net_G.pth",))
    original = formats.read("pix2pixhd", str(folder / "latest_net_G.pth"))
    # Without opt.txt and E: the depths from the keys, 35 labels + 1 edge + 3 features from G's input.
    assert original.hparams["generator"] == "local" and original.hparams["global_downsamplings"] == 2
    assert original.hparams["instance_features"] and original.hparams["feature_channels"] == 3
    assert "the discriminators start fresh" in capsys.readouterr().out
