"""pix2pix: Image-to-Image Translation with Conditional Adversarial Networks (Isola, Zhu, Zhou,
Efros, CVPR 2017, arXiv:1611.07004).

A U-Net generator G translates an input image x (for Cityscapes labels -> photo: the colour-coded
label image) into an output image, and a PatchGAN discriminator D judges each 70x70 patch of
the pair (x, y) as real or fake. The objective is the conditional GAN loss plus lambda * L1:

    G* = arg min_G max_D  L_cGAN(G, D) + lambda * E |y - G(x)|_1,   lambda = 100.

Faithful to the authors' PyTorch code (docs/papers.md section 2), with the dropout placement of
the paper and the Lua code by default: 4x4 stride-2 convolutions, batch norm without conv bias,
LeakyReLU(0.2) encoder, ReLU decoder, skips that carry the *activated* encoder features,
concatenated [encoder, decoder]; N(0, 0.02) weights and N(1, 0.02) batch-norm gammas; D updated
on 0.5 (real + fake) before G is updated against the updated D; Adam(2e-4, 0.5, 0.999) per
network; 100 epochs constant then 100 of linear decay; resize to 286 then a random 256 crop and
flip shared by input and output.

Records (``tools/build_tfrecords.py --format=pix2pix_ab``): ``image`` is always the photo to be
produced; the input is the ``label`` id map (colour-coded back with the source label space's
palette, or one-hot) or, for photo -> photo pairs, the ``target`` image.
"""

from __future__ import annotations

import dataclasses
import math
import re

import keras
import tensorflow as tf

from tfsynth import config as config_lib
from tfsynth import losses, optimizers
from tfsynth.data import labels, transforms
from tfsynth.layers import SmallMapConv2D, SmallMapConv2DTranspose, discriminators, normalization
from tfsynth.endpoints import Endpoint, Input
from tfsynth.models.base import OptimizerGroup, SynthesisModel
from tfsynth.gradients import tape_watching
from tfsynth.pixels import from_unit_range, to_uint8, to_unit_range
from tfsynth.schedules import LinearDecay

DROPOUT_PLACEMENTS = ("paper", "pytorch")
LABEL_INPUTS = ("color", "onehot", "image")
TEST_MODES = ("paper", "eval")
DISCRIMINATORS = ("basic", "n_layers", "pixel")


