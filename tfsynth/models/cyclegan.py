"""CycleGAN (Zhu, Park, Isola & Efros, ICCV 2017, arXiv:1703.10593).

Unpaired image-to-image translation between two domains A (the paper's X) and B (Y). Two
generators, G_A: A -> B (the paper's G) and G_B: B -> A (F), each face a discriminator: D_A judges
domain-B images, real or made by G_A (the paper's D_Y), and D_B judges domain A (D_X). Without
pairs, the objective ties the two directions together (Sec. 3):

* adversarial terms with the least-squares GAN loss (the paper's training details),
  ``(D_A(G_A(a)) - 1)^2`` and ``(D_B(G_B(b)) - 1)^2``;
* cycle consistency, ``lambda_A |G_B(G_A(a)) - a|_1 + lambda_B |G_A(G_B(b)) - b|_1``, lambda = 10;
* identity, ``lambda_identity * (lambda_B |G_A(b) - b|_1 + lambda_A |G_B(a) - a|_1)`` (introduced
  for painting <-> photo; the authors' code applies it by default with lambda_identity = 0.5, a
  weight of 5 on the L1 means);
* each discriminator minimises ``0.5 [(D(real) - 1)^2 + D(fake)^2]``, where the fakes come from a
  history of 50 generated images per domain (:class:`ImagePool`, after Shrivastava et al. 2017),
  not only from the latest generator.

Every step updates G_A and G_B together with one Adam (the discriminators fixed), then D_A and D_B
with another, on the fakes of that step's forward pass (docs/papers.md section 6). The networks are
the authors' code's defaults: a ResNet generator (Johnson et al. 2016) with instance norm, 9
residual blocks at 256x256 (6 at 128x128), and the 3-channel 70x70 PatchGAN.

Translation notes (PyTorch -> Keras): the two strided 3x3 convolutions pad 1 pixel on every side
(``ZeroPadding2D(1)`` + "valid"; Keras "same" would pad 0/1), and each ConvTranspose k3 s2 p1
output_padding 1 is a "valid" Conv2DTranspose whose first row and column are cropped, which is
exactly PyTorch's output grid (Keras "same" gives the same size shifted by one pixel). Weights
therefore port one to one, kernels transposed.

Data: ``domains_from="splits"`` reads two splits (``trainA``/``trainB`` as written by
``tools/build_tfrecords.py --format=image_folder``); ``"labels"`` turns a labelled dataset into
two unpaired domains, A = the colour-coded label image and B = the photo, each stream shuffled
on its own seed.
"""

from __future__ import annotations

import dataclasses
import re

import keras
import numpy as np
import tensorflow as tf

from tfsynth import config as config_lib
from tfsynth import losses, optimizers
from tfsynth.data import labels
from tfsynth.layers import resnet
from tfsynth.layers.discriminators import build_patch_discriminator
from tfsynth.endpoints import Endpoint, Input
from tfsynth.models.base import OptimizerGroup, SynthesisModel
from tfsynth.pixels import from_unit_range, to_unit_range, unit_range_to_uint8
from tfsynth.schedules import LinearDecay

#: ``generator`` values: the authors' ``--netG`` names are resnet_9blocks and resnet_6blocks;
#: any block count works (fewer for quick tests).
GENERATOR_PATTERN = re.compile(r"^resnet_(?P<blocks>[1-9][0-9]*)blocks$")
DOMAIN_SOURCES = ("splits", "labels")
TRANSLATIONS = ("a_to_b", "b_to_a")


