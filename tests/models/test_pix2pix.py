"""Tests for tfsynth.models.pix2pix against the facts of docs/papers.md section 2 (pix2pix)."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from family_support import smoke_config
from tfsynth.data import labels
from tfsynth.models.pix2pix import (Pix2Pix, Pix2PixBatchNormalization, Pix2PixConfig, SeededDropout,
                                    build_discriminator, build_generator)

pytestmark = [pytest.mark.unit, pytest.mark.family("pix2pix")]

D_LOSS_KEYS = {"D/real", "D/fake", "D/total"}
G_LOSS_KEYS = {"gan", "l1", "total"}
LOSS_KEYS = D_LOSS_KEYS | G_LOSS_KEYS


@pytest.fixture(scope="module")
def paper_model():
    return Pix2Pix(Pix2PixConfig())


#: The smoke configuration, with overrides.
tiny = functools.partial(smoke_config, "pix2pix")


def random_batch(batch=2, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": tf.constant(rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)),
        "label": tf.constant(rng.integers(0, 34, (batch, size, size), dtype=np.uint8)),
        "target": tf.constant(rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)),
    }


def phase_inputs(model, batch, seed):
    """(x, y in [-1, 1], G(x)) as a training step's D and G phases see them."""
    x = model.generator_input(batch)
    return x, tf.cast(batch["image"], tf.float32) / 127.5 - 1.0, model.generator([x, seed], training=True)


def snapshot(network):
    return [w.numpy().copy() for w in network.weights]


def layer_names(network, kind):
    return {layer.name for layer in network.layers if isinstance(layer, kind)}


def producer(tensor):
    """The layer whose output ``tensor`` (a symbolic Keras tensor) is."""
    return tensor._keras_history.operation


# ------------------------------------------------------------------------- architecture

def test_paper_parameter_counts(paper_model):
    # docs/papers.md 2(g): unet_256 with batch norm, and the 6-channel 70x70 PatchGAN.
    assert paper_model.parameter_counts() == {"generator": 54_413_955, "discriminator": 2_768_705}
    unet_128 = build_generator(Pix2PixConfig(generator="unet_128", crop_size=128))
    assert sum(int(np.prod(w.shape)) for w in unet_128.trainable_weights) == 41_828_995


def test_patch_discriminator_gives_30x30_logits_at_256(paper_model):
    logits = paper_model.discriminator(tf.zeros([1, 256, 256, 6]), training=True)
    assert tuple(logits.shape) == (1, 30, 30, 1)
    pixel = build_discriminator(tiny(discriminator="pixel"), 6)
    assert tuple(pixel(tf.zeros([1, 32, 32, 6])).shape) == (1, 32, 32, 1)
    deeper = build_discriminator(tiny(discriminator="n_layers", discriminator_layers=2), 6)
    assert tuple(deeper(tf.zeros([1, 32, 32, 6])).shape) == (1, 6, 6, 1)


def test_unet_256_layer_table(paper_model):
    generator = paper_model.generator
    convs = {layer.name: layer for layer in generator.layers
             if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))}
    assert set(convs) == {f"e{i}" for i in range(1, 9)} | {f"d{i}" for i in range(1, 9)}
    encoder_in = [3, 64, 128, 256, 512, 512, 512, 512]
    encoder_out = [64, 128, 256, 512, 512, 512, 512, 512]
    for i, (c_in, c_out) in enumerate(zip(encoder_in, encoder_out), 1):
        layer = convs[f"e{i}"]
        assert tuple(layer.kernel.shape) == (4, 4, c_in, c_out), i
        assert layer.strides == (2, 2) and layer.bias is None
    decoder_in = [512, 1024, 1024, 1024, 1024, 512, 256, 128]
    decoder_out = [512, 512, 512, 512, 256, 128, 64, 3]
    for i, (c_in, c_out) in enumerate(zip(decoder_in, decoder_out), 1):
        layer = convs[f"d{i}"]
        assert tuple(layer.kernel.shape) == (4, 4, c_out, c_in), i  # Conv2DTranspose: (k, k, out, in)
        assert layer.strides == (2, 2)
        assert (layer.bias is not None) == (i == 8), i  # only the outermost keeps its bias
    norms = layer_names(generator, keras.layers.BatchNormalization)
    # e1 and the innermost e8 have no norm; every decoder block but the last has one.
    assert norms == {f"e{i}_norm" for i in range(2, 8)} | {f"d{i}_norm" for i in range(1, 8)}
    for name in norms:
        layer = generator.get_layer(name)
        assert layer.momentum == pytest.approx(0.9) and layer.epsilon == pytest.approx(1e-5)
    slopes = [layer.negative_slope for layer in generator.layers if isinstance(layer, keras.layers.LeakyReLU)]
    assert slopes == pytest.approx([0.2] * 7)
    assert len(layer_names(generator, keras.layers.ReLU)) == 8
    assert generator.get_layer("output_tanh").activation is keras.activations.tanh


