"""pix2pix through the real commands: train, samples, TensorBoard, export and reload, dry runs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cli_support import REPO_ROOT, cli_env, run_module

SMOKE_FLAGS = os.path.join(REPO_ROOT, "configs", "smoke", "pix2pix_tiny.flags")
TINY_HPARAMS = "generator=unet_32,base_filters=4,discriminator_filters=4,load_size=36,crop_size=32"
pytestmark = [pytest.mark.cli, pytest.mark.family("pix2pix")]

LOSS_KEYS = ("D/real", "D/fake", "D/total", "gan", "l1", "total")

# Runs in a fresh process: every signature of an export on saved inputs, outputs saved back.
RELOAD_SCRIPT = """
import sys, numpy as np, tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
inputs = dict(np.load(sys.argv[2], allow_pickle=True))
results = {}
for name, function in loaded.signatures.items():
    (key,) = function.structured_input_signature[1]
    (out,) = function(**{key: tf.constant(inputs[key])}).values()
    results[name] = out.numpy()
np.savez(sys.argv[3], **results)
"""


def train(cache_dir, model_dir, *extra):
    return run_module(cache_dir, "tfsynth.train", f"--flagfile={SMOKE_FLAGS}", f"--model_dir={model_dir}", *extra)


def reload_and_run(cache_dir, export_dir, tmp_path, **inputs):
    np.savez(tmp_path / "inputs.npz", **inputs)
    subprocess.run([sys.executable, "-c", RELOAD_SCRIPT, export_dir, str(tmp_path / "inputs.npz"),
                    str(tmp_path / "outputs.npz")], check=True, env=cli_env(cache_dir), timeout=300)
    return dict(np.load(tmp_path / "outputs.npz", allow_pickle=True))


def png_bytes(arrays):
    import tensorflow as tf

    return np.array([tf.io.encode_png(array).numpy() for array in arrays], dtype=object)


def decode_pngs(encoded):
    import tensorflow as tf

    return np.stack([tf.io.decode_png(item).numpy() for item in encoded])


@pytest.fixture(scope="module")
def labels_run(tmp_path_factory, cache_dir):
    """The smoke config: labels -> photo on the built-in scenes."""
    model_dir = str(tmp_path_factory.mktemp("pix2pix") / "labels")
    return model_dir, train(cache_dir, model_dir)


@pytest.fixture(scope="module")
def photos_run(tmp_path_factory, cache_dir):
    """Photo -> photo: built-in scenes as AB files (photo | colour label), converted with
    --label_space=none, trained with label_input=image."""
    from tfsynth.data import labels, synthetic

    root = tmp_path_factory.mktemp("pix2pix_photos")
    for split, count in (("train", 8), ("val", 2)):
        os.makedirs(root / "ab" / split)
        for index in range(count):
            scene = synthetic.render_scene(7 + len(split), index, 32, 32)
            pair = np.concatenate([scene.image, labels.colorize(scene.label, "cityscapes35")], axis=1)
            Image.fromarray(pair).save(root / "ab" / split / f"{index}.jpg", quality=95)
    data = str(root / "data")
    run_module(cache_dir, "tools/build_tfrecords.py", "--format=pix2pix_ab", f"--src={root / 'ab'}", f"--out={data}",
               "--direction=AtoB", "--label_space=none")
    model_dir = str(root / "run")
    return model_dir, train(cache_dir, model_dir, f"--train_data={data}",
                            f"--hparams={TINY_HPARAMS},label_input=image", "--train_steps=2")


def test_label_run_trains_and_exports(labels_run):
    """One test per training run: under pytest-xdist a module fixture runs once per worker."""
    model_dir, result = labels_run
    check_training_outputs(model_dir, result)
    check_label_export_signatures(model_dir)


def check_training_outputs(model_dir, result):
    from tensorboard.backend.event_processing import event_accumulator

    assert "generator" in result.stdout and "discriminator" in result.stdout
    assert "step 4/4" in result.stdout
    for key in LOSS_KEYS:
        assert f" {key}=" in result.stdout, key
    config = json.load(open(os.path.join(model_dir, "config.json")))
    assert config["model"] == "pix2pix" and config["hparams"]["generator"] == "unet_32"
    samples = sorted(os.listdir(os.path.join(model_dir, "samples")))
    assert samples == ["samples_00000002.png", "samples_00000004.png"]
    grid = np.asarray(Image.open(os.path.join(model_dir, "samples", samples[-1])))
    assert grid.shape == (2 * 32, 3 * 32, 3)  # 2 samples; input | output | target
    accumulator = event_accumulator.EventAccumulator(
        os.path.join(model_dir, "logs", "train"), size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    expected = {f"loss/{key}" for key in LOSS_KEYS} | {
        "learning_rate/G", "learning_rate/D", "samples"}
    assert expected <= set(accumulator.Tags()["tensors"])
    info = json.load(open(os.path.join(model_dir, "export", "1", "tfsynth_export.json")))
    assert [i["kind"] for i in info["endpoints"][0]["inputs"]] == ["label"]
    assert info["size_multiple"] == 32 and info["model"] == "pix2pix"


def check_label_export_signatures(model_dir):
    import tensorflow as tf

    loaded = tf.saved_model.load(os.path.join(model_dir, "export", "1"))
    serving = loaded.signatures["serving_default"]
    (spec,) = serving.structured_input_signature[1].values()
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, None, None] and spec.name == "label"
    assert {k: v.dtype for k, v in serving.structured_outputs.items()} == {"image": tf.uint8}
    png = loaded.signatures["predict_png"]
    assert png.structured_input_signature[1]["label_png_bytes"].dtype == tf.string
    assert png.structured_outputs["image_png_bytes"].dtype == tf.string
    with pytest.raises(tf.errors.InvalidArgumentError, match="label id outside"):
        serving(label=tf.fill([1, 32, 32], tf.constant(40, tf.uint8)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of 32"):
        serving(label=tf.zeros([1, 48, 32], tf.uint8))


def test_photo_export_has_translate_signatures_equal_to_eager(photos_run, tmp_path, cache_dir):
    import tensorflow as tf

    from tfsynth import run_dir

    model_dir, result = photos_run
    assert "step 2/2" in result.stdout
    export_dir = os.path.join(model_dir, "export", "1")
    endpoint = json.load(open(os.path.join(export_dir, "tfsynth_export.json")))["endpoints"][0]
    assert endpoint["name"] == "translate" and endpoint["inputs"][0]["kind"] == "image"
    image = np.random.default_rng(1).integers(0, 256, size=(2, 32, 64, 3), dtype=np.uint8)
    outputs = reload_and_run(cache_dir, export_dir, tmp_path, image=image, image_png_bytes=png_bytes(image))
    assert sorted(outputs) == ["predict_png", "serving_default", "translate"]
    model, _ = run_dir.load_model(model_dir)
    eager = model.generate({"target": tf.constant(image)}).numpy()
    expected = np.clip(np.round(eager), 0, 255).astype(np.uint8)
    for name in ("serving_default", "translate"):
        assert outputs[name].dtype == np.uint8 and outputs[name].shape == (2, 32, 64, 3)
        assert np.abs(outputs[name].astype(int) - expected).max() <= 1, name
    np.testing.assert_array_equal(decode_pngs(outputs["predict_png"]), outputs["serving_default"])

    loaded = tf.saved_model.load(export_dir)
    for name in ("serving_default", "translate"):
        function = loaded.signatures[name]
        (spec,) = function.structured_input_signature[1].values()
        assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, None, None, 3]
        assert {k: v.dtype for k, v in function.structured_outputs.items()} == {"image": tf.uint8}
    png = loaded.signatures["predict_png"]
    assert png.structured_input_signature[1]["image_png_bytes"].dtype == tf.string


@pytest.mark.parametrize("flagfile", ["pix2pix_cityscapes.flags", "pix2pix_facades.flags",
                                      "pix2pix_quickstart.flags", "smoke/pix2pix_tiny.flags"])
def test_configs_are_valid_pix2pix_configs(flagfile):
    from tfsynth import config as config_lib
    from tfsynth.models.pix2pix import Pix2PixConfig

    lines = [line.strip() for line in open(os.path.join(REPO_ROOT, "configs", flagfile))]
    flags = dict(line[2:].partition("=")[::2] for line in lines if line.startswith("--"))
    assert flags["model"] == "pix2pix"
    config = config_lib.build_config(Pix2PixConfig, config_lib.parse_hparams(flags.get("hparams", "")))
    assert config.crop_size % config.size_multiple == 0
    if flagfile == "pix2pix_cityscapes.flags":
        assert config == Pix2PixConfig()  # the paper's recipe is the default
        assert flags["global_batch_size"] == "1" and flags["epochs"] == "200"
    if flagfile == "pix2pix_facades.flags":
        assert config.label_input == "image"