@dataclasses.dataclass(frozen=True)
class CycleGANConfig:
    """Hyper-parameters; the defaults are the authors' code (256x256 training images).

    Attributes:
      generator: "resnet_9blocks" (256x256 and above) or "resnet_6blocks" (128x128; the paper's
        Cityscapes setting); "resnet_<n>blocks" for other depths.
      base_filters: filters of the generator's first layer (ngf = 64); 2x and 4x after the two
        downsamplings.
      discriminator_filters: filters of the PatchGAN's first layer (ndf = 64).
      discriminator_layers: strided PatchGAN layers (3: the 70x70 PatchGAN).
      load_size: (height, width) every image is resized to before the random crop (286; a
        single value means a square).
      crop_size: (height, width) of the training crops (256); sample grids resize to it.
      flip: random horizontal flips in training.
      domains_from: "splits": domain X reads split ``<split>A`` and Y ``<split>B``; "labels":
        both read ``<split>`` of a labelled dataset, A = colour-coded labels, B = photos.
      lambda_a, lambda_b: cycle-consistency weights (lambda = 10).
      lambda_identity: identity weight relative to lambda (0.5; 0 switches it off).
      pool_size: fakes kept per domain for the discriminators (50; 0: no history).
      gan_mode: "lsgan" (the paper's) or "vanilla" (the original cross-entropy).
      learning_rate, beta_1, beta_2, epsilon: Adam, for the generators' and the discriminators'
        optimizer alike (2e-4, 0.5, 0.999, PyTorch's 1e-8).
      epochs_constant, epochs_decay: the learning rate is constant for ``epochs_constant``
        epochs, then decays linearly to zero over ``epochs_decay`` (100 + 100).
    """

    generator: str = "resnet_9blocks"
    base_filters: int = 64
    discriminator_filters: int = 64
    discriminator_layers: int = 3
    load_size: tuple[int, int] = (286, 286)
    crop_size: tuple[int, int] = (256, 256)
    flip: bool = True
    domains_from: str = "splits"
    lambda_a: float = 10.0
    lambda_b: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    gan_mode: str = "lsgan"
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    epsilon: float = 1e-8
    epochs_constant: int = 100
    epochs_decay: int = 100

    def __post_init__(self):
        config_lib.check_positive(self, "learning_rate")
        for name in ("load_size", "crop_size"):
            size = tuple(getattr(self, name))
            if len(size) == 1:  # "--hparams=crop_size=128" means a square
                size = size * 2
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"{name} must be HxW (or one number for a square), got {size}")
            object.__setattr__(self, name, size)
        if not GENERATOR_PATTERN.match(self.generator):
            raise ValueError("generator must be resnet_9blocks, resnet_6blocks or resnet_<n>blocks, "
                             f"got {self.generator!r}")
        if self.domains_from not in DOMAIN_SOURCES:
            raise ValueError(f"domains_from must be one of {', '.join(DOMAIN_SOURCES)}, "
                             f"got {self.domains_from!r}")
        if self.gan_mode not in ("lsgan", "vanilla"):
            raise ValueError(f"gan_mode must be 'lsgan' or 'vanilla', got {self.gan_mode!r}")
        if any(c % 4 for c in self.crop_size) or min(self.crop_size) < 24:
            # Two 2x downsamplings in G; the 70x70 PatchGAN needs 24 pixels for one logit.
            raise ValueError(f"crop_size {self.crop_size}: height and width must be multiples of 4 "
                             "and at least 24")
        if any(c > l for c, l in zip(self.crop_size, self.load_size)):
            raise ValueError(f"crop_size {self.crop_size} exceeds load_size {self.load_size}")
        if min(self.base_filters, self.discriminator_filters, self.discriminator_layers) < 1:
            raise ValueError("base_filters, discriminator_filters and discriminator_layers must be >= 1")
        if self.pool_size < 0 or min(self.lambda_a, self.lambda_b, self.lambda_identity) < 0:
            raise ValueError("pool_size and the lambdas must be >= 0")

    @property
    def residual_blocks(self) -> int:
        return int(GENERATOR_PATTERN.match(self.generator)["blocks"])


# ---------------------------------------------------------------------------------- networks

def build_generator(config: CycleGANConfig, name: str = "resnet_generator") -> keras.Model:
    """The ResNet generator: images [N, H, W, 3] in [-1, 1] -> [N, H, W, 3] in [-1, 1] (tanh).

    c7s1-64, d128, d256, R256 x 9 (or 6), u128, u64, c7s1-3 in the notation of the paper's
    appendix, with ``base_filters`` for 64. H and W must be multiples of 4. Every convolution
    keeps its bias (zero at the start): instance norm without affine parameters has no offset
    to replace it.
    """
    filters = config.base_filters
    images = keras.Input((None, None, 3), name="images")
    x = resnet.norm_relu(resnet.reflect_conv(images, filters, 7, "initial"), "initial")   # c7s1-64
    for index, multiple in enumerate((2, 4), start=1):                                     # d128, d256
        x = resnet.down(x, filters * multiple, f"down{index}")
    for index in range(1, config.residual_blocks + 1):                                     # R256 x n
        x = resnet.residual_block(x, filters * 4, f"res{index}")
    for index, multiple in enumerate((2, 1), start=1):                                     # u128, u64
        x = resnet.up(x, filters * multiple, f"up{index}")
    x = resnet.reflect_conv(x, 3, 7, "output")                                             # c7s1-3
    # Float32 output under mixed precision: the images feed the L1 terms and the image pool.
    outputs = keras.layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(images, outputs, name=name)


