"""Image grids for TensorBoard and samples/, and scalar logging."""

from __future__ import annotations

import os

import tensorflow as tf

from tfsynth import run_dir


def image_grid(columns: list) -> tf.Tensor:
    """Tiles columns of uint8 [B, H, W, 3] images: one row per example, one column per entry."""
    stacked = tf.stack(columns, axis=1)  # [B, C, H, W, 3]
    shape = tf.shape(stacked)
    rows = tf.transpose(stacked, [0, 2, 1, 3, 4])  # [B, H, C, W, 3]
    return tf.reshape(rows, [shape[0] * shape[2], shape[1] * shape[3], 3])


def write_grid(grid, step: int, writer, samples_dir: str, name: str = "samples") -> str:
    """Writes ``grid`` to TensorBoard and to ``samples_dir/<name>_<step>.png``; returns the path."""
    with writer.as_default(step=step):
        tf.summary.image(name, grid[None], max_outputs=1)
    os.makedirs(samples_dir, exist_ok=True)
    path = os.path.join(samples_dir, f"{name}_{step:08d}.png")
    run_dir.write_bytes(path, tf.io.encode_png(grid).numpy())
    return path


def write_scalars(values: dict, step: int, writer, prefix: str = "") -> None:
    with writer.as_default(step=step):
        for name, value in values.items():
            tf.summary.scalar(prefix + name, value)
