"""Evaluation end to end: a tiny segmenter, CRN and CycleGAN, compared by tfsynth.evaluate."""

import json
import os
import types

import numpy as np
import pytest
from PIL import Image

from cli_support import REPO_ROOT, SMOKE_FLAGS, run_module

pytestmark = pytest.mark.cli

SEGMENTER_FLAGS = os.path.join(REPO_ROOT, "configs", "smoke", "segmenter_tiny.flags")


def train(cache, flagfile, model_dir, *extra):
    return run_module(cache, "tfsynth.train", f"--flagfile={flagfile}", f"--model_dir={model_dir}", *extra)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("eval_runs")
    crn = train(cache_dir, SMOKE_FLAGS, root / "crn", "--eval_every=2")
    train(cache_dir, SEGMENTER_FLAGS, root / "segmenter")
    return root, crn


def test_eval_every_writes_metrics_to_logs_eval(runs):
    from tensorboard.backend.event_processing import event_accumulator

    root, crn = runs
    assert "eval at step 2:" in crn.stdout and "psnr=" in crn.stdout
    accumulator = event_accumulator.EventAccumulator(str(root / "crn" / "logs" / "eval"),
                                                     size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    assert {"eval/psnr", "eval/ssim", "eval/diversity_pixel_l1"} <= set(accumulator.Tags()["tensors"])
    assert [e.step for e in accumulator.Tensors("eval/psnr")] == [2, 4]


def test_segmenter_dry_run_and_export_signature(runs, run_cli):
    import tensorflow as tf

    root, _ = runs
    dry = run_cli("tfsynth.train", f"--flagfile={SEGMENTER_FLAGS}", "--model_dir=/nonexistent", "--dry_run")
    assert "segmenter" in dry.stdout and "parameters" in dry.stdout
    info = json.load(open(root / "segmenter" / "export" / "1" / "tfsynth_export.json"))
    assert "kind" not in info and info["output_label_space"] == "cityscapes19"
    assert info["endpoints"] == [{
        "name": "serving_default", "outputs": ["label"], "scale": 1, "reference": None,
        "conditioned_on_labels": False,
        "inputs": [{"name": "image", "kind": "image", "source": "image", "optional": False}]}]
    assert "serving_default" in info["signatures"] and "predict_png" in info["signatures"]
    serving = tf.saved_model.load(str(root / "segmenter" / "export" / "1")).signatures["serving_default"]
    labels = serving(image=tf.zeros([2, 32, 64, 3], tf.uint8))["label"]
    assert labels.dtype == tf.uint8 and labels.shape == (2, 32, 64)
    assert int(tf.reduce_max(labels)) < 19


def test_evaluate_compares_models_with_oracle_row(runs, run_cli, tmp_path):
    root, _ = runs
    export = root / "crn" / "export" / "1"
    out = tmp_path / "report"
    result = run_cli("tfsynth.evaluate", f"--saved_model=a:{export},b:{export}", "--eval_data=synthetic:32x64:20",
                     "--split=train", "--num_examples=6", "--batch_size=4",
                     f"--segmenter={root / 'segmenter' / 'export' / '1'}", "--inception=random",
                     "--vgg_weights=random", "--kid_subset_size=4", f"--out={out}")
    assert "[6/6] examples" in result.stdout
    report = json.load(open(out / "report.json"))
    rows = {row["model"]: row for row in report["rows"]}
    assert set(rows) == {"a", "b", "real images (oracle)"}
    for name in ("a", "b"):
        row = rows[name]
        for key in ("pixel_accuracy", "mean_class_accuracy", "mean_iou", "psnr", "ssim", "fid", "kid_mean",
                    "diversity_pixel_l1", "diversity_vgg_l1"):
            assert isinstance(row[key], float) and np.isfinite(row[key]), (name, key)
        assert 0 <= row["pixel_accuracy"] <= 1
    # The same export on the same data scores the same.
    assert rows["a"]["pixel_accuracy"] == rows["b"]["pixel_accuracy"]
    assert rows["a"]["fid"] == pytest.approx(rows["b"]["fid"])
    assert 0 <= rows["real images (oracle)"]["pixel_accuracy"] <= 1
    assert report["meta"]["examples"] == 6
    assert report["meta"]["skipped"] == {}  # labels, segmenter, features, targets and K=3: all apply
    table = open(out / "report.md").read().splitlines()
    table_rows = [line for line in table if line.startswith("| ")]
    assert len(table_rows) == 1 + 3  # header + two models + oracle (the separator starts with "|-")
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (4 * 32, 4 * 64, 3)  # 4 examples; label | real | a | b


def test_evaluate_rejects_missing_export_and_offline_inception(runs, run_cli, tmp_path):
    root, _ = runs
    missing = run_cli("tfsynth.evaluate", f"--saved_model={tmp_path / 'none'}", "--eval_data=synthetic:32x64:20",
                      f"--out={tmp_path / 'o'}", check=False)
    assert missing.returncode != 0 and "not a SavedModel directory" in missing.stderr
    offline = run_cli("tfsynth.evaluate", f"--saved_model={root / 'crn' / 'export' / '1'}",
                      "--eval_data=synthetic:32x64:20", f"--inception={tmp_path / 'missing.pb'}",
                      f"--out={tmp_path / 'o2'}", check=False)
    assert offline.returncode != 0 and "--inception" in offline.stderr and "missing.pb" in offline.stderr
    wrong_kind = run_cli("tfsynth.evaluate", f"--saved_model={root / 'segmenter' / 'export' / '1'}",
                         "--eval_data=synthetic:32x64:20", "--inception=none", f"--out={tmp_path / 'o3'}",
                         check=False)
    assert wrong_kind.returncode != 0 and "outputs label, not images" in wrong_kind.stderr


def test_protocol_options_class_list_scoring_size_and_ignore_label(runs, run_cli, tmp_path):
    root, _ = runs
    common = [f"--saved_model=crn:{root / 'crn' / 'export' / '1'}", "--eval_data=synthetic:32x64:20",
              "--split=train", "--num_examples=4", f"--segmenter={root / 'segmenter' / 'export' / '1'}",
              "--inception=none", "--vgg_weights=random"]
    full = run_cli("tfsynth.evaluate", *common, f"--out={tmp_path / 'all'}")
    subset = run_cli("tfsynth.evaluate", *common, "--eval_classes=road,sky,car", "--scoring_size=64x128",
                     "--ignore_label=254", f"--out={tmp_path / 'subset'}")
    assert full.returncode == 0 and subset.returncode == 0
    all_rows = {r["model"]: r for r in json.load(open(tmp_path / "all" / "report.json"))["rows"]}
    report = json.load(open(tmp_path / "subset" / "report.json"))
    rows = {r["model"]: r for r in report["rows"]}
    assert sorted(rows["crn"]["per_class_iou"]) == ["car", "road", "sky"]
    assert len(all_rows["crn"]["per_class_iou"]) == 19
    ious = [v for v in rows["crn"]["per_class_iou"].values() if v is not None]
    expected = float(np.mean(ious)) if ious else None
    if expected is not None:
        assert rows["crn"]["mean_iou"] == pytest.approx(expected)
    protocol = report["meta"]["protocol"]
    assert protocol["classes"] == ["road", "sky", "car"] and protocol["ignore_label"] == 254
    assert protocol["scoring_size"].startswith("64x128")
    assert np.asarray(Image.open(tmp_path / "subset" / "grid.png")).shape[:2] == (4 * 64, 3 * 128)
    bad = run_cli("tfsynth.evaluate", *common, "--eval_classes=road,unicorn", f"--out={tmp_path / 'bad'}",
                  check=False)
    assert bad.returncode != 0 and "unicorn" in bad.stderr and "sky" in bad.stderr


def _evaluate_flags(**values):
    """The flag values of a ``tfsynth.evaluate`` command line, for calling ``evaluate`` in-process."""
    defaults = dict(saved_model=None, eval_data=None, split="val", out=None, segmenter=None, inception="auto",
                    vgg_weights="auto", num_examples=0, batch_size=4, grid_examples=4, input_size="train",
                    scoring_size="label", eval_classes="", ignore_label=255, kid_subset_size=1000)
    return types.SimpleNamespace(**{**defaults, **values})


def _offline_inception(monkeypatch):
    from tfsynth.metrics import fid

    def offline():
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(fid, "download_imagenet_inception", offline)


def test_auto_inception_offline_goes_without_fid_and_says_so(runs, monkeypatch, tmp_path, capsys):
    from tfsynth import evaluate
    from tfsynth.metrics import fid

    root, _ = runs
    _offline_inception(monkeypatch)
    out = tmp_path / "auto"
    flags_values = _evaluate_flags(saved_model=f"crn:{root / 'crn' / 'export' / '1'}",
                                   eval_data="synthetic:32x64:20", split="train", num_examples=4,
                                   vgg_weights="random", out=str(out))
    assert flags_values.inception == "auto"  # the default
    evaluate.evaluate(flags_values)
    printed = capsys.readouterr().out
    assert "notice: FID/KID skipped" in printed and fid.howto() in printed
    report = json.load(open(out / "report.json"))
    rows = {r["model"]: r for r in report["rows"]}
    assert set(rows) == {"crn", "real images (oracle)"}
    row = rows["crn"]
    assert "fid" not in row and "kid_mean" not in row
    assert np.isfinite(row["psnr"]) and np.isfinite(row["diversity_pixel_l1"])
    assert list(report["meta"]["skipped"]) == ["crn"]
    skipped = report["meta"]["skipped"]["crn"]
    assert "fid_kid" in skipped
    assert "segmentation" in skipped and "--segmenter" in skipped["segmentation"]
    assert "psnr_ssim" not in skipped and "diversity" not in skipped
    assert report["meta"]["feature_extractor"].startswith("none")
    markdown = open(out / "report.md").read()
    assert "Not computed for crn:" in markdown and "fid_kid" in markdown

    # An explicit source fails loudly instead.
    with pytest.raises(evaluate.EvaluationError, match=r"(?s)--inception=keras.*URL fetch failure"):
        evaluate.evaluate(_evaluate_flags(**{**vars(flags_values), "inception": "keras",
                                             "out": str(tmp_path / "keras")}))
    assert not (tmp_path / "keras" / "report.json").exists()


@pytest.fixture(scope="module")
def cyclegan_export(tmp_path_factory, cache_dir):
    """An untrained CycleGAN between colour-coded labels and photos, exported."""
    import keras

    from tfsynth import export
    from tfsynth.data import pipelines
    from tfsynth.models.cyclegan import CycleGAN, CycleGANConfig

    split = pipelines.load_split(pipelines.resolve_data_dir("synthetic:32x64:20"), "train")
    keras.utils.set_random_seed(4)
    model = CycleGAN(CycleGANConfig(domains_from="labels", generator="resnet_2blocks", base_filters=4,
                                    discriminator_filters=4, load_size=(36, 72), crop_size=(32, 64),
                                    pool_size=0), source_label_space=split.label_space)
    path = str(tmp_path_factory.mktemp("cyclegan") / "export" / "1")
    return export.export_model(model, path, model_name="cyclegan"), split


def test_evaluate_feeds_an_image_to_image_export_from_the_field_it_declares(runs, cyclegan_export, run_cli,
                                                                          tmp_path):
    import tensorflow as tf

    from tfsynth.data import labels, pipelines
    from tfsynth.metrics import image_quality

    root, _ = runs
    path, split = cyclegan_export
    out = tmp_path / "cyclegan"
    run_cli("tfsynth.evaluate", f"--saved_model=cyclegan:{path}", "--eval_data=synthetic:32x64:20",
            "--split=train", "--num_examples=4", f"--segmenter={root / 'segmenter' / 'export' / '1'}",
            "--inception=none", f"--out={out}")
    report = json.load(open(out / "report.json"))
    (row,) = [r for r in report["rows"] if r["model"] == "cyclegan"]
    # a_to_b (the first endpoint) reads the label map drawn in its palette and is compared with the
    # photo; the outputs depict the labels, so they are segmented; one output: no diversity.
    assert 0 <= row["pixel_accuracy"] <= 1 and np.isfinite(row["mean_iou"])
    skipped = report["meta"]["skipped"]["cyclegan"]
    assert set(skipped) == {"fid_kid", "diversity"}
    assert "diversity_pixel_l1" not in row and "fid" not in row
    # The PSNR is that of the export fed colour-coded labels (the same examples, in order).
    batch = next(iter(pipelines.make_dataset(split, batch_size=4, shuffle=False, repeat=False)))
    serve = tf.saved_model.load(path).signatures["a_to_b"]
    colours = labels.colorize(batch["label"].numpy(), split.label_space)
    from_colours = serve(image=tf.constant(colours))["image"].numpy()
    from_photos = serve(image=batch["image"])["image"].numpy()
    real = batch["image"].numpy()
    expected = float(np.mean(image_quality.psnr(from_colours, real)))
    assert row["psnr"] == pytest.approx(expected, rel=1e-4)
    assert abs(float(np.mean(image_quality.psnr(from_photos, real))) - expected) > 1e-3
    assert row["ssim"] == pytest.approx(float(np.mean(image_quality.ssim(from_colours, real))), rel=1e-4)
