"""A compact semantic segmenter, for scoring synthesized images ("FCN-score").

The label-to-image papers judge realism by segmenting generated photos with a network trained on
real ones (pix2pix: FCN-8s; pix2pixHD: PSPNet; SPADE: DRN). When no such network is at hand,
this family trains one on the same TFRecords: a small residual encoder-decoder (a U-Net whose
stages are residual blocks, bilinear upsampling in the decoder), per-pixel cross-entropy over the
19 Cityscapes train classes with the ignore label 255 left out, Adam. Its scores are for
comparing methods on the same data, not with the papers' FCN numbers.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from tfsynth import config as config_lib
from tfsynth import optimizers
from tfsynth.data import labels
from tfsynth.layers import BilinearResize
from tfsynth.endpoints import Endpoint, Input
from tfsynth.models.base import OptimizerGroup, SynthesisModel


@dataclasses.dataclass(frozen=True)
class SegmenterConfig:
    """Hyper-parameters.

    Attributes:
      image_size: training (height, width); inference takes any multiple of 2**depth.
      base_filters: filters of the first stage, doubled per stage.
      depth: number of stride-2 stages.
      learning_rate: Adam.
      flip: random horizontal flips while training.
    """

    image_size: tuple[int, int] = (256, 512)
    base_filters: int = 32
    depth: int = 4
    learning_rate: float = 1e-3
    flip: bool = True

    def __post_init__(self):
        config_lib.check_positive(self, "learning_rate")
        multiple = 2**self.depth
        if self.image_size[0] % multiple or self.image_size[1] % multiple:
            raise ValueError(f"image_size {self.image_size} must be multiples of 2**depth = {multiple}")


# Synchronized batch norm: under a distribution strategy the statistics are those of the global
# batch, so training on several replicas equals training on one.
def _conv_bn_relu(x, filters: int, strides: int, name: str):
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = keras.layers.BatchNormalization(synchronized=True, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _residual(x, filters: int, name: str):
    shortcut = x
    x = _conv_bn_relu(x, filters, 1, f"{name}_a")
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b")(x)
    x = keras.layers.BatchNormalization(synchronized=True, name=f"{name}_b_bn")(x)
    return keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([x, shortcut]))


def build_segmenter(config: SegmenterConfig, num_classes: int = 19) -> keras.Model:
    """uint8-range RGB [N, H, W, 3] (float) -> class logits [N, H, W, num_classes]."""
    images = keras.Input((None, None, 3), name="images")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(images)
    x = _conv_bn_relu(x, config.base_filters, 1, "stem")
    skips = []
    for stage in range(config.depth):
        skips.append(x)
        filters = config.base_filters * 2 ** (stage + 1)
        x = _conv_bn_relu(x, filters, 2, f"down{stage + 1}")
        x = _residual(x, filters, f"down{stage + 1}_res")
    for stage in reversed(range(config.depth)):
        x = BilinearResize(align_corners=False, name=f"up{stage + 1}_resize")([x, skips[stage]])
        x = keras.layers.Concatenate(name=f"up{stage + 1}_skip")([x, skips[stage]])
        x = _conv_bn_relu(x, config.base_filters * 2**stage, 1, f"up{stage + 1}")
    logits = keras.layers.Conv2D(num_classes, 1, dtype="float32", name="logits")(x)
    return keras.Model(images, logits, name="segmenter")


def masked_cross_entropy(train_ids, logits, ignore_id: int = labels.IGNORE_ID):
    """Per-pixel cross-entropy averaged over each image's labelled pixels (those not
    ``ignore_id``), then over the images.

    Normalising per image keeps the loss of a batch the mean of its examples' losses, so that
    replicas holding parts of a batch add up to the whole batch's loss.
    """
    train_ids = tf.cast(train_ids, tf.int32)
    valid = tf.not_equal(train_ids, ignore_id)
    safe = tf.where(valid, train_ids, tf.zeros_like(train_ids))
    per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(safe, tf.cast(logits, tf.float32))
    valid = tf.cast(valid, tf.float32)
    per_image = tf.reduce_sum(per_pixel * valid, axis=[1, 2]) / tf.maximum(tf.reduce_sum(valid, axis=[1, 2]), 1.0)
    return tf.reduce_mean(per_image)


class Segmenter(SynthesisModel):
    """Photo -> Cityscapes trainIds (``cityscapes19``), trained with masked cross-entropy."""

    config_class = SegmenterConfig
    label_space = "cityscapes19"
    serving_state_keys = ("segmenter",)
    #: photo -> trainIds (255 never predicted).
    SEGMENT = Endpoint("serving_default", inputs=(Input("image", kind="image", source="image"),),
                       outputs=("label",))

    def __init__(self, config: SegmenterConfig, source_label_space: str = "cityscapes35", **kwargs):
        super().__init__(config, source_label_space, training_size=config.image_size, **kwargs)
        space = labels.get_label_space(self.label_space)
        # Ignored pixels (255) are drawn black in grids.
        self.palette = tf.constant(labels.colorize(tf.range(256).numpy(), space))
        self.segmenter = build_segmenter(config, self.num_classes)
        self.networks = {"segmenter": self.segmenter}

    @property
    def size_multiple(self) -> int:
        return 2**self.config.depth

    def example_transform(self, training: bool):
        from tfsynth.data import transforms

        size = tuple(self.config.image_size)
        if training and self.config.flip:
            return lambda example, seed: transforms.random_jitter(example, seed, size, size, flip=True)
        return lambda example, seed: transforms.resize(example, size)

    def optimizer_groups(self, steps_per_epoch):
        return [OptimizerGroup("total", optimizers.Adam(self.config.learning_rate),
                               lambda: self.segmenter.trainable_variables, name="segmenter")]

    def segment(self, images, training: bool = False):
        """uint8 photos [N, H, W, 3] -> trainIds uint8 [N, H, W]."""
        logits = self.segmenter(tf.cast(images, tf.float32), training=training)
        return tf.cast(tf.argmax(logits, axis=-1), tf.uint8)

    def compute_losses(self, batch, training=True):
        logits = self.segmenter(tf.cast(batch["image"], tf.float32), training=training)
        train_ids = self.label_ids(batch["label"])
        predictions = tf.cast(tf.argmax(logits, axis=-1), tf.uint8)
        valid = tf.not_equal(train_ids, labels.IGNORE_ID)
        correct = tf.logical_and(valid, tf.equal(predictions, train_ids))
        accuracy = tf.reduce_sum(tf.cast(correct, tf.float32)) / tf.maximum(
            tf.reduce_sum(tf.cast(valid, tf.float32)), 1.0)
        return {"total": masked_cross_entropy(train_ids, logits), "pixel_accuracy": accuracy}

    def serving_endpoints(self):
        return {self.SEGMENT: lambda image: {"label": self.segment(image)}}

    def sample_columns(self, batch):
        ids = tf.cast(self.segment(batch["image"]), tf.int32)
        truth = tf.cast(self.label_ids(batch["label"]), tf.int32)
        return [tf.cast(batch["image"], tf.uint8), tf.gather(self.palette, ids), tf.gather(self.palette, truth)]