def build_discriminator(config: CycleGANConfig, name: str = "patch_discriminator") -> keras.Model:
    """The 70x70 PatchGAN on 3-channel images with instance norm: [N, H, W, 3] -> logits [N, h, w, 1]."""
    return build_patch_discriminator(3, base_filters=config.discriminator_filters,
                                     num_layers=config.discriminator_layers, norm="instance", name=name)


# ---------------------------------------------------------------------------------- image pool

def pool_update(stored, count, images, swap, slots):
    """One query of the image history, as a pure function (the authors' ``ImagePool.query``).

    Images are taken one at a time, in batch order. While the pool holds fewer than
    ``pool_size`` images, an image is stored and returned as it is. Once the pool is full, an
    image whose ``swap`` draw is true is stored in slot ``slots[i]`` and the image that slot held
    is returned instead; otherwise the image itself is returned and the pool is unchanged.

    Args:
      stored: [pool_size, H, W, C] the pool's images (only the first ``count`` are valid).
      count: int32 scalar, images in the pool.
      images: [N, H, W, C] the new fakes.
      swap: bool [N], true with probability 0.5.
      slots: int32 [N], uniform in [0, pool_size).

    Returns:
      (returned images [N, H, W, C], new ``stored``, new ``count``).
    """
    pool_size = stored.shape[0]
    num_images = tf.shape(images)[0]

    def one_image(i, stored, count, returned):
        image = images[i]
        filling = count < pool_size
        slot = tf.where(filling, count, slots[i])
        returned = returned.write(i, tf.where(tf.logical_and(swap[i], tf.logical_not(filling)),
                                              stored[slot], image))
        stored = tf.cond(tf.logical_or(filling, swap[i]),
                         lambda: tf.tensor_scatter_nd_update(stored, slot[None, None], image[None]),
                         lambda: stored)
        return i + 1, stored, tf.minimum(count + 1, pool_size), returned

    returned = tf.TensorArray(images.dtype, size=num_images, element_shape=images.shape[1:])
    _, stored, count, returned = tf.while_loop(
        lambda i, *_: i < num_images, one_image, (tf.constant(0), stored, count, returned))
    return tf.ensure_shape(returned.stack(), images.shape), stored, count


class ImagePool(tf.Module):
    """The history of generated images the discriminators train on (after Shrivastava et al. 2017).

    The state is TensorFlow variables, so it is checkpointed with the model and resumes where it
    stopped: ``images`` [pool_size, H, W, 3] and the fill ``count``. Each query draws its random
    numbers statelessly from the seed pair it is given (the model's per-step, per-replica seed),
    so the same seeds and images give the same result, eagerly, in a tf.function and after a
    restore.

    Under a tf.distribute strategy every replica keeps its own pool (ON_READ variables): the
    authors' single-GPU pool sees the whole batch, here each replica sees its share and draws
    from its own seed. A checkpoint holds the first replica's pool, and restoring puts it into
    every replica.
    """

    def __init__(self, pool_size: int, image_shape, name: str | None = None):
        super().__init__(name=name)
        self.pool_size = pool_size
        per_replica = dict(trainable=False, synchronization=tf.VariableSynchronization.ON_READ,
                           aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.images = tf.Variable(tf.zeros([pool_size, *image_shape], tf.float32), name="images",
                                  **per_replica)
        self.count = tf.Variable(0, dtype=tf.int32, name="count", **per_replica)

    def query(self, images, seed):
        """Stores ``images`` [N, H, W, 3] and returns N images for the discriminator; ``seed``
        (int64 [2]) decides which are swapped and where."""
        if self.pool_size == 0:
            return images
        images = tf.cast(images, self.images.dtype)
        swap_seed, slot_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2, alg="philox"))
        num_images = tf.shape(images)[0]
        swap = tf.random.stateless_uniform([num_images], swap_seed, alg="philox") < 0.5
        slots = tf.random.stateless_uniform([num_images], slot_seed, minval=0, maxval=self.pool_size,
                                            dtype=tf.int32, alg="philox")
        returned, stored, count = pool_update(self.images.read_value(), self.count.read_value(),
                                              images, swap, slots)
        self.images.assign(stored)
        self.count.assign(count)
        return returned


# ---------------------------------------------------------------------------------- the model

