"""pix2pixHD: High-Resolution Image Synthesis and Semantic Manipulation with Conditional GANs
(Wang, Liu, Zhu, Tao, Kautz & Catanzaro, CVPR 2018, arXiv:1711.11585).

pix2pix evolved for 2048x1024 label maps (docs/papers.md section 3):

* **Coarse-to-fine generator** (Sec. 3.2). The global generator G1 (c7s1-64, d128 .. d1024,
  9 residual blocks, u512 .. u64, c7s1-3) works at 1024x512. The local enhancer G2 adds a
  full-resolution front end (c7s1-32, d64) whose features are *summed* with G1's last features
  (G1 fed the input average-pooled to half size), then 3 residual blocks, u32 and c7s1-3. G1 is
  trained first (512p), then G2 alone while G1 stays frozen, then both.
* **Multi-scale discriminators** (Sec. 3.2): 2 or 3 identical 70x70-style discriminators judge
  the (label, edges, image) stack at full, half and quarter size.
* **Improved adversarial loss** (Sec. 3.2, Eq. 4): LSGAN, plus feature matching on every
  discriminator's intermediate features and the VGG-19 perceptual loss, lambda = 10 each.
* **Instance maps** (Sec. 3.3): the generator and discriminators also see the instance boundary
  map, 1 where a pixel's instance id differs from a 4-neighbour's.
* **Instance-level feature embedding** (Sec. 3.4): an encoder E maps the photo to a 3-channel
  feature map averaged within each instance, fed to G beside the labels. After training, the
  features of the training set are clustered per class (K-means, 10 clusters), and at test time
  each instance takes one of its class's cluster centres: several renderings of one layout, and
  the look of one object changed without touching the rest.

Faithful to the authors' code: reflection padding, instance norm without affine parameters,
every convolution keeps its bias (weights N(0, 0.02), biases PyTorch's default), 4x4
discriminator convolutions padded by 2, the discriminator update after the generator's on the
same fakes, Adam 2e-4 (0.5, 0.999), 100 constant + 100 decaying epochs.
One departure: the VGG features are computed on the images with the VGG's own preprocessing
(0..255 minus the ImageNet mean), where the original fed [-1, 1] images to a network trained on
normalised [0, 1] ones; the layers and weights of the loss are the original's.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tfsynth import config as config_lib
from tfsynth import losses, optimizers
from tfsynth.data import labels, transforms
from tfsynth.endpoints import Endpoint, Input
from tfsynth.layers import AvgPoolDownsample, StoredTensor, resnet
from tfsynth.layers.discriminators import build_feature_discriminator, multiscale_outputs
from tfsynth.models.base import OptimizerGroup, SynthesisModel
from tfsynth.pixels import from_unit_range, to_unit_range, unit_range_to_uint8
from tfsynth.schedules import LinearDecay

GENERATORS = ("global", "local")
#: VGG-19 layers of the perceptual loss and their weights (the code's VGGLoss).
VGG_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
VGG_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


@dataclasses.dataclass(frozen=True)
class Pix2PixHDConfig:
    """Hyper-parameters; the defaults are the paper's 512p model (the original's option names in
    brackets).

    Attributes:
      image_size: training (height, width), 512x1024 [loadSize 1024, scale_width].
      generator: "global" (G1) or "local" (G1 + the local enhancer G2) [--netG].
      base_filters: filters of G's first layer [--ngf]: 64 for global, 32 for local, whose G1
        then has 2 x 32 = 64.
      global_downsamplings, global_blocks: G1's stride-2 layers and residual blocks (4, 9).
      local_blocks: the enhancer's residual blocks (3).
      discriminator_scales: discriminators at full, half, quarter .. size [--num_D] (2; 3 at 1024p).
      discriminator_layers, discriminator_filters: each discriminator's strided layers and first
        filters (3, 64).
      instance_edges: feed the instance boundary map [not --no_instance].
      instance_features: train the encoder and feed its instance-averaged features
        [--instance_feat].
      feature_channels, encoder_filters, encoder_downsamplings: the encoder's output channels,
        first filters and stride-2 layers (3, 16, 4).
      lambda_feature, lambda_vgg: weights of feature matching and the VGG loss (10, 10); 0
        switches a term off [--no_ganFeat_loss, --no_vgg_loss].
      vgg_weights: VGG-19 weights, as CRN's.
      gan_mode: "lsgan" (default) or "vanilla" [--no_lsgan].
      learning_rate, beta_1, beta_2: Adam for G (+E) and D.
      epochs_constant, epochs_decay: constant, then linearly decaying rate [--niter, --niter_decay].
      epochs_fix_global: epochs during which only the local enhancer (and encoder) train, G1
        frozen; then a fresh Adam trains everything [--niter_fix_global].
      num_clusters: K-means clusters per class for the styles (10).
      cluster_min_area: instances smaller than this fraction of (H W / 32) pixels are left out of
        the K-means (0.5, the original's ratio).
      flip: random horizontal flips, shared by label, instance and photo.
    """

    image_size: tuple[int, int] = (512, 1024)
    generator: str = "global"
    base_filters: int = 64
    global_downsamplings: int = 4
    global_blocks: int = 9
    local_blocks: int = 3
    discriminator_scales: int = 2
    discriminator_layers: int = 3
    discriminator_filters: int = 64
    instance_edges: bool = True
    instance_features: bool = False
    feature_channels: int = 3
    encoder_filters: int = 16
    encoder_downsamplings: int = 4
    lambda_feature: float = 10.0
    lambda_vgg: float = 10.0
    vgg_weights: str = "imagenet"
    gan_mode: str = "lsgan"
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    epochs_constant: int = 100
    epochs_decay: int = 100
    epochs_fix_global: int = 0
    num_clusters: int = 10
    cluster_min_area: float = 0.5
    flip: bool = True

    def __post_init__(self):
        if self.generator not in GENERATORS:
            raise ValueError(f"generator must be one of {', '.join(GENERATORS)}, got {self.generator!r}")
        if self.gan_mode not in ("lsgan", "vanilla"):
            raise ValueError(f"gan_mode must be 'lsgan' or 'vanilla', got {self.gan_mode!r}")
        if any(size % self.size_multiple for size in self.image_size):
            raise ValueError(f"image_size {self.image_size} must be multiples of {self.size_multiple}")
        config_lib.check_positive(self, "learning_rate")
        if self.epochs_fix_global and self.generator != "local":
            raise ValueError("epochs_fix_global freezes the global generator of generator=local only")
        if min(self.base_filters, self.discriminator_scales, self.num_clusters) < 1:
            raise ValueError("base_filters, discriminator_scales and num_clusters must be >= 1")

    @property
    def size_multiple(self) -> int:
        multiple = 2**self.global_downsamplings * (2 if self.generator == "local" else 1)
        if self.instance_features:
            multiple = max(multiple, 2**self.encoder_downsamplings)
        return multiple

    @property
    def global_filters(self) -> int:
        """G1's first filters: ngf, or 2 ngf inside the local enhancer."""
        return self.base_filters * (2 if self.generator == "local" else 1)


# ---------------------------------------------------------------------------------- networks

def _global_trunk(x, config: Pix2PixHDConfig):
    """G1 without its output layer: c7s1-ngf, downsamplings, residual blocks, upsamplings."""
    filters = config.global_filters
    x = resnet.norm_relu(resnet.reflect_conv(x, filters, 7, "g_initial", torch_bias=True), "g_initial")
    for index in range(1, config.global_downsamplings + 1):
        x = resnet.down(x, filters * 2**index, f"g_down{index}", torch_bias=True)
    width = filters * 2**config.global_downsamplings
    for index in range(1, config.global_blocks + 1):
        x = resnet.residual_block(x, width, f"g_res{index}", torch_bias=True)
    for index in range(1, config.global_downsamplings + 1):
        x = resnet.up(x, width // 2**index, f"g_up{index}", torch_bias=True)
    return x


def _output(x, name: str):
    x = resnet.reflect_conv(x, 3, 7, name, torch_bias=True)
    # tanh in float32 under mixed precision: images are compared with targets in [-1, 1].
    return keras.layers.Activation("tanh", dtype="float32", name=f"{name}_tanh")(x)


def build_generator(config: Pix2PixHDConfig, input_channels: int) -> keras.Model:
    """G1, or G1 + G2: [N, H, W, labels (+ edges) (+ features)] -> image [N, H, W, 3] in [-1, 1].

    G1's layers are named ``g_*`` and G2's ``l_*``, in both models, so a local model warm-starts
    G1 from a 512p run layer by layer (``--init_from``).
    """
    inputs = keras.Input((None, None, input_channels), name="generator_input")
    if config.generator == "global":
        return keras.Model(inputs, _output(_global_trunk(inputs, config), "g_output"), name="global_generator")
    coarse = _global_trunk(AvgPoolDownsample(name="g_input_downsample")(inputs), config)
    filters = config.base_filters
    x = resnet.norm_relu(resnet.reflect_conv(inputs, filters, 7, "l_initial", torch_bias=True), "l_initial")
    x = resnet.down(x, 2 * filters, "l_down1", torch_bias=True)
    x = keras.layers.Add(name="l_fuse")([x, coarse])
    for index in range(1, config.local_blocks + 1):
        x = resnet.residual_block(x, 2 * filters, f"l_res{index}", torch_bias=True)
    x = resnet.up(x, filters, "l_up1", torch_bias=True)
    return keras.Model(inputs, _output(x, "l_output"), name="local_enhancer")


def build_encoder(config: Pix2PixHDConfig) -> keras.Model:
    """E: photo [N, H, W, 3] in [-1, 1] -> features [N, H, W, feature_channels] (before the
    instance-wise average): c7s1-16, d32 .. d256, u128 .. u16, c7s1-3, tanh."""
    images = keras.Input((None, None, 3), name="images")
    filters = config.encoder_filters
    x = resnet.norm_relu(resnet.reflect_conv(images, filters, 7, "e_initial", torch_bias=True), "e_initial")
    for index in range(1, config.encoder_downsamplings + 1):
        x = resnet.down(x, filters * 2**index, f"e_down{index}", torch_bias=True)
    for index in range(1, config.encoder_downsamplings + 1):
        x = resnet.up(x, filters * 2 ** (config.encoder_downsamplings - index), f"e_up{index}", torch_bias=True)
    x = resnet.reflect_conv(x, config.feature_channels, 7, "e_output", torch_bias=True)
    features = keras.layers.Activation("tanh", dtype="float32", name="e_output_tanh")(x)
    return keras.Model(images, features, name="encoder")


def build_discriminators(config: Pix2PixHDConfig, input_channels: int) -> list[keras.Model]:
    return [build_feature_discriminator(input_channels, config.discriminator_filters, config.discriminator_layers,
                                        name=f"D{scale}") for scale in range(config.discriminator_scales)]


# ------------------------------------------------------------------------- instance maps

def instance_edges(instance):
    """The boundary map of Sec. 3.3: 1 where a pixel's id differs from its left, right, upper or
    lower neighbour's (both pixels of a differing pair), else 0. [N, H, W] -> float [N, H, W, 1]."""
    instance = tf.cast(instance, tf.int32)
    horizontal = tf.not_equal(instance[:, :, 1:], instance[:, :, :-1])
    vertical = tf.not_equal(instance[:, 1:], instance[:, :-1])
    edges = (tf.pad(horizontal, [[0, 0], [0, 0], [1, 0]]) | tf.pad(horizontal, [[0, 0], [0, 0], [0, 1]])
             | tf.pad(vertical, [[0, 0], [1, 0], [0, 0]]) | tf.pad(vertical, [[0, 0], [0, 1], [0, 0]]))
    return tf.cast(edges, tf.float32)[..., None]


def _instance_segments(instance):
    """(segment index per pixel [N H W], number of segments, the id of each segment): one segment
    per (example, instance id)."""
    instance = tf.cast(instance, tf.int64)
    batch = tf.shape(instance, out_type=tf.int64)[0]
    example = tf.range(batch)[:, None, None] * tf.ones_like(instance)
    keys = tf.reshape(example * (1 << 32) + instance, [-1])
    unique, index = tf.unique(keys)
    return index, tf.shape(unique)[0], unique % (1 << 32), unique // (1 << 32)


def instance_average(features, instance):
    """Instance-wise average pooling (Sec. 3.4): each channel of every pixel replaced by its mean
    over the pixels of the same instance id (per example). [N, H, W, C], [N, H, W] -> [N, H, W, C]."""
    index, count, _, _ = _instance_segments(instance)
    channels = tf.shape(features)[-1]
    flat = tf.reshape(features, [-1, channels])
    means = tf.math.unsorted_segment_mean(flat, index, count)
    return tf.reshape(tf.gather(means, index), tf.shape(features))


_PRIME = 2147483647  # 2^31 - 1


def _mix(value):
    """An integer hash of non-negative int64 values below 2^31 (Lehmer steps and xor-shifts;
    every product stays below 2^63): deterministic on every machine, and well spread modulo
    small numbers, as the cluster counts are."""
    value = (value % _PRIME * 48271) % _PRIME
    value = tf.bitwise.bitwise_xor(value, tf.bitwise.right_shift(value, 15))
    value = (value * 69621) % _PRIME
    return tf.bitwise.bitwise_xor(value, tf.bitwise.right_shift(value, 13))


# ----------------------------------------------------------------------------------- model

class Pix2PixHD(SynthesisModel):
    """pix2pixHD training: G (and E) then the multi-scale D, per step, on the same fakes."""

    config_class = Pix2PixHDConfig
    recomputes = "the generator, and VGG-19 stage by stage"
    label_space = "cityscapes35"

    def __init__(self, config: Pix2PixHDConfig, source_label_space: str = "cityscapes35", **kwargs):
        super().__init__(config, source_label_space, training_size=config.image_size, **kwargs)
        self.palette = tf.constant(labels.colorize(np.arange(256), self.label_space))
        edges = 1 if config.instance_edges else 0
        features = config.feature_channels if config.instance_features else 0
        self.generator = build_generator(config, self.num_classes + edges + features)
        self.discriminators = build_discriminators(config, self.num_classes + edges + 3)
        self.networks = {"generator": self.generator}
        if config.instance_features:
            self.encoder = build_encoder(config)
            self.networks["encoder"] = self.encoder
            # Per class: the K-means centres of the encoded instance features, and how many exist.
            self.clusters = StoredTensor((self.num_classes, config.num_clusters, config.feature_channels),
                                         name="clusters")
            self.cluster_counts = StoredTensor((self.num_classes,), name="cluster_counts")
        self.networks.update({d.name: d for d in self.discriminators})
        self.vgg = None

    # -------------------------------------------------------------- what the model consumes
    @property
    def serving_state_keys(self) -> tuple[str, ...]:
        if self.config.instance_features:
            return ("generator", "encoder", "clusters", "cluster_counts")
        return ("generator",)

    @property
    def uses_instances(self) -> bool:
        return self.config.instance_edges or self.config.instance_features

    @property
    def record_fields(self) -> tuple[str, ...]:
        return ("image", "label", "instance") if self.uses_instances else ("image", "label")

    @property
    def size_multiple(self) -> int:
        return self.config.size_multiple

    def example_transform(self, training: bool):
        size = tuple(self.config.image_size)
        if training:
            return lambda example, seed: transforms.random_jitter(example, seed, size, size, flip=self.config.flip)
        return lambda example, seed: transforms.resize(example, size)

    def extra_state(self) -> dict:
        if not self.config.instance_features:
            return {}
        return {"clusters": self.clusters, "cluster_counts": self.cluster_counts}

    def build_loss_networks(self):
        if not self.config.lambda_vgg:
            return {}
        from tfsynth.perceptual import VGGFeatures

        self.vgg = VGGFeatures(depth=19, layers=VGG_LAYERS, pooling="max", weights=self.config.vgg_weights,
                               name="vgg19")
        return {"vgg19": self.vgg}

    # ---------------------------------------------------------------------------- inputs
    def semantic_input(self, label, instance=None):
        """One-hot labels (+ the boundary map of the instances, or of the labels without them)."""
        ids = tf.cast(self.label_ids(label), tf.int32)
        parts = [tf.one_hot(ids, self.num_classes)]
        if self.config.instance_edges:
            parts.append(instance_edges(label if instance is None else instance))
        return tf.concat(parts, axis=-1)

    def encode(self, image, instance, training: bool = False):
        """E's instance-averaged features of a photo (uint8)."""
        return instance_average(self.encoder(to_unit_range(image), training=training), instance)

    def generate(self, semantic, features=None, training: bool = False):
        """G on the semantic input (+ features): images [N, H, W, 3] in [-1, 1]."""
        x = semantic if features is None else tf.concat([semantic, tf.cast(features, semantic.dtype)], axis=-1)
        return self.run_network(self.generator, x, training)

    def _discriminate(self, semantic, images):
        return multiscale_outputs(self.discriminators, tf.concat([semantic, tf.cast(images, semantic.dtype)], -1))

    # ---------------------------------------------------------------------------- training
    def optimizer_groups(self, steps_per_epoch):
        cfg = self.config

        def adam(name, start_step=0):
            schedule = LinearDecay(cfg.learning_rate, steps_per_epoch, cfg.epochs_constant, cfg.epochs_decay,
                                   policy="pix2pixhd", step_offset=start_step)
            return optimizers.Adam(schedule, beta_1=cfg.beta_1, beta_2=cfg.beta_2, epsilon=1e-8, name=name)

        discriminators = OptimizerGroup("D/total", adam("discriminator_adam"), self.discriminator_variables, name="D")
        if not cfg.epochs_fix_global:
            return [OptimizerGroup("total", adam("generator_adam"), self.generator_variables, name="G"),
                    discriminators]
        # The original's --niter_fix_global: the local enhancer (and E) alone, then a fresh Adam
        # over everything.
        switch = cfg.epochs_fix_global * steps_per_epoch
        return [OptimizerGroup("total", adam("local_adam"), self.local_enhancer_variables, name="G_local",
                               stop_step=switch),
                OptimizerGroup("total", adam("generator_adam", switch), self.generator_variables, name="G",
                               start_step=switch),
                discriminators]

    def discriminator_variables(self) -> list:
        return [v for d in self.discriminators for v in d.trainable_variables]

    def _encoder_variables(self) -> list:
        return self.encoder.trainable_variables if self.config.instance_features else []

    def generator_variables(self) -> list:
        """G's and E's: what the generator's Adam trains (E is trained jointly, Sec. 3.4)."""
        return self.generator.trainable_variables + self._encoder_variables()

    def local_enhancer_variables(self) -> list:
        """G2's (``l_*`` layers) and E's: what trains while G1 is frozen."""
        return [v for layer in self.generator.layers if layer.name.startswith("l_")
                for v in layer.trainable_variables] + self._encoder_variables()

    def generator_losses(self, batch):
        """G's objective (Eq. 4): sum over scales of LSGAN(D(s, G(s))), lambda x feature matching,
        lambda x VGG; with the fakes for D's update."""
        cfg = self.config
        instance = batch.get("instance")
        semantic = self.semantic_input(batch["label"], instance)
        features = self.encode(batch["image"], instance, training=True) if cfg.instance_features else None
        fake = self.generate(semantic, features, training=True)
        real = to_unit_range(batch["image"])
        fake_outputs = self._discriminate(semantic, fake)
        result = {"gan": losses.multiscale_gan_generator_loss(fake_outputs, cfg.gan_mode)}
        if cfg.lambda_feature:
            real_outputs = self._discriminate(semantic, real)
            result["feature_matching"] = cfg.lambda_feature * losses.feature_matching(
                fake_outputs, real_outputs, cfg.discriminator_layers)
        if cfg.lambda_vgg:
            vgg_fake = self.vgg(from_unit_range(fake))
            vgg_real = self.vgg(from_unit_range(real))
            result["vgg"] = cfg.lambda_vgg * losses.weighted_feature_l1(
                [vgg_fake[n] for n in VGG_LAYERS], [vgg_real[n] for n in VGG_LAYERS], VGG_WEIGHTS)
        result["total"] = tf.add_n(list(result.values()))
        return result, (semantic, fake)

    def discriminator_losses(self, batch, semantic, fake):
        """D's objective: 0.5 (sum_s LSGAN(D_s(real), 1) + sum_s LSGAN(D_s(fake), 0))."""
        real_outputs = self._discriminate(semantic, to_unit_range(batch["image"]))
        fake_outputs = self._discriminate(semantic, tf.stop_gradient(fake))
        real, fake_term = losses.multiscale_gan_losses(real_outputs, fake_outputs, self.config.gan_mode)
        return {"D/real": real, "D/fake": fake_term, "D/total": 0.5 * (real + fake_term)}, ()

    def train_step(self, batch):
        """The original's order: one forward, G (+E) updated, then D on the same, detached fakes."""
        gradients, g_losses, (semantic, fake) = self.group_gradients("total", self.generator_losses, batch)
        self.apply_group_gradients("total", gradients)
        gradients, d_losses, _ = self.group_gradients("D/total", self.discriminator_losses, batch, semantic, fake)
        self.apply_group_gradients("D/total", gradients)
        return {**g_losses, **d_losses}

    # ---------------------------------------------------------------------- after training
    def finish_training(self, make_dataset) -> bool:
        """Sec. 3.4's feature clustering: encode every training photo, take each instance's
        feature (the value at its middle pixel, as the original) when its area exceeds
        ``cluster_min_area`` x (H W / 32), and run K-means per class (scikit-learn, k-means++,
        ``random_state=0`` as the original; fewer clusters when a class has fewer instances)."""
        if not self.config.instance_features:
            return False
        from sklearn.cluster import KMeans

        per_class: dict[int, list] = {}
        for batch in make_dataset("train"):
            instance = batch["instance"]
            features = self.encode(batch["image"], instance).numpy()
            for example, ids in zip(features, instance.numpy()):
                minimum = self.config.cluster_min_area * ids.size / 32
                for instance_id in np.unique(ids):
                    rows, cols = np.nonzero(ids == instance_id)
                    if rows.size <= minimum:
                        continue
                    middle = rows.size // 2
                    class_id = int(instance_id // 1000 if instance_id >= 1000 else instance_id)
                    per_class.setdefault(class_id, []).append(example[rows[middle], cols[middle]])
        centres = np.zeros(self.clusters.shape, np.float32)
        counts = np.zeros(self.cluster_counts.shape, np.float32)
        for class_id, samples in per_class.items():
            if class_id >= self.num_classes:
                continue
            samples = np.asarray(samples, np.float32)
            k = min(self.config.num_clusters, len(samples))
            kmeans = KMeans(n_clusters=k, random_state=0, n_init=10).fit(samples)
            centres[class_id, :k] = kmeans.cluster_centers_
            counts[class_id] = k
        self.clusters.assign(centres)
        self.cluster_counts.assign(counts)
        summary = ", ".join(f"{labels.get_label_space(self.label_space).class_names[c]}: {int(counts[c])}"
                            for c in sorted(per_class) if c < self.num_classes)
        print(f"instance styles: K-means per class ({summary})", flush=True)
        return True

    def cluster_features(self, instance, seed, clusters=None):
        """Each instance's feature drawn from its class's cluster centres: cluster ``clusters`` at
        the instance's pixels when given and >= 0, else one chosen from ``seed`` and the instance
        id (deterministic). [N, H, W] ids, [N] seeds -> [N, H, W, feature_channels]."""
        index, count, ids, examples = _instance_segments(instance)
        classes = labels.instance_class(ids)
        available = tf.maximum(tf.cast(tf.gather(self.cluster_counts.value, classes), tf.int64), 1)
        seeds = tf.gather(tf.cast(seed, tf.int64), examples)
        # A hash of (seed, instance id): the same seed renders a layout the same way everywhere.
        chosen = _mix(_mix(seeds % _PRIME) + ids % _PRIME) % available
        if clusters is not None:
            requested = tf.math.unsorted_segment_max(tf.reshape(tf.cast(clusters, tf.int64), [-1]), index, count)
            beyond = requested >= available
            check = tf.debugging.Assert(tf.logical_not(tf.reduce_any(beyond)), [
                "clusters: a style beyond those its instance's class has (0..n-1, or -1 to draw from the seed); "
                "instance ids, styles asked, styles their classes have:", tf.boolean_mask(ids, beyond),
                tf.boolean_mask(requested, beyond), tf.boolean_mask(available, beyond)], summarize=8)
            with tf.control_dependencies([check]):
                chosen = tf.where(requested >= 0, requested, chosen)
        centres = tf.gather_nd(self.clusters.value, tf.stack([classes, chosen], axis=-1))
        return tf.reshape(tf.gather(centres, index), tf.concat([tf.shape(instance), [-1]], axis=0))

    # ---------------------------------------------------------------------------- serving
    def serving_endpoints(self):
        label = Input("label", kind="label", source="label")
        instance = Input("instance", kind="instance", source="instance", optional=True)
        inputs = (label, instance) if self.uses_instances else (label,)
        if not self.config.instance_features:
            return {Endpoint("serving_default", inputs=inputs, reference="image", conditioned_on_labels=True):
                    self.render}
        styles = Endpoint("serving_default", reference="image", conditioned_on_labels=True, inputs=inputs + (
            Input("seed", kind="seed", source="index"),
            Input("clusters", kind="cluster_map", source="none", optional=True)))
        encoded = Endpoint("encode_style", reference="image", conditioned_on_labels=True,
                           inputs=(label, Input("instance", kind="instance", source="instance"),
                                   Input("image", kind="image", source="image")))
        return {styles: self.render_styles, encoded: self.render_encoded}

    def serving_metadata(self) -> dict:
        """``style_clusters``: per class id, how many styles a ``clusters`` entry can choose
        (0..n-1), so a client can cycle one instance through its class's styles."""
        if not self.config.instance_features:
            return {}
        return {"style_clusters": [int(count) for count in self.cluster_counts.value.numpy()]}

    def render(self, label, instance=None, features=None):
        """Label ids (+ instance ids) (+ instance features) -> images on the 0..255 scale."""
        return {"image": from_unit_range(self.generate(self.semantic_input(label, instance), features))}

    def render_styles(self, label, seed, instance=None, clusters=None):
        """Each instance (each label region without instance maps) styled by a cluster centre of
        its class: chosen in ``clusters``, else drawn from ``seed``."""
        regions = label if instance is None else instance
        return self.render(label, instance, self.cluster_features(regions, seed, clusters))

    def render_encoded(self, label, instance, image):
        """The styles of a real photo: its encoded features averaged per instance."""
        return self.render(label, instance, self.encode(image, instance))

    def sample_columns(self, batch):
        """label colours | the photo | the output (with the photo's own encoded features)."""
        instance = batch.get("instance")
        features = self.encode(batch["image"], instance) if self.config.instance_features else None
        fake = self.generate(self.semantic_input(batch["label"], instance), features)
        shown = tf.gather(self.palette, tf.cast(batch["label"], tf.int32))
        return [shown, tf.cast(batch["image"], tf.uint8), unit_range_to_uint8(fake)]
