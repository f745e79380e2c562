"""Evaluate and compare exported image-synthesis models on one dataset.

    python -m tfsynth.evaluate --saved_model=runs/crn/export/1 --eval_data=DATA --out=eval/crn
    python -m tfsynth.evaluate --saved_model=crn:S1,pix2pix:S2 --eval_data=DATA --out=eval/cmp \\
        --segmenter=runs/segmenter/export/1 --inception=keras

Every model runs on the same examples, fed from each record as its export declares
(``tfsynth_export.json``: which record field feeds each input, what the output should
reproduce). Per model, what applies to it: the segmentation score of its outputs when they depict
the input labels (pixel accuracy, mean class accuracy and mean IoU over the 19 Cityscapes train
classes, ignore label honoured; FCN-score protocol: outputs resized to the label size, bilinear,
before segmenting), FID and KID on Inception pool features (any image model), PSNR and SSIM
against the paired target when there is one, and for multi-output models (CRN) the diversity of
their outputs in pixels and in VGG features. Exports that upsample (``scale`` > 1: super-
resolution, fed the record's photo degraded as in training) also get PSNR and SSIM on the Y
channel with ``scale`` pixels shaved per border, and a bicubic row: the same inputs upsampled
bicubically, the baseline to beat. What did not apply is listed, with the reason, in
the report's ``meta.skipped``. With a segmenter the real photos are scored as the oracle row.
Writes ``report.json``, ``report.md`` and ``grid.png`` (label | real | each model) for a fixed
set of examples.

Unconditional exports (seed inputs) draw one image per example from seeds 0, 1, ..., and get
FID and KID against that split's photos; the report states how many images each side had
(``meta.fid_samples``), since FID on a few hundred images is biased upwards and only comparable
at equal counts. ``--split=train,val`` judges them against the training images and a held-out
split, one report each.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from absl import flags

from tfsynth import flags as tfsynth_flags
from tfsynth import parsing
from tfsynth.parsing import parse_named_paths
from tfsynth.endpoints import record_field


class EvaluationError(ValueError):
    """A bad flag or an export that cannot be evaluated; the message names it."""


def parse_models(text: str) -> list[tuple[str, str]]:
    """``"a:PATH,b:PATH"`` or a single ``PATH`` -> [(name, path)]."""
    try:
        models = parse_named_paths(text, lambda path: os.path.basename(os.path.dirname(os.path.normpath(path)))
                                   or "model")
    except ValueError as error:
        raise EvaluationError(f"--saved_model: {error}") from None
    for _, path in models:
        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            raise EvaluationError(f"--saved_model: {path} is not a SavedModel directory")
    return models


class Export:
    """One export under evaluation: its default endpoint, what applies to it, and its scores."""

    def __init__(self, name: str, path: str, split, *, segmenter: bool, inception: bool, ignore_label: int):
        import tensorflow as tf

        from tfsynth import run_dir
        from tfsynth.metrics import image_quality, segmentation

        self.name, self.path = name, path
        self.info = run_dir.read_export_info(path)
        self.endpoint = self.info["endpoints"][0]
        if "image" not in self.endpoint.outputs:
            raise EvaluationError(f"{path} outputs {', '.join(self.endpoint.outputs)}, not images: "
                                  "nothing here scores it (a segmenter is passed with --segmenter)")
        fields = record_fields(split)
        needs = {record_field(spec.source) for spec in self.endpoint.inputs if not spec.optional} - {"index"}
        missing = sorted(needs - fields)
        if missing:
            raise EvaluationError(f"{path} reads {', '.join(missing)} from each example, which "
                                  f"{split.data_dir} [{split.name}] does not hold")
        # Optional inputs are fed where the data holds them (pix2pixHD's instance maps).
        self.fed = [spec for spec in self.endpoint.inputs if spec.source == "index" or
                    record_field(spec.source) in fields]
        self.signature_name = self.endpoint.signature_name([spec.name for spec in self.fed])
        if "label" in needs and self.info["label_space"] != split.label_space:
            raise EvaluationError(f"{path} reads {self.info['label_space']} labels but {split.data_dir} "
                                  f"holds {split.label_space}")
        # What applies, and why not where it does not.
        self.skipped = {}
        reference = self.endpoint.reference
        if not self.endpoint.conditioned_on_labels or "label" not in fields:
            self.skipped["segmentation"] = "the outputs do not depict a label map of the data"
        elif not segmenter:
            self.skipped["segmentation"] = "no --segmenter given"
        if not inception:
            self.skipped["fid_kid"] = "no Inception features (see meta.feature_extractor)"
        if reference is None or record_field(reference) not in fields:
            self.skipped["psnr_ssim"] = ("no paired target: the model is unpaired or unconditional"
                                         if reference is None else f"the data holds no {reference}")
        if "images" not in self.endpoint.outputs or self.info["num_outputs"] < 2:
            self.skipped["diversity"] = "a single output per input"
        self.signature = tf.saved_model.load(path).signatures[self.signature_name]
        self.confusion = segmentation.ConfusionMatrix(segmentation.NUM_TRAIN_CLASSES, ignore_label)
        self.psnr = image_quality.MeanMetric("psnr")
        self.ssim = image_quality.MeanMetric("ssim")
        # Super-resolution (scale > 1): Y-channel scores with the scale shaved off each border,
        # for the model and for bicubic upsampling of the same inputs (the baseline to beat).
        self.upscaling = self.endpoint.scale > 1 and self.applies("psnr_ssim")
        self.baseline = {name: image_quality.MeanMetric(name) for name in ("psnr", "ssim", "psnr_y", "ssim_y")}
        self.y_scores = {name: image_quality.MeanMetric(name) for name in ("psnr_y", "ssim_y")}
        self.diversity = None  # a DiversityAccumulator, once the VGG features are chosen
        self.features = []
        self.seconds = 0.0

    def applies(self, metric: str) -> bool:
        return metric not in self.skipped

    def records(self, batch: dict, flag: str) -> dict:
        """The fields the endpoint reads, at the model's input size: maps resized nearest,
        photos bilinearly."""
        import tensorflow as tf

        from tfsynth import pixels

        size = model_input_size(flag, self.info, batch["image"].shape[1:3])

        def resize(name, value):
            if name in ("label", "instance"):
                return tf.image.resize(value[..., None], size, method="nearest")[..., 0]
            resized = tf.image.resize(tf.cast(value, tf.float32), size)
            return pixels.to_uint8(resized)

        fields = {record_field(spec.source) for spec in self.fed}
        records = {name: resize(name, value) for name, value in batch.items() if name in fields}
        records.setdefault("image", batch["image"])  # the batch size, for seeds
        return records

    def inputs(self, batch: dict, flag: str, first_index: int) -> dict:
        """The endpoint's inputs from a batch of records, at the model's input size (colour
        labels coloured after resizing, low-resolution inputs degraded from the resized photo)."""
        import tensorflow as tf

        from tfsynth.records import record_source

        records = self.records(batch, flag)
        inputs = {}
        for spec in self.fed:
            value = record_source(records, spec.source, self.info["label_space"], self.endpoint.scale)
            if spec.source == "index":
                value = value + first_index
            inputs[spec.name] = tf.cast(value, spec.dtype)
        return inputs

    def row(self, real_features, kid_subset_size: int, classes: list[int], class_names) -> dict:
        row = {"model": self.name}
        row.update(confusion_scores(self.confusion.matrix, classes, class_names))
        if self.features and real_features is not None:
            from tfsynth.metrics import fid

            features = np.concatenate(self.features)
            row["fid"] = fid.fid_from_features(features, real_features)
            kid = fid.kernel_inception_distance(features, real_features, subset_size=kid_subset_size)
            row["kid_mean"], row["kid_std"] = kid.mean, kid.std
        if self.applies("psnr_ssim"):
            row["psnr"], row["ssim"] = self.psnr.result(), self.ssim.result()
        if self.upscaling:
            row.update({name: metric.result() for name, metric in self.y_scores.items()})
        result = self.diversity.result() if self.diversity is not None else {"applicable": False}
        if result["applicable"]:
            row["diversity_pixel_l1"] = result["diversity_pixel_l1"]
            if "diversity_vgg_l1" in result:
                row["diversity_vgg_l1"] = result["diversity_vgg_l1"]
            row["diversity_labels"] = result["labels"]
        row["seconds"] = round(self.seconds, 2)
        return row


def confusion_scores(matrix, classes: list[int], class_names) -> dict:
    """Pixel accuracy, and class accuracy and IoU averaged over the evaluated classes only (the
    papers' protocols differ here); nothing when nothing was segmented."""
    from tfsynth.metrics import segmentation

    if not matrix.sum():
        return {}
    scores = segmentation.scores(matrix)
    row = {"pixel_accuracy": scores["pixel_accuracy"]}
    for mean_key, per_class_key in (("mean_class_accuracy", "per_class_accuracy"), ("mean_iou", "per_class_iou")):
        values = np.array([scores[per_class_key][c] for c in classes], np.float64)
        row[mean_key] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    row["per_class_iou"] = {class_names[c]: scores["per_class_iou"][c] for c in classes}
    return row


def record_fields(split) -> set[str]:
    """The fields every record of ``split`` holds."""
    fields = {"image"}
    if split.label_space:
        fields.add("label")
    for field in ("instance", "target"):
        if split.info.get(f"has_{field}"):
            fields.add(field)
    return fields


def load_inception(flag: str):
    """(extractor or None, description). ``auto`` takes cached or downloadable keras weights and
    otherwise goes without, saying how to add them; any other source fails loudly."""
    from tfsynth.metrics import fid

    if flag == "none":
        return None, "none (--inception=none)"
    try:
        extractor = fid.InceptionFeatures("keras" if flag == "auto" else flag)
    except fid.MetricsWeightsError as error:
        if flag != "auto":
            raise EvaluationError(f"--inception={flag}: {error}") from None
        notice = ("none: no Inception weights here (--inception=auto); for FID/KID run once with network "
                  "access, or pass --inception=PATH (classify_image_graph_def.pb or the keras .h5)")
        print(f"notice: FID/KID skipped: {notice}.\n{fid.howto()}", flush=True)
        return None, notice
    return extractor, extractor.description


def evaluate(flags_values) -> str:
    """Evaluates on ``--split``, or on each of several comma-separated splits with a report per
    split under ``--out/<split>/`` (e.g. ``train,val``: an unconditional model's FID against its
    training images and against held-out ones). Returns the last report's Markdown path."""
    out = flags_values.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise EvaluationError(f"--out: {out} is a file, not a directory")
    splits = list(dict.fromkeys(part.strip() for part in flags_values.split.split(",") if part.strip()))
    if not splits:
        raise EvaluationError("--split: name at least one split")
    if len(splits) == 1:
        return evaluate_split(flags_values, splits[0], out)
    return [evaluate_split(flags_values, split, os.path.join(out, split)) for split in splits][-1]


def evaluate_split(flags_values, split_name: str, out: str) -> str:
    import tensorflow as tf

    from tfsynth.data import labels, pipelines
    from tfsynth.metrics import report, segmentation

    start = time.time()
    models = parse_models(flags_values.saved_model)
    data_dir = pipelines.resolve_data_dir(flags_values.eval_data)
    split = pipelines.load_split(data_dir, split_name)
    space = split.label_space
    fields = record_fields(split)
    segmenter = None
    if flags_values.segmenter:
        from tfsynth import run_dir

        segmenter_info = run_dir.read_export_info(flags_values.segmenter, flag="--segmenter")
        if segmenter_info["endpoints"][0].outputs != ("label",):
            raise EvaluationError(f"--segmenter: {flags_values.segmenter} does not output label maps")
        segmenter = tf.saved_model.load(flags_values.segmenter).signatures["serving_default"]
    inception, inception_text = load_inception(flags_values.inception)
    exports = [Export(name, path, split, segmenter=segmenter is not None, inception=inception is not None,
                      ignore_label=flags_values.ignore_label) for name, path in models]
    vgg = None
    if any(export.applies("diversity") for export in exports):
        from tfsynth.metrics.diversity import DiversityAccumulator
        from tfsynth.perceptual import VGGFeatures

        vgg = VGGFeatures(depth=19, layers=("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2"),
                          weights=flags_values.vgg_weights)
        for export in exports:
            if export.applies("diversity"):
                export.diversity = DiversityAccumulator(vgg)

    has_labels = "label" in fields
    to_train_ids = labels.mapping_table(space, "cityscapes19") if has_labels else None
    classes = evaluated_classes(flags_values.eval_classes)
    scoring_size = None if flags_values.scoring_size == "label" else parse_size(flags_values.scoring_size,
                                                                                  "--scoring_size")
    ignore = flags_values.ignore_label
    oracle = segmentation.ConfusionMatrix(segmentation.NUM_TRAIN_CLASSES, ignore)
    real_features, grid_columns = [], None
    total = split.count if not flags_values.num_examples else min(split.count, flags_values.num_examples)
    dataset = pipelines.make_dataset(split, batch_size=flags_values.batch_size, shuffle=False, repeat=False,
                                     with_label=has_labels, with_target="target" in fields,
                                     with_instance="instance" in fields, drop_remainder=False,
                                     batch_by_size=True)
    seen = 0
    print(f"Evaluating {len(exports)} model(s) on {total} examples of {data_dir} [{split.name}]", flush=True)
    for batch in dataset:
        if seen >= total:
            break
        keep = min(total - seen, int(batch["image"].shape[0]))
        batch = {key: value[:keep] for key, value in batch.items()}
        real = batch["image"].numpy()
        size = scoring_size or real.shape[1:3]
        real = segmentation.resize_for_scoring(real, size)
        truth = None
        if has_labels:
            truth = to_train_ids[segmentation.resize_for_scoring(batch["label"].numpy(), size)]
            truth[truth == labels.IGNORE_ID] = ignore
            if segmenter is not None:
                oracle.update(truth, segmenter(image=tf.constant(real))["label"].numpy())
        if inception is not None:
            real_features.append(inception(real))
        columns = ([labels.colorize(segmentation.resize_for_scoring(batch["label"].numpy(), size), space)]
                   if has_labels else []) + [real]
        for export in exports:
            model_start = time.time()
            outputs = export.signature(**export.inputs(batch, flags_values.input_size, seen))
            photos = segmentation.resize_for_scoring(outputs["image"].numpy(), size)
            if export.applies("segmentation"):
                export.confusion.update(truth, segmenter(image=tf.constant(photos))["label"].numpy())
            if inception is not None:
                export.features.append(inception(photos))
            if export.applies("psnr_ssim"):
                reference = record_source_numpy(batch, export.endpoint.reference, space)
                reference = segmentation.resize_for_scoring(reference, size)
                export.psnr.update(_metric("psnr", photos, reference))
                export.ssim.update(_metric("ssim", photos, reference))
            if export.upscaling:
                bicubic = upscaling_scores(export, batch, flags_values.input_size, outputs["image"].numpy())
                bicubic = segmentation.resize_for_scoring(bicubic, size)
                export.baseline["psnr"].update(_metric("psnr", bicubic, reference))
                export.baseline["ssim"].update(_metric("ssim", bicubic, reference))
            if export.applies("diversity"):
                export.diversity.update(outputs["images"].numpy())
            export.seconds += time.time() - model_start
            columns += [bicubic, photos] if export.upscaling else [photos]
        if grid_columns is None:
            grid_columns = [column[: flags_values.grid_examples] for column in columns]
        seen += keep
        print(f"[{seen}/{total}] examples", flush=True)
    if seen == 0:
        raise EvaluationError(f"no examples in {data_dir} [{split.name}]")

    real_features = np.concatenate(real_features) if real_features else None
    kid_subset = min(flags_values.kid_subset_size, seen)
    names = labels.cityscapes19().class_names
    rows = []
    for export in exports:
        rows.append(export.row(real_features, kid_subset, classes, names))
        if export.upscaling:
            rows.append({"model": bicubic_row_name(export),
                         **{name: metric.result() for name, metric in export.baseline.items()}})
    if oracle.matrix.sum():
        rows.append({"model": report.ORACLE, **confusion_scores(oracle.matrix, classes, names)})
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
        "feature_extractor": inception_text,
        "fid_samples": f"{seen} generated vs {seen} real images" if inception is not None else "n/a",
        "diversity_features": f"VGG-19, weights: {vgg.weights_source}" if vgg is not None else "n/a",
        "skipped": {export.name: export.skipped for export in exports if export.skipped},
        "wall_time_s": round(time.time() - start, 1),
    }
    json_path, md_path = report.write_report(out, rows, meta)
    grid_path = os.path.join(out, "grid.png")
    report.write_image_grid(grid_path, grid_columns)
    with open(md_path) as f:
        print(f.read())
    print(f"Wrote {json_path}, {md_path}, {grid_path}")
    return md_path


