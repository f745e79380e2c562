"""Perceptual Losses for Real-Time Style Transfer and Super-Resolution (Johnson, Alahi & Fei-Fei,
ECCV 2016, arXiv:1603.08155).

A feed-forward image transformation network is trained with losses measured by a frozen VGG-16
instead of pixel differences (docs/papers.md section 4):

* **Style transfer** (Sec. 4.1): ``c9s1-32, d64, d128, R128x5, u64, u32, c9s1-3`` maps a content
  photo to the same photo painted in one style. The loss is the feature reconstruction loss
  against the content photo at relu2_2, the style reconstruction loss (Gram matrices) against
  the one style image at relu1_2, relu2_2, relu3_3 and relu4_3, and total variation. Registered
  as ``style_transfer``.
* **Single-image super-resolution x4 / x8** (Sec. 4.2): ``c9s1-64, R64x4, u64x2 (x3), c9s1-3``
  maps a low-resolution image, made from a 288x288 crop by a Gaussian blur of sigma 1 and bicubic
  downsampling, back to the crop; trained with the feature loss at relu2_2 (``loss=feature``)
  or per-pixel MSE (``loss=pixel``), plus total variation. Registered as ``super_resolution``.

Choices, and why:

* **Padding: the original Torch code's.** The input is reflection-padded once, by exactly what
  the unpadded residual convolutions remove (2 pixels per convolution pair at the residual
  blocks' scale: 40 pixels each side for the style net, 8 for super-resolution), every
  residual block's 3x3 convolutions are unpadded and its identity is centre-cropped by 2, the
  9x9 convolutions zero-pad 4, the strided ones 1. The paper describes this design; it keeps
  zero padding away from the residual blocks, whose borders then hold reflected image content,
  and gives the paper's networks exactly. (The PyTorch example's reflection padding of k // 2
  before every convolution has the same parameter count but another receptive field at the
  border; it is ``architecture=pytorch_examples``, below.) The output is as large as the
  input for every height and width that are multiples of 4 (the two stride-2 stages), e.g.
  256x256 and 200x300; the input must exceed the pad (41 pixels for the style net), which the
  export checks.
* **Output scale: the original's tanh x 150 in VGG space.** Inputs enter with the ImageNet mean
  subtracted (the VGG's own preprocessing, RGB on 0..255), and the output is ``150 tanh(x)``
  plus that mean: 0..255 RGB with room to saturate (mean +- 150 covers every value), so the
  losses see the network's own output and the export clips and rounds.
* **Initialisation: Torch7's defaults** (U(+-1/sqrt(fan_in)) for weights and biases), which the
  original kept. Batch norm (the paper) or instance norm with affine parameters (the later
  models) as ``norm``; either way each norm channel adds 2 parameters, so the counts are the
  reference's: 1,679,235 (style), 401,859 (x4), 438,915 (x8).
* **Loss weights: the reference trainer's** (content 1, style 5, TV 1e-6; the paper cross-
  validates TV in 1e-6 .. 1e-4 per style), with each loss a mean as the Torch code computes it.
* **pytorch/examples' TransformerNet as an option** (``architecture=pytorch_examples``): the
  same layers and parameter count with the PyTorch example's padding, upsampling and output
  (see :class:`StyleTransferConfig`), so that the released models of pytorch/examples'
  fast_neural_style (candy, mosaic, rain_princess, udnie) and networks trained with that code
  run here as they were trained (``tfsynth.import_weights --from=fast_neural_style:PATH``) and
  fine-tune with this family's losses.
* **The style image** (``style_image``, resized so its shorter side is ``style_image_size`` as
  the reference trainer did) is copied into the run directory when training starts
  (``run_files``) and read from there afterwards; with no ``style_image`` a built-in
  painting of brush strokes, drawn by :func:`builtin_style_image`, is used.
"""

from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from tfsynth import config as config_lib
from tfsynth import losses, optimizers
from tfsynth.data import transforms
from tfsynth.endpoints import Endpoint, Input
from tfsynth.layers.padding import ReflectionPadding2D, SlicedCropping2D
from tfsynth.models.base import OptimizerGroup, SynthesisModel
from tfsynth.perceptual import IMAGENET_MEAN_RGB
from tfsynth.pixels import to_uint8

