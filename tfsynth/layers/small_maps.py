"""4x4, stride-2 convolutions that run as one matrix product on maps of a few pixels.

A U-Net's innermost layers (pix2pix's e5..e8 and d1..d5 at 256x256) apply 4 to 8 M weights each
to maps of 1x1 to 16x16 pixels, so their cost is mostly reading the weights. TensorFlow's
oneDNN convolutions pay that three times over: at every call they reorder the kernel from
TensorFlow's HWIO layout into a blocked one (forward and input gradient) and the filter gradient
back, each a full pass over the weights. As a product of the im2col patches with the kernel, the
kernel is read where it lies (HWIO is already the [kh * kw * in, out] matrix).

The layers hold the same weights as Keras' ``Conv2D`` and ``Conv2DTranspose`` (their
subclasses: checkpoints are unchanged) and compute the same function. They take the product
where the input map has at most ``matmul_pixels`` pixels, and are the plain convolutions on larger
maps: decided when the graph is traced where the size is known then (training on fixed-size
crops), else when it runs (a served graph of any size), so an export is as fast as training's
graph at every size.
"""

from __future__ import annotations

import keras
import tensorflow as tf

#: Input maps up to 16x16 pixels: measured faster there, forward and backward (docs/performance.md:
#: the transposed 1024 -> 512 layers at 2x2, 4x4 and 8x8 take 15, 16 and 28 ms instead of 45, 56
#: and 58, and the 16x16 ones still gain 8-20 %); at 32x32 the arithmetic outweighs the weights and
#: oneDNN's convolution wins.
MATMUL_PIXELS = 256


def _check(layer, kind: str) -> None:
    if (tuple(layer.kernel_size), tuple(layer.strides), layer.padding, layer.data_format,
            tuple(layer.dilation_rate)) != ((4, 4), (2, 2), "same", "channels_last", (1, 1)):
        raise ValueError(f"{kind}: only 4x4 kernels, stride 2, 'same' padding, channels_last and no "
                         f"dilation run as a product (layer {layer.name})")


def _by_map_size(inputs, matmul_pixels: int, product, convolution):
    """``product(inputs)`` on a map of at most ``matmul_pixels`` pixels, else ``convolution(inputs)``."""
    height, width = inputs.shape[1], inputs.shape[2]
    if height is not None and width is not None:
        return product(inputs) if height * width <= matmul_pixels else convolution(inputs)
    shape = tf.shape(inputs)
    return tf.cond(shape[1] * shape[2] <= matmul_pixels, lambda: product(inputs), lambda: convolution(inputs))


def _spatial(tensor):
    """Height and width: ints where known when traced, else scalar tensors."""
    shape = tf.shape(tensor)
    return [tensor.shape[axis] if tensor.shape[axis] is not None else shape[axis] for axis in (1, 2)]


@keras.saving.register_keras_serializable(package="tfsynth")
class SmallMapConv2D(keras.layers.Conv2D):
    """``Conv2D(filters, 4, strides=2, padding="same")``; a patches x kernel product on small maps."""

    def __init__(self, *args, matmul_pixels: int = MATMUL_PIXELS, **kwargs):
        super().__init__(*args, **kwargs)
        _check(self, "SmallMapConv2D")
        self.matmul_pixels = matmul_pixels

    def convolution_op(self, inputs, kernel):
        convolution = super().convolution_op
        return _by_map_size(inputs, self.matmul_pixels, lambda x: self._product(x, kernel),
                            lambda x: convolution(x, kernel))

    def _product(self, inputs, kernel):
        # Patch vectors in (row, column, channel) order: the rows of the HWIO kernel's matrix.
        patches = tf.image.extract_patches(inputs, sizes=[1, 4, 4, 1], strides=[1, 2, 2, 1],
                                           rates=[1, 1, 1, 1], padding="SAME")
        depth = patches.shape[3]
        product = _times_weights(tf.reshape(patches, [-1, depth]), tf.reshape(kernel, [depth, self.filters]))
        return tf.reshape(product, [-1, *_spatial(patches), self.filters])

    def get_config(self):
        return {**super().get_config(), "matmul_pixels": self.matmul_pixels}