def test_gan_init_and_instance_norm_keeps_bias():
    generator = build_generator(Pix2PixConfig(generator="unet_128", crop_size=128))
    kernel = generator.get_layer("d2").kernel.numpy()
    assert abs(kernel.mean()) < 1e-3 and kernel.std() == pytest.approx(0.02, rel=0.02)
    gamma = generator.get_layer("d2_norm").gamma.numpy()
    assert gamma.mean() == pytest.approx(1.0, abs=0.01) and gamma.std() == pytest.approx(0.02, rel=0.2)
    instance = build_generator(tiny(norm="instance"))
    assert layer_names(instance, keras.layers.BatchNormalization) == set()
    assert all(instance.get_layer(name).bias is not None for name in ("e1", "e3", "d2"))


@pytest.mark.parametrize("generator, placement, blocks", [
    ("unet_256", "paper", {1, 2, 3}),
    ("unet_256", "pytorch", {2, 3, 4}),
    ("unet_128", "paper", {1, 2, 3}),
    ("unet_128", "pytorch", {2, 3}),
])
def test_dropout_placement(generator, placement, blocks):
    size = int(generator.split("_")[1])
    network = build_generator(Pix2PixConfig(generator=generator, crop_size=size, base_filters=2,
                                            dropout_placement=placement))
    assert layer_names(network, SeededDropout) == {f"d{b}_dropout" for b in blocks}
    for block in blocks:  # after the block's norm, before the skip concatenation
        layer = network.get_layer(f"d{block}_dropout")
        assert layer.rate == 0.5
        assert producer(layer.input[0]).name == f"d{block}_norm"
        assert producer(network.get_layer(f"d{block}_skip").input[1]) is layer
    assert layer_names(build_generator(tiny(dropout=0.0)), SeededDropout) == set()


def test_skips_carry_the_leaky_relu_activated_encoder_output():
    config = tiny()
    network = build_generator(config)
    n = config.num_downs
    for block in range(1, n):
        skip, decoded = network.get_layer(f"d{block}_skip").input  # order [encoder, decoder]
        activation = producer(skip)
        assert isinstance(activation, keras.layers.LeakyReLU), block
        encoder = f"e{n - block}" + ("" if n - block == 1 else "_norm")
        assert producer(activation.input).name == encoder, block
        assert producer(decoded).name.startswith(f"d{block}_")
    # Numerically: the tensor concatenated at the outermost skip is lrelu_0.2(e1(x)).
    probe = keras.Model(network.inputs, [network.get_layer("e1").output,
                                         network.get_layer(f"d{n - 1}_skip").input[0]])
    x = tf.random.normal([1, 32, 32, 3])
    e1, skip = probe([x, tf.zeros([2], tf.int64)])
    np.testing.assert_allclose(skip.numpy(), np.where(e1 > 0, e1, 0.2 * e1.numpy()), rtol=1e-6, atol=1e-7)


def test_size_multiple_and_non_multiple_inputs():
    assert Pix2PixConfig().size_multiple == 256 and Pix2PixConfig().num_downs == 8
    assert tiny().size_multiple == 32
    network = build_generator(tiny())
    assert tuple(network([tf.zeros([1, 64, 96, 3]), tf.zeros([2], tf.int64)]).shape) == (1, 64, 96, 3)
    with pytest.raises(tf.errors.InvalidArgumentError):  # 48 -> 24 -> ... -> 3 -> 2: the skip sizes differ
        network([tf.zeros([1, 48, 48, 3]), tf.zeros([2], tf.int64)])
    with pytest.raises(ValueError, match="multiple of 32"):
        tiny(crop_size=48, load_size=48)