NORMS = ("batch", "instance")
#: The style network's layouts: the paper's (the original Torch code's) and pytorch/examples'.
ARCHITECTURES = ("johnson", "pytorch_examples")
#: The paper's VGG-16 layers (Sec. 4.1; relu3_3 is the reference trainer's content default).
CONTENT_LAYER = "relu2_2"
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
#: The original's output range in VGG space: 150 tanh(x).
TANH_SCALE = 150.0
#: Name of the run's copy of the style image (plus the source's extension).
STYLE_COPY = "style_image"


@dataclasses.dataclass(frozen=True)
class StyleTransferConfig:
    """Hyper-parameters; the defaults are the paper's style network and recipe (Adam 1e-3,
    batch 4, 40k iterations of 256x256 COCO images: ``configs/style_transfer.flags``).

    Attributes:
      crop_size: side of the square training crops (256).
      base_filters: filters of the first convolution (32; the later instance-norm models: 16).
      residual_blocks: R128 blocks (5).
      norm: "batch" (the paper) or "instance" (affine instance norm, the later models).
      architecture: how the layers are padded, upsampled and scaled:
        "johnson": the paper's network as the original Torch code builds it (one reflection
        padding of the input, unpadded residual convolutions with centre-cropped identities,
        zero-padded 9x9 and strided convolutions, transposed convolutions up, the output as
        150 tanh(x) in VGG space).
        "pytorch_examples": pytorch/examples' fast_neural_style ``TransformerNet``, the same
        layers and 1,679,235 parameters: a reflection padding of kernel // 2 before every
        convolution (the strided ones too), residual blocks that keep their size, nearest x2
        upsampling then a 3x3 convolution in place of each transposed convolution, affine
        instance norm (``norm=instance`` is required), and no tanh: 0..255 input pixels map to
        0..255 output pixels, clipped only when written as an image. It runs that example's
        released models (candy, mosaic, rain_princess, udnie) as they were trained; see
        ``tfsynth.importing.fast_neural_style``.
      style_image: path of the style image; empty for the built-in brush-stroke painting.
      style_image_size: the style image is resized so its shorter side is this long (256, the
        reference trainer's ``-style_image_size``); 0 keeps its size.
      content_layer, style_layers: VGG-16 layers of the two losses.
      content_weight, style_weight, tv_weight: loss weights (1, 5, 1e-6).
      vgg_weights: VGG-16 weights: "imagenet", "auto", "random" (tests) or a file.
      learning_rate: Adam's (1e-3; betas are Torch's defaults, 0.9 and 0.999).
    """

    crop_size: int = 256
    base_filters: int = 32
    residual_blocks: int = 5
    norm: str = "batch"
    architecture: str = "johnson"
    style_image: str = ""
    style_image_size: int = 256
    content_layer: str = CONTENT_LAYER
    style_layers: tuple[str, ...] = STYLE_LAYERS
    content_weight: float = 1.0
    style_weight: float = 5.0
    tv_weight: float = 1e-6
    vgg_weights: str = "imagenet"
    learning_rate: float = 1e-3

    def __post_init__(self):
        config_lib.check_positive(self, "learning_rate")
        _check_architecture(self)
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {self.architecture!r}")
        if self.architecture == "pytorch_examples" and self.norm != "instance":
            raise ValueError("architecture=pytorch_examples is TransformerNet, whose norms are affine instance "
                             f"norms: set norm=instance (got norm={self.norm})")
        if self.crop_size % 4 or self.crop_size <= self.input_padding:
            raise ValueError(f"crop_size must be a multiple of 4 above {self.input_padding}"
                             f" (the input's reflection padding), got {self.crop_size}")
        if self.style_image_size < 0:
            raise ValueError("style_image_size must be >= 0")
        if not self.style_layers:
            raise ValueError("style_layers must name at least one VGG-16 layer")

    @property
    def input_padding(self) -> int:
        """The widest reflection padding at the input's resolution, which an input side must
        exceed: the Torch network's single padding of the input, or TransformerNet's 4 pixels
        before its first 9x9 convolution (a side above 4 also leaves 2 or more rows for the
        1-pixel reflections at half and quarter resolution)."""
        if self.architecture == "pytorch_examples":
            return 9 // 2
        return reflection_pad(self.residual_blocks, 2)