@dataclasses.dataclass(frozen=True)
class Pix2PixConfig:
    """Hyper-parameters; the defaults are the paper's Cityscapes labels -> photo model.

    PyTorch option names (junyanz/pytorch-CycleGAN-and-pix2pix) are given in brackets.

    Attributes:
      generator: ``unet_N`` [--netG], a U-Net with log2(N) downsamplings for N x N inputs:
        ``unet_256`` (the paper's, 8 levels) or ``unet_128``; any power of two from 32 works
        (small ones for tests). Inputs must be multiples of N in height and width.
      base_filters: generator filters of the first layer, ngf [--ngf 64]; doubled per level up
        to 8x.
      discriminator: ``basic`` (70x70 PatchGAN), ``n_layers`` (with ``discriminator_layers``)
        or ``pixel`` (1x1 PixelGAN) [--netD].
      discriminator_layers: strided layers of an ``n_layers`` D [--n_layers_D 3].
      discriminator_filters: ndf [--ndf 64].
      norm: ``batch`` or ``instance`` [--norm]; convs before instance norm keep their bias.
      dropout: rate of the decoder dropout (0 disables it) [--no_dropout off].
      dropout_placement: ``paper``: the first three decoder blocks d1-d3, as the paper's
        "CD512-CD1024-CD1024" and the original Lua code; ``pytorch``: the intermediate 512-wide
        blocks d2-d4 of ``unet_256`` (d2-d3 of ``unet_128``), as the PyTorch port.
      gan_mode: ``vanilla`` (BCE on logits, the paper), ``lsgan`` or ``hinge`` [--gan_mode].
      lambda_l1: weight of the L1 term [--lambda_L1 100].
      learning_rate, beta_1, beta_2: Adam for G and D separately [--lr 2e-4 --beta1 0.5].
      epochs_constant, epochs_decay: epochs at the initial rate, then of linear decay
        [--n_epochs 100 --n_epochs_decay 100]; train for their sum (``--epochs=200``).
      load_size, crop_size, flip: training jitter: resize to load_size x load_size (bicubic),
        random crop_size crop and random horizontal flip, drawn once for input and output
        [--load_size 286 --crop_size 256, flip unless --no_flip]. Evaluation and samples resize
        to crop_size x crop_size.
      label_input: what G reads. ``color``: the label ids drawn in the colours of the data's
        label space and scaled to [-1, 1] -- the colour-coded label image the paper fed for
        Cityscapes; ``onehot``: one channel per class of that space; ``image``: the record's
        ``target`` photo (photo -> photo pairs). The first two export label -> image
        signatures, ``image`` exports image -> image.
      test_mode: normalisation when generating (samples, export) [--eval]. ``paper``: batch
        norm uses the statistics of each test image itself, as the paper (and PyTorch's
        test.py, with --eval off and batch size 1) does; ``eval``: the running averages
        collected in training. In both modes dropout is OFF at test time, unlike the paper,
        which kept it as G's only noise: exported signatures must be deterministic, and an
        image's output does not depend on the other images of its batch.
    """

    generator: str = "unet_256"
    base_filters: int = 64
    discriminator: str = "basic"
    discriminator_layers: int = 3
    discriminator_filters: int = 64
    norm: str = "batch"
    dropout: float = 0.5
    dropout_placement: str = "paper"
    gan_mode: str = "vanilla"
    lambda_l1: float = 100.0
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    epochs_constant: int = 100
    epochs_decay: int = 100
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    label_input: str = "color"
    test_mode: str = "paper"

    def __post_init__(self):
        config_lib.check_positive(self, "learning_rate")
        def one_of(name, valid):
            if getattr(self, name) not in valid:
                raise ValueError(f"{name} must be one of {', '.join(valid)}, got {getattr(self, name)!r}")

        match = re.fullmatch(r"unet_(\d+)", self.generator)
        size = int(match[1]) if match else 0
        if size < 32 or size & (size - 1):
            raise ValueError(f"generator must be unet_N with N a power of two >= 32 (unet_256, "
                             f"unet_128), got {self.generator!r}")
        one_of("discriminator", DISCRIMINATORS)
        one_of("norm", ("batch", "instance"))
        one_of("dropout_placement", DROPOUT_PLACEMENTS)
        one_of("gan_mode", losses.GAN_MODES)
        one_of("label_input", LABEL_INPUTS)
        one_of("test_mode", TEST_MODES)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if min(self.base_filters, self.discriminator_filters, self.discriminator_layers) < 1:
            raise ValueError("base_filters, discriminator_filters and discriminator_layers must be >= 1")
        if self.load_size < self.crop_size:
            raise ValueError(f"load_size ({self.load_size}) must be >= crop_size ({self.crop_size})")
        if self.crop_size % self.size_multiple:
            raise ValueError(f"crop_size ({self.crop_size}) must be a multiple of {self.size_multiple}: "
                             f"{self.generator} halves the size {self.num_downs} times")
        if min(self.epochs_constant, self.epochs_decay) < 0:
            raise ValueError("epochs_constant and epochs_decay must be >= 0")

    @property
    def num_downs(self) -> int:
        """Downsamplings of the U-Net (8 for unet_256): a 2**num_downs input reaches 1x1."""
        return int(math.log2(int(self.generator.split("_")[1])))

    @property
    def size_multiple(self) -> int:
        return 2**self.num_downs

    def dropout_blocks(self) -> tuple[int, ...]:
        """Decoder blocks (1 = innermost) followed by dropout."""
        if self.dropout == 0:
            return ()
        if self.dropout_placement == "paper":
            return (1, 2, 3)
        return tuple(range(2, self.num_downs - 3))  # the num_downs - 5 intermediate 512 blocks


# ---------------------------------------------------------------------------------- blocks