@pytest.mark.parametrize("overrides, message", [
    ({"generator": "unet_100"}, "unet_N"), ({"generator": "resnet_9blocks"}, "unet_N"),
    ({"discriminator": "big"}, "discriminator"), ({"label_input": "rgb"}, "label_input"),
    ({"test_mode": "train"}, "test_mode"), ({"gan_mode": "wgan"}, "gan_mode"),
    ({"load_size": 30}, "load_size"), ({"dropout": 1.0}, "dropout"),
])
def test_config_rejects_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny(**overrides)


# ------------------------------------------------------------------------------ dropout

def test_seeded_dropout_is_a_function_of_the_seed():
    layer = SeededDropout(0.5, salt=1)
    x = tf.ones([2, 16, 16, 8])
    a = layer([x, tf.constant([3, 4], tf.int64)], training=True).numpy()
    b = layer([x, tf.constant([3, 4], tf.int64)], training=True).numpy()
    c = layer([x, tf.constant([3, 5], tf.int64)], training=True).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert set(np.unique(a)) == {0.0, 2.0} and 0.45 < (a == 0).mean() < 0.55  # inverted dropout
    np.testing.assert_array_equal(layer([x, tf.constant([3, 4], tf.int64)], training=False), x)


def test_generator_dropout_masks_repeat_for_one_seed_and_are_off_at_test_time():
    model = Pix2Pix(tiny())
    x = model.generator_input(random_batch())
    seed = tf.constant([1, 7], tf.int64)
    first = model.generator([x, seed], training=True).numpy()
    np.testing.assert_array_equal(model.generator([x, seed], training=True).numpy(), first)
    other = model.generator([x, tf.constant([1, 8], tf.int64)], training=True).numpy()
    assert np.abs(other - first).max() > 1e-4
    test_a = model.generator([x, seed], training=False).numpy()
    test_b = model.generator([x, tf.constant([9, 9], tf.int64)], training=False).numpy()
    np.testing.assert_array_equal(test_a, test_b)


def test_train_step_under_xla_runs():
    model = Pix2Pix(tiny())
    model.prepare_training(steps_per_epoch=5)
    model.enable_xla()
    losses = tf.function(model.train_step)(random_batch())
    assert set(losses) == LOSS_KEYS and all(np.isfinite(float(v)) for v in losses.values())


# ----------------------------------------------------------------------------- training

def test_train_step_finite_losses_and_both_networks_move():
    model = Pix2Pix(tiny())
    model.prepare_training(steps_per_epoch=5)
    g_before, d_before = snapshot(model.generator), snapshot(model.discriminator)
    step = tf.function(model.train_step)
    for i in range(2):
        losses = step(random_batch(seed=i))
    assert set(losses) == LOSS_KEYS
    values = {k: float(v) for k, v in losses.items()}
    assert all(np.isfinite(v) for v in values.values()), values
    assert values["D/total"] == pytest.approx(0.5 * (values["D/real"] + values["D/fake"]), rel=1e-5)
    assert values["total"] == pytest.approx(values["gan"] + 100 * values["l1"], rel=1e-5)
    for before, network in ((g_before, model.generator), (d_before, model.discriminator)):
        kernels = [i for i, w in enumerate(network.weights) if w.path.endswith("kernel")]
        moved = [i for i in kernels if not np.array_equal(before[i], network.weights[i].numpy())]
        assert moved == kernels, network.name
    assert sorted(model.optimizers) == ["D", "G"] and sorted(model.learning_rates()) == ["D", "G"]
    assert {group.name: group.loss for group in model._groups} == {"D": "D/total", "G": "total"}
    assert int(model.optimizers["G"].iterations) == 2
    assert int(model.optimizers["D"].iterations) == 2