@dataclasses.dataclass(frozen=True)
class SuperResolutionConfig:
    """Hyper-parameters; the defaults are the paper's x4 network and recipe (Adam 1e-3, batch 4,
    200k iterations of 288x288 COCO crops: ``configs/super_resolution_x4.flags``).

    Attributes:
      scale: upsampling factor, 4 or 8 (one u64 per factor of 2).
      crop_size: side of the high-resolution training crops (288; 72 or 36 pixels go in).
      base_filters: filters of every layer but the output (64).
      residual_blocks: R64 blocks (4).
      norm: "batch" (the paper) or "instance".
      loss: "feature" (VGG-16 relu2_2 reconstruction, the paper's l_feat) or "pixel" (MSE on
        0..255 pixels, the paper's l_pixel baseline).
      feature_layer: VGG-16 layer of the feature loss.
      tv_weight: weight of total variation (1e-6).
      vgg_weights, learning_rate: as the style network's.
    """

    scale: int = 4
    crop_size: int = 288
    base_filters: int = 64
    residual_blocks: int = 4
    norm: str = "batch"
    loss: str = "feature"
    feature_layer: str = CONTENT_LAYER
    tv_weight: float = 1e-6
    vgg_weights: str = "imagenet"
    learning_rate: float = 1e-3

    def __post_init__(self):
        config_lib.check_positive(self, "learning_rate")
        _check_architecture(self)
        if self.scale not in (2, 4, 8):
            raise ValueError(f"scale must be 2, 4 or 8, got {self.scale}")
        if self.loss not in ("feature", "pixel"):
            raise ValueError(f"loss must be 'feature' or 'pixel', got {self.loss!r}")
        low = self.crop_size // self.scale
        if self.crop_size % self.scale or low <= reflection_pad(self.residual_blocks, 0):
            raise ValueError(f"crop_size must be a multiple of scale {self.scale} whose low-resolution side "
                             f"exceeds {reflection_pad(self.residual_blocks, 0)} (the input's reflection "
                             f"padding), got {self.crop_size}")


def _check_architecture(config) -> None:
    if config.norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {config.norm!r}")
    if config.base_filters < 1 or config.residual_blocks < 0:
        raise ValueError("base_filters must be >= 1 and residual_blocks >= 0")


# ---------------------------------------------------------------------------------- blocks

def reflection_pad(residual_blocks: int, downsamplings: int) -> int:
    """Pixels of reflection padding each side that give an output as large as the input: each
    residual block's two unpadded 3x3 convolutions remove 2 pixels each side at 1 / 2**d scale."""
    return 2 * residual_blocks * 2**downsamplings


def _torch7_uniform(fan_in: int) -> keras.initializers.Initializer:
    # Torch7 convolutions start at U(+-1/sqrt(fan_in)), weights and biases alike; the original
    # never re-initialised them.
    bound = 1.0 / fan_in**0.5
    return keras.initializers.RandomUniform(-bound, bound)


def _norm(kind: str, name: str) -> keras.layers.Layer:
    if kind == "batch":
        # Torch's running averages keep 0.9 of the old value; epsilon 1e-5. Statistics over the
        # global batch (synchronized across replicas): the paper normalised over all 4 images.
        return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=True, name=name)
    # The later models' instance norm has a learned scale and offset per channel.
    return keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)


def _conv(x, filters: int, kernel: int, name: str, strides: int = 1, padding: int = 0):
    if padding:
        x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    init = _torch7_uniform(kernel * kernel * x.shape[-1])
    return keras.layers.Conv2D(filters, kernel, strides=strides, padding="valid", kernel_initializer=init,
                               bias_initializer=init, name=name)(x)


def _norm_relu(x, norm: str, name: str):
    return keras.layers.ReLU(name=f"{name}_relu")(_norm(norm, f"{name}_norm")(x))


