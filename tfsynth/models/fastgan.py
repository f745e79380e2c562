"""FastGAN: Towards Faster and Stabilized GAN Training for High-fidelity Few-shot Image Synthesis
(Liu, Zhu, Song & Elgammal, ICLR 2021, arXiv:2101.04775).

Unconditional generation from 100 to 1000 images at 256x256 to 1024x1024, trained in hours
(docs/papers.md section 5):

* **Skip-layer excitation** (SLE, Sec. 3.1): the generator's low-resolution features gate the
  channels of its high-resolution ones (64 <- 4, 128 <- 8, 256 <- 16, 512 <- 32), a cheap
  long-range skip. Every other up-block injects per-pixel noise and uses a second convolution;
  GLU activations halve the channels after every batch norm.
* **A self-supervised discriminator** (Sec. 3.2): on real images D is also an auto-encoder.
  Three small decoders reconstruct the whole image from D's 8x8 feature, one random quarter of
  it from the matching quadrant of D's 16x16 feature, and the image again from the small branch
  (which judges a 128x128 version). The reconstructions are scored with LPIPS on VGG-16.
* **The reference recipe**: hinge loss whose margin is drawn per logit in U(0.8, 1.0),
  DiffAugment ``color,translation`` on every image D sees (reals once, each of the two fakes
  independently, the same augmented fakes for G's update), Adam 2e-4 (0.5, 0.999), batch 8,
  50k iterations, D then G each iteration, and an EMA of G (0.999) for samples and export.

Faithful to the authors' code: every convolution is spectrally normalised (PyTorch's way,
:mod:`tfsynth.layers.spectral`) without bias, weights N(0, 0.02), batch-norm gamma N(1, 0.02);
the parameter counts are the reference's (G 29,127,846 / D 11,526,160 at 256x256).

Choices, and why:

* **Output activation** (``output_activation``): the reference applies tanh to G's outputs only
  at 1024x1024; at 256 and 512 they are linear while real images lie in [-1, 1].
  ``reference`` (the default) reproduces that quirk, so the published recipes train as
  published; ``tanh`` or ``linear`` choose one for every size. Exports clip to 0..255 either way.
* **Smaller images and narrower networks** (``resolution`` 32 .. 128, ``*_filters``) keep the
  paper's blocks keyed by resolution and use the tail of the same chains: the small image and
  the reconstructions are at min(128, resolution / 2), D's trunk starts at min(resolution, 256)
  and always ends at 8x8, and each SLE gate exists where both of its features do.
* **Serving noise**: the reference draws fresh noise maps in every forward pass. Training does
  the same (per example and step); serving draws them from one fixed seed, so an image is a
  function of its latent alone: the same seed gives the same image, and ``from_latent`` on a
  seed's latent gives that seed's image.
* **Batch norm over the global batch** (synchronized across replicas): the reference trains
  on one GPU with a batch of 8, whose statistics this keeps on any number of devices.
* **LPIPS on our VGG-16**: the reconstruction loss compares unit-normalised VGG-16 features
  (relu1_2 .. relu5_3) as LPIPS does, weighted per channel by LPIPS v0.1's own linear weights
  (``lpips_weights``: by default ``"lpips_v0.1"``, the official file shipped in
  ``tfsynth/weights``; or a ``.pth``/``.npz`` of the same layout; ``""``/``"uniform"``: every
  channel weighs 1, which makes the term about 10 times heavier). The VGG-16 is ``vgg_weights``
  with its own preprocessing: the Caffe-converted ImageNet weights by default (0..255 minus the
  ImageNet mean), or torchvision's ``vgg16-*.pth``, the network LPIPS was fitted on (whose
  normalisation is LPIPS's input scaling).
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from tfsynth import config as config_lib
from tfsynth import losses, optimizers, seeded
from tfsynth.data import transforms
from tfsynth.diffaugment import diff_augment, parse_policy
from tfsynth.endpoints import Endpoint, Input
from tfsynth.layers import GLU, AdaptiveAveragePooling, GlobalBatchNormalization, NoiseInjection, Quarter, quarter
from tfsynth.layers.spectral import SpectralConv2D
from tfsynth.models.base import OptimizerGroup, SynthesisModel, moving_average_update
from tfsynth.gradients import global_batch_sum, tape_watching
from tfsynth.perceptual import BUILTIN_LPIPS
from tfsynth.pixels import from_unit_range, to_uint8, to_unit_range

#: Channels per resolution as multiples of the base width (the reference's ``nfc_multi``): the
#: generator's (also the decoders', on their own base width) and the discriminator's.
GENERATOR_WIDTHS = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}
DISCRIMINATOR_WIDTHS = {4: 16, 8: 16, 16: 8, 32: 4, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}
#: Resolutions whose generator block injects noise and has two convolutions (UpBlockComp).
NOISY_RESOLUTIONS = (8, 32, 128, 512)
#: Largest size of the small image and the reconstructions; largest start of D's trunk.
SMALL_SIZE, DISCRIMINATOR_TRUNK = 128, 256
#: The hinge loss's margin is drawn per logit in this range (the reference's rand * 0.2 + 0.8).
HINGE_MARGIN = (0.8, 1.0)
OUTPUT_ACTIVATIONS = ("reference", "tanh", "linear")
#: Independent streams of an example's seed for each random draw of a step; the step's quarter.
_LATENT, _NOISE, _AUGMENT_REAL, _AUGMENT_BIG, _AUGMENT_SMALL, _MARGIN_REAL, _MARGIN_FAKE, _PART = range(1, 9)
#: Names of the run's copy of the LPIPS weights: of a ``.npz`` source, and of any other (a
#: PyTorch state dict such as the shipped one). Only a name: the loader goes by the content.
LPIPS_COPY = "lpips_weights.npz"
LPIPS_PTH_COPY = "lpips_weights.pth"
#: ``lpips_weights`` values that weigh every channel 1 (no file).
UNIFORM_LPIPS = ("", "uniform")


@dataclasses.dataclass(frozen=True)
class FastGANConfig:
    """Hyper-parameters; the defaults are the reference's 256x256 model and recipe (its option
    names in brackets).

    Attributes:
      resolution: side of the square images, a power of 2 from 32 to 1024 [--im_size].
      latent_size: length of z [nz = 256].
      generator_filters, discriminator_filters: base widths [ngf = ndf = 64].
      decoder_filters: base width of D's reconstruction decoders (32).
      output_activation: "reference" (tanh only at 1024, as the code), "tanh" or "linear".
      augment_policy: DiffAugment policy ("color,translation"; empty: none).
      reconstruction_weight: weight of the LPIPS reconstruction term in D's loss (1, the
        reference's; 0 leaves D without self-supervision, the paper's ablation).
      learning_rate, beta_1, beta_2: Adam for G and D [2e-4, (0.5, 0.999)].
      ema_decay: G's exponential moving average, exported and sampled (0.999).
      vgg_weights: VGG-16 of the LPIPS reconstruction loss: "imagenet", "auto", "random" or a file
        (a MatConvNet .mat, a keras .h5, or torchvision's vgg16-*.pth, which LPIPS was fitted on).
      lpips_weights: LPIPS v0.1's VGG linear (per-channel) weights: "lpips_v0.1" (the default:
        the official file, shipped with tfsynth), or a path to a .pth state dict or a .npz of the
        same layout (``perceptual.load_lpips_weights``); "" or "uniform": every channel weighs 1,
        the behaviour before the weights were shipped, about 10x the reference's term.
      flip: random horizontal flips of the training images.
    """

    resolution: int = 256
    latent_size: int = 256
    generator_filters: int = 64
    discriminator_filters: int = 64
    decoder_filters: int = 32
    output_activation: str = "reference"
    augment_policy: str = "color,translation"
    reconstruction_weight: float = 1.0
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    ema_decay: float = 0.999
    vgg_weights: str = "imagenet"
    lpips_weights: str = BUILTIN_LPIPS
    flip: bool = True

    def __post_init__(self):
        if self.resolution not in [2**k for k in range(5, 11)]:
            raise ValueError(f"resolution must be a power of 2 from 32 to 1024, got {self.resolution}")
        if self.output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"output_activation must be one of {', '.join(OUTPUT_ACTIVATIONS)}, "
                             f"got {self.output_activation!r}")
        if min(self.latent_size, self.generator_filters, self.discriminator_filters, self.decoder_filters) < 1:
            raise ValueError("latent_size and the *_filters must be >= 1")
        if not self.reconstruction_weight >= 0.0:
            raise ValueError(f"reconstruction_weight must be >= 0, got {self.reconstruction_weight}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        config_lib.check_positive(self, "learning_rate")
        parse_policy(self.augment_policy)

    @property
    def small_size(self) -> int:
        """Side of G's second output, of D's small branch and of the reconstructions (128)."""
        return min(SMALL_SIZE, self.resolution // 2)

    @property
    def output_tanh(self) -> bool:
        if self.output_activation == "reference":
            return self.resolution == 1024
        return self.output_activation == "tanh"


def _width(multiple: float, base: int) -> int:
    return max(1, int(multiple * base))


# ---------------------------------------------------------------------------------- blocks

def _conv(filters: int, kernel: int, name: str, strides: int = 1, padding: str = "same"):
    """A spectrally normalised convolution without bias, N(0, 0.02) weights. Keras "same" is
    PyTorch's padding for every convolution here (3x3 pad 1, 4x4 stride 2 pad 1 on even sizes)."""
    return SpectralConv2D(filters, kernel, strides=strides, padding=padding, use_bias=False,
                          kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02), name=name)


