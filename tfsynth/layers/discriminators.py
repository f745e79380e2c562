"""PatchGAN discriminators (Isola et al. 2017, Sec. 3.2.2), shared by pix2pix and CycleGAN, and
pix2pixHD's multi-scale discriminator with intermediate features (Wang et al. 2018, Sec. 3.2).

A PatchGAN classifies each overlapping N x N patch as real or fake; with three strided layers the
receptive field of an output logit is 70 x 70, and a 256 x 256 input gives 30 x 30 logits.
Convolutions are 4 x 4 with PyTorch's symmetric zero padding (explicit, because Keras "same"
pads 0/1 at stride 1 and would change the output size).
"""

from __future__ import annotations

import keras

from tfsynth.layers.normalization import make_norm
from tfsynth.layers.resampling import average_downsample


def gan_init() -> keras.initializers.Initializer:
    """pix2pix/CycleGAN's init, N(0, 0.02) weights (biases stay zero); a new one per layer.

    An unseeded Keras initializer fixes its seed when it is created, so one instance shared by
    several layers would give every kernel of a shape the same values, from a seed ``--seed``
    does not control; a fresh instance per layer draws its seed from the seeded generator.
    """
    return keras.initializers.RandomNormal(0.0, 0.02)


def _conv4(x, filters: int, strides: int, use_bias: bool, name: str):
    x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(filters, 4, strides=strides, use_bias=use_bias,
                               kernel_initializer=gan_init(), name=name)(x)


def build_patch_discriminator(input_channels: int, base_filters: int = 64, num_layers: int = 3,
                              norm: str = "batch", name: str = "patch_discriminator") -> keras.Model:
    """The N-layer PatchGAN: [N, H, W, input_channels] -> logits [N, h, w, 1] (no sigmoid).

    Args:
      input_channels: 6 for pix2pix (input and output concatenated), 3 for CycleGAN.
      base_filters: filters of the first layer (ndf = 64); doubled per layer up to 8x.
      num_layers: strided layers after the first (3 gives the 70 x 70 PatchGAN).
      norm: "batch" or "instance". With batch norm the normalised convs drop their bias (the
        norm's offset replaces it); instance norm has no offset, so they keep it.
    """
    use_bias = norm == "instance"
    inputs = keras.Input((None, None, input_channels), name="images")
    x = _conv4(inputs, base_filters, 2, True, "conv1")
    x = keras.layers.LeakyReLU(0.2, name="conv1_lrelu")(x)
    for index in range(1, num_layers + 1):
        filters = base_filters * min(2**index, 8)
        strides = 2 if index < num_layers else 1  # the last hidden layer keeps the resolution
        layer = f"conv{index + 1}"
        x = _conv4(x, filters, strides, use_bias, layer)
        x = make_norm(norm, f"{layer}_norm")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"{layer}_lrelu")(x)
    x = _conv4(x, 1, 1, True, "logits")
    logits = keras.layers.Activation("linear", dtype="float32", name="logits_float32")(x)
    return keras.Model(inputs, logits, name=name)


def build_pixel_discriminator(input_channels: int, base_filters: int = 64, norm: str = "batch",
                              name: str = "pixel_discriminator") -> keras.Model:
    """The 1 x 1 PixelGAN: classifies every pixel independently (pix2pix ``--netD pixel``)."""
    use_bias = norm == "instance"
    inputs = keras.Input((None, None, input_channels), name="images")
    x = keras.layers.Conv2D(base_filters, 1, kernel_initializer=gan_init(), name="conv1")(inputs)
    x = keras.layers.LeakyReLU(0.2, name="conv1_lrelu")(x)
    x = keras.layers.Conv2D(2 * base_filters, 1, use_bias=use_bias, kernel_initializer=gan_init(), name="conv2")(x)
    x = make_norm(norm, "conv2_norm")(x)
    x = keras.layers.LeakyReLU(0.2, name="conv2_lrelu")(x)
    x = keras.layers.Conv2D(1, 1, kernel_initializer=gan_init(), name="logits")(x)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits_float32")(x)
    return keras.Model(inputs, logits, name=name)


def torch_default_bias(fan_in: int) -> keras.initializers.Initializer:
    """PyTorch's default conv bias, U(+-1/sqrt(fan_in)): kept by codes that re-initialise only
    the weights (pix2pixHD's ``weights_init``)."""
    bound = 1.0 / fan_in**0.5
    return keras.initializers.RandomUniform(-bound, bound)


def build_feature_discriminator(input_channels: int, base_filters: int = 64, num_layers: int = 3,
                                name: str = "discriminator") -> keras.Model:
    """pix2pixHD's N-layer discriminator returning every block's output (for feature matching).

    Like the PatchGAN, but 4x4 convolutions pad 2 pixels (``ceil((4 - 1) / 2)``), channels stop at
    512, norms are instance norms and every convolution keeps its bias. Outputs, in order:
    blocks 0 .. num_layers (LeakyReLU(0.2) features) and the final logits (last), e.g. 67x131
    logits for a 512x1024 input.
    """
    inputs = keras.Input((None, None, input_channels), name="images")
    x, outputs, channels = inputs, [], input_channels
    for index in range(num_layers + 2):
        last = index == num_layers + 1
        filters = 1 if last else min(base_filters * 2**index, 512)
        strides = 2 if index < num_layers else 1
        x = keras.layers.ZeroPadding2D(2, name=f"block{index}_pad")(x)
        x = keras.layers.Conv2D(filters, 4, strides=strides, kernel_initializer=gan_init(),
                                bias_initializer=torch_default_bias(16 * channels), name=f"block{index}")(x)
        channels = filters
        if not last:
            if index > 0:
                x = make_norm("instance", f"block{index}_norm")(x)
            x = keras.layers.LeakyReLU(0.2, name=f"block{index}_lrelu")(x)
        outputs.append(keras.layers.Activation("linear", dtype="float32", name=f"block{index}_out")(x))
    return keras.Model(inputs, outputs, name=name)


def multiscale_outputs(discriminators: list, images) -> list:
    """Every scale's outputs: scale i judges ``images`` downsampled i times (3x3 average pooling
    that excludes padding, pix2pixHD's multi-scale discriminator)."""
    results = []
    for scale, discriminator in enumerate(discriminators):
        if scale:
            images = average_downsample(images)
        results.append(discriminator(images))
    return results
