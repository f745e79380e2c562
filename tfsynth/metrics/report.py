"""Evaluation reports: ``report.json`` (everything), ``report.md`` (one table) and an image grid.

A report row is a dict with a ``model`` name and its metrics, as the metric functions return them
(``pixel_accuracy``, ``mean_iou``, ``fid``, ``kid_mean``/``kid_std``, ``psnr``, ...). The Markdown
table shows the scalar metrics present in any row, one row per model and a final
"real images (oracle)" row: the same scores computed on the real photos, which bound what a
generator can reach under the protocol (pix2pix's "ground truth", pix2pixHD's "oracle"). Missing
values and NaN are shown as "–".
"""

from __future__ import annotations

import datetime
import io
import json
import math
import os
import platform
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from tfsynth.run_dir import write_bytes

ORACLE = "real images (oracle)"
DASH = "–"

# key -> (column header, formatter kind). Order here is column order; unknown scalar keys follow.
_COLUMNS = (
    ("pixel_accuracy", "pixel acc. ↑", "fraction"),
    ("mean_class_accuracy", "class acc. ↑", "fraction"),
    ("mean_iou", "mIoU ↑", "fraction"),
    ("fid", "FID ↓", "fixed2"),
    ("kid_mean", "KID ×10³ ↓", "kid"),
    ("psnr", "PSNR dB ↑", "fixed2"),
    ("ssim", "SSIM ↑", "fraction"),
    ("psnr_y", "PSNR-Y dB ↑", "fixed2"),
    ("ssim_y", "SSIM-Y ↑", "fraction"),
    ("diversity_pixel_l1", "diversity, pixel L1", "fixed2"),
    ("diversity_vgg_l1", "diversity, VGG L1", "general"),
)
# What each metric is, and what it may be compared with; written to report.json["meta"].
METRIC_NOTES = {
    "pixel_accuracy": "segmentation of the outputs vs the input labels; comparable only with the "
                      "same segmenter, label set, and resolution (the oracle row is the bound)",
    "mean_class_accuracy": "as pixel_accuracy; mean over classes present in the labels",
    "mean_iou": "as pixel_accuracy; mean over classes present in labels or predictions",
    "fid": "Fréchet distance of Inception pool features; comparable only with the same feature "
           "extractor (see meta.feature_extractor), image size, and sample count",
    "kid_mean": "unbiased cubic-kernel MMD^2 of Inception features (shown ×10³, ± std over "
                "subsets); same caveats as FID, but not biased by the sample count",
    "psnr": "dB against the paired real image; paired data only",
    "ssim": "tf.image.ssim against the paired real image; paired data only",
    "psnr_y": "dB on the Y channel of YCbCr (BT.601) after shaving `scale` pixels per border, at the "
              "model's output size against the photo its input was degraded from; super-resolution only "
              "(the bicubic row upsamples the same inputs)",
    "ssim_y": "tf.image.ssim on the Y channel, as psnr_y",
    "diversity_pixel_l1": "mean pairwise |x_i - x_j| between a model's K outputs (0..255); "
                          "multi-output models only",
    "diversity_vgg_l1": "mean pairwise VGG-feature L1 between a model's K outputs; layers in the "
                        "row's labels",
}


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _to_json(value):
    """numpy -> Python; NaN -> None and ±inf -> "inf"/"-inf", so the file is strict JSON."""
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return _to_json(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    return value


def _format(value, kind: str) -> str:
    if value is None or not _is_number(value) or math.isnan(float(value)):
        return DASH
    value = float(value)
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if kind == "fraction":
        return f"{value:.3f}"
    if kind == "fixed2":
        return f"{value:.2f}"
    if kind == "kid":
        return f"{value * 1e3:.2f}"
    magnitude = abs(value)  # "general": about four significant figures.
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.4f}" if magnitude >= 1e-3 or magnitude == 0 else f"{value:.3g}"


def _columns(rows: Sequence[Mapping]) -> List[Tuple[str, str, str]]:
    present = {k for row in rows for k, v in row.items() if _is_number(v)}
    columns = [c for c in _COLUMNS if c[0] in present]
    known = {c[0] for c in _COLUMNS} | {"kid_std"}
    for row in rows:  # Remaining scalar metrics, in first-seen order.
        for key, value in row.items():
            if key not in known and _is_number(value) and key not in {c[0] for c in columns}:
                columns.append((key, key, "general"))
    return columns


def _cell(row: Mapping, key: str, kind: str) -> str:
    text = _format(row.get(key), kind)
    if kind == "kid" and text != DASH and _is_number(row.get("kid_std")):
        text += f" ± {_format(row['kid_std'], 'kid')}"
    return text


def _ordered_rows(rows: Sequence[Mapping]) -> List[Dict]:
    """Models in the given order, then exactly one oracle row (empty if none was supplied)."""
    models, oracle = [], None
    for row in rows:
        row = dict(row)
        if "model" not in row:
            raise ValueError(f"every report row needs a 'model' name; got keys {sorted(row)}")
        if row["model"] == ORACLE or row.get("oracle"):
            row["model"], row["oracle"] = ORACLE, True
            oracle = row
        else:
            models.append(row)
    return models + [oracle or {"model": ORACLE, "oracle": True, "note": "not computed"}]


