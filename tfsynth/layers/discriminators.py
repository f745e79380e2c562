"""PatchGAN discriminators (Isola et al. 2017, Sec. 3.2.2), shared by pix2pix and CycleGAN.

A PatchGAN classifies each overlapping N x N patch as real or fake; with three strided layers the
receptive field of an output logit is 70 x 70, and a 256 x 256 input gives 30 x 30 logits.
Convolutions are 4 x 4 with PyTorch's symmetric 1-pixel zero padding (explicit, because Keras
"same" pads 0/1 at stride 1 and would change the output size).
"""

from __future__ import annotations

import keras

from tfsynth.layers.normalization import make_norm

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
