"""Blocks of the ResNet image-transformation generators (Johnson et al. 2016), as CycleGAN and
pix2pixHD build them in PyTorch: reflection-padded 7x7 convolutions at the ends, 3x3 stride-2
convolutions down, residual blocks, 3x3 stride-2 transposed convolutions up, instance norm and
ReLU after every convolution but the last.

Weights are N(0, 0.02). Biases are zero (CycleGAN resets them) or PyTorch's default
U(+-1/sqrt(fan_in)) with ``torch_bias`` (pix2pixHD re-initialises weights only).
"""

from __future__ import annotations

import keras

from tfsynth.layers.discriminators import gan_init, torch_default_bias
from tfsynth.layers.normalization import instance_norm
from tfsynth.layers.padding import ReflectionPadding2D, SlicedCropping2D


def conv(x, filters: int, kernel: int, name: str, strides: int = 1, torch_bias: bool = False):
    """A "valid" convolution (padding is explicit, as PyTorch's)."""
    bias = torch_default_bias(kernel * kernel * x.shape[-1]) if torch_bias else "zeros"
    return keras.layers.Conv2D(filters, kernel, strides=strides, padding="valid", kernel_initializer=gan_init(),
                               bias_initializer=bias, name=name)(x)


def norm_relu(x, name: str):
    return keras.layers.ReLU(name=f"{name}_relu")(instance_norm(f"{name}_norm")(x))


def reflect_conv(x, filters: int, kernel: int, name: str, torch_bias: bool = False):
    """c7s1-k without its norm: reflection padding of kernel // 2, then the convolution."""
    x = ReflectionPadding2D(kernel // 2, name=f"{name}_pad")(x)
    return conv(x, filters, kernel, name, torch_bias=torch_bias)


def down(x, filters: int, name: str, torch_bias: bool = False):
    """dk: 3x3 stride-2 convolution padding 1 on every side (Keras "same" pads 0/1), IN, ReLU."""
    x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return norm_relu(conv(x, filters, 3, name, strides=2, torch_bias=torch_bias), name)


def up(x, filters: int, name: str, torch_bias: bool = False):
    """uk: ConvTranspose k3 s2 p1 output_padding 1, IN, ReLU.

    A "valid" Conv2DTranspose gives 2H + 1 rows; PyTorch's padding and output padding keep rows
    1 .. 2H, so the first row and column are cropped (Keras "same" would shift the grid).
    """
    # PyTorch counts a transposed convolution's fan-in over its output channels.
    bias = torch_default_bias(9 * filters) if torch_bias else "zeros"
    x = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="valid", kernel_initializer=gan_init(),
                                     bias_initializer=bias, name=name)(x)
    x = SlicedCropping2D(((1, 0), (1, 0)), name=f"{name}_crop")(x)
    return norm_relu(x, name)


def residual_block(x, filters: int, name: str, torch_bias: bool = False):
    """[ReflPad1, Conv3, IN, ReLU, ReflPad1, Conv3, IN] + identity (no ReLU after the sum)."""
    y = norm_relu(reflect_conv(x, filters, 3, f"{name}_conv1", torch_bias), f"{name}_conv1")
    y = instance_norm(f"{name}_conv2_norm")(reflect_conv(y, filters, 3, f"{name}_conv2", torch_bias))
    return keras.layers.Add(name=f"{name}_add")([x, y])
