"""The original CRN code's TF1 checkpoint, imported: it renders what the original rendered."""

import os

import numpy as np
import pytest

from import_support import assert_matches_original, fixture, import_original, resume_for_one_step, serve

pytestmark = [pytest.mark.family("crn")]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("crn") / "run"
    return model_dir, import_original("crn_tf1", fixture("crn"), model_dir, export=False)


@pytest.mark.unit
def test_imported_generator_renders_the_originals_images(imported):
    from tfsynth import run_dir

    model_dir, _ = imported
    model, name = run_dir.load_model(str(model_dir))
    ids = np.load(fixture("crn", "label_ids.npy"))
    images = model.generate(ids).numpy()  # [1, K, H, W, 3], 0..255, not clipped
    assert name == "crn" and model.config.num_outputs == 9 and model.config.max_channels == 32
    assert_matches_original(images[0], np.load(fixture("crn", "output.npy")), "CRN's 9 images")


@pytest.mark.slow
def test_imported_export_serves_the_originals_first_image(tmp_path):
    export = import_original("crn_tf1", fixture("crn"), tmp_path / "run")
    ids = np.load(fixture("crn", "label_ids.npy")).astype(np.uint8)
    served = serve(export, label=ids)["image"][0].astype(np.float32)
    golden = np.clip(np.round(np.load(fixture("crn", "output.npy"))[0]), 0, 255)
    assert np.abs(served - golden).max() <= 1


@pytest.mark.slow
def test_imported_run_trains_on(imported):
    model_dir, _ = imported
    resume_for_one_step(model_dir, "--train_data=synthetic:32x64:2", "--vgg_weights=random")
    assert os.path.exists(os.path.join(model_dir, "checkpoints", "ckpt-1.index"))
