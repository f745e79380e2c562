"""Semantic-segmentation scores of synthesized images ("FCN-score" and its successors).

The label-to-image papers judge realism by running a fixed, pre-trained segmentation network on
the synthesized images and scoring its predictions against the input label maps:

* pix2pix and CycleGAN (docs/papers.md 2(f), 6(f)): FCN-8s, per-pixel accuracy / per-class
  accuracy / class IoU over the 19 Cityscapes train classes. The 256x256 outputs are upsampled
  to the 1024x2048 label size before the network runs.
* pix2pixHD (3(f)): PSPNet, pixel accuracy / mean IoU, plus the same scores on real images
  ("oracle").
* SPADE (7(c)): DRN-D-105, mIoU / pixel accuracy.

This module holds the network-independent part: a streaming confusion matrix, the scores
computed from it, the official labelId -> trainId table, and resizing to the label size.

Averaging protocol (the one the pix2pix evaluation code uses and the papers report): a class
enters a mean only where its ratio has a nonzero denominator, i.e.

* ``mean_class_accuracy`` averages ``TP / (TP + FN)`` over classes **present in the labels**;
* ``mean_iou`` averages ``TP / (TP + FP + FN)`` over classes **present in the labels or the
  predictions** (a class predicted but absent from the labels scores IoU 0 and counts; a class
  absent from both is undefined and left out).

Undefined per-class values are NaN and the means are ``nanmean`` over the rest.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

IGNORE_TRAIN_ID = 255
NUM_TRAIN_CLASSES = 19


def _as_int_array(x, what: str) -> np.ndarray:
    array = np.asarray(x)  # Accepts numpy arrays, lists and eager tensors alike.
    if array.dtype.kind not in "iub":
        if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            return array.astype(np.int64)
        raise ValueError(f"{what} must hold integer class ids, got dtype {array.dtype}")
    return array.astype(np.int64)


def _match_shapes(labels: np.ndarray, predictions: np.ndarray):
    """Allows one side to carry a trailing channel axis of size 1 ([N,H,W] vs [N,H,W,1])."""
    if labels.shape == predictions.shape:
        return labels, predictions
    if labels.ndim == predictions.ndim + 1 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    elif predictions.ndim == labels.ndim + 1 and predictions.shape[-1] == 1:
        predictions = predictions[..., 0]
    if labels.shape != predictions.shape:
        raise ValueError(
            f"labels {labels.shape} and predictions {predictions.shape} must have the same shape; "
            "resize the predictions (or the images before segmenting them) to the label size "
            "with resize_for_scoring()"
        )
    return labels, predictions


def _bad_ids_message(what: str, values: np.ndarray, num_classes: int, ignore_label) -> str:
    bad = np.unique(values)
    shown = ", ".join(str(int(v)) for v in bad[:10]) + (" ..." if bad.size > 10 else "")
    return (f"{what} contain id(s) {shown} outside [0, {num_classes})"
            + (f" (ignore label is {ignore_label})" if ignore_label is not None else ""))


class ConfusionMatrix:
    """Streaming ``num_classes x num_classes`` confusion matrix (rows: label, columns: prediction).

    Pixels whose **label** equals ``ignore_label`` are skipped. Every other label and every
    prediction at a scored pixel must lie in ``[0, num_classes)``; a prediction equal to the
    ignore label is accepted only where the label is ignored too (so a label map scores itself
    perfectly), since a segmenter that abstains must not be rewarded by dropping the pixel.

    Args:
        num_classes: Number of evaluated classes (19 for Cityscapes train ids).
        ignore_label: Label id excluded from scoring (255 for Cityscapes train ids), or None.

    Example:
        >>> cm = ConfusionMatrix(19, ignore_label=255)
        >>> for labels, predictions in batches:
        ...     cm.update(labels, predictions)
        >>> cm.scores()["mean_iou"]
    """

    def __init__(self, num_classes: int, ignore_label: int | None = IGNORE_TRAIN_ID):
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_label = None if ignore_label is None else int(ignore_label)
        if self.ignore_label is not None and 0 <= self.ignore_label < self.num_classes:
            raise ValueError(
                f"ignore_label {self.ignore_label} is a valid class id in [0, {self.num_classes})")
        self.matrix = np.zeros((self.num_classes, self.num_classes), np.int64)

    def reset(self) -> None:
        self.matrix[:] = 0

    def update(self, labels, predictions) -> "ConfusionMatrix":
        """Adds one batch (any shape, numpy or tensors; labels and predictions alike).

        Raises:
            ValueError: On mismatched shapes, non-integer ids, or ids outside
                ``[0, num_classes)`` that are not the ignore label; the message names them.
        """
        labels = _as_int_array(labels, "labels")
        predictions = _as_int_array(predictions, "predictions")
        labels, predictions = _match_shapes(labels, predictions)
        labels, predictions = labels.reshape(-1), predictions.reshape(-1)
        if self.ignore_label is not None:
            scored = labels != self.ignore_label
            labels, predictions = labels[scored], predictions[scored]
        n = self.num_classes
        bad = (labels < 0) | (labels >= n)
        if bad.any():
            raise ValueError(_bad_ids_message("labels", labels[bad], n, self.ignore_label))
        bad = (predictions < 0) | (predictions >= n)
        if bad.any():
            msg = _bad_ids_message("predictions", predictions[bad], n, self.ignore_label)
            if self.ignore_label is not None and np.any(predictions[bad] == self.ignore_label):
                msg += "; predictions may use the ignore label only where the label is ignored"
            raise ValueError(msg)
        self.matrix += np.bincount(labels * n + predictions, minlength=n * n).reshape(n, n)
        return self

    def scores(self) -> Dict[str, object]:
        """The scores of the pixels seen so far; see :func:`scores`."""
        return scores(self.matrix)


def scores(confusion) -> Dict[str, object]:
    """Segmentation scores from a confusion matrix (rows: label, columns: prediction).

    Returns:
        Dict with
          ``pixel_accuracy``: correctly labelled pixels / scored pixels;
          ``mean_class_accuracy``: nanmean over classes present in the labels of TP/(TP+FN);
          ``mean_iou``: nanmean over classes present in labels or predictions of TP/(TP+FP+FN);
          ``per_class_accuracy``, ``per_class_iou``: lists of floats, NaN where undefined;
          ``num_pixels``: scored pixel count.
        Every value is NaN when no pixel was scored.
    """
    hist = np.asarray(confusion, np.float64)
    if hist.ndim != 2 or hist.shape[0] != hist.shape[1]:
        raise ValueError(f"confusion must be a square matrix, got shape {hist.shape}")
    true_positive = np.diag(hist)
    label_count = hist.sum(axis=1)  # TP + FN
    predicted_count = hist.sum(axis=0)  # TP + FP
    union = label_count + predicted_count - true_positive
    total = hist.sum()
    # Zero denominators mark undefined ratios; mask them to NaN rather than dividing by zero.
    accuracy = np.full_like(true_positive, np.nan)
    np.divide(true_positive, label_count, out=accuracy, where=label_count > 0)
    iou = np.full_like(true_positive, np.nan)
    np.divide(true_positive, union, out=iou, where=union > 0)

    def nanmean(values):
        finite = values[~np.isnan(values)]
        return float(finite.mean()) if finite.size else float("nan")

    return {
        "pixel_accuracy": float(true_positive.sum() / total) if total > 0 else float("nan"),
        "mean_class_accuracy": nanmean(accuracy),
        "mean_iou": nanmean(iou),
        "per_class_accuracy": [float(v) for v in accuracy],
        "per_class_iou": [float(v) for v in iou],
        "num_pixels": int(total),
    }


def _train_id_table() -> np.ndarray:
    """int64 [35]: cityscapes35 labelId -> trainId (0..18) or 255, from the official table."""
    from tfsynth.data.labels import mapping_table

    return mapping_table("cityscapes35", "cityscapes19").astype(np.int64)


def train_ids_from_label_ids(label_ids) -> np.ndarray:
    """Maps Cityscapes labelIds (``cityscapes35``, license plate = 34) to trainIds.

    The 19 evaluated classes become 0..18 and every other class 255 (the ignore label), per the
    ``trainId`` field of ``cityscapesscripts.helpers.labels``.

    Returns:
        uint8 array of the input's shape.

    Raises:
        ValueError: For ids outside 0..34, naming them.
    """
    ids = _as_int_array(label_ids, "label ids")
    table = _train_id_table()
    bad = (ids < 0) | (ids >= table.size)
    if bad.any():
        raise ValueError(_bad_ids_message("label ids", ids[bad], table.size, None)
                         + " (cityscapes35 labelIds are 0..34)")
    return table[ids].astype(np.uint8)


def resize_for_scoring(images, labels_size: Sequence[int], method: str = "auto") -> np.ndarray:
    """Resizes outputs to the label size, as the FCN-score protocol does before segmenting.

    pix2pix upsampled its 256x256 outputs to the 1024x2048 labels (``scipy.misc.imresize``, a
    PIL bilinear resize) before running FCN-8s. Here photos are resized bilinearly with
    antialiasing (which is what PIL's bilinear filter does when shrinking, and plain bilinear when
    enlarging) and label or prediction maps by nearest neighbour, so ids stay ids.

    Args:
        images: ``[N, H, W, 3]`` photos (uint8 or float on 0..255) or ``[N, H, W]`` /
            ``[N, H, W, 1]`` id maps.
        labels_size: ``(height, width)`` of the label maps.
        method: ``"bilinear"``, ``"nearest"`` or ``"auto"`` (nearest for id maps, i.e. inputs
            without a 3-channel axis; bilinear otherwise).

    Returns:
        numpy array of the input's dtype (uint8 photos are rounded and clipped) and rank.
    """
    import tensorflow as tf  # Deferred: the rest of this module is numpy only.

    array = np.asarray(images)
    height, width = (int(s) for s in labels_size)
    is_photo = array.ndim == 4 and array.shape[-1] == 3
    if method == "auto":
        method = "bilinear" if is_photo else "nearest"
    if method not in ("bilinear", "nearest"):
        raise ValueError(f"method must be 'auto', 'bilinear' or 'nearest', got {method!r}")
    squeeze = array.ndim == 3
    x = array[..., None] if squeeze else array
    if x.ndim != 4:
        raise ValueError(f"expected [N, H, W, C] images or [N, H, W] id maps, got shape {array.shape}")
    if tuple(x.shape[1:3]) == (height, width):
        return array.copy()
    if method == "nearest":
        # Nearest neighbour on an integer tensor keeps the exact ids.
        out = tf.image.resize(tf.convert_to_tensor(x), (height, width),
                              method=tf.image.ResizeMethod.NEAREST_NEIGHBOR).numpy()
    else:
        out = tf.image.resize(tf.convert_to_tensor(x, tf.float32), (height, width),
                              method=tf.image.ResizeMethod.BILINEAR, antialias=True).numpy()
        if array.dtype == np.uint8:
            out = np.clip(np.round(out), 0, 255)
    out = out.astype(array.dtype)
    return out[..., 0] if squeeze else out
