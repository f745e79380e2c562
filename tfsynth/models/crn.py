"""Cascaded Refinement Networks (Chen & Koltun, ICCV 2017, arXiv:1707.09405).

A semantic layout is turned into a photograph by a cascade of refinement modules, from 4x8 up
to the output resolution, with no adversary: the generator regresses VGG-19 features of the
real photo. The 256p model renders K=9 images at once and is trained with the diversity loss,
which charges each semantic class only to the output that renders it best.

Faithful to the authors' TF1 code (docs/papers.md section 1): module widths per height, 3x3 convs
without bias followed by TF1 slim layer norm and lrelu(0.2), bilinear upsampling with aligned
corners, an area-downsampled label pyramid, a linear 1x1 output conv mapped to the 0..255 scale
with channel-major regrouping of the K images, and the masked six-term VGG loss.
"""

from __future__ import annotations

import dataclasses
import math

import keras
import tensorflow as tf

from tfsynth import config as config_lib
from tfsynth import losses, optimizers
from tfsynth.data import labels
from tfsynth.layers import AreaDownsample2D, BilinearResize, SlimLayerNormalization
from tfsynth.endpoints import Endpoint, Input
from tfsynth.models.base import OptimizerGroup, SynthesisModel
from tfsynth.pixels import to_uint8

#: VGG-19 layers of the loss, and how many 2x poolings precede each (its mask's pyramid level).
LOSS_LAYERS = ("input", "conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")
LOSS_LAYER_LEVELS = (0, 0, 1, 2, 3, 4)
DIVERSITY_WEIGHTS = (1.0, 1 / 1.6, 1 / 2.3, 1 / 1.8, 1 / 2.8, 10 / 0.8)  # "collected at epoch 100"
SIMPLE_WEIGHTS = (1.0, 1 / 2.6, 1 / 4.8, 1 / 3.7, 1 / 5.6, 10 / 1.5)  # 512p / 1024p fine-tuning


@dataclasses.dataclass(frozen=True)
class CRNConfig:
    """Hyper-parameters; the defaults are the paper's 256p model.

    Attributes:
      image_size: training (height, width); the exported generator accepts any size divisible
        by ``height / coarsest_height``.
      coarsest_height: height of the first module (4, i.e. 4x8 for 2:1 images).
      max_channels: 0 for the paper's module widths; a positive value caps every width (quick
        CPU runs and tests).
      num_outputs: K, the number of images rendered at once (9 at 256p, 1 at 512p/1024p).
      loss: "diversity" (masked per-class loss, min over outputs) or "simple" (plain L1 per
        layer, as the 512p/1024p fine-tuning used).
      layer_weights: weights of the six terms p0..p5 (input, conv1_2 .. conv5_2); empty for
        the original's weights of the chosen loss.
      vgg_weights: "imagenet", a MatConvNet .mat or keras .h5 path, "auto" or "random".
      learning_rate, beta_1, beta_2, epsilon: Adam, with TF1's defaults.
      trainable_from_height: train only the modules at this height and above (0: all);
        the 1024p recipe trains only the 512 and 1024 modules.
    """

    image_size: tuple[int, int] = (256, 512)
    coarsest_height: int = 4
    max_channels: int = 0
    num_outputs: int = 9
    loss: str = "diversity"
    layer_weights: tuple[float, ...] = ()
    vgg_weights: str = "imagenet"
    learning_rate: float = 1e-4
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    trainable_from_height: int = 0

    def __post_init__(self):
        config_lib.check_positive(self, "learning_rate")
        height, width = self.image_size
        ratio = height / self.coarsest_height
        if ratio < 1 or not float(ratio).is_integer() or not math.log2(ratio).is_integer():
            raise ValueError(
                f"image_size height {height} must be coarsest_height ({self.coarsest_height}) "
                "times a power of two")
        if width % int(ratio):
            raise ValueError(f"image_size width {width} must be divisible by {int(ratio)}")
        if self.loss not in ("diversity", "simple"):
            raise ValueError(f"loss must be 'diversity' or 'simple', got {self.loss!r}")
        if self.layer_weights and len(self.layer_weights) != len(LOSS_LAYERS):
            raise ValueError(f"layer_weights needs {len(LOSS_LAYERS)} values (p0..p5)")
        if self.num_outputs < 1:
            raise ValueError("num_outputs must be >= 1")

    @property
    def term_weights(self) -> tuple[float, ...]:
        if self.layer_weights:
            return self.layer_weights
        return DIVERSITY_WEIGHTS if self.loss == "diversity" else SIMPLE_WEIGHTS

    @property
    def module_heights(self) -> list[int]:
        count = int(math.log2(self.image_size[0] // self.coarsest_height)) + 1
        return [self.coarsest_height * 2**level for level in range(count)]

    def module_width(self, height: int) -> int:
        """The original's channel width of the module at ``height`` (optionally capped)."""
        width = 1024 if height <= 64 else 512 if height <= 256 else 128 if height <= 512 else 32
        return min(width, self.max_channels) if self.max_channels else width


# ---------------------------------------------------------------------------------- blocks

def _conv_norm_lrelu(x, width: int, name: str):
    # No bias: slim.conv2d drops it when a normalizer follows; Glorot-uniform as slim's default.
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=name)(x)
    # The leaky ReLU is fused into the norm (2 GiB less at 256p). The identity holds the place
    # its own layer had: checkpoints key each layer's variables by its index in the model.
    x = SlimLayerNormalization(negative_slope=0.2, name=f"{name}_norm")(x)
    return keras.layers.Identity(name=f"{name}_lrelu_in_norm")(x)


@keras.saving.register_keras_serializable(package="tfsynth")
class ChannelMajorImages(keras.layers.Layer):
    """Maps the linear output to the 0..255 scale and regroups 3K channels into K images.

    The original splits the channel axis into contiguous thirds (R, G, B), so image k is
    channels (k, K + k, 2K + k).
    """

    def __init__(self, num_outputs: int, **kwargs):
        super().__init__(**kwargs)
        self.num_outputs = num_outputs

    def call(self, x):
        x = (x + 1.0) / 2.0 * 255.0
        shape = tf.shape(x)
        x = tf.reshape(x, [shape[0], shape[1], shape[2], 3, self.num_outputs])
        return tf.transpose(x, [0, 4, 1, 2, 3])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_outputs, input_shape[1], input_shape[2], 3)

    def get_config(self):
        return {**super().get_config(), "num_outputs": self.num_outputs}