def bicubic_row_name(export) -> str:
    return f"bicubic x{export.endpoint.scale} ({export.name}'s inputs)"


def upscaling_scores(export, batch: dict, flag: str, outputs: np.ndarray) -> np.ndarray:
    """Scores a super-resolution batch the way SR papers do, and its bicubic baseline.

    The model's outputs and the bicubic upsampling of the same low-resolution inputs are compared
    with the photo those inputs were degraded from (at the model's input size, cropped to a
    multiple of the scale) on the Y channel, ``scale`` pixels shaved per border. Returns the
    bicubic images (uint8, the outputs' size) for the RGB scores and the grid.
    """
    import tensorflow as tf

    from tfsynth import pixels
    from tfsynth.data import transforms
    from tfsynth.metrics import image_quality

    scale = export.endpoint.scale
    high = transforms.crop_to_multiple(export.records(batch, flag)["image"], scale).numpy()
    low = export.inputs(batch, flag, 0)[export.endpoint.spatial_input.name]
    bicubic = tf.image.resize(tf.cast(low, tf.float32), high.shape[1:3], method="bicubic")
    bicubic = pixels.to_uint8(bicubic).numpy()
    for name, scores in (("model", export.y_scores), ("bicubic", export.baseline)):
        images = outputs if name == "model" else bicubic
        scores["psnr_y"].update(image_quality.psnr_y(images, high, scale))
        scores["ssim_y"].update(image_quality.ssim_y(images, high, scale))
    return bicubic


def record_source_numpy(batch: dict, source: str, label_space: str) -> np.ndarray:
    from tfsynth.records import record_source

    return np.asarray(record_source(batch, source, label_space))


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
        return parsing.parse_size(text)
    except ValueError as error:
        raise EvaluationError(f"{flag}={text}: {error}") from None


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
    except ValueError as error:  # EvaluationError, DataError, RunDirError ...: each names its flag or file
        sys.exit(f"error: {error}")


def run():
    tfsynth_flags.run_command(main, tfsynth_flags.define_evaluate_flags, required=("saved_model", "eval_data", "out"))


if __name__ == "__main__":
    run()
