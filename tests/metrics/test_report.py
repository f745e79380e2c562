"""Tests for tfsynth.metrics.report: report.json, report.md and the image grid."""

import json

import numpy as np
import pytest
from PIL import Image

from tfsynth.metrics.report import ORACLE, markdown_table, write_image_grid, write_report

pytestmark = pytest.mark.unit

ROWS = [
    {"model": "crn", "pixel_accuracy": np.float64(0.7055), "mean_iou": 0.3483, "fid": 104.7,
     "kid_mean": 0.0123, "kid_std": 0.0011, "per_class_iou": [0.9, float("nan")],
     "diversity_pixel_l1": 12.5},
    {"model": "pix2pixhd", "pixel_accuracy": 0.8378, "mean_iou": 0.6389, "fid": float("nan"),
     "psnr": float("inf")},
    {"model": ORACLE, "pixel_accuracy": 0.8429, "mean_iou": 0.6857},
]
META = {"data": "cityscapes val, 500 images at 256x512",
        "protocol": "PSPNet segmentation at label size; FID with keras InceptionV3",
        "wall_time_s": 12.34, "comparable_with": "rows of this report only"}


def _table_lines(md):
    return [line for line in md.splitlines() if line.startswith("|")]


def test_report_files_well_formed(tmp_path):
    json_path, md_path = write_report(str(tmp_path / "eval"), ROWS[::-1], META)

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    with open(json_path, encoding="utf-8") as f:
        report = json.load(f, parse_constant=no_constants)
    assert [r["model"] for r in report["rows"]] == ["pix2pixhd", "crn", ORACLE]
    crn = report["rows"][1]
    assert crn["pixel_accuracy"] == pytest.approx(0.7055) and crn["per_class_iou"] == [0.9, None]
    assert report["rows"][0]["fid"] is None and report["rows"][0]["psnr"] == "inf"
    meta = report["meta"]
    assert meta["data"] == META["data"] and meta["wall_time_s"] == 12.34 and meta["hardware"]
    assert {"fid", "mean_iou", "kid_mean"} <= set(meta["metrics"])

    md = open(md_path, encoding="utf-8").read()
    assert "PSPNet" in md and "12.3 s" in md
    lines = _table_lines(md)
    assert len(lines) == 2 + 3  # header, separator, two models + oracle
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[0] == "model" and "FID ↓" in header and "mIoU ↑" in header
    assert "per_class_iou" not in lines[0] and "kid_std" not in lines[0]
    assert set(lines[1].replace("|", "").replace("-", "").replace(":", "")) <= {""}
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    pix2pixhd, crn, oracle = lines[2:]
    assert "| pix2pixhd |" in pix2pixhd and "–" in pix2pixhd and "∞" in pix2pixhd
    assert "0.706" in crn and "104.70" in crn and "12.30 ± 1.10" in crn
    assert oracle.startswith(f"| {ORACLE} |") and "0.843" in oracle


def test_oracle_row_always_last_and_present():
    lines = _table_lines(markdown_table([{"model": "a", "ssim": 0.5}]))
    assert len(lines) == 4 and lines[-1].startswith(f"| {ORACLE} | –")
    with pytest.raises(ValueError, match="model"):
        markdown_table([{"fid": 3.0}])


def test_image_grid_png(tmp_path):
    rng = np.random.default_rng(0)
    label, real, model = (rng.integers(0, 256, (2, 8, 10, 3), dtype=np.uint8) for _ in range(3))
    path = tmp_path / "grids" / "grid.png"
    grid = write_image_grid(str(path), [label, real, model.astype(np.float32)])
    decoded = np.asarray(Image.open(path))
    assert decoded.shape == (16, 30, 3) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, grid)
    np.testing.assert_array_equal(decoded[8:16, 10:20], real[1])  # row = example, column = source
    np.testing.assert_array_equal(decoded[0:8, 20:30], model[0])
    with pytest.raises(ValueError, match="share one shape"):
        write_image_grid(str(path), [label, real[:, :4]])
