"""CycleGAN through the real commands: train on unpaired streams, samples, export, reload, infer,
image_folder datasets (trainA/trainB) and their errors, dry runs of the paper configs."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from cli_support import REPO_ROOT, run_module

pytestmark = [pytest.mark.cli, pytest.mark.family("cyclegan")]

TINY_FLAGS = os.path.join(REPO_ROOT, "configs", "smoke", "cyclegan_tiny.flags")
#: The tiny run's hparams for image_folder data (absl keeps only the last --hparams).
FOLDER_HPARAMS = ("--hparams=domains_from=splits,generator=resnet_2blocks,base_filters=8,"
                  "discriminator_filters=8,load_size=36,crop_size=32,pool_size=4")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir):
    """One tiny run (labels <-> photos of the synthetic scenes) shared by the tests reading it."""
    model_dir = str(tmp_path_factory.mktemp("run") / "cyclegan")
    return model_dir, run_module(cache_dir, "tfsynth.train", f"--flagfile={TINY_FLAGS}", f"--model_dir={model_dir}")


def test_training_prints_networks_and_writes_samples_checkpoints_and_export(trained):
    import tensorflow as tf

    model_dir, result = trained
    for name in ("G_A", "G_B", "D_A", "D_B"):
        assert any(line.split()[:1] == [name] and "parameters" in line for line in result.stdout.splitlines())
    assert "step 4/4" in result.stdout
    last = next(line for line in result.stdout.splitlines() if line.startswith("step 4/4"))
    for key in ("gan_a", "gan_b", "cycle_a", "cycle_b", "idt_a", "idt_b", "total", "D/a", "D/b", "D/total"):
        assert np.isfinite(float(last.split(f" {key}=")[1].split()[0])), key
    config = json.load(open(os.path.join(model_dir, "config.json")))
    assert config["model"] == "cyclegan" and config["hparams"]["domains_from"] == "labels"
    samples = sorted(os.listdir(os.path.join(model_dir, "samples")))
    assert samples == ["samples_00000002.png", "samples_00000004.png"]
    grid = np.asarray(Image.open(os.path.join(model_dir, "samples", samples[-1])))
    assert grid.shape == (2 * 32, 6 * 64, 3)  # A | G_A(A) | G_B(G_A(A)) | B | G_B(B) | G_A(G_B(B))
    # The image pools are in the checkpoint, so a resumed run continues with them.
    saved = dict(tf.train.list_variables(tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))))
    pool_images = [name for name in saved if name.startswith("pool_fake_a/images")]
    assert pool_images and saved[pool_images[0]] == [4, 32, 64, 3]
    assert os.path.exists(os.path.join(model_dir, "export", "1", "saved_model.pb"))
    info = json.load(open(os.path.join(model_dir, "export", "1", "tfsynth_export.json")))
    assert [e["name"] for e in info["endpoints"]] == ["a_to_b", "b_to_a"] and info["size_multiple"] == 4
    assert set(info["signatures"]) == {"a_to_b", "b_to_a", "serving_default", "predict_png"}


def test_export_rejects_sizes_that_are_not_multiples_of_4(trained):
    import tensorflow as tf

    model_dir, _ = trained
    loaded = tf.saved_model.load(os.path.join(model_dir, "export", "1"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of 4"):
        loaded.signatures["b_to_a"](image=tf.zeros([1, 30, 64, 3], tf.uint8))


def test_infer_translates_image_files_in_the_chosen_direction(trained, run_cli, tmp_path):
    model_dir, _ = trained
    inputs = tmp_path / "photos"
    inputs.mkdir()
    Image.fromarray(np.full((32, 64, 3), 90, np.uint8)).save(inputs / "p0.png")
    out = tmp_path / "out"
    run_cli("tfsynth.infer", f"--saved_model={model_dir}/export/1", f"--input={inputs}",
            f"--output={out}", "--signature=b_to_a")
    assert os.listdir(out) == ["p0.png"]
    assert np.asarray(Image.open(out / "p0.png")).shape == (32, 64, 3)


def _image_folder(root, counts):
    """SRC/<split>/ folders of small random PNGs of assorted sizes (the converter resizes nothing)."""
    rng = np.random.default_rng(0)
    for split, count in counts.items():
        folder = root / split
        folder.mkdir(parents=True)
        for index in range(count):
            size = (40 + 4 * index, 44)
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    return root


def test_trains_on_image_folder_domains(tmp_path, run_cli):
    src = _image_folder(tmp_path / "src", {"trainA": 3, "trainB": 5})
    data = tmp_path / "tfr"
    run_cli("tools/build_tfrecords.py", "--format=image_folder", f"--src={src}", f"--out={data}")
    result = run_cli("tfsynth.train", f"--flagfile={TINY_FLAGS}", f"--model_dir={tmp_path / 'm'}",
                     f"--train_data={data}", FOLDER_HPARAMS, "--train_steps=2", "--export=false")
    assert "trainA: 3" in result.stdout and "trainB: 5" in result.stdout and "step 2/2" in result.stdout
    assert os.listdir(tmp_path / "m" / "samples")  # sample grid from trainA/trainB images


def test_missing_or_empty_domain_fails_naming_the_split(tmp_path, run_cli):
    src = _image_folder(tmp_path / "src", {"trainA": 2})
    (src / "trainB").mkdir()  # empty
    result = run_cli("tools/build_tfrecords.py", "--format=image_folder", f"--src={src}",
                     f"--out={tmp_path / 'bad'}", check=False)
    assert result.returncode != 0 and "trainB" in result.stderr
    data = tmp_path / "tfr"
    run_cli("tools/build_tfrecords.py", "--format=image_folder", f"--src={src}", f"--out={data}",
            "--splits=trainA")
    result = run_cli("tfsynth.train", f"--flagfile={TINY_FLAGS}", f"--model_dir={tmp_path / 'm'}",
                     f"--train_data={data}", FOLDER_HPARAMS, check=False)
    assert result.returncode != 0
    assert "no shards of split 'trainB'" in result.stderr and "trainA" in result.stderr


def _config_of(flagfile):
    from tfsynth import config as config_lib
    from tfsynth.models.cyclegan import CycleGANConfig

    lines = open(os.path.join(REPO_ROOT, "configs", flagfile)).read().splitlines()
    flags = dict(line.lstrip("-").split("=", 1) for line in lines if line.startswith("--"))
    assert flags["model"] == "cyclegan"
    return flags, config_lib.build_config(CycleGANConfig, config_lib.parse_hparams(flags["hparams"]))


def test_paper_configs_hold_the_papers_settings():
    flags, cityscapes = _config_of("cyclegan_cityscapes.flags")
    assert (cityscapes.generator, cityscapes.load_size, cityscapes.crop_size) == (
        "resnet_6blocks", (143, 143), (128, 128))
    assert flags["global_batch_size"] == "1" and flags["epochs"] == "200"
    assert (cityscapes.epochs_constant, cityscapes.epochs_decay) == (100, 100)
    assert cityscapes.domains_from == "splits"
    flags, unpaired = _config_of("cyclegan_unpaired.flags")
    assert (unpaired.generator, unpaired.load_size, unpaired.crop_size) == (
        "resnet_9blocks", (286, 286), (256, 256))
    assert flags["global_batch_size"] == "1" and flags["epochs"] == "200"


def test_quickstart_config_is_a_small_unpaired_labels_to_photos_run():
    flags, config = _config_of("cyclegan_quickstart.flags")
    assert flags["train_data"].startswith("synthetic:")
    assert config.domains_from == "labels" and config.generator == "resnet_6blocks"
    assert config.base_filters < 64