def test_discriminator_is_updated_first_and_generator_trains_against_it():
    model = Pix2Pix(tiny())
    model.prepare_training(steps_per_epoch=5)
    batch = random_batch()
    seed = model.replica_seed()  # this step's dropout seed
    g_before, d_before = snapshot(model.generator), snapshot(model.discriminator)
    losses = {k: float(v) for k, v in model.train_step(batch).items()}
    d_after = snapshot(model.discriminator)

    # D's phase used the step's starting networks.
    model.generator.set_weights(g_before)
    model.discriminator.set_weights(d_before)
    inputs = phase_inputs(model, batch, seed)
    d_losses, _ = model.discriminator_losses(*inputs)
    assert float(d_losses["D/total"]) == pytest.approx(losses["D/total"], rel=1e-5)
    old_d_gan = float(model.generator_losses(*inputs)["gan"])
    # G's phase: the starting G's output (same dropout masks) against the *updated* D.
    model.discriminator.set_weights(d_after)
    g_losses = model.generator_losses(*inputs)
    assert float(g_losses["gan"]) == pytest.approx(losses["gan"], rel=1e-5)
    assert float(g_losses["l1"]) == pytest.approx(losses["l1"], rel=1e-5)
    assert abs(old_d_gan - losses["gan"]) > 1e-4


def test_generator_running_statistics_move_once_per_step():
    model = Pix2Pix(tiny())
    model.prepare_training(steps_per_epoch=5)
    batch = random_batch()
    probe = keras.Model(model.generator.inputs, model.generator.get_layer("e2").output)
    batch_mean = tf.reduce_mean(probe([model.generator_input(batch), tf.zeros([2], tf.int64)]),
                                axis=[0, 1, 2]).numpy()
    model.train_step(batch)
    moving_mean = model.generator.get_layer("e2_norm").moving_mean.numpy()
    # PyTorch momentum 0.1 applied once (twice would give 0.19 * batch_mean).
    np.testing.assert_allclose(moving_mean, 0.1 * batch_mean, rtol=1e-4, atol=1e-6)


def test_linear_decay_multiplier_at_epochs_1_100_101_200():
    model = Pix2Pix(tiny())
    model.prepare_training(steps_per_epoch=10)
    expected = {1: 1.0, 100: 1.0, 101: 1 - 1 / 101, 200: 1 / 101}
    for optimizer in model.optimizers.values():
        for epoch, multiplier in expected.items():
            for step in ((epoch - 1) * 10, epoch * 10 - 1):  # first and last step of the epoch
                optimizer.iterations.assign(step)
                assert float(optimizer.learning_rate) == pytest.approx(2e-4 * multiplier, rel=1e-5)
        assert optimizer.beta_1 == 0.5 and optimizer.beta_2 == 0.999


def test_paired_jitter_keeps_input_and_output_aligned():
    """Blocks of distinct palette colours: the photo, its label ids and the input photo must
    get the same resize (286/256-like), crop and flip, and the crop and flip must vary."""
    space = labels.cityscapes35()
    _, first = np.unique(space.palette(), axis=0, return_index=True)
    grid = np.random.default_rng(0).permutation(np.sort(first))[:16].reshape(4, 4)
    ids = np.repeat(np.repeat(grid, 8, 0), 8, 1).astype(np.uint8)  # 32x32, 8x8 blocks
    image = space.palette()[ids]
    example = {"image": tf.constant(image), "label": tf.constant(ids), "target": tf.constant(image),
               "key": tf.constant("blocks")}
    model = Pix2Pix(tiny())  # load_size 36, crop_size 32
    jitter = model.example_transform(training=True)
    loaded = tf.image.resize(ids[..., None], (36, 36), method="nearest")[..., 0].numpy()
    seen = set()
    for seed in range(8):
        out = {k: v.numpy() for k, v in jitter(example, tf.constant([seed, 3], tf.int64)).items()}
        assert out["image"].shape == (32, 32, 3) and out["label"].shape == (32, 32)
        np.testing.assert_array_equal(out["target"], out["image"])
        interior = ndimage.maximum_filter(out["label"], 5) == ndimage.minimum_filter(out["label"], 5)
        assert interior.mean() > 0.2
        np.testing.assert_array_equal(labels.ids_from_colors(out["image"], space)[interior],
                                      out["label"][interior])
        matches = {(dy, dx, flip) for dy in range(5) for dx in range(5) for flip in (False, True)
                   if np.array_equal(out["label"], (loaded[:, ::-1] if flip else loaded)[dy:dy + 32, dx:dx + 32])}
        assert matches, seed  # the label is a crop (maybe mirrored) of the resized label
        seen |= matches
    assert {flip for _, _, flip in seen} == {False, True}
    assert len({(dy, dx) for dy, dx, _ in seen}) > 2
    # Evaluation: resized to crop_size, no randomness.
    big = np.repeat(np.repeat(grid, 12, 0), 12, 1).astype(np.uint8)  # 48x48
    evaluation = model.example_transform(training=False)(
        {"image": tf.constant(space.palette()[big]), "label": tf.constant(big)}, tf.constant([0, 0], tf.int64))
    assert (evaluation["label"].numpy() == ids).mean() > 0.9
    assert evaluation["image"].shape == (32, 32, 3) and evaluation["label"].shape == (32, 32)