class CycleGAN(SynthesisModel):
    """CycleGAN training: G_A, G_B (one Adam), then D_A, D_B (another Adam), per step.

    Batches are ``{"A": examples, "B": examples}`` from two independently shuffled streams
    (:meth:`input_splits`). ``networks`` holds ``G_A`` (A -> B), ``G_B`` (B -> A), ``D_A``
    (judges B) and ``D_B`` (judges A), the authors' code's names.
    """

    config_class = CycleGANConfig
    serving_state_keys = ("G_A", "G_B")

    def __init__(self, config: CycleGANConfig, source_label_space: str = "cityscapes35", **kwargs):
        super().__init__(config, source_label_space, training_size=config.crop_size, **kwargs)
        self.G_A = build_generator(config, name="G_A")
        self.G_B = build_generator(config, name="G_B")
        self.D_A = build_discriminator(config, name="D_A")
        self.D_B = build_discriminator(config, name="D_B")
        self.networks = {"G_A": self.G_A, "G_B": self.G_B, "D_A": self.D_A, "D_B": self.D_B}
        # Colours of the dataset's label space, padded to 256 ids (out-of-range ids draw black).
        self.label_palette = tf.constant(labels.colorize(np.arange(256), source_label_space))
        image_shape = (*config.crop_size, 3)
        self.pool_a = ImagePool(config.pool_size, image_shape, name="pool_fake_a")
        self.pool_b = ImagePool(config.pool_size, image_shape, name="pool_fake_b")

    # ------------------------------------------------------------------------------ data
    @property
    def record_fields(self) -> tuple[str, ...]:
        return ("image", "label") if self.config.domains_from == "labels" else ("image",)

    @property
    def size_multiple(self) -> int:
        return 4

    def input_splits(self, split: str) -> dict[str, str]:
        if self.config.domains_from == "labels":
            return {"A": split, "B": split}
        return {"A": f"{split}A", "B": f"{split}B"}

    def example_transform(self, training: bool):
        """Training: resize to ``load_size``, random crop to ``crop_size``, random flip (each
        domain draws its own); sample grids: resize to ``crop_size``."""
        from tfsynth.data import transforms

        cfg = self.config
        if training:
            return lambda example, seed: transforms.random_jitter(
                example, seed, cfg.load_size, cfg.crop_size, flip=cfg.flip)
        return lambda example, seed: transforms.resize(example, cfg.crop_size)

    def domain_images(self, batch: dict):
        """uint8 [B, H, W, 3] images of domain A and of domain B from a ``{"A", "B"}`` batch."""
        if self.config.domains_from == "labels":
            domain_a = tf.gather(self.label_palette, tf.cast(batch["A"]["label"], tf.int32))
        else:
            domain_a = batch["A"]["image"]
        return domain_a, batch["B"]["image"]

    def _real_pair(self, batch):
        domain_a, domain_b = self.domain_images(batch)
        return to_unit_range(domain_a), to_unit_range(domain_b)

    # ------------------------------------------------------------------------------ losses
    def generator_losses(self, real_a, real_b, training: bool = True):
        """The generators' objective on images in [-1, 1].

        Returns:
          (losses, (fake_a, fake_b)): every term already weighted (``cycle_a`` is
          ``lambda_a * L1``, ``idt_a`` is ``lambda_b * lambda_identity * L1``), and
          ``total``, their sum.
        """
        cfg = self.config
        fake_b = self.G_A(real_a, training=training)
        fake_a = self.G_B(real_b, training=training)
        reconstructed_a = self.G_B(fake_b, training=training)
        reconstructed_b = self.G_A(fake_a, training=training)
        result = {
            "gan_a": losses.gan_generator_loss(self.D_A(fake_b, training=training), cfg.gan_mode),
            "gan_b": losses.gan_generator_loss(self.D_B(fake_a, training=training), cfg.gan_mode),
            "cycle_a": cfg.lambda_a * losses.l1(reconstructed_a, real_a),
            "cycle_b": cfg.lambda_b * losses.l1(reconstructed_b, real_b),
        }
        if cfg.lambda_identity > 0:
            # G_A should leave images that already look like domain B alone, and G_B those of A.
            identity_b = self.G_A(real_b, training=training)
            identity_a = self.G_B(real_a, training=training)
            result["idt_a"] = cfg.lambda_b * cfg.lambda_identity * losses.l1(identity_b, real_b)
            result["idt_b"] = cfg.lambda_a * cfg.lambda_identity * losses.l1(identity_a, real_a)
        else:
            result["idt_a"] = result["idt_b"] = tf.constant(0.0)
        result["total"] = tf.add_n(list(result.values()))
        return result, (fake_a, fake_b)

    def discriminator_losses(self, real_a, real_b, fake_a, fake_b, training: bool = True):
        """``0.5 [(D(real) - 1)^2 + D(fake)^2]`` for D_A (domain B) and D_B (domain A).

        Returns:
          (losses, ()): ``D/a``, ``D/b`` and ``D/total``, their sum.
        """
        mode = self.config.gan_mode
        real, fake = losses.gan_discriminator_loss(self.D_A(real_b, training=training),
                                                   self.D_A(fake_b, training=training), mode)
        d_a = 0.5 * (real + fake)
        real, fake = losses.gan_discriminator_loss(self.D_B(real_a, training=training),
                                                   self.D_B(fake_a, training=training), mode)
        d_b = 0.5 * (real + fake)
        return {"D/a": d_a, "D/b": d_b, "D/total": d_a + d_b}, ()

    # ------------------------------------------------------------------------------ training
    def optimizer_groups(self, steps_per_epoch):
        cfg = self.config

        def adam():
            schedule = LinearDecay(cfg.learning_rate, steps_per_epoch, cfg.epochs_constant, cfg.epochs_decay)
            return optimizers.Adam(schedule, beta_1=cfg.beta_1, beta_2=cfg.beta_2,
                                   epsilon=cfg.epsilon)

        return [
            OptimizerGroup("total", adam(),
                           lambda: self.G_A.trainable_variables + self.G_B.trainable_variables, name="G"),
            OptimizerGroup("D/total", adam(),
                           lambda: self.D_A.trainable_variables + self.D_B.trainable_variables, name="D"),
        ]

    def train_step(self, batch):
        """G_A and G_B first (D fixed), then D_A and D_B on pooled, detached fakes."""
        real_a, real_b = self._real_pair(batch)
        pool_seeds = self.replica_seed(salt=1), self.replica_seed(salt=2)  # before the step's first update
        gradients, g_losses, (fake_a, fake_b) = self.group_gradients(
            "total", self.generator_losses, real_a, real_b)
        self.apply_group_gradients("total", gradients)
        # The fakes are those of this step's forward pass, before the generator update, as in
        # the authors' code; the pools swap in older ones half of the time once full.
        pooled_a = self.pool_a.query(fake_a, pool_seeds[0])
        pooled_b = self.pool_b.query(fake_b, pool_seeds[1])
        gradients, d_losses, _ = self.group_gradients(
            "D/total", self.discriminator_losses, real_a, real_b, pooled_a, pooled_b)
        self.apply_group_gradients("D/total", gradients)
        return {**g_losses, **d_losses}

    def extra_state(self) -> dict:
        return {"pool_fake_a": self.pool_a, "pool_fake_b": self.pool_b}

    # ------------------------------------------------------------------------------ inference
    def translate(self, name: str, images):
        """``a_to_b`` (G_A) or ``b_to_a`` (G_B): uint8 [N, H, W, 3] -> float [N, H, W, 3], 0..255."""
        network = {"a_to_b": self.G_A, "b_to_a": self.G_B}[name]
        return from_unit_range(network(to_unit_range(images), training=False))

    def serving_endpoints(self):
        """``a_to_b`` and ``b_to_a``. On a labelled dataset (``domains_from=labels``) domain A is
        the colour-coded label image and B its photo, so A -> B is scored as label -> photo."""
        from_labels = self.config.domains_from == "labels"
        a_to_b = Endpoint("a_to_b", inputs=(Input("image", kind="image",
                                                  source="label_color" if from_labels else "image"),),
                          reference="image" if from_labels else None, conditioned_on_labels=from_labels)
        b_to_a = Endpoint("b_to_a", inputs=(Input("image", kind="image", source="image"),),
                          reference="label_color" if from_labels else None)
        return {endpoint: (lambda image, name=endpoint.name: {"image": self.translate(name, image)})
                for endpoint in (a_to_b, b_to_a)}

    def sample_columns(self, batch):
        """A | G_A(A) | G_B(G_A(A)) | B | G_B(B) | G_A(G_B(B))."""
        real_a, real_b = self._real_pair(batch)
        fake_b = self.G_A(real_a, training=False)
        fake_a = self.G_B(real_b, training=False)
        columns = [real_a, fake_b, self.G_B(fake_b, training=False),
                   real_b, fake_a, self.G_A(fake_a, training=False)]
        return [unit_range_to_uint8(column) for column in columns]