@keras.saving.register_keras_serializable(package="tfsynth")
class SeededDropout(keras.layers.Layer):
    """Inverted dropout whose mask is a function of an explicit seed: ``[x, seed] -> x'``.

    pix2pix runs G's forward pass twice per step here (once for D's update, once for G's),
    and both must drop the same units, as PyTorch's single forward does. The mask is drawn
    with stateless philox from the step's seed folded with this layer's ``salt``; it is also
    fast under XLA, where Keras ``Dropout`` is 24-75x slower on CPU (docs/tensorflow-notes.md Q2).
    """

    def __init__(self, rate: float, salt: int, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.salt = salt

    def call(self, inputs, training=None):
        x, seed = inputs
        if not training or self.rate == 0:
            return x
        seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), self.salt)
        keep = tf.random.stateless_uniform(tf.shape(x), seed, alg="philox") >= self.rate
        return x * tf.cast(keep, x.dtype) / tf.cast(1.0 - self.rate, x.dtype)

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "salt": self.salt}


@keras.saving.register_keras_serializable(package="tfsynth")
class Pix2PixBatchNormalization(keras.layers.BatchNormalization):
    """Batch norm with pix2pix's test-time behaviour.

    * Training: batch statistics, and the running averages updated (once per step: G's forward
      runs once, as PyTorch's).
    * Inference with ``test_statistics="example"``: each example is normalised by its own
      statistics over H and W -- batch statistics of a batch of one, which is how the paper
      tested (PyTorch's test.py forces batch size 1 and leaves BN in training mode). Nothing
      is updated, and an output does not depend on the rest of its batch.
    * Inference with ``test_statistics="moving"``: the running averages (PyTorch's --eval).
    """

    def __init__(self, test_statistics: str = "moving", **kwargs):
        super().__init__(**kwargs)
        self.test_statistics = test_statistics

    def call(self, inputs, training=None, mask=None):
        if not training and self.test_statistics == "example":
            return self._normalize_per_example(inputs)
        return super().call(inputs, training=training, mask=mask)

    def _normalize_per_example(self, inputs):
        # float32 statistics even under a bfloat16 policy, as Keras' own batch norm does.
        x = tf.cast(inputs, tf.float32)
        mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        normed = (x - mean) * tf.math.rsqrt(variance + self.epsilon)
        normed = normed * tf.cast(self.gamma, tf.float32) + tf.cast(self.beta, tf.float32)
        return tf.cast(normed, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "test_statistics": self.test_statistics}


def _norm(config: Pix2PixConfig, name: str) -> keras.layers.Layer:
    if config.norm == "instance":
        return normalization.instance_norm(name)
    # The shared factory holds PyTorch's momentum/epsilon and the N(1, 0.02) gamma init.
    settings = normalization.batch_norm(name).get_config()
    test_statistics = "example" if config.test_mode == "paper" else "moving"
    return Pix2PixBatchNormalization.from_config({**settings, "test_statistics": test_statistics})


def _down(filters: int, use_bias: bool, name: str):
    # 4x4, stride 2, "same" pads 1 and 1 on even inputs: PyTorch's padding=1. The innermost
    # layers' maps are a few pixels, where a matrix product beats the convolution (small_maps).
    return SmallMapConv2D(filters, 4, strides=2, padding="same", use_bias=use_bias,
                          kernel_initializer=discriminators.gan_init(), name=name)


def _up(filters: int, use_bias: bool, name: str):
    # ConvTranspose k4 s2 p1 doubles the size; Keras "same" is the same operation.
    return SmallMapConv2DTranspose(filters, 4, strides=2, padding="same", use_bias=use_bias,
                                   kernel_initializer=discriminators.gan_init(), name=name)