# ----------------------------------------------------------------------------- inference

def test_generate_shape_scale_and_colour_input():
    model = Pix2Pix(tiny())
    batch = random_batch()
    images = model.generate(batch).numpy()
    assert images.shape == (2, 32, 32, 3) and images.min() >= 0 and images.max() <= 255
    expected = (model.generator([model.generator_input(batch), tf.zeros([2], tf.int64)],
                                training=False).numpy() + 1) * 127.5  # [-1, 1] -> 0..255
    np.testing.assert_allclose(images, expected, atol=1e-3)
    palette = labels.cityscapes35().palette()
    x = model.generator_input(batch).numpy()
    np.testing.assert_allclose(x, palette[batch["label"].numpy()] / 127.5 - 1, atol=1e-6)
    columns = model.sample_columns(batch)
    assert [c.dtype for c in columns] == [tf.uint8] * 3
    np.testing.assert_array_equal(columns[0], palette[batch["label"].numpy()])
    np.testing.assert_array_equal(columns[2], batch["image"])
    np.testing.assert_array_equal(columns[1], np.clip(np.round(images), 0, 255).astype(np.uint8))
    assert model.record_fields == ("image", "label")
    assert model.serving_state_keys == ("generator",) and list(model.serving_state()) == ["generator"]
    # The one endpoint: label ids -> photo, compared with the record's photo, segmentable.
    (endpoint,) = model.serving_endpoints()
    assert endpoint.name == "serving_default" and endpoint.outputs == ("image",)
    assert [(i.name, i.kind, i.source) for i in endpoint.inputs] == [("label", "label", "label")]
    assert endpoint.reference == "image" and endpoint.conditioned_on_labels
    served = model.endpoint("serving_default")[1](label=batch["label"])
    assert set(served) == {"image"}
    np.testing.assert_allclose(served["image"].numpy(), images, atol=1e-4)
    with pytest.raises(KeyError, match="serving_default"):
        model.endpoint("translate")


def test_onehot_and_image_inputs():
    onehot = Pix2Pix(tiny(label_input="onehot"))
    assert onehot.generator.input[0].shape[-1] == 35 and onehot.discriminator.input.shape[-1] == 38
    assert onehot.record_fields == ("image", "label")
    assert onehot.endpoint()[0] == Pix2Pix.LABEL_TO_PHOTO
    batch = random_batch()
    one_hot_served = onehot.endpoint()[1](label=batch["label"])["image"]
    np.testing.assert_allclose(one_hot_served, onehot.generate(batch), atol=1e-4)
    photo = Pix2Pix(tiny(label_input="image"))
    assert photo.record_fields == ("image", "target")
    # Photo -> photo: one endpoint, "translate", reading the record's target and reproducing its image.
    (endpoint,) = photo.serving_endpoints()
    assert endpoint.name == "translate" and photo.endpoint()[0] is endpoint
    assert [(i.name, i.kind, i.source) for i in endpoint.inputs] == [("image", "image", "target")]
    assert endpoint.reference == "image" and not endpoint.conditioned_on_labels
    np.testing.assert_allclose(photo.generator_input(batch), batch["target"].numpy() / 127.5 - 1, atol=1e-6)
    translated = photo.endpoint("translate")[1](**photo.record_inputs(endpoint, batch))["image"]
    np.testing.assert_allclose(translated, photo.generate(batch), atol=1e-4)
    np.testing.assert_allclose(translated, photo.generate({"target": batch["target"]}), atol=1e-4)
    assert np.abs(translated.numpy() - photo.generate({"target": batch["image"]}).numpy()).max() > 1e-3
    np.testing.assert_array_equal(photo.sample_columns(batch)[0], batch["target"])
    photo.prepare_training(steps_per_epoch=1)
    losses = photo.train_step({"image": batch["image"], "target": batch["target"]})
    assert all(np.isfinite(float(v)) for v in losses.values())


