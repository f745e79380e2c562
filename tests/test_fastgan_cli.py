"""FastGAN's export through the real commands: samples with a contact sheet, an interpolation
strip between two seeds, and FID/KID against the training and held-out splits."""

import json
import os

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.cli, pytest.mark.family("fastgan")]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny, untrained FastGAN export (its noise weights at 1, so noise would show)."""
    import keras
    import tensorflow as tf

    from tfsynth import export
    from tfsynth.models.fastgan import FastGAN, FastGANConfig

    keras.utils.set_random_seed(2)
    model = FastGAN(FastGANConfig(resolution=32, latent_size=8, generator_filters=4, discriminator_filters=4,
                                  decoder_filters=4, vgg_weights="random"))
    for weight in model.generator_ema.weights:
        if "noise" in weight.path:
            weight.assign(tf.ones_like(weight))
    return export.export_model(model, str(tmp_path_factory.mktemp("export") / "1"), model_name="fastgan")


def read(path):
    return np.asarray(Image.open(path))


def test_infer_draws_samples_and_a_contact_sheet(exported, tmp_path, run_cli):
    out = tmp_path / "samples"
    result = run_cli("tfsynth.infer", f"--saved_model={exported}", "--num_samples=3", "--seed=5", f"--output={out}")
    assert sorted(os.listdir(out)) == ["contact_sheet.png", "seed_5.png", "seed_6.png", "seed_7.png"]
    sheet = read(out / "contact_sheet.png")
    assert sheet.shape == (32, 96, 3) and "Contact sheet" in result.stdout
    np.testing.assert_array_equal(sheet[:, 32:64], read(out / "seed_6.png"))


def test_interpolation_strip_runs_from_seed_a_to_seed_b(exported, tmp_path, run_cli):
    import tensorflow as tf

    out = tmp_path / "strip"
    run_cli("tfsynth.infer", f"--saved_model={exported}", "--interpolate=3,9", "--steps=4", f"--output={out}")
    strip = read(out / "interpolation_3_9.png")
    assert strip.shape == (32, 128, 3) and len(os.listdir(out)) == 5
    served = tf.saved_model.load(exported).signatures["serving_default"](seed=tf.constant([3, 9], tf.int64))
    ends = served["image"].numpy().astype(int)
    assert np.abs(strip[:, :32].astype(int) - ends[0]).max() <= 1
    assert np.abs(strip[:, 96:].astype(int) - ends[1]).max() <= 1
    assert np.abs(strip[:, 32:64].astype(int) - ends[0]).max() > 0  # the frames between differ from the ends


def test_interpolate_needs_two_seeds(exported, tmp_path, run_cli):
    result = run_cli("tfsynth.infer", f"--saved_model={exported}", "--interpolate=3", f"--output={tmp_path}",
                     check=False)
    assert result.returncode != 0 and "error: --interpolate=3: expected two seeds" in result.stderr
    assert "Traceback" not in result.stderr


def test_evaluate_reports_fid_against_the_training_and_the_held_out_split(exported, tmp_path, run_cli):
    out = tmp_path / "eval"
    # 40 built-in scenes: 40 in train, 4 in val.
    run_cli("tfsynth.evaluate", f"--saved_model={exported}", "--eval_data=synthetic:32x32:40", "--split=train,val",
            "--num_examples=4", "--inception=random", f"--out={out}")
    for split in ("train", "val"):
        report = json.load(open(out / split / "report.json"))
        assert report["meta"]["split"] == split and report["meta"]["fid_samples"] == "4 generated vs 4 real images"
        assert np.isfinite(report["rows"][0]["fid"])