def conv_block(x, filters: int, kernel: int, norm: str, name: str, strides: int = 1):
    """ck (c9s1-k) and dk: a convolution zero-padded by kernel // 2, norm, ReLU."""
    return _norm_relu(_conv(x, filters, kernel, name, strides, padding=kernel // 2), norm, name)


def upsampling_block(x, filters: int, norm: str, name: str):
    """uk: 3x3 transposed convolution of stride 2 (Torch's full convolution, pad 1, adj 1), norm,
    ReLU. The "valid" transposed convolution gives 2H + 1 rows; Torch's pad 1 and adj 1 keep rows
    1 .. 2H, so the first row and column are dropped."""
    init = _torch7_uniform(9 * x.shape[-1])
    x = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="valid", kernel_initializer=init,
                                     bias_initializer=init, name=name)(x)
    x = SlicedCropping2D(((1, 0), (1, 0)), name=f"{name}_crop")(x)
    return _norm_relu(x, norm, name)


def residual_block(x, norm: str, name: str):
    """Rk: two unpadded 3x3 convolutions (norm and ReLU after the first, norm after the second)
    added to the identity centre-cropped by the 2 pixels each side they removed; no ReLU after
    the sum (the reference code's block)."""
    filters = x.shape[-1]
    y = _norm_relu(_conv(x, filters, 3, f"{name}_conv1"), norm, f"{name}_conv1")
    y = _norm(norm, f"{name}_conv2_norm")(_conv(y, filters, 3, f"{name}_conv2"))
    identity = SlicedCropping2D(2, name=f"{name}_crop")(x)
    return keras.layers.Add(name=f"{name}_add")([identity, y])


@keras.saving.register_keras_serializable(package="tfsynth")
class VGGSpaceImage(keras.layers.Layer):
    """0..255 RGB -> RGB minus the ImageNet mean (``inverse=False``), or the output conv's
    values -> ``150 tanh(x)`` plus the mean, 0..255 RGB (``inverse=True``): the original's
    network input and output live in VGG space."""

    def __init__(self, inverse: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.inverse = inverse

    def call(self, x):
        mean = tf.constant(IMAGENET_MEAN_RGB, x.dtype)
        return TANH_SCALE * tf.tanh(x) + mean if self.inverse else x - mean

    def get_config(self):
        return {**super().get_config(), "inverse": self.inverse}


def build_transform_network(base_filters: int, residual_blocks: int, norm: str, downsamplings: int,
                            upsamplings: int, name: str) -> keras.Model:
    """The image transformation network: uint8-range RGB [N, H, W, 3] -> RGB [N, H s, W s, 3] on
    the 0..255 scale, s = 2**(upsamplings - downsamplings).

    ``c9s1-f``, ``downsamplings`` x d(2f, 4f ..), ``residual_blocks`` x R, ``upsamplings`` x u
    (halving the filters back to ``base_filters``, or all at the residual width when nothing
    was downsampled: super-resolution's u64), ``c9s1-3``.
    """
    images = keras.Input((None, None, 3), name="image")
    x = VGGSpaceImage(name="vgg_space")(images)
    x = ReflectionPadding2D(reflection_pad(residual_blocks, downsamplings), name="reflect_start")(x)
    x = conv_block(x, base_filters, 9, norm, "initial")
    filters = base_filters
    for index in range(1, downsamplings + 1):
        filters *= 2
        x = conv_block(x, filters, 3, norm, f"down{index}", strides=2)
    for index in range(1, residual_blocks + 1):
        x = residual_block(x, norm, f"res{index}")
    for index in range(1, upsamplings + 1):
        filters = max(filters // 2, base_filters) if downsamplings else filters
        x = upsampling_block(x, filters, norm, f"up{index}")
    # The output in float32 under mixed precision: it is compared on the 0..255 scale.
    x = _conv(x, 3, 9, "output", padding=4)
    outputs = VGGSpaceImage(inverse=True, dtype="float32", name="rgb")(x)
    return keras.Model(images, outputs, name=name)


def build_style_network(config: StyleTransferConfig) -> keras.Model:
    """``c9s1-32, d64, d128, R128x5, u64, u32, c9s1-3`` (at the default width), laid out as
    ``config.architecture`` says."""
    if config.architecture == "pytorch_examples":
        return build_transformer_net(config.base_filters, config.residual_blocks, config.norm, "style_network")
    return build_transform_network(config.base_filters, config.residual_blocks, config.norm, 2, 2,
                                   "style_network")


def build_super_resolution_network(config: SuperResolutionConfig) -> keras.Model:
    """``c9s1-64, R64x4, u64 x log2(scale), c9s1-3`` (at the default width)."""
    return build_transform_network(config.base_filters, config.residual_blocks, config.norm, 0,
                                   int(np.log2(config.scale)), f"super_resolution_x{config.scale}")


# ------------------------------------------------------------ pytorch/examples' TransformerNet

def reflected_conv(x, filters: int, kernel: int, name: str, strides: int = 1):
    """The example's ConvLayer: reflection padding of kernel // 2, then an unpadded convolution.
    (PyTorch's default initialisation of a convolution is Torch7's U(+-1/sqrt(fan_in)).)"""
    x = ReflectionPadding2D(kernel // 2, name=f"{name}_pad")(x)
    return _conv(x, filters, kernel, name, strides)


def reflected_conv_block(x, filters: int, kernel: int, norm: str, name: str, strides: int = 1):
    """ck and dk of the example: a reflection-padded convolution, norm, ReLU."""
    return _norm_relu(reflected_conv(x, filters, kernel, name, strides), norm, name)


def reflected_residual_block(x, norm: str, name: str):
    """The example's Rk: two reflection-padded 3x3 convolutions (norm and ReLU after the first,
    norm after the second) added to the identity, which keeps its size; no ReLU after the sum."""
    filters = x.shape[-1]
    y = reflected_conv_block(x, filters, 3, norm, f"{name}_conv1")
    y = _norm(norm, f"{name}_conv2_norm")(reflected_conv(y, filters, 3, f"{name}_conv2"))
    return keras.layers.Add(name=f"{name}_add")([x, y])


def nearest_upsampling_block(x, filters: int, norm: str, name: str):
    """The example's uk (UpsampleConvLayer, norm, ReLU): nearest-neighbour x2, each pixel
    becoming a 2x2 block as ``F.interpolate(scale_factor=2)`` makes it, then a reflection-padded
    3x3 convolution in place of the transposed one."""
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_upsample")(x)
    return reflected_conv_block(x, filters, 3, norm, name)


def build_transformer_net(base_filters: int, residual_blocks: int, norm: str, name: str) -> keras.Model:
    """pytorch/examples' TransformerNet: 0..255 RGB [N, H, W, 3] -> 0..255 RGB [N, H', W', 3],
    H' = 4 ceil(H / 4) (as large as the input for multiples of 4).

    The style network's layers, each convolution reflection-padded by kernel // 2, upsampled
    by :func:`nearest_upsampling_block`; named as :func:`build_transform_network` names them
    (``initial``, ``down<k>``, ``res<k>_conv<j>``, ``up<k>``, ``output``, norms ``<name>_norm``).
    """
    images = keras.Input((None, None, 3), name="image")
    x = reflected_conv_block(images, base_filters, 9, norm, "initial")
    filters = base_filters
    for index in (1, 2):
        filters *= 2
        x = reflected_conv_block(x, filters, 3, norm, f"down{index}", strides=2)
    for index in range(1, residual_blocks + 1):
        x = reflected_residual_block(x, norm, f"res{index}")
    for index in (1, 2):
        filters //= 2
        x = nearest_upsampling_block(x, filters, norm, f"up{index}")
    x = reflected_conv(x, 3, 9, "output")
    # No tanh and no offset: the example's output is on the input's 0..255 scale as it stands
    # (its stylize() clamps only when saving). In float32 under mixed precision, as above.
    outputs = keras.layers.Activation("linear", dtype="float32", name="rgb")(x)
    return keras.Model(images, outputs, name=name)


# ------------------------------------------------------------------------------ style image

def builtin_style_image(size: int = 256, seed: int = 7) -> np.ndarray:
    """A deterministic painting of curved brush strokes, uint8 [size, size, 3]: the style when
    none is given (quickstart, tests), drawn here so nothing is downloaded.

    Strokes follow a swirling flow field in a blue-and-ochre palette over a dark ground, so the
    Grams carry strong colour correlations and oriented texture at every VGG scale.
    """
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    palette = np.array([(24, 44, 110), (40, 84, 160), (92, 140, 200), (230, 196, 70), (245, 226, 140),
                        (200, 120, 40), (30, 30, 48), (170, 200, 220)])
    canvas = Image.new("RGB", (size, size), (18, 26, 60))
    draw = ImageDraw.Draw(canvas)
    for _ in range(60 * size // 64):
        x, y = rng.uniform(0, size, 2)
        colour = tuple(int(c) for c in np.clip(palette[rng.integers(len(palette))] + rng.normal(0, 12, 3), 0, 255))
        width = int(rng.integers(2, 2 + size // 32))
        points = [(x, y)]
        for _ in range(int(rng.integers(4, 10))):
            angle = np.sin(x / size * 6.0) * 2.0 + np.cos(y / size * 5.0) * 2.0
            x, y = x + np.cos(angle) * size / 40, y + np.sin(angle) * size / 40
            points.append((x, y))
        draw.line(points, fill=colour, width=width, joint="curve")
    return np.asarray(canvas, np.uint8)


def read_style_image(path: str) -> np.ndarray:
    """uint8 [H, W, 3] RGB of an image file; a missing or unreadable file raises DataError
    naming it."""
    from PIL import Image

    from tfsynth.data.tfrecord import DataError

    if not os.path.isfile(path):
        raise DataError(f"style_image {path}: no such file")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), np.uint8)
    except (OSError, ValueError) as error:
        raise DataError(f"style_image {path}: not a readable image ({error})") from None


def resize_shorter_side(image: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize so the shorter side is ``size`` (aspect kept); 0 keeps the image."""
    from PIL import Image

    height, width = image.shape[:2]
    if not size or min(height, width) == size:
        return image
    factor = size / min(height, width)
    new_size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(image).resize(new_size, Image.BICUBIC), np.uint8)


# ----------------------------------------------------------------------------------- models

class _PerceptualTransform(SynthesisModel):
    """What both tasks share: one network, image-only records, random square crops, Adam."""

    serving_state_keys = ("generator",)

    def __init__(self, config, source_label_space: str = "cityscapes35", **kwargs):
        super().__init__(config, source_label_space, training_size=(config.crop_size,) * 2, **kwargs)
        self.generator = self.build_network()
        self.networks = {"generator": self.generator}
        self.vgg = None

    def build_network(self) -> keras.Model:
        raise NotImplementedError

    @property
    def record_fields(self):
        return ("image",)

    @property
    def minimum_input_size(self) -> int:
        """The smallest input side the reflection padding accepts."""
        return reflection_pad(self.config.residual_blocks, self.downsamplings) + 1

    def example_transform(self, training: bool):
        crop = self.config.crop_size
        if training:
            return lambda example, seed: transforms.random_crop_at_least(example, seed, crop)
        # Fixed batches (sample grids, --eval_every): the same crop every time.
        return lambda example, seed: transforms.random_crop_at_least(example, tf.constant([0, 0], tf.int64), crop)

    def optimizer_groups(self, steps_per_epoch):
        adam = optimizers.Adam(self.config.learning_rate)
        return [OptimizerGroup("total", adam, lambda: self.generator.trainable_variables, name="G")]

    def transform(self, image, training: bool = False):
        """uint8 or float [N, H, W, 3] -> float [N, H s, W s, 3] on the 0..255 scale."""
        return self.generator(tf.cast(image, tf.float32), training=training)

    def serve(self, image):
        """The endpoint function: the network after a check of the smallest size."""
        smallest = self.minimum_input_size
        check = tf.debugging.assert_greater_equal(
            tf.reduce_min(tf.shape(image)[1:3]), smallest,
            message=f"image smaller than {smallest} pixels: the network's reflection padding needs more")
        with tf.control_dependencies([check]):
            return {"image": self.transform(tf.identity(image))}

    def _vgg(self, layers):
        from tfsynth.perceptual import VGGFeatures

        self.vgg = VGGFeatures(depth=16, layers=tuple(layers), pooling="max", weights=self.config.vgg_weights,
                               name="vgg16")
        return {"vgg16": self.vgg}


class StyleTransfer(_PerceptualTransform):
    """Johnson et al.'s real-time style transfer: one style per trained network."""

    config_class = StyleTransferConfig
    downsamplings = 2
    STYLIZE = Endpoint("serving_default", inputs=(Input("image", kind="image", source="image"),))

    def __init__(self, config: StyleTransferConfig, source_label_space: str = "cityscapes35", **kwargs):
        super().__init__(config, source_label_space, **kwargs)
        self.style_grams = None

    def build_network(self):
        return build_style_network(self.config)

    @property
    def minimum_input_size(self) -> int:
        """The smallest input side the architecture's reflection paddings accept."""
        return self.config.input_padding + 1

    @property
    def size_multiple(self) -> int:
        return 2**self.downsamplings

    @property
    def style_copy(self) -> str:
        """The run's copy of the style image: ``style_image`` plus the source's extension."""
        return STYLE_COPY + (os.path.splitext(self.config.style_image)[1].lower() or ".png")

    def run_files(self):
        return {self.style_copy: self.config.style_image or tf.io.encode_png(builtin_style_image()).numpy()}

    def check_run_file(self, name, path):
        read_style_image(path)

    def style_image(self) -> np.ndarray:
        """The style image the losses use, at ``style_image_size``."""
        path = self.run_file(self.style_copy)
        return resize_shorter_side(read_style_image(path) if path else builtin_style_image(),
                                   self.config.style_image_size)

    def build_loss_networks(self):
        cfg = self.config
        networks = self._vgg(dict.fromkeys((cfg.content_layer,) + tuple(cfg.style_layers)))
        style = self.vgg(tf.constant(self.style_image()[None], tf.float32))
        # Constants, recomputed from the run's copy of the style image on every start.
        self.style_grams = [tf.constant(losses.gram_matrix(style[layer])[0]) for layer in cfg.style_layers]
        return networks

    def compute_losses(self, batch, training=True):
        cfg = self.config
        content = tf.cast(batch["image"], tf.float32)
        output = self.transform(content, training=training)
        # The photo apart from the output, as CRN does: nothing differentiates its VGG pass, so
        # VGG's backward pass does not run over it (in one joint batch it did, at a quarter of
        # the step), none of its activations are kept, and no features are sliced apart.
        features = self.vgg(output)
        content_loss = losses.feature_reconstruction_loss(features[cfg.content_layer],
                                                          self.vgg(content)[cfg.content_layer])
        style_loss = losses.style_loss([features[layer] for layer in cfg.style_layers], self.style_grams)
        tv = losses.total_variation(output)
        total = cfg.content_weight * content_loss + cfg.style_weight * style_loss + cfg.tv_weight * tv
        return {"content": content_loss, "style": style_loss, "tv": tv, "total": total}

    def serving_endpoints(self):
        return {self.STYLIZE: self.serve}

    def sample_columns(self, batch):
        output = self.transform(batch["image"])
        return [tf.cast(batch["image"], tf.uint8), to_uint8(output)]


class SuperResolution(_PerceptualTransform):
    """Johnson et al.'s single-image super-resolution, x4 or x8."""

    config_class = SuperResolutionConfig
    downsamplings = 0

    def build_network(self):
        return build_super_resolution_network(self.config)

    @property
    def endpoint_declaration(self) -> Endpoint:
        """low-resolution image -> image ``scale`` times larger; evaluate feeds it the record's
        photo degraded as in training and compares the output with the photo."""
        return Endpoint("serving_default", inputs=(Input("image", kind="image", source="degraded_image"),),
                        scale=self.config.scale, reference="image")

    def build_loss_networks(self):
        return self._vgg([self.config.feature_layer]) if self.config.loss == "feature" else {}

    def degrade(self, high_resolution):
        return transforms.degrade_for_super_resolution(high_resolution, self.config.scale)

    def train_step(self, batch):
        # Degraded here, outside the (optionally XLA-compiled) gradient function: the antialiased
        # bicubic resize has no XLA kernel, and it needs no gradient.
        return super().train_step({**batch, "degraded_image": self.degrade(batch["image"])})

    def compute_losses(self, batch, training=True):
        cfg = self.config
        target = tf.cast(batch["image"], tf.float32)
        low = batch["degraded_image"] if "degraded_image" in batch else self.degrade(batch["image"])
        output = self.transform(low, training=training)
        if cfg.loss == "feature":  # the target apart from the output, as for style transfer
            reconstruction = losses.feature_reconstruction_loss(self.vgg(output)[cfg.feature_layer],
                                                                self.vgg(target)[cfg.feature_layer])
        else:
            reconstruction = tf.reduce_mean(tf.square(output - target))
        tv = losses.total_variation(output)
        return {cfg.loss: reconstruction, "tv": tv, "total": reconstruction + cfg.tv_weight * tv}

    def serving_endpoints(self):
        return {self.endpoint_declaration: self.serve}

    def sample_columns(self, batch):
        low = self.degrade(batch["image"])
        size = tf.shape(batch["image"])[1:3]
        bicubic = tf.image.resize(tf.cast(low, tf.float32), size, method="bicubic")
        output = self.transform(low)
        return [to_uint8(image) for image in (bicubic, output, tf.cast(batch["image"], tf.float32))]