@keras.saving.register_keras_serializable(package="tfsynth")
class SmallMapConv2DTranspose(keras.layers.Conv2DTranspose):
    """``Conv2DTranspose(filters, 4, strides=2, padding="same")``; on small maps, each input pixel
    times the kernel gives its 4x4 block of the output, and the blocks are added where they overlap."""

    def __init__(self, *args, matmul_pixels: int = MATMUL_PIXELS, **kwargs):
        super().__init__(*args, **kwargs)
        _check(self, "SmallMapConv2DTranspose")
        if self.output_padding is not None:
            raise ValueError(f"SmallMapConv2DTranspose: no output_padding (layer {self.name})")
        self.matmul_pixels = matmul_pixels

    def call(self, inputs):
        return _by_map_size(inputs, self.matmul_pixels, self._product, super().call)

    def _product(self, inputs):
        depth = inputs.shape[3]
        kernel = self.kernel  # [4, 4, out, in]: as a matrix [16 * out, in], with no copy
        blocks = _times_weights(tf.reshape(inputs, [-1, depth]), tf.reshape(kernel, [16 * self.filters, depth]),
                                transposed=True)
        outputs = _overlap_add(tf.reshape(blocks, [-1, *_spatial(inputs), 4, 4, self.filters]))
        if self.use_bias:
            outputs = outputs + self.bias
        return outputs if self.activation is None else self.activation(outputs)

    def get_config(self):
        return {**super().get_config(), "matmul_pixels": self.matmul_pixels}


def _times_weights(rows, weights, transposed: bool = False):
    """``rows @ weights`` (``rows @ weights^T`` if ``transposed``), where ``weights`` is the large
    operand: neither the product nor its gradients hand it to the matmul transposed, which makes
    oneDNN copy it into another layout at every call (4x slower with 16 rows or more; only the few
    rows, and the result, are transposed instead)."""

    def times_transposed(matrix, small):  # small @ matrix^T, as (matrix @ small^T)^T
        return tf.transpose(tf.matmul(matrix, small, transpose_b=True))

    @tf.custom_gradient
    def product(rows, weights):
        value = times_transposed(weights, rows) if transposed else tf.matmul(rows, weights)

        def gradients(upstream):
            if transposed:  # value = rows @ W^T: d rows = upstream @ W, d W = upstream^T @ rows
                return tf.matmul(upstream, weights), tf.matmul(upstream, rows, transpose_a=True)
            return times_transposed(weights, upstream), tf.matmul(rows, upstream, transpose_a=True)

        return value, gradients

    return product(rows, weights)


def _overlap_add(blocks):
    """[N, h, w, 4, 4, C] blocks, block (i, j) placed at rows 2i..2i+3 and columns 2j..2j+3 of a
    [N, 2h + 2, 2w + 2, C] map and summed, less one pixel on every side: [N, 2h, 2w, C]."""
    height, width = _spatial(blocks)
    channels = blocks.shape[5]
    # Kernel row 2q + r of block i lands in output row 2(i + q) + r. So each quarter (q_row, q_col)
    # of the blocks is a 2x2 cell per input pixel (depth to space), shifted by q cells. Unstacks,
    # pads and a slice only: their gradients are cheap where strided slices' and transposes' are not.
    rows = tf.reshape(blocks, [-1, height, width, 2, 2, 2, 2 * channels])  # q_row r_row q_col (r_col C)
    quarters = []
    for q_row, half in enumerate(tf.unstack(rows, axis=3)):  # r_row q_col (r_col C)
        for q_col, quarter in enumerate(tf.unstack(half, axis=4)):  # r_row (r_col C)
            cells = tf.nn.depth_to_space(tf.reshape(quarter, [-1, height, width, 4 * channels]), 2)
            quarters.append(tf.pad(cells, [[0, 0], [2 * q_row, 2 - 2 * q_row], [2 * q_col, 2 - 2 * q_col], [0, 0]]))
    return tf.slice(tf.add_n(quarters), [0, 1, 1, 0], [-1, 2 * height, 2 * width, -1])
