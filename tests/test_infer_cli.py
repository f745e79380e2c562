"""tfsynth.infer as a user meets it: odd sizes, and never overwriting what the user has."""

import os

import numpy as np
import pytest
from PIL import Image

from cli_support import SMOKE_FLAGS, run_module

pytestmark = pytest.mark.cli


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, cache_dir):
    """A tiny CRN export: labels -> 3 images, sizes must be multiples of 8."""
    model_dir = tmp_path_factory.mktemp("run") / "crn"
    run_module(cache_dir, "tfsynth.train", f"--flagfile={SMOKE_FLAGS}", f"--model_dir={model_dir}",
               "--train_steps=1")
    return str(model_dir / "export" / "1")


def labels_folder(path, sizes):
    path.mkdir()
    rng = np.random.default_rng(0)
    for index, size in enumerate(sizes):
        Image.fromarray(rng.integers(0, 34, size, dtype=np.uint8)).save(path / f"l{index}.png")
    return path


def test_odd_sizes_are_padded_by_reflection_and_cropped_back(export_dir, run_cli, tmp_path):
    import tensorflow as tf

    inputs = labels_folder(tmp_path / "labels", [(30, 45)])
    run_cli("tfsynth.infer", f"--saved_model={export_dir}", f"--input={inputs}", f"--output={tmp_path / 'out'}")
    assert sorted(os.listdir(tmp_path / "out")) == ["l0.png", "l0_0.png", "l0_1.png", "l0_2.png"]
    written = np.asarray(Image.open(tmp_path / "out" / "l0.png"))
    assert written.shape == (30, 45, 3)
    label = np.asarray(Image.open(inputs / "l0.png"))
    padded = np.pad(label, [(0, 2), (0, 3)], mode="reflect")  # to 32x48, multiples of 8
    served = tf.saved_model.load(export_dir).signatures["serving_default"](label=tf.constant(padded[None]))
    np.testing.assert_array_equal(written, served["image"][0, :30, :45].numpy())


def test_resize_fits_and_error_refuses_naming_the_file(export_dir, run_cli, tmp_path):
    inputs = labels_folder(tmp_path / "labels", [(30, 45)])
    run_cli("tfsynth.infer", f"--saved_model={export_dir}", f"--input={inputs}", f"--output={tmp_path / 'r'}",
            "--fit=resize")
    assert np.asarray(Image.open(tmp_path / "r" / "l0_2.png")).shape == (30, 45, 3)
    refused = run_cli("tfsynth.infer", f"--saved_model={export_dir}", f"--input={inputs}",
                      f"--output={tmp_path / 'e'}", "--fit=error", check=False)
    assert refused.returncode != 0 and "l0.png" in refused.stderr and "multiple of 8" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_never_overwrites_without_being_asked(export_dir, run_cli, tmp_path):
    inputs = labels_folder(tmp_path / "labels", [(32, 64)])
    before = (inputs / "l0.png").read_bytes()
    link = tmp_path / "link"  # another name for the input folder
    link.symlink_to(inputs, target_is_directory=True)
    for output, *asked in ((inputs,), (inputs / "inside",), (link, "--overwrite")):
        refused = run_cli("tfsynth.infer", f"--saved_model={export_dir}", f"--input={inputs}", f"--output={output}",
                          *asked, check=False)
        assert refused.returncode != 0 and "error: --output" in refused.stderr and "--input" in refused.stderr
    assert (inputs / "l0.png").read_bytes() == before and not (inputs / "inside").exists()

    out = tmp_path / "out"
    run_cli("tfsynth.infer", f"--saved_model={export_dir}", f"--input={inputs}", f"--output={out}")
    (out / "l0.png").write_bytes(b"mine")
    again = run_cli("tfsynth.infer", f"--saved_model={export_dir}", f"--input={inputs}", f"--output={out}",
                    check=False)
    assert again.returncode != 0 and "--overwrite" in again.stderr and (out / "l0.png").read_bytes() == b"mine"
    run_cli("tfsynth.infer", f"--saved_model={export_dir}", f"--input={inputs}", f"--output={out}", "--overwrite")
    assert np.asarray(Image.open(out / "l0.png")).shape == (32, 64, 3)