def build_generator(config: Pix2PixConfig, input_channels: int = 3, output_channels: int = 3) -> keras.Model:
    """The U-Net G: ``[x [N, H, W, C] in [-1, 1], dropout_seed int64 [2]] -> y [N, H, W, 3]``.

    Encoder e1..en (n = num_downs): e1 is a bare conv; e2..en are LeakyReLU(0.2) -> conv ->
    norm, the innermost en without norm. Decoder d1..dn: ReLU -> up-conv -> norm (-> dropout),
    then concatenated after the mirrored encoder feature [e_{n-k}, d_k]; dn ends in a biased
    up-conv and tanh. The skip is the LeakyReLU-*activated* encoder output, which PyTorch's
    in-place LeakyReLU leaves in the tensor it concatenates.

    The seed only matters in training, where it fixes the dropout masks.
    """
    num_downs = config.num_downs
    use_bias = config.norm == "instance"  # batch norm's offset makes a conv bias redundant
    widths = [config.base_filters * min(2**level, 8) for level in range(num_downs)]
    image = keras.Input((None, None, input_channels), name="input_image")
    seed = keras.Input(batch_shape=(2,), dtype="int64", name="dropout_seed")

    x = _down(widths[0], use_bias, "e1")(image)
    skips = []
    for level in range(1, num_downs):
        name = f"e{level + 1}"
        activated = keras.layers.LeakyReLU(negative_slope=0.2, name=f"{name}_lrelu")(x)
        skips.append(activated)
        x = _down(widths[level], use_bias, name)(activated)
        if level < num_downs - 1:
            x = _norm(config, f"{name}_norm")(x)

    dropout_blocks = config.dropout_blocks()
    for block in range(1, num_downs):
        name = f"d{block}"
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
        x = _up(widths[num_downs - 1 - block], use_bias, name)(x)
        x = _norm(config, f"{name}_norm")(x)
        if block in dropout_blocks:
            x = SeededDropout(config.dropout, salt=block, name=f"{name}_dropout")([x, seed])
        x = keras.layers.Concatenate(name=f"{name}_skip")([skips[num_downs - 1 - block], x])
    name = f"d{num_downs}"
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    x = _up(output_channels, True, name)(x)
    # tanh in float32 under mixed precision: outputs are compared with targets in [-1, 1].
    output = keras.layers.Activation("tanh", dtype="float32", name="output_tanh")(x)
    return keras.Model([image, seed], output, name="unet_generator")


def build_discriminator(config: Pix2PixConfig, input_channels: int = 6) -> keras.Model:
    """D on the channel concatenation (x, y): patch logits [N, h, w, 1] (30x30 for basic at 256)."""
    if config.discriminator == "pixel":
        return discriminators.build_pixel_discriminator(
            input_channels, config.discriminator_filters, config.norm, name="pixel_discriminator")
    layers = 3 if config.discriminator == "basic" else config.discriminator_layers
    return discriminators.build_patch_discriminator(
        input_channels, config.discriminator_filters, layers, config.norm, name="patch_discriminator")


# ----------------------------------------------------------------------------------- model