def _batch_norm(name: str):
    # PyTorch's momentum and epsilon, the reference's N(1, 0.02) gamma; over the global batch.
    return GlobalBatchNormalization(momentum=0.9, epsilon=1e-5, name=name,
                                    gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02))


def _leaky_relu(name: str):
    return keras.layers.LeakyReLU(negative_slope=0.2, name=name)


def nearest_downsample(images, size: int):
    """PyTorch's nearest ``F.interpolate`` to ``size`` for an integer factor: every k-th pixel,
    starting at the top-left one."""
    step = images.shape[1] // size
    return images if step == 1 else images[:, ::step, ::step]


def skip_layer_excitation(small, big, name: str):
    """SLE: ``big * sigmoid(conv1x1(swish(conv4x4_valid(pool4(small)))))``, a channel gate on
    the big feature computed from the small one."""
    channels = big.shape[-1]
    x = AdaptiveAveragePooling(4, name=f"{name}_pool")(small)
    x = _conv(channels, 4, f"{name}_conv4", padding="valid")(x)
    x = keras.layers.Activation("silu", name=f"{name}_swish")(x)
    x = _conv(channels, 1, f"{name}_conv1", padding="valid")(x)
    gate = keras.layers.Activation("sigmoid", name=f"{name}_sigmoid")(x)
    return keras.layers.Multiply(name=name)([big, gate])