def test_two_inputs_that_would_write_one_file_are_refused(export_dir, run_cli, tmp_path):
    inputs = tmp_path / "labels"
    inputs.mkdir()
    Image.fromarray(np.full((32, 64), 7, np.uint8)).save(inputs / "scene.png")
    Image.fromarray(np.full((32, 64), 9, np.uint8)).save(inputs / "scene.PNG", format="PNG")
    refused = run_cli("tfsynth.infer", f"--saved_model={export_dir}", f"--input={inputs}",
                      f"--output={tmp_path / 'out'}", check=False)
    assert refused.returncode != 0 and "scene.PNG" in refused.stderr and "scene.png" in refused.stderr
    assert not (tmp_path / "out").exists()


def test_a_photo_or_jpeg_given_as_a_label_is_refused_and_a_palette_drawing_is_read(export_dir, run_cli, tmp_path):
    from tfsynth.data import labels

    inputs = labels_folder(tmp_path / "labels", [(32, 64)])
    ids = np.asarray(Image.open(inputs / "l0.png"))
    Image.fromarray(labels.colorize(ids, "cityscapes35")).save(inputs / "l0_color.png")
    run_cli("tfsynth.infer", f"--saved_model={export_dir}", f"--input={inputs}", f"--output={tmp_path / 'out'}")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "l0_color.png")),
                                  np.asarray(Image.open(tmp_path / "out" / "l0.png")))
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 64, 3), dtype=np.uint8)).save(photos / "p.png")
    Image.fromarray(ids).save(photos / "q.jpg")
    for name, found in [("p.png", "of the pixels are not colours of the cityscapes35 palette"), ("q.jpg", "JPEG")]:
        refused = run_cli("tfsynth.infer", f"--saved_model={export_dir}", f"--input={photos / name}",
                          f"--output={tmp_path / name}", check=False)
        assert refused.returncode != 0 and f"error: {photos / name}: " in refused.stderr and found in refused.stderr
        assert "Traceback" not in refused.stderr and not (tmp_path / name).exists()


def test_export_prints_results_not_tensorflow_chatter(export_dir, run_cli, tmp_path):
    model_dir = os.path.dirname(os.path.dirname(export_dir))
    quiet = run_cli("tfsynth.export", f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'q'}")
    assert "Exported SavedModel" in quiet.stdout
    assert "signature_serialization" not in quiet.stderr and "Sharding callback" not in quiet.stderr
    verbose = run_cli("tfsynth.export", f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'v'}",
                      "--verbosity=1")
    assert "Sharding callback" in verbose.stderr or "signature_serialization" in verbose.stderr


def test_repeated_hparams_merge_left_to_right(run_cli, tmp_path):
    result = run_cli("tfsynth.train", "--flagfile=configs/cyclegan_quickstart.flags", "--hparams=pool_size=10",
                     f"--model_dir={tmp_path / 'm'}", "--dry_run")
    hparams = next(line for line in result.stdout.splitlines() if line.strip().startswith("hparams"))
    # The flagfile's generator and sizes stay; the command line's key is added.
    assert "pool_size=10" in hparams and "generator=resnet_6blocks" in hparams and "crop_size=(64, 128)" in hparams


def test_every_command_has_a_console_script():
    from importlib import metadata

    scripts = {entry.name: entry.value for entry in metadata.entry_points(group="console_scripts")
               if entry.name.startswith("tfsynth-")}
    commands = {name: f"tfsynth.{name}:run" for name in ("train", "export", "infer", "evaluate", "bench")}
    for package in ("studio", "profiling"):  # packages: python -m tfsynth.studio runs its __main__
        commands[package] = f"tfsynth.{package}.__main__:run"
    commands["import"] = "tfsynth.import_weights:run"
    assert scripts == {f"tfsynth-{name}": target for name, target in commands.items()}