class Pix2Pix(SynthesisModel):
    """pix2pix training: U-Net G, PatchGAN D, D then G updated every step."""

    config_class = Pix2PixConfig
    #: label ids -> photo (the colour coding and scaling happen inside).
    LABEL_TO_PHOTO = Endpoint("serving_default", inputs=(Input("label", kind="label", source="label"),),
                              reference="image", conditioned_on_labels=True)
    #: photo -> photo, for pairs of photos (records' ``target`` is the input, ``image`` the output).
    PHOTO_TO_PHOTO = Endpoint("translate", inputs=(Input("image", kind="image", source="target"),),
                              reference="image")

    def __init__(self, config: Pix2PixConfig, source_label_space: str = "cityscapes35", **kwargs):
        super().__init__(config, source_label_space, training_size=(config.crop_size,) * 2, **kwargs)
        space = labels.get_label_space(source_label_space)
        self.num_classes = space.num_classes
        # The colour-coded label image, as the paper's Cityscapes inputs, scaled to [-1, 1].
        self.palette = tf.constant(space.palette())
        self.input_channels = self.num_classes if config.label_input == "onehot" else 3
        self.generator = build_generator(config, self.input_channels)
        self.discriminator = build_discriminator(config, self.input_channels + 3)
        self.networks = {"generator": self.generator, "discriminator": self.discriminator}

    # -------------------------------------------------------------- what the model consumes
    @property
    def record_fields(self) -> tuple[str, ...]:
        return ("image", "target") if self.config.label_input == "image" else ("image", "label")

    @property
    def size_multiple(self) -> int:
        return self.config.size_multiple

    def example_transform(self, training: bool):
        cfg = self.config
        load, crop = (cfg.load_size, cfg.load_size), (cfg.crop_size, cfg.crop_size)

        def jitter(example, seed):
            return transforms.random_jitter(example, seed, load, crop, cfg.flip)

        def resize(example, seed):
            return transforms.resize(example, crop)

        return jitter if training else resize

    def generator_input(self, inputs: dict):
        """x for G: the colour-coded label, its one-hot, or the input photo; float, [-1, 1]."""
        if self.config.label_input == "image":
            return to_unit_range(inputs["target"])
        ids = tf.cast(inputs["label"], tf.int32)
        if self.config.label_input == "onehot":
            return tf.one_hot(ids, self.num_classes)
        return to_unit_range(tf.gather(self.palette, ids))

    # ---------------------------------------------------------------------------- inference
    def generate(self, inputs, training: bool = False):
        """G(x) on the 0..255 scale, [N, H, W, 3], from ``{"label"}`` or ``{"target"}``."""
        x = self.generator_input(inputs)
        return from_unit_range(self.generator([x, tf.zeros([2], tf.int64)], training=training))

    def serving_endpoints(self):
        if self.config.label_input == "image":
            return {self.PHOTO_TO_PHOTO: lambda image: {"image": self.generate({"target": image})}}
        return {self.LABEL_TO_PHOTO: lambda label: {"image": self.generate({"label": label})}}

    def sample_columns(self, batch):
        if self.config.label_input == "image":
            shown = tf.cast(batch["target"], tf.uint8)
        else:
            shown = tf.gather(self.palette, tf.cast(batch["label"], tf.int32))
        outputs = to_uint8(self.generate(batch))
        return [shown, outputs, tf.cast(batch["image"], tf.uint8)]

    # ----------------------------------------------------------------------------- training
    def optimizer_groups(self, steps_per_epoch):
        cfg = self.config

        def adam(name):
            schedule = LinearDecay(cfg.learning_rate, steps_per_epoch, cfg.epochs_constant, cfg.epochs_decay)
            # epsilon as PyTorch's Adam (Keras defaults to 1e-7).
            return optimizers.Adam(schedule, beta_1=cfg.beta_1, beta_2=cfg.beta_2,
                                   epsilon=1e-8, name=name)

        return [
            OptimizerGroup("D/total", adam("discriminator_adam"),
                           lambda: self.discriminator.trainable_variables, name="D"),
            OptimizerGroup("total", adam("generator_adam"), lambda: self.generator.trainable_variables,
                           name="G"),
        ]

    def _pair(self, x, y):
        return tf.concat([x, tf.cast(y, x.dtype)], axis=-1)  # D sees (input, output), input first

    def discriminator_losses(self, x, real, fake):
        """D's objective: 0.5 [BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)], with G(x) held fixed."""
        fake_logits = self.discriminator(self._pair(x, fake), training=True)
        real_logits = self.discriminator(self._pair(x, real), training=True)
        d_real, d_fake = losses.gan_discriminator_loss(real_logits, fake_logits, self.config.gan_mode)
        return {"D/real": d_real, "D/fake": d_fake, "D/total": 0.5 * (d_real + d_fake)}, {}

    def generator_losses(self, x, real, fake):
        """G's objective against the updated D: GAN(D(x, G(x)), real) + lambda * |G(x) - y|."""
        fake_logits = self.discriminator(self._pair(x, fake), training=True)
        g_gan = losses.gan_generator_loss(fake_logits, self.config.gan_mode)
        g_l1 = losses.l1(fake, real)
        return {"gan": g_gan, "l1": g_l1, "total": g_gan + self.config.lambda_l1 * g_l1}

    def train_step(self, batch):
        """PyTorch's order: G's forward once; D updated on the detached fake; then G's loss
        through the updated D on the same fake, and G's update.

        One tape, watching G's variables only, spans D's update (which it does not record), so
        G's forward runs once per step. Under ``--jit_compile`` D's gradients are compiled per
        replica, G's are not.
        """
        x = self.generator_input(batch)
        real = to_unit_range(batch["image"])
        with tape_watching(self.generator.trainable_variables) as tape:
            fake = self.generator([x, self.replica_seed()], training=True)  # dropout masks per replica
            d_grads, d_losses, _ = self.group_gradients("D/total", self.discriminator_losses, x, real,
                                                        tf.stop_gradient(fake))
            self.apply_group_gradients("D/total", d_grads)
            g_losses = self.generator_losses(x, real, fake)
            scaled = self.scale_group_loss("total", g_losses["total"])
        self.apply_group_gradients("total", tape.gradient(scaled, self.generator.trainable_variables))
        return {**d_losses, **g_losses}