def up_block(x, filters: int, name: str):
    """UpBlock: nearest x2, conv3x3 to 2 filters, BN, GLU."""
    x = keras.layers.UpSampling2D(2, name=f"{name}_up")(x)
    x = _batch_norm(f"{name}_bn")(_conv(2 * filters, 3, f"{name}_conv")(x))
    return GLU(name=f"{name}_glu")(x)


def up_block_comp(x, noise_seeds, filters: int, name: str, salt: int):
    """UpBlockComp: nearest x2, then twice (conv3x3 to 2 filters, noise, BN, GLU)."""
    x = keras.layers.UpSampling2D(2, name=f"{name}_up")(x)
    for index in (1, 2):
        x = _conv(2 * filters, 3, f"{name}_conv{index}")(x)
        x = NoiseInjection(salt + index, name=f"{name}_noise{index}")([x, noise_seeds])
        x = GLU(name=f"{name}_glu{index}")(_batch_norm(f"{name}_bn{index}")(x))
    return x


def init_layer(z, channels: int):
    """InitLayer: z as a 1x1 map, ConvTranspose 4x4 (stride 1, no padding) to 2 channels, BN,
    GLU: [N, nz] -> [N, 4, 4, channels]. The transposed convolution of a 1x1 input is the 4x4
    convolution of that input zero-padded by 3 (the same weights, flipped), written so."""
    x = keras.layers.Reshape((1, 1, z.shape[-1]), name="init_reshape")(z)
    x = keras.layers.ZeroPadding2D(3, name="init_pad")(x)
    x = _batch_norm("init_bn")(_conv(2 * channels, 4, "init_conv", padding="valid")(x))
    return GLU(name="init_glu")(x)


def _output(x, kernel: int, tanh: bool, name: str):
    x = _conv(3, kernel, name)(x)
    # float32 under mixed precision: the images meet the losses and [-1, 1] reals.
    return keras.layers.Activation("tanh" if tanh else "linear", dtype="float32", name=f"{name}_image")(x)