def test_test_modes():
    batch = random_batch()
    paper = Pix2Pix(tiny(dropout=0.0))
    x = paper.generator_input(batch)
    # "paper": each image normalised by its own statistics, as PyTorch tests (BN in training
    # mode, batch size 1), without dropout, and independent of the rest of the batch.
    alone = [paper.generator([x[i:i + 1], tf.zeros([2], tf.int64)], training=True) for i in range(2)]
    together = paper.generate(batch).numpy()
    np.testing.assert_allclose(together, (np.concatenate(alone, 0) + 1) * 127.5, atol=2e-3)
    np.testing.assert_allclose(paper.generate({"label": batch["label"][:1]}), together[:1], atol=2e-3)
    # "eval": the running averages.
    evaluation = Pix2Pix(tiny(dropout=0.0, test_mode="eval"))
    evaluation.generator.set_weights(paper.generator.get_weights())
    running = evaluation.generator([x, tf.zeros([2], tf.int64)], training=False)
    np.testing.assert_allclose(evaluation.generate(batch), (running + 1) * 127.5, atol=1e-3)
    assert np.abs(evaluation.generate(batch) - together).max() > 1
    assert all(layer.test_statistics == "moving" for layer in evaluation.generator.layers
               if isinstance(layer, Pix2PixBatchNormalization))


class _Half(keras.Model):
    """G([x, seed]) = 0.5 x."""

    def call(self, inputs, training=False):
        return 0.5 * inputs[0]


class _OutputMean(keras.Model):
    """D(x, y): one logit per pixel, the mean of y's channels."""

    def call(self, pair, training=False):
        return tf.reduce_mean(pair[..., 3:], axis=-1, keepdims=True)


def test_phase_losses_on_a_hand_computed_example():
    model = Pix2Pix(tiny(label_input="image"))
    model.generator, model.discriminator = _Half(), _OutputMean()
    batch = {"target": tf.fill([2, 4, 4, 3], tf.constant(255, tf.uint8)),
             "image": tf.zeros([2, 4, 4, 3], tf.uint8)}
    seed = tf.constant([1, 2], tf.int64)
    # x = 255 / 127.5 - 1 = 1, so G(x) = 0.5; y = 0 / 127.5 - 1 = -1. Logits: real -1, fake 0.5.
    # D: BCE(-1, 1) = log(1 + e), BCE(0.5, 0) = log(1 + e^0.5), D/total = half their sum.
    inputs = phase_inputs(model, batch, seed)
    d_losses, extras = model.discriminator_losses(*inputs)
    assert set(d_losses) == D_LOSS_KEYS and extras == {}
    d_real, d_fake = np.log1p(np.e), np.log1p(np.exp(0.5))
    assert float(d_losses["D/real"]) == pytest.approx(d_real, rel=1e-6)  # 1.313262
    assert float(d_losses["D/fake"]) == pytest.approx(d_fake, rel=1e-6)  # 0.974077
    assert float(d_losses["D/total"]) == pytest.approx(0.5 * (d_real + d_fake), rel=1e-6)  # 1.143670
    # G: non-saturating BCE(0.5, 1) = log(1 + e^-0.5); L1 |0.5 - (-1)| = 1.5; total gan + 100 L1.
    g_losses = model.generator_losses(*inputs)
    assert set(g_losses) == G_LOSS_KEYS
    assert float(g_losses["gan"]) == pytest.approx(np.log1p(np.exp(-0.5)), rel=1e-6)  # 0.474077
    assert float(g_losses["l1"]) == pytest.approx(1.5, rel=1e-6)
    assert float(g_losses["total"]) == pytest.approx(np.log1p(np.exp(-0.5)) + 150.0, rel=1e-6)


def test_phase_losses_of_the_real_networks_have_every_key():
    model = Pix2Pix(tiny())
    batch, seed = random_batch(), tf.constant([0, 0], tf.int64)
    inputs = phase_inputs(model, batch, seed)
    d_losses, _ = model.discriminator_losses(*inputs)
    g_losses = model.generator_losses(*inputs)
    assert set(d_losses) == D_LOSS_KEYS and set(g_losses) == G_LOSS_KEYS
    assert all(np.isfinite(float(v)) for v in {**d_losses, **g_losses}.values())