def build_generator(config: CRNConfig, num_classes: int = 20) -> keras.Model:
    """The cascade: label one-hot [N, H, W, C] -> K images [N, K, H, W, 3] on the 0..255 scale."""
    label = keras.Input((None, None, num_classes), name="label")
    heights = config.module_heights
    pyramid = [label]
    for height in reversed(heights[:-1]):
        pyramid.append(AreaDownsample2D(name=f"label_{height}")(pyramid[-1]))
    x = None
    for height, label_at_height in zip(heights, reversed(pyramid)):
        name = f"g_{height}"
        if x is None:
            features = label_at_height
        else:
            upsampled = BilinearResize(align_corners=True, name=f"{name}_upsample")([x, label_at_height])
            features = keras.layers.Concatenate(name=f"{name}_input")([upsampled, label_at_height])
        width = config.module_width(height)
        x = _conv_norm_lrelu(features, width, f"{name}_conv1")
        x = _conv_norm_lrelu(x, width, f"{name}_conv2")
    # Linear output kept in float32 under mixed precision: it is regressed on the 0..255 scale.
    x = keras.layers.Conv2D(3 * config.num_outputs, 1, name=f"g_{heights[-1]}_output",
                            dtype="float32")(x)
    images = ChannelMajorImages(config.num_outputs, name="images", dtype="float32")(x)
    return keras.Model(label, images, name="crn_generator")


def module_height(layer_name: str) -> int | None:
    """The module a generator layer belongs to (``g_256_conv1`` -> 256), or None."""
    parts = layer_name.split("_")
    return int(parts[1]) if len(parts) > 1 and parts[0] == "g" and parts[1].isdigit() else None


# ----------------------------------------------------------------------------------- model