def build_generator(config: FastGANConfig, name: str = "generator") -> keras.Model:
    """G: ``[z [N, nz], noise_seeds int64 [N, 2]] -> [image [N, S, S, 3], small [N, s, s, 3]]``
    (S = resolution, s = small_size), in [-1, 1] or linear (``output_activation``).

    feat_4 = InitLayer(z); feat_2r = UpBlockComp / UpBlock(feat_r), alternating from 8; feat_r
    for r in 64 .. 512 gated by SLE(feat_{r/16}); image = conv3x3(feat_S), small = conv1x1(feat_s).
    """
    z = keras.Input((config.latent_size,), name="z")
    noise_seeds = keras.Input((2,), dtype="int64", name="noise_seeds")
    features = {4: init_layer(z, _width(GENERATOR_WIDTHS[4], config.generator_filters))}
    resolution = 4
    while resolution < config.resolution:
        x, resolution = features[resolution], resolution * 2
        filters = _width(GENERATOR_WIDTHS[resolution], config.generator_filters)
        if resolution in NOISY_RESOLUTIONS:
            x = up_block_comp(x, noise_seeds, filters, f"feat_{resolution}", salt=10 * resolution)
        else:
            x = up_block(x, filters, f"feat_{resolution}")
        if 64 <= resolution <= 512:
            x = skip_layer_excitation(features[resolution // 16], x, f"se_{resolution}")
        features[resolution] = x
    image = _output(features[config.resolution], 3, config.output_tanh, "to_big")
    small = _output(features[config.small_size], 1, config.output_tanh, "to_small")
    return keras.Model([z, noise_seeds], [image, small], name=name)


def down_block(x, filters: int, name: str):
    """DownBlock: conv4x4 stride 2, BN, LeakyReLU(0.2)."""
    x = _batch_norm(f"{name}_bn")(_conv(filters, 4, f"{name}_conv", strides=2)(x))
    return _leaky_relu(f"{name}_lrelu")(x)


def down_block_comp(x, filters: int, name: str):
    """DownBlockComp: the mean of (conv4x4 s2, BN, LReLU, conv3x3, BN, LReLU) and
    (avg-pool 2, conv1x1, BN, LReLU)."""
    main = down_block(x, filters, f"{name}_main1")
    main = _batch_norm(f"{name}_main2_bn")(_conv(filters, 3, f"{name}_main2_conv")(main))
    main = _leaky_relu(f"{name}_main2_lrelu")(main)
    direct = keras.layers.AveragePooling2D(2, name=f"{name}_direct_pool")(x)
    direct = _batch_norm(f"{name}_direct_bn")(_conv(filters, 1, f"{name}_direct_conv", padding="valid")(direct))
    direct = _leaky_relu(f"{name}_direct_lrelu")(direct)
    return keras.layers.Average(name=name)([main, direct])


def build_decoder(input_channels: int, output_size: int, base_filters: int, name: str) -> keras.Model:
    """SimpleDecoder: [N, 8, 8, C] -> [N, output_size, output_size, 3] in [-1, 1]: adaptive
    average pool to 8x8, UpBlocks to ``output_size`` (widths 128, 64, 64, 32 at base 32), conv3x3, tanh."""
    features = keras.Input((8, 8, input_channels), name=f"{name}_features")
    x = AdaptiveAveragePooling(8, name=f"{name}_pool")(features)
    resolution = 8
    while resolution < output_size:
        resolution *= 2
        x = up_block(x, _width(GENERATOR_WIDTHS[resolution], base_filters), f"{name}_up{resolution}")
    x = _conv(3, 3, f"{name}_output")(x)
    return keras.Model(features, keras.layers.Activation("tanh", dtype="float32", name=f"{name}_tanh")(x), name=name)


def build_discriminator(config: FastGANConfig) -> tuple[keras.Model, keras.Model]:
    """D with its decoders, and the critic (D's logits alone, sharing every layer).

    The discriminator: ``[image [N, S, S, 3], small [N, s, s, 3], part int32 [N]] -> [logits
    [N, 50], reconstruction of the image, of the small image, of quarter ``part``]`` (each
    [N, s, s, 3]); the critic: ``[image, small] -> logits``.

    Big branch: a stem to min(S, 256) (S = 1024: conv4 s2, LReLU, conv4 s2, BN, LReLU; 512:
    conv4 s2, LReLU; <= 256: conv3, LReLU), DownBlockComps to 8x8, the 32, 16 and 8 features
    gated by SLE from the features 8 times larger, then conv1x1, BN, LReLU, conv4x4 valid.
    Small branch: conv4 s2, LReLU, DownBlocks to 8x8, conv4x4 valid.
    """
    size, small_size = config.resolution, config.small_size
    image = keras.Input((size, size, 3), name="image")
    small = keras.Input((small_size, small_size, 3), name="image_small")
    part = keras.Input((), dtype="int32", name="part")

    def width(resolution):  # channels of the big branch at ``resolution``
        return _width(DISCRIMINATOR_WIDTHS[2 * resolution], config.discriminator_filters)

    def small_width(resolution):
        return _width(DISCRIMINATOR_WIDTHS[4 * resolution], config.discriminator_filters)

    x, resolution = image, size
    if size <= DISCRIMINATOR_TRUNK:
        x = _leaky_relu("stem_lrelu")(_conv(width(size), 3, "stem_conv")(x))
    while resolution > DISCRIMINATOR_TRUNK:
        resolution //= 2
        x = _conv(width(resolution), 4, f"stem_conv{resolution}", strides=2)(x)
        if resolution < size // 2:
            x = _batch_norm(f"stem_bn{resolution}")(x)
        x = _leaky_relu(f"stem_lrelu{resolution}")(x)
    features = {resolution: x}
    while resolution > 8:
        resolution //= 2
        x = down_block_comp(x, width(resolution), f"down_{resolution}")
        if 8 * resolution in features:
            x = skip_layer_excitation(features[8 * resolution], x, f"se_{8 * resolution}_{resolution}")
        features[resolution] = x
    big_logits = _leaky_relu("rf_big_lrelu")(_batch_norm("rf_big_bn")(
        _conv(_width(DISCRIMINATOR_WIDTHS[8], config.discriminator_filters), 1, "rf_big_conv1", padding="valid")(x)))
    big_logits = _conv(1, 4, "rf_big_conv4", padding="valid")(big_logits)

    y, resolution = small, small_size // 2
    y = _leaky_relu("small_lrelu")(_conv(small_width(resolution), 4, "small_conv", strides=2)(y))
    while resolution > 8:
        resolution //= 2
        y = down_block(y, small_width(resolution), f"small_down_{resolution}")
    small_logits = _conv(1, 4, "rf_small", padding="valid")(y)
    big_logits = keras.layers.Flatten(name="rf_big_flat")(big_logits)
    small_logits = keras.layers.Flatten(name="rf_small_flat")(small_logits)
    logits = keras.layers.Concatenate(dtype="float32", name="logits")([big_logits, small_logits])

    decoder_big = build_decoder(features[8].shape[-1], small_size, config.decoder_filters, "decoder_big")
    decoder_part = build_decoder(features[16].shape[-1], small_size, config.decoder_filters, "decoder_part")
    decoder_small = build_decoder(y.shape[-1], small_size, config.decoder_filters, "decoder_small")
    reconstructions = [decoder_big(features[8]), decoder_small(y),
                       decoder_part(Quarter(name="feat_16_quarter")([features[16], part]))]
    discriminator = keras.Model([image, small, part], [logits, *reconstructions], name="discriminator")
    critic = keras.Model([image, small], logits, name="critic")
    return discriminator, critic


# ----------------------------------------------------------------------------------- model

class FastGAN(SynthesisModel):
    """FastGAN training: per iteration D (hinge + reconstructions) then G, and G's EMA."""

    config_class = FastGANConfig
    serving_state_keys = ("generator_ema",)
    #: seed int64 [N] -> image: the latent each seed names (``seeded.latents_from_seeds``).
    SAMPLE = Endpoint("serving_default", inputs=(Input("seed", kind="seed", source="index"),))
    #: z float32 [N, nz] -> image (interpolations, the user's own latents).
    FROM_LATENT = Endpoint("from_latent", inputs=(Input("z", kind="latent", source="index"),))

    def __init__(self, config: FastGANConfig, source_label_space: str = "cityscapes35", **kwargs):
        super().__init__(config, source_label_space, training_size=(config.resolution,) * 2, **kwargs)
        self.generator = build_generator(config)
        # The reference starts its average at G's initial weights.
        self.generator_ema = build_generator(config, name="generator_ema")
        self.generator_ema.set_weights(self.generator.get_weights())
        self.generator_ema.trainable = False  # averaged, never trained: no optimizer, no parameter count
        self.discriminator, self.critic = build_discriminator(config)
        self.networks = {"generator": self.generator, "discriminator": self.discriminator}
        self.vgg = None
        self.lpips_weights = None

    # -------------------------------------------------------------- what the model consumes
    @property
    def record_fields(self):
        return ("image",)

    @property
    def latent_size(self) -> int:
        return self.config.latent_size

    def example_transform(self, training: bool):
        """Resize to resolution x resolution (aspect not kept; bilinear, antialiased, as the
        reference's Resize), and in training a random horizontal flip."""
        size = self.training_size
        flip = training and self.config.flip

        def transform(example, seed):
            example = transforms.resize(example, size, image_method="bilinear")
            example = {**example, "image": tf.ensure_shape(example["image"], (*size, 3))}
            if not flip:
                return example
            flipped = tf.random.stateless_uniform([], seed, alg="philox") < 0.5
            return {**example, "image": tf.cond(flipped, lambda: tf.reverse(example["image"], [1]),
                                                lambda: example["image"])}

        return transform

    def extra_state(self):
        return {"generator_ema": self.generator_ema}

    @property
    def lpips_copy(self) -> str | None:
        """The name of the run's copy of the LPIPS weights; None when they are uniform."""
        source = self.config.lpips_weights
        if source in UNIFORM_LPIPS:
            return None
        return LPIPS_COPY if source.lower().endswith(".npz") else LPIPS_PTH_COPY

    def run_files(self):
        # The built-in name is copied like a user's file: the run keeps the weights it started
        # with, and a resume reads its own copy whatever this package ships then.
        from tfsynth.perceptual import lpips_weights_path

        if self.lpips_copy is None:
            return {}
        return {self.lpips_copy: lpips_weights_path(self.config.lpips_weights)}

    def check_run_file(self, name, path):
        from tfsynth.data.tfrecord import DataError
        from tfsynth.perceptual import PerceptualWeightsError, load_lpips_weights

        try:
            load_lpips_weights(path)
        except PerceptualWeightsError as error:
            raise DataError(f"lpips_weights: {error}") from None

    def build_loss_networks(self):
        from tfsynth.perceptual import LPIPS_LAYERS, VGGFeatures, load_lpips_weights

        self.vgg = VGGFeatures(depth=16, layers=LPIPS_LAYERS, pooling="max", weights=self.config.vgg_weights,
                               name="vgg16")
        if self.lpips_copy and (weights_file := self.run_file(self.lpips_copy)):
            self.lpips_weights = [tf.constant(w) for w in load_lpips_weights(weights_file)]
        return {"vgg16": self.vgg}

    # ---------------------------------------------------------------------------- training
    def optimizer_groups(self, steps_per_epoch):
        cfg = self.config

        def adam(name):  # epsilon as PyTorch's Adam
            return optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta_1, beta_2=cfg.beta_2, epsilon=1e-8,
                                   name=name)

        return [OptimizerGroup("D/total", adam("discriminator_adam"),
                               lambda: self.discriminator.trainable_variables, name="D"),
                OptimizerGroup("total", adam("generator_adam"), lambda: self.generator.trainable_variables,
                               name="G")]

    def step_part(self):
        """The quarter reconstructed this step, the same for the whole batch as the reference's."""
        return tf.random.stateless_uniform([], self.step_seed(_PART), minval=0, maxval=4, dtype=tf.int32, alg="philox")

    def augmented_fakes(self, seeds):
        """G's two outputs for the examples' seeds (latents and noise drawn from them), each
        augmented on its own draw."""
        z = seeded.normal(seeded.fold(seeds, _LATENT), [self.config.latent_size])
        image, small = self.generator([z, seeded.fold(seeds, _NOISE)], training=True)
        return [self.augment(image, seeds, _AUGMENT_BIG), self.augment(small, seeds, _AUGMENT_SMALL)]

    def augment(self, images, seeds, salt: int):
        return diff_augment(images, seeded.fold(seeds, salt), self.config.augment_policy)

    def reconstruction_loss(self, reconstructions, targets):
        """LPIPS(reconstruction, target) summed over the three decoders and the global batch (the
        reference's ``.sum()``)."""
        def features(images):
            named = self.vgg(from_unit_range(tf.concat(images, axis=0)))
            return [named[name] for name in self.vgg.feature_names]

        # The targets apart from the reconstructions: nothing differentiates their VGG pass, so
        # VGG's backward pass does not run over them, none of their activations are kept, and no
        # features are sliced out of a joint batch.
        distances = losses.lpips_distance(features(reconstructions), features(targets), self.lpips_weights)
        return global_batch_sum(distances)  # [3 N] distances: every decoder's

    def discriminator_losses(self, real, fakes, part, seeds):
        """D's objective (reference ``train_d``): on the augmented reals, the margin hinge plus
        LPIPS of the three reconstructions against the reals (whole and the quarter ``part``)
        downsampled nearest; on the augmented, detached fakes, the margin hinge."""
        small = self.config.small_size
        logits_real, *reconstructions = self.discriminator([real, nearest_downsample(real, small), part],
                                                           training=True)
        logits_fake = self.critic(fakes, training=True)
        margins = [seeded.uniform(seeded.fold(seeds, salt), logits_real.shape[1:], *HINGE_MARGIN)
                   for salt in (_MARGIN_REAL, _MARGIN_FAKE)]
        real_term, fake_term = losses.margin_hinge_discriminator_loss(logits_real, logits_fake, *margins)
        whole = nearest_downsample(real, small)
        reconstruction = self.config.reconstruction_weight * self.reconstruction_loss(
            reconstructions, [whole, whole, nearest_downsample(quarter(real, part), small)])
        return {"D/real": real_term, "D/fake": fake_term, "D/reconstruction": reconstruction,
                "D/total": real_term + reconstruction + fake_term}, ()

    def train_step(self, batch):
        """One reference iteration: G's forward once; D updated on the augmented reals and the
        augmented, detached fakes; then G's loss ``-mean D(fakes)`` through the updated D on
        the same augmented fakes; then the EMA.

        G's forward and loss share one tape across D's update, as the reference computes G's
        loss after ``optimizerD.step()`` from the fakes of the iteration's single forward pass
        (one update of G's running averages and spectral-norm vectors). The tape watches G's
        variables only, so it keeps nothing of D's update. Under ``--jit_compile`` D's gradients
        are compiled per replica, G's are not.
        """
        real = to_unit_range(batch["image"])
        count = tf.shape(real)[0]
        seeds = self.example_seeds(count)
        part = tf.fill([count], self.step_part())
        real = self.augment(real, seeds, _AUGMENT_REAL)
        with tape_watching(self.generator.trainable_variables) as tape:
            fakes = self.augmented_fakes(seeds)
            gradients, d_losses, _ = self.group_gradients(
                "D/total", self.discriminator_losses, real, [tf.stop_gradient(f) for f in fakes], part, seeds)
            self.apply_group_gradients("D/total", gradients)
            g_loss = losses.gan_generator_loss(self.critic(fakes, training=True), "hinge")
            scaled = self.scale_group_loss("total", g_loss)
        self.apply_group_gradients("total", tape.gradient(scaled, self.generator.trainable_variables))
        moving_average_update(self.generator_ema, self.generator, self.config.ema_decay, average_buffers=False)
        return {**d_losses, "total": g_loss}

    # ---------------------------------------------------------------------------- serving
    def serving_endpoints(self):
        return {self.SAMPLE: self.sample, self.FROM_LATENT: self.render}

    def sample(self, seed):
        """The EMA generator's image for each seed's latent, 0..255 scale."""
        return self.render(seeded.latents_from_seeds(seed, self.config.latent_size))

    def render(self, z):
        """The EMA generator's image for each latent z [N, nz], 0..255 scale; the noise maps from
        one fixed seed, so the image depends on z alone."""
        nz = self.config.latent_size
        z = tf.cast(z, tf.float32)
        check = tf.debugging.assert_equal(tf.shape(z)[-1], nz, message=f"z must be float32 [N, {nz}]")
        with tf.control_dependencies([check]):
            z = tf.identity(z)
        fixed_noise = tf.zeros([tf.shape(z)[0], 2], tf.int64)
        image, _ = self.generator_ema([z, fixed_noise], training=False)
        return {"image": from_unit_range(image)}

    def sample_columns(self, batch):
        """Real images | the EMA generator's images for seeds 0, 1, .. (the same every time)."""
        count = tf.shape(batch["image"])[0]
        samples = self.sample(tf.range(count, dtype=tf.int64))["image"]
        return [tf.cast(batch["image"], tf.uint8), to_uint8(samples)]

