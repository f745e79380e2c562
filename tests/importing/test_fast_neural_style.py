"""pytorch/examples' fast_neural_style TransformerNet, imported from the old released models'
format (pre-1.6 file, stale InstanceNorm running statistics): it stylizes as the original's
stylize() did, serves the PNG it wrote, trains on, and refuses a mis-shaped or foreign file."""

import os
import re

import numpy as np
import pytest

from import_support import assert_matches_original, fixture, import_original, resume_for_one_step, serve

pytestmark = [pytest.mark.family("style_transfer")]

LEGACY = fixture("fast_neural_style", "legacy_running_stats.pth")


def _png(name: str) -> np.ndarray:
    from PIL import Image

    with Image.open(fixture("fast_neural_style", name)) as image:
        return np.asarray(image.convert("RGB"), np.uint8)


def _nhwc(name: str) -> np.ndarray:
    return np.load(fixture("fast_neural_style", name)).transpose(0, 2, 3, 1)


@pytest.fixture(scope="module")
def imported(tmp_path_factory, cache_dir):
    model_dir = tmp_path_factory.mktemp("fast_neural_style") / "run"
    return model_dir, import_original("fast_neural_style", LEGACY, model_dir, export=False)


@pytest.mark.unit
def test_imported_network_stylizes_as_the_original(imported):
    from tfsynth import run_dir

    model_dir, _ = imported
    model, name = run_dir.load_model(str(model_dir))
    config = model.config
    assert name == "style_transfer" and config.architecture == "pytorch_examples" and config.norm == "instance"
    assert (config.base_filters, config.residual_blocks) == (32, 5)
    stylized = model.transform(_nhwc("content_in.npy")).numpy()  # 0..255, not clamped
    assert_matches_original(stylized, _nhwc("stylized_out.npy"), "TransformerNet's output")


@pytest.mark.slow
def test_imported_export_serves_the_png_stylize_wrote(tmp_path):
    export = import_original("fast_neural_style", LEGACY, tmp_path / "run")
    content = _png("content.png")
    assert np.array_equal(content, _nhwc("content_in.npy")[0])  # what stylize() fed the network
    served = serve(export, image=content[None])["image"][0]
    # The export rounds where stylize() truncated after clamping: at most one level apart.
    assert served.dtype == np.uint8
    assert np.abs(served.astype(int) - _png("stylized.png").astype(int)).max() <= 1


@pytest.mark.slow
def test_imported_run_trains_on(imported):
    model_dir, _ = imported
    # The imported crop is the example's 256; the 64x64 scenes are enlarged to it, as any photo
    # smaller than the crop is, so the run trains with its own hyper-parameters.
    resume_for_one_step(model_dir, "--train_data=synthetic:64x64:2", "--vgg_weights=random")
    assert os.path.exists(os.path.join(model_dir, "checkpoints", "ckpt-1.index"))


def _import_changed(tmp_path, monkeypatch, change, path=LEGACY):
    """Imports the fixture's tensors after ``change(name -> array dict)``, as if read from ``path``."""
    from tfsynth.importing import fast_neural_style, torch_files

    arrays = torch_files.read_state_dict(path)
    change(arrays)
    monkeypatch.setattr(fast_neural_style, "read_state_dict", lambda _: arrays)
    import_original("fast_neural_style", path, tmp_path / "run")


def _nothing_written(tmp_path):
    assert not os.path.exists(tmp_path / "run")
    assert not [name for name in os.listdir(tmp_path) if "import" in name]


@pytest.mark.parametrize("change, message", [
    pytest.param(lambda arrays: arrays.pop("deconv2.conv2d.weight"), r"'deconv2\.conv2d\.weight' is missing",
                 id="missing-conv-weight"),
    pytest.param(lambda arrays: arrays.update(
        {"res3.conv2.conv2d.weight": arrays["res3.conv2.conv2d.weight"].reshape(128, 128, 9, 1)}),
        r"'res3\.conv2\.conv2d\.weight' has shape \(128, 128, 9, 1\), layer res3_conv2 expects \(3, 3, 128, 128\)",
        id="reshaped-kernel"),
    pytest.param(lambda arrays: arrays.update({"conv3.conv2d.weight": arrays["conv3.conv2d.weight"].reshape(128, -1)}),
                 r"'conv3\.conv2d\.weight' has shape \(128, 576\), layer down2 expects", id="flattened-kernel"),
    pytest.param(lambda arrays: arrays.update({"in4.weight": arrays["in4.weight"].reshape(8, 8)}),
                 r"'in4\.weight' has shape \(8, 8\), layer up1_norm expects \(64,\)", id="reshaped-norm"),
])
@pytest.mark.unit
def test_a_mis_shaped_or_missing_tensor_is_named_and_nothing_is_written(tmp_path, monkeypatch, change, message):
    from tfsynth.importing.tensors import ImportFailure

    with pytest.raises(ImportFailure, match=f"^{re.escape(LEGACY)}: .*{message}"):
        _import_changed(tmp_path, monkeypatch, change)
    _nothing_written(tmp_path)


@pytest.mark.unit
def test_only_what_stylize_deletes_is_ignored(tmp_path, monkeypatch):
    from tfsynth.importing.tensors import ImportFailure

    def add(arrays):
        arrays["in1.num_batches_tracked"] = np.array(8)  # load_state_dict would refuse it too

    with pytest.raises(ImportFailure, match=r"in1\.num_batches_tracked \(\)"):
        _import_changed(tmp_path, monkeypatch, add)
    _nothing_written(tmp_path)


@pytest.mark.unit
def test_another_familys_state_dict_is_refused(tmp_path):
    from tfsynth.importing.tensors import ImportFailure

    cyclegan = fixture("cyclegan", "latest_net_G_A.pth")
    refusal = f"^{re.escape(cyclegan)}: not a fast_neural_style TransformerNet state dict"
    with pytest.raises(ImportFailure, match=refusal):
        import_original("fast_neural_style", cyclegan, tmp_path / "run")
    _nothing_written(tmp_path)