class CRN(SynthesisModel):
    """CRN training: one generator, a frozen VGG-19, Adam on the VGG loss."""

    config_class = CRNConfig
    label_space = "cityscapes20"
    #: label ids -> the first image, and all K.
    RENDER = Endpoint("serving_default", inputs=(Input("label", kind="label", source="label"),),
                      outputs=("image", "images"), reference="image", conditioned_on_labels=True)

    def __init__(self, config: CRNConfig, source_label_space: str = "cityscapes35", **kwargs):
        super().__init__(config, source_label_space, training_size=config.image_size,
                         num_outputs=config.num_outputs, **kwargs)
        self.palette = tf.constant(labels.get_label_space(self.label_space).palette())
        self.generator = build_generator(config, self.num_classes)
        self.networks = {"generator": self.generator}
        self.vgg = None

    @property
    def size_multiple(self) -> int:
        return self.config.image_size[0] // self.config.coarsest_height

    def build_loss_networks(self):
        from tfsynth.perceptual import VGGFeatures

        self.vgg = VGGFeatures(depth=19, layers=LOSS_LAYERS, pooling="avg",
                               weights=self.config.vgg_weights, name="vgg19")
        return {"vgg19": self.vgg}

    def optimizer_groups(self, steps_per_epoch):
        cfg = self.config
        adam = optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta_1, beta_2=cfg.beta_2,
                               epsilon=cfg.epsilon)
        return [OptimizerGroup("total", adam, self.trainable_generator_variables, name="G")]

    def trainable_generator_variables(self):
        return [
            variable
            for layer in self.generator.layers
            if (module_height(layer.name) or 0) >= self.config.trainable_from_height
            for variable in layer.trainable_variables
        ]

    def generate(self, label, training: bool = False):
        """Label ids in the data's label space -> K images [N, K, H, W, 3] on the 0..255 scale."""
        one_hot = tf.one_hot(tf.cast(self.label_ids(label), tf.int32), self.num_classes)
        return self.generator(one_hot, training=training)

    def serving_endpoints(self):
        def render(label):
            images = self.generate(label)
            return {"image": images[:, 0], "images": images}

        return {self.RENDER: render}

    def compute_losses(self, batch, training=True):
        cfg = self.config
        ids = self.label_ids(batch["label"])
        one_hot = tf.one_hot(tf.cast(ids, tf.int32), self.num_classes)
        fakes = self.generator(one_hot, training=training)  # [B, K, H, W, 3]
        real = tf.cast(batch["image"], tf.float32)
        # The real image apart from the fakes: nothing differentiates its VGG pass, so none of
        # its activations are kept, and the fakes' features need no slicing out of a joint batch.
        real_features = self.vgg(real)
        size = tf.shape(fakes)  # [B, K, H, W, 3]
        fake_features = self.vgg(tf.reshape(fakes, [-1, size[2], size[3], 3]))

        def pair(name):
            fake = tf.cast(fake_features[name], tf.float32)
            shape = tf.shape(fake)
            return (tf.cast(real_features[name], tf.float32),
                    tf.reshape(fake, [size[0], size[1], shape[1], shape[2], shape[3]]))

        terms = [pair(name) for name in LOSS_LAYERS]
        if cfg.loss == "simple":
            per_layer = [w * losses.feature_l1(real_f, fake_f)
                         for w, (real_f, fake_f) in zip(cfg.term_weights, terms)]
            total = tf.add_n(per_layer)
        else:
            pyramid = [one_hot]
            for _ in range(max(LOSS_LAYER_LEVELS)):
                pyramid.append(tf.nn.avg_pool2d(pyramid[-1], 2, 2, "VALID"))
            errors = [w * losses.masked_feature_error(real_f, fake_f, pyramid[level])
                      for w, level, (real_f, fake_f) in zip(cfg.term_weights, LOSS_LAYER_LEVELS, terms)]
            content = tf.add_n(errors)  # [B, K, C]
            total = losses.diversity_loss(content)
            # Attribute the total to the six terms with the same per-class output selection,
            # so p0..p5 add up to it exactly.
            chosen = tf.one_hot(tf.argmin(content, axis=1), cfg.num_outputs, axis=1)
            selection = 0.999 * chosen + 0.001 / cfg.num_outputs
            per_layer = [tf.reduce_sum(selection * error, axis=[1, 2]) for error in errors]
        result = {f"p{i}": tf.reduce_mean(term) for i, term in enumerate(per_layer)}
        result["total"] = tf.reduce_mean(total)
        return result

    def sample_columns(self, batch):
        ids = tf.cast(self.label_ids(batch["label"]), tf.int32)
        outputs = to_uint8(self.generate(batch["label"]))
        return [tf.gather(self.palette, ids), tf.cast(batch["image"], tf.uint8), *tf.unstack(outputs, axis=1)]
