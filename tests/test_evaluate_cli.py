"""Evaluation end to end: a tiny segmenter and CRN, compared by tfsynth.evaluate."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from cli_support import REPO_ROOT, SMOKE_FLAGS, run_module

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
    assert info["kind"] == "image_to_label" and info["output_label_space"] == "cityscapes19"
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
    assert wrong_kind.returncode != 0 and "image_to_label export" in wrong_kind.stderr


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
