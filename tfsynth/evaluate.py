"""Evaluate and compare exported label -> image models on one dataset.

    python -m tfsynth.evaluate --saved_model=runs/crn/export/1 --eval_data=DATA --out=eval/crn
    python -m tfsynth.evaluate --saved_model=crn:S1,pix2pix:S2 --eval_data=DATA --out=eval/cmp \\
        --segmenter=runs/segmenter/export/1 --inception=keras

Every model runs on the same examples. Per model: the segmentation score of its outputs (pixel
accuracy, mean class accuracy and mean IoU over the 19 Cityscapes train classes, ignore label
honoured; FCN-score protocol: outputs resized to the label size, bilinear, before segmenting),
FID and KID on Inception pool features, PSNR and SSIM against the paired real photo, and for
multi-output models (CRN) the diversity of their outputs in pixels and in VGG features. The real
photos are scored as the oracle row. Writes ``report.json``, ``report.md`` and ``grid.png``
(label | real | each model) for a fixed set of examples.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from absl import flags

from tfsynth import flags as tfsynth_flags


class EvaluationError(ValueError):
    """A bad flag or an export that cannot be evaluated; the message names it."""


def parse_models(text: str) -> list[tuple[str, str]]:
    """``"a:PATH,b:PATH"`` or a single ``PATH`` -> [(name, path)]."""
    models = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, path = item.partition(":")
        if not sep:
            name, path = os.path.basename(os.path.dirname(os.path.normpath(item))) or "model", item
        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            raise EvaluationError(f"--saved_model: {path} is not a SavedModel directory")
        models.append((name, path))
    if len({name for name, _ in models}) != len(models):
        raise EvaluationError("--saved_model: model names must be unique")
    return models


def load_export(path: str, expected_kind: str):
    import tensorflow as tf

    info_path = os.path.join(path, "tfsynth_export.json")
    if not os.path.exists(info_path):
        raise EvaluationError(f"{info_path} not found: not a tfsynth export")
    with open(info_path) as f:
        info = json.load(f)
    if info["kind"] != expected_kind:
        raise EvaluationError(f"{path} is a {info['kind']} export; {expected_kind} is needed here")
    return tf.saved_model.load(path).signatures["serving_default"], info


class ModelScores:
    """Streaming metrics of one source of photos (a model, or the real images)."""

    def __init__(self, name: str, *, with_pairs: bool, vgg=None, ignore_label: int = 255):
        from tfsynth.metrics import image_quality, segmentation
        from tfsynth.metrics.diversity import DiversityAccumulator

        self.name = name
        self.confusion = segmentation.ConfusionMatrix(segmentation.NUM_TRAIN_CLASSES, ignore_label)
        self.psnr = image_quality.MeanMetric("psnr") if with_pairs else None
        self.ssim = image_quality.MeanMetric("ssim") if with_pairs else None
        self.diversity = DiversityAccumulator(vgg)
        self.features = []
        self.seconds = 0.0

    def row(self, real_features, kid_subset_size: int, classes: list[int], class_names) -> dict:
        from tfsynth.metrics import fid, segmentation

        row = {"model": self.name}
        if self.confusion.matrix.sum():
            scores = segmentation.scores(self.confusion.matrix)
            row["pixel_accuracy"] = scores["pixel_accuracy"]
            # Class means over the evaluated classes only (the papers' protocols differ here).
            for mean_key, per_class_key in (("mean_class_accuracy", "per_class_accuracy"),
                                            ("mean_iou", "per_class_iou")):
                values = np.array([scores[per_class_key][c] for c in classes], np.float64)
                row[mean_key] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
            row["per_class_iou"] = {class_names[c]: scores["per_class_iou"][c] for c in classes}
        if self.features and real_features is not None:
            features = np.concatenate(self.features)
            row["fid"] = fid.fid_from_features(features, real_features)
            kid = fid.kernel_inception_distance(features, real_features, subset_size=kid_subset_size)
            row["kid_mean"], row["kid_std"] = kid.mean, kid.std
        if self.psnr is not None:
            row["psnr"], row["ssim"] = self.psnr.result(), self.ssim.result()
        result = self.diversity.result()
        if result["applicable"]:
            row["diversity_pixel_l1"] = result["diversity_pixel_l1"]
            if "diversity_vgg_l1" in result:
                row["diversity_vgg_l1"] = result["diversity_vgg_l1"]
            row["diversity_labels"] = result["labels"]
        row["seconds"] = round(self.seconds, 2)
        return row


def evaluate(flags_values) -> str:
    import tensorflow as tf

    from tfsynth.data import labels, pipelines
    from tfsynth.metrics import report, segmentation

    start = time.time()
    models = parse_models(flags_values.saved_model)
    data_dir = pipelines.resolve_data_dir(flags_values.eval_data)
    split = pipelines.load_split(data_dir, flags_values.split)
    space = split.label_space
    exports = {}
    for name, path in models:
        signature, info = load_export(path, "label_to_image")
        if info["label_space"] != space:
            raise EvaluationError(f"{path} reads {info['label_space']} labels but {data_dir} holds {space}")
        exports[name] = (signature, info)
    segmenter = load_export(flags_values.segmenter, "image_to_label")[0] if flags_values.segmenter else None
    inception = None
    if flags_values.inception != "none":
        from tfsynth.metrics import fid

        try:
            inception = fid.InceptionFeatures(flags_values.inception)
        except fid.MetricsWeightsError as error:
            raise EvaluationError(f"--inception={flags_values.inception}: {error}") from None
    vgg = None
    if any(info["num_outputs"] > 1 for _, info in exports.values()):
        from tfsynth.perceptual import VGGFeatures

        vgg = VGGFeatures(depth=19, layers=("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2"),
                          weights=flags_values.vgg_weights)

    to_train_ids = labels.mapping_table(space, "cityscapes19")
    classes = evaluated_classes(flags_values.eval_classes)
    scoring_size = None if flags_values.scoring_size == "label" else parse_size(flags_values.scoring_size,
                                                                                  "--scoring_size")
    ignore = flags_values.ignore_label
    scores = {name: ModelScores(name, with_pairs=True, vgg=vgg, ignore_label=ignore) for name in exports}
    oracle = ModelScores(report.ORACLE, with_pairs=False, ignore_label=ignore)
    real_features, grid_columns = [], None
    total = split.count if not flags_values.num_examples else min(split.count, flags_values.num_examples)
    dataset = pipelines.make_dataset(split, batch_size=flags_values.batch_size, shuffle=False, repeat=False,
                                     with_label=True, drop_remainder=False)
    seen = 0
    print(f"Evaluating {len(exports)} model(s) on {total} examples of {data_dir} [{split.name}]", flush=True)
    for batch in dataset:
        if seen >= total:
            break
        keep = min(total - seen, int(batch["image"].shape[0]))
        label_ids = batch["label"][:keep]
        real = batch["image"][:keep].numpy()
        size = scoring_size or real.shape[1:3]
        real = segmentation.resize_for_scoring(real, size)
        truth = to_train_ids[segmentation.resize_for_scoring(label_ids.numpy(), size)]
        truth[truth == labels.IGNORE_ID] = ignore

        def score_photos(target, photos):
            if segmenter is not None:
                predicted = segmenter(image=tf.constant(photos))["label"].numpy()
                target.confusion.update(truth, predicted)
            if inception is not None and target is not oracle:
                target.features.append(inception(photos))

        score_photos(oracle, real)
        if inception is not None:
            real_features.append(inception(real))
        columns = [labels.colorize(segmentation.resize_for_scoring(label_ids.numpy(), size), space), real]
        for name, (signature, info) in exports.items():
            model_start = time.time()
            input_size = model_input_size(flags_values.input_size, info, label_ids.shape[1:3])
            fed = tf.image.resize(label_ids[..., None], input_size, method="nearest")[..., 0]
            outputs = signature(label=fed)
            photos = segmentation.resize_for_scoring(outputs["image"].numpy(), size)
            target = scores[name]
            score_photos(target, photos)
            target.psnr.update(_metric("psnr", photos, real))
            target.ssim.update(_metric("ssim", photos, real))
            if "images" in outputs:
                target.diversity.update(outputs["images"].numpy())
            target.seconds += time.time() - model_start
            columns.append(photos)
        if grid_columns is None:
            grid_columns = [column[: flags_values.grid_examples] for column in columns]
        seen += keep
        print(f"[{seen}/{total}] examples", flush=True)
    if seen == 0:
        raise EvaluationError(f"no examples in {data_dir} [{split.name}]")

    real_features = np.concatenate(real_features) if real_features else None
    kid_subset = min(flags_values.kid_subset_size, seen)
    names = labels.cityscapes19().class_names
    rows = ([scores[name].row(real_features, kid_subset, classes, names) for name in exports]
            + [oracle.row(None, kid_subset, classes, names)])
    meta = {
        "data": data_dir, "split": split.name, "examples": seen, "label_space": space,
        "models": dict(models),
        "protocol": {"scoring_size": ("label size" if scoring_size is None else f"{scoring_size[0]}x{scoring_size[1]}")
                                     + " (photos resized bilinearly, labels nearest)",
                     "input_size": {"train": "each model's training size (labels resized nearest)",
                                    "label": "the label size"}.get(flags_values.input_size,
                                                                   flags_values.input_size),
                     "classes": [names[c] for c in classes], "ignore_label": ignore},
        "segmenter": flags_values.segmenter or "none (no segmentation scores)",
        "feature_extractor": inception.description if inception is not None else "none (no FID/KID)",
        "diversity_features": f"VGG-19, weights: {vgg.weights_source}" if vgg is not None else "n/a",
        "wall_time_s": round(time.time() - start, 1),
    }
    os.makedirs(flags_values.out, exist_ok=True)
    json_path, md_path = report.write_report(flags_values.out, rows, meta)
    grid_path = os.path.join(flags_values.out, "grid.png")
    report.write_image_grid(grid_path, grid_columns)
    with open(md_path) as f:
        print(f.read())
    print(f"Wrote {json_path}, {md_path}, {grid_path}")
    return md_path


def evaluated_classes(flag: str) -> list[int]:
    """``--eval_classes``: empty for all 19 train classes, else names or trainIds, comma-separated."""
    from tfsynth.data import labels

    names = labels.cityscapes19().class_names
    if not flag:
        return list(range(len(names)))
    classes = []
    for item in (part.strip() for part in flag.split(",") if part.strip()):
        if item.isdigit() and int(item) < len(names):
            classes.append(int(item))
        elif item in names:
            classes.append(names.index(item))
        else:
            raise EvaluationError(f"--eval_classes: unknown class {item!r}; valid: {', '.join(names)} or 0..18")
    return classes


def parse_size(text: str, flag: str) -> tuple[int, int]:
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise EvaluationError(f"{flag}={text}: expected HxW") from None
    return height, width


def model_input_size(flag: str, info: dict, label_size) -> tuple[int, int]:
    """The label size fed to a model: its training size, the label size, or ``HxW``."""
    if flag == "train":
        return tuple(info.get("training_size") or label_size)
    if flag == "label":
        return tuple(label_size)
    return parse_size(flag, "--input_size (train, label or HxW)")


def _metric(name: str, photos, real):
    from tfsynth.metrics import image_quality

    return getattr(image_quality, name)(photos, real)


def main(argv):
    del argv
    try:
        evaluate(flags.FLAGS)
    except ValueError as error:  # EvaluationError, DataError, ...: each names its flag or file
        sys.exit(f"error: {error}")


def run():
    tfsynth_flags.run_command(main, tfsynth_flags.define_evaluate_flags, required=("saved_model", "eval_data", "out"))


if __name__ == "__main__":
    run()