def markdown_table(rows: Sequence[Mapping]) -> str:
    """The report's Markdown table (no header text), one line per row."""
    rows = _ordered_rows(rows)
    columns = _columns(rows)
    lines = ["| model | " + " | ".join(header for _, header, _ in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for row in rows:
        name = str(row["model"]).replace("|", "\\|")
        lines.append(f"| {name} | " + " | ".join(_cell(row, k, kind) for k, _, kind in columns) + " |")
    return "\n".join(lines)


def _default_hardware() -> str:
    return f"{platform.machine()} {platform.processor() or ''}".strip() + f", {os.cpu_count()} CPUs"


def write_report(out_dir: str, rows: Sequence[Mapping], meta: Mapping) -> Tuple[str, str]:
    """Writes ``out_dir/report.json`` and ``out_dir/report.md``.

    Args:
        out_dir: Directory (created if needed).
        rows: One dict per model: ``model`` plus metrics (scalars for the table; lists and dicts,
            e.g. per-class IoU or diversity labels, go to the JSON only). A row named
            ``"real images (oracle)"`` (or with ``oracle: True``) is the oracle row; without one
            the table shows an empty oracle row.
        meta: Describes the evaluation: ``data`` (dataset, split, image count), ``protocol``
            (segmenter, resolution, feature extractor, ...), ``hardware``, ``wall_time_s``, and
            ``comparable_with`` (what the numbers may be compared with). Missing ``hardware`` is
            filled in; notes on every metric present are added under ``metrics``.

    Returns:
        The paths of the JSON and Markdown files.
    """
    os.makedirs(out_dir, exist_ok=True)
    ordered = _ordered_rows(rows)
    present = {k for row in ordered for k, v in row.items() if _is_number(v)}
    meta = dict(meta)
    meta.setdefault("hardware", _default_hardware())
    meta.setdefault("created", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    notes = {k: v for k, v in METRIC_NOTES.items() if k in present}
    meta["metrics"] = {**notes, **dict(meta.get("metrics", {}))}

    json_path = os.path.join(out_dir, "report.json")
    write_bytes(json_path, (json.dumps({"meta": _to_json(meta), "rows": _to_json(ordered)}, indent=2,
                                       ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8"))

    header = ["# Evaluation report", ""]
    for key, title in (("data", "Data"), ("protocol", "Protocol"), ("feature_extractor", "FID/KID features"),
                       ("comparable_with", "Comparable with"),
                       ("hardware", "Hardware"), ("wall_time_s", "Wall time"),
                       ("wall_time", "Wall time")):
        if key in meta:
            value = meta[key]
            if key.startswith("wall_time") and _is_number(value):
                value = f"{float(value):.1f} s"
            elif isinstance(value, Mapping):
                value = "; ".join(f"{k}: {v}" for k, v in value.items())
            header.append(f"- **{title}:** {value}")
    for model, skipped in dict(meta.get("skipped", {})).items():
        reasons = "; ".join(f"{metric} ({reason})" for metric, reason in skipped.items())
        header.append(f"- **Not computed for {model}:** {reasons}")
    md_path = os.path.join(out_dir, "report.md")
    write_bytes(md_path, ("\n".join(header) + "\n\n" + markdown_table(ordered) + "\n\n"
                          f"{DASH} = not computed or not applicable. Full numbers and per-metric notes: "
                          "report.json.\n").encode("utf-8"))
    return json_path, md_path


def write_image_grid(path: str, columns: Sequence) -> np.ndarray:
    """Writes a PNG grid: one row per example, one column per source (label | real | each model).

    Args:
        path: Output PNG path (its directory is created).
        columns: List of equally shaped ``[N, H, W, 3]`` arrays (uint8, or float on 0..255,
            which is rounded and clipped); ``[N, H, W]`` grey images are repeated to RGB.

    Returns:
        The uint8 ``[N*H, len(columns)*W, 3]`` grid that was written.
    """
    from PIL import Image

    if not columns:
        raise ValueError("write_image_grid needs at least one column")
    arrays = []
    for i, column in enumerate(columns):
        array = np.asarray(column)
        if array.ndim == 3:
            array = np.repeat(array[..., None], 3, axis=-1)
        if array.ndim != 4 or array.shape[-1] != 3:
            raise ValueError(f"column {i}: expected [N, H, W, 3] images, got shape {array.shape}")
        if array.dtype != np.uint8:
            array = np.clip(np.round(array.astype(np.float64)), 0, 255).astype(np.uint8)
        arrays.append(array)
    if any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError(f"columns must share one shape, got {[a.shape for a in arrays]}")
    n, h, w, _ = arrays[0].shape
    # [C, N, H, W, 3] -> [N, H, C, W, 3] -> rows of examples, columns of sources.
    grid = np.stack(arrays).transpose(1, 2, 0, 3, 4).reshape(n * h, len(arrays) * w, 3)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, format="PNG")
    write_bytes(path, buffer.getvalue())
    return grid
