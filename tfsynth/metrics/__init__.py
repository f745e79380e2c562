"""Evaluation metrics: segmentation scores, FID/KID, PSNR/SSIM, diversity, and reports.

Accumulation is numpy (streaming: feed batches, read the result at the end); network inference
(Inception features, resizing, tf.image PSNR/SSIM) is TensorFlow, imported only when used, so
importing this package is cheap.
"""

from tfsynth.metrics.diversity import DiversityAccumulator
from tfsynth.metrics.fid import (
    InceptionFeatures,
    KIDResult,
    MetricsWeightsError,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    kernel_inception_distance,
    polynomial_mmd2_unbiased,
)
from tfsynth.metrics.image_quality import MeanMetric, psnr, ssim
from tfsynth.metrics.report import ORACLE, markdown_table, write_image_grid, write_report
from tfsynth.metrics.segmentation import (
    ConfusionMatrix,
    resize_for_scoring,
    scores,
    train_ids_from_label_ids,
)

__all__ = [
    "ConfusionMatrix", "DiversityAccumulator", "InceptionFeatures", "KIDResult", "MeanMetric",
    "MetricsWeightsError", "ORACLE", "feature_statistics",
    "fid_from_features", "frechet_distance", "kernel_inception_distance", "markdown_table",
    "polynomial_mmd2_unbiased", "psnr", "resize_for_scoring", "scores", "ssim",
    "train_ids_from_label_ids", "write_image_grid", "write_report",
]
