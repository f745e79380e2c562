"""Tests for tfsynth.summaries.image_grid."""

import numpy as np
import pytest
import tensorflow as tf

from tfsynth.summaries import image_grid

pytestmark = pytest.mark.unit


def test_image_grid_places_every_tile():
    batch, height, width = 2, 4, 5
    rng = np.random.default_rng(0)
    columns = [rng.integers(0, 256, (batch, height, width, 3)).astype(np.uint8) for _ in range(3)]
    grid = image_grid([tf.constant(c) for c in columns]).numpy()
    assert grid.shape == (batch * height, 3 * width, 3)
    assert grid.dtype == np.uint8
    for row in range(batch):
        for col in range(3):
            tile = grid[row * height:(row + 1) * height, col * width:(col + 1) * width]
            np.testing.assert_array_equal(tile, columns[col][row], err_msg=f"{row}, {col}")


def test_image_grid_single_column_single_example():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(1, 2, 3, 3)
    np.testing.assert_array_equal(image_grid([tf.constant(image)]).numpy(), image[0])
