"""Resampling layers with the exact alignment conventions of the original code bases."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfsynth")
class BilinearResize(keras.layers.Layer):
    """Bilinear resize of ``inputs[0]`` to the spatial size of ``inputs[1]``.

    ``align_corners=True`` reproduces TF1 ``tf.image.resize_bilinear(..., align_corners=True)``
    (corner pixels of input and output coincide), which TF2's ``tf.image.resize`` cannot do.
    Taking the size from a reference tensor keeps the layer free of fixed spatial sizes.
    """

    def __init__(self, align_corners: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.align_corners = align_corners

    def call(self, inputs):
        x, reference = inputs
        size = tf.shape(reference)[1:3]
        # ResizeBilinear computes in float32 whatever the input dtype; cast back for the policy.
        resized = tf.raw_ops.ResizeBilinear(
            images=x, size=size, align_corners=self.align_corners,
            half_pixel_centers=not self.align_corners)
        return tf.cast(resized, x.dtype)

    def compute_output_shape(self, input_shapes):
        x_shape, reference_shape = input_shapes
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])

    def get_config(self):
        return {**super().get_config(), "align_corners": self.align_corners}


@keras.saving.register_keras_serializable(package="tfsynth")
class AreaDownsample2D(keras.layers.Layer):
    """Halves H and W by 2x2 averaging.

    For a factor of exactly 2 this equals TF1 ``resize_area(align_corners=False)``, which CRN
    used for its label pyramid; ``avg_pool`` also has a gradient and an XLA kernel, which
    ``ResizeArea`` lacks.
    """

    def call(self, x):
        return tf.nn.avg_pool2d(x, ksize=2, strides=2, padding="VALID")

    def compute_output_shape(self, input_shape):
        halve = lambda n: None if n is None else n // 2  # noqa: E731
        return (input_shape[0], halve(input_shape[1]), halve(input_shape[2]), input_shape[3])


@keras.saving.register_keras_serializable(package="tfsynth")
class AvgPoolDownsample(keras.layers.Layer):
    """PyTorch ``AvgPool2d(3, stride=2, padding=1, count_include_pad=False)``: H and W to
    ceil(H / 2), each output the mean of the input pixels under its 3x3 window (padding excluded).

    pix2pixHD downsamples the input of its coarser discriminators and of its global generator
    this way. TF's "SAME" average pooling also excludes padding, but pads 0 before and 1 after,
    which shifts the grid; here the padding is symmetric, as PyTorch's.
    """

    def call(self, x):
        return average_downsample(x)

    def compute_output_shape(self, input_shape):
        halve = lambda n: None if n is None else (n + 1) // 2  # noqa: E731
        return (input_shape[0], halve(input_shape[1]), halve(input_shape[2]), input_shape[3])


def average_downsample(x):
    """The function of :class:`AvgPoolDownsample`: [N, H, W, C] -> [N, ceil(H/2), ceil(W/2), C]."""
    padding = [[0, 0], [1, 1], [1, 1], [0, 0]]
    total = tf.nn.avg_pool2d(tf.pad(x, padding), 3, 2, "VALID")
    count = tf.nn.avg_pool2d(tf.pad(tf.ones_like(x[..., :1]), padding), 3, 2, "VALID")
    return total / count


@keras.saving.register_keras_serializable(package="tfsynth")
class AdaptiveAveragePooling(keras.layers.Layer):
    """PyTorch's AdaptiveAvgPool2d(size) for sides that are multiples of ``size``."""

    def __init__(self, size: int, **kwargs):
        super().__init__(**kwargs)
        self.size = size

    def call(self, x):
        window = x.shape[1] // self.size
        return x if window == 1 else tf.nn.avg_pool2d(x, window, window, "VALID")

    def compute_output_shape(self, shape):
        return (shape[0], self.size, self.size, shape[3])

    def get_config(self):
        return {**super().get_config(), "size": self.size}
