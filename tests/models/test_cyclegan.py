"""Tests for tfsynth.models.cyclegan against the facts of docs/papers.md section 6 (CycleGAN)."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from family_support import smoke_config
from tfsynth import config as config_lib
from tfsynth import pixels, registry
from tfsynth.data import labels
from tfsynth.models import cyclegan
from tfsynth.models.cyclegan import CycleGAN, CycleGANConfig, ImagePool, pool_update
from tfsynth.schedules import LinearDecay

pytestmark = [pytest.mark.unit, pytest.mark.family("cyclegan")]

G_LOSS_KEYS = {"gan_a", "gan_b", "cycle_a", "cycle_b", "idt_a", "idt_b", "total"}
D_LOSS_KEYS = {"D/a", "D/b", "D/total"}
LOSS_KEYS = G_LOSS_KEYS | D_LOSS_KEYS


#: The smoke configuration reading two splits (tests of label-derived domains say so), with overrides.
_tiny_config = functools.partial(smoke_config, "cyclegan", domains_from="splits")


def _batch(batch=2, height=32, width=64, seed=0):
    rng = np.random.default_rng(seed)

    def domain():
        return {"image": tf.constant(rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)),
                "label": tf.constant(rng.integers(0, 34, (batch, height, width), dtype=np.uint8)),
                "key": tf.constant(["k"] * batch)}

    return {"A": domain(), "B": domain()}


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(1)
    return CycleGAN(_tiny_config())


# ------------------------------------------------------------------------- architecture

def test_parameter_counts_match_reference():
    assert cyclegan.build_generator(CycleGANConfig()).count_params() == 11_378_179
    assert cyclegan.build_generator(CycleGANConfig(generator="resnet_6blocks")).count_params() == 7_837_699
    assert cyclegan.build_discriminator(CycleGANConfig()).count_params() == 2_764_737


def test_model_counts_four_networks_trainable_parameters(tiny):
    counts = tiny.parameter_counts()
    assert list(counts) == ["G_A", "G_B", "D_A", "D_B"]
    assert counts["G_A"] == counts["G_B"] == tiny.G_A.count_params()
    assert counts["D_A"] == counts["D_B"] == tiny.D_A.count_params()


def test_discriminator_is_70x70_patchgan_with_30x30_logits_at_256():
    discriminator = cyclegan.build_discriminator(CycleGANConfig())
    logits = discriminator(tf.zeros([1, 256, 256, 3]))
    assert tuple(logits.shape) == (1, 30, 30, 1) and logits.dtype == tf.float32
    norms = [layer for layer in discriminator.layers if isinstance(layer, keras.layers.GroupNormalization)]
    assert len(norms) == 3 and all(not layer.center and not layer.scale for layer in norms)


def test_generator_layer_table_of_the_paper():
    generator = cyclegan.build_generator(CycleGANConfig())
    kernels = {layer.name: tuple(layer.kernel.shape) for layer in generator.layers
               if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))}
    # c7s1-64, d128, d256, R256 x 9, u128, u64, c7s1-3 (Keras transposed kernels are [k, k, out, in]).
    expected = {"initial": (7, 7, 3, 64), "down1": (3, 3, 64, 128), "down2": (3, 3, 128, 256),
                "up1": (3, 3, 128, 256), "up2": (3, 3, 64, 128), "output": (7, 7, 64, 3)}
    for block in range(1, 10):
        expected[f"res{block}_conv1"] = expected[f"res{block}_conv2"] = (3, 3, 256, 256)
    assert kernels == expected
    layers = {layer.name: layer for layer in generator.layers}
    assert layers["initial_pad"].padding == 3 and layers["res1_conv1_pad"].padding == 1
    assert layers["down1_pad"].padding == ((1, 1), (1, 1))  # PyTorch's symmetric padding 1
    assert layers["down1"].strides == (2, 2) and layers["down1"].padding == "valid"
    assert all(layers[name].use_bias for name in kernels)  # instance norm: convs keep their bias
    norms = [layer for layer in generator.layers if isinstance(layer, keras.layers.GroupNormalization)]
    assert len(norms) == 1 + 2 + 2 * 9 + 2
    for layer in norms:  # instance norm: one group per channel, PyTorch's epsilon, no affine
        assert layer.groups in (-1, layer.input.shape[-1]) and layer.epsilon == 1e-5
        assert not layer.scale and not layer.center
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in generator.layers)
    assert generator.layers[-1].activation is keras.activations.tanh


def test_weights_are_initialised_normal_0_02_with_zero_biases():
    generator = cyclegan.build_generator(CycleGANConfig(generator="resnet_6blocks"))
    kernel = {layer.name: layer for layer in generator.layers}["res1_conv1"].kernel.numpy()
    assert abs(kernel.mean()) < 1e-3 and kernel.std() == pytest.approx(0.02, rel=0.02)
    biases = [layer.bias.numpy() for layer in generator.layers if getattr(layer, "bias", None) is not None]
    assert biases and all(not bias.any() for bias in biases)


def test_initial_weights_are_distinct_per_layer_and_network_and_reproducible_per_seed():
    keras.utils.set_random_seed(3)
    model = CycleGAN(_tiny_config(pool_size=0))
    kernel = lambda network, name: model.networks[network].get_layer(name).kernel.numpy()  # noqa: E731
    assert not np.array_equal(kernel("G_A", "res1_conv1"), kernel("G_B", "res1_conv1"))
    assert not np.array_equal(kernel("G_A", "res1_conv1"), kernel("G_A", "res2_conv1"))
    assert not np.array_equal(kernel("D_A", "conv2"), kernel("D_B", "conv2"))
    keras.utils.set_random_seed(3)
    again = CycleGAN(_tiny_config(pool_size=0))
    for name, network in model.networks.items():
        for old, new in zip(network.weights, again.networks[name].weights):
            np.testing.assert_array_equal(old.numpy(), new.numpy(), err_msg=f"{name} {old.path}")


def test_transposed_convolution_matches_pytorch_output_grid():
    """ConvTranspose k3 s2 p1 output_padding 1: out[2i - 1 + k] += x[i] w[k], rows 0 .. 2H-1."""
    generator = cyclegan.build_generator(_tiny_config(base_filters=2))
    up, crop = generator.get_layer("up2"), generator.get_layer("up2_crop")
    assert up.padding == "valid" and up.strides == (2, 2)
    rng = np.random.default_rng(0)
    up.kernel.assign(rng.normal(size=tuple(up.kernel.shape)).astype(np.float32))
    w = np.transpose(up.kernel.numpy(), (0, 1, 3, 2))  # Keras [k, k, out, in] -> [k, k, in, out]
    height, width, channels_out = 5, 6, w.shape[3]
    x = rng.normal(size=(1, height, width, w.shape[2])).astype(np.float32)
    expected = np.zeros((1, 2 * height, 2 * width, channels_out), np.float32)
    for i in range(height):
        for j in range(width):
            for a in range(3):
                for b in range(3):
                    row, col = 2 * i - 1 + a, 2 * j - 1 + b
                    if 0 <= row < 2 * height and 0 <= col < 2 * width:
                        expected[0, row, col] += x[0, i, j] @ w[a, b]
    np.testing.assert_allclose(crop(up(x)).numpy(), expected, atol=1e-5)


def test_generator_keeps_size_and_range(tiny):
    images = tf.random.uniform([2, 32, 64, 3], -1, 1, seed=1)
    out = tiny.G_A(images)
    assert tuple(out.shape) == (2, 32, 64, 3) and out.dtype == tf.float32
    assert np.all(np.abs(out.numpy()) <= 1)
    assert tuple(tiny.G_B(tf.zeros([1, 48, 40, 3])).shape) == (1, 48, 40, 3)  # any multiple of 4


# ------------------------------------------------------------------------- config

def test_config_defaults_are_the_papers():
    config = CycleGANConfig()
    assert (config.generator, config.base_filters, config.discriminator_filters) == ("resnet_9blocks", 64, 64)
    assert (config.load_size, config.crop_size, config.flip) == ((286, 286), (256, 256), True)
    assert (config.lambda_a, config.lambda_b, config.lambda_identity, config.pool_size) == (10, 10, 0.5, 50)
    assert (config.gan_mode, config.learning_rate, config.beta_1) == ("lsgan", 2e-4, 0.5)
    assert (config.epochs_constant, config.epochs_decay) == (100, 100)


def test_config_from_hparams_round_trips():
    overrides = config_lib.parse_hparams("generator=resnet_6blocks,load_size=143,crop_size=128,"
                                         "domains_from=labels,lambda_identity=0")
    config = config_lib.build_config(CycleGANConfig, overrides)
    assert config.load_size == (143, 143) and config.crop_size == (128, 128)
    assert config.residual_blocks == 6 and config.domains_from == "labels"
    assert CycleGANConfig(generator="resnet_2blocks").residual_blocks == 2  # other depths for quick runs
    assert config_lib.build_config(CycleGANConfig, base=config_lib.to_dict(config)) == config


@pytest.mark.parametrize("hparams, message", [
    ("generator=unet_256", "generator"),
    ("generator=resnet_0blocks", "generator"),
    ("domains_from=folders", "domains_from"),
    ("crop_size=300", "exceeds load_size"),
    ("load_size=130,crop_size=126", "multiples of 4"),
    ("gan_mode=wgangp", "gan_mode"),
])
def test_config_rejects_bad_values(hparams, message):
    with pytest.raises(config_lib.HParamsError, match=message):
        config_lib.build_config(CycleGANConfig, config_lib.parse_hparams(hparams))


def test_registry_names_the_family():
    assert registry.get("cyclegan").load() is CycleGAN


# ------------------------------------------------------------------------- data

def test_input_splits_and_labels_per_domain_source():
    splits = CycleGAN(_tiny_config(pool_size=0))
    assert splits.input_splits("train") == {"A": "trainA", "B": "trainB"}
    assert splits.input_splits("test") == {"A": "testA", "B": "testB"}
    assert splits.record_fields == ("image",)
    from_labels = CycleGAN(_tiny_config(domains_from="labels", pool_size=0))
    assert from_labels.input_splits("train") == {"A": "train", "B": "train"}
    assert from_labels.record_fields == ("image", "label")


def test_labels_domain_is_the_colour_coded_label_image():
    model = CycleGAN(_tiny_config(domains_from="labels", pool_size=0))
    batch = _batch()
    domain_a, domain_b = model.domain_images(batch)
    colours = labels.colorize(batch["A"]["label"].numpy(), "cityscapes35")
    np.testing.assert_array_equal(domain_a.numpy(), colours)
    np.testing.assert_array_equal(domain_b.numpy(), batch["B"]["image"].numpy())
    image_model = CycleGAN(_tiny_config(pool_size=0))
    np.testing.assert_array_equal(image_model.domain_images(batch)[0].numpy(), batch["A"]["image"].numpy())


def test_example_transform_jitters_to_crop_and_resizes_samples(tiny):
    example = {"image": tf.zeros([50, 90, 3], tf.uint8), "label": tf.zeros([50, 90], tf.uint8)}
    jittered = tiny.example_transform(training=True)(example, tf.constant([1, 2], tf.int64))
    assert tuple(jittered["image"].shape) == (32, 64, 3) and tuple(jittered["label"].shape) == (32, 64)
    resized = tiny.example_transform(training=False)(example, tf.constant([1, 2], tf.int64))
    assert tuple(resized["image"].shape) == (32, 64, 3)


# ------------------------------------------------------------------------- image pool

def test_pool_update_semantics_on_explicit_draws():
    images = tf.reshape(tf.range(4, dtype=tf.float32), [4, 1, 1, 1]) + 1.0  # images 1, 2, 3, 4
    stored = tf.zeros([2, 1, 1, 1])
    swap = tf.constant([True, True, True, False])
    slots = tf.constant([1, 1, 0, 1])
    returned, stored, count = pool_update(stored, tf.constant(0), images, swap, slots)
    # 1 and 2 fill the pool (returned as they are, draws ignored); 3 swaps with slot 0 and
    # returns image 1; 4 does not swap and returns itself.
    assert returned.numpy().ravel().tolist() == [1, 2, 1, 4]
    assert stored.numpy().ravel().tolist() == [3, 2] and int(count) == 2


def _id_images(ids):
    return tf.constant(np.asarray(ids, np.float32).reshape(-1, 1, 1, 1))


def _seed(run, draw):
    return tf.constant([run, draw], tf.int64)


def test_pool_fills_first_then_swaps_half_of_the_time():
    pool = ImagePool(5, (1, 1, 1))
    query = tf.function(pool.query)
    first = query(_id_images([1, 2, 3]), _seed(7, 0))  # filling: returned unchanged
    np.testing.assert_array_equal(first.numpy().ravel(), [1, 2, 3])
    second = query(_id_images([4, 5]), _seed(7, 1))
    np.testing.assert_array_equal(second.numpy().ravel(), [4, 5])
    assert int(pool.count.numpy()) == 5
    assert sorted(pool.images.numpy().ravel().tolist()) == [1, 2, 3, 4, 5]

    stored = pool.images.numpy().ravel().tolist()
    swaps, draws = 0, 400
    for new in range(6, 6 + draws):
        (returned,) = query(_id_images([new]), _seed(7, new)).numpy().ravel().tolist()
        after = pool.images.numpy().ravel().tolist()
        if returned == new:  # kept the new image, pool unchanged
            assert after == stored
        else:  # returned a stored image and put the new one in its slot
            swaps += 1
            slot = stored.index(returned)
            assert after == stored[:slot] + [new] + stored[slot + 1:]
        stored = after
    assert int(pool.count.numpy()) == 5
    assert 0.42 < swaps / draws < 0.58  # probability 0.5; 400 draws: sd 0.025
    assert all(value >= 6 for value in stored)  # every slot was replaced at some point


def test_pool_is_reproducible_for_a_seed_and_differs_between_seeds():
    def run(seed):
        pool = ImagePool(3, (1, 1, 1))
        return [pool.query(_id_images([i, i + 100]), _seed(seed, i)).numpy().ravel().tolist() for i in range(20)]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_pool_batch_larger_than_free_space_fills_then_draws():
    pool = ImagePool(3, (1, 1, 1))
    returned = pool.query(_id_images([1, 2, 3, 4, 5]), _seed(0, 0)).numpy().ravel().tolist()
    assert returned[:3] == [1, 2, 3]
    for new, value in zip((4, 5), returned[3:]):
        assert value == new or value in (1, 2, 3, 4)  # a stored image, possibly this batch's


def test_pool_size_zero_returns_the_images():
    images = tf.ones([2, 4, 4, 3])
    assert ImagePool(0, (4, 4, 3)).query(images, _seed(0, 0)) is images


def test_pool_state_survives_a_checkpoint_round_trip(tmp_path):
    model = CycleGAN(_tiny_config())
    fakes = tf.random.uniform([2, 32, 64, 3], -1, 1, seed=3)
    for draw in range(3):
        model.pool_a.query(fakes, _seed(5, draw))
        model.pool_b.query(-fakes, _seed(6, draw))
    path = tf.train.Checkpoint(**model.extra_state()).save(str(tmp_path / "pools"))

    fresh = CycleGAN(_tiny_config())
    assert int(fresh.pool_a.count.numpy()) == 0
    tf.train.Checkpoint(**fresh.extra_state()).restore(path).assert_consumed()
    for name in ("pool_a", "pool_b"):
        saved, restored = getattr(model, name), getattr(fresh, name)
        for variable in ("images", "count"):
            np.testing.assert_array_equal(getattr(restored, variable).numpy(),
                                          getattr(saved, variable).numpy(), err_msg=f"{name}.{variable}")
    # ... and the restored pool answers the next query as the saved one does.
    more = tf.random.uniform([2, 32, 64, 3], -1, 1, seed=4)
    np.testing.assert_array_equal(fresh.pool_a.query(more, _seed(5, 3)).numpy(),
                                  model.pool_a.query(more, _seed(5, 3)).numpy())


def test_the_pools_draw_from_the_models_step_seeds_not_a_global_generator():
    """Two models built after different global seeds, at the same run seed, swap alike."""
    results = []
    for global_seed in (1, 2):
        keras.utils.set_random_seed(global_seed)
        model = CycleGAN(_tiny_config(pool_size=2))
        model.prepare_training(seed=9)
        fakes = tf.random.stateless_uniform([2, 32, 64, 3], [1, 2], -1, 1)
        results.append([model.pool_a.query(fakes * step, model.replica_seed(salt=1)).numpy()
                        for step in (1.0, 2.0, 3.0)])
    for first, second in zip(*results):
        np.testing.assert_array_equal(first, second)


# ------------------------------------------------------------------------- losses

class _Affine(keras.layers.Layer):
    def __init__(self, scale, offset):
        super().__init__()
        self.scale, self.offset = scale, offset

    def call(self, x):
        return x * self.scale + self.offset


def _known_networks(model):
    """G_A(x) = 0.5 x, G_B(x) = x + 0.25, and discriminators that always answer 0.5."""
    model.G_A, model.G_B = _Affine(0.5, 0.0), _Affine(1.0, 0.25)
    model.D_A, model.D_B = _Affine(0.0, 0.5), _Affine(0.0, 0.5)
    return model


def test_cycle_and_identity_terms_on_a_hand_computed_example():
    model = _known_networks(CycleGAN(_tiny_config(pool_size=0)))
    real_a, real_b = tf.fill([1, 8, 8, 3], 0.9), tf.fill([1, 8, 8, 3], -0.4)
    result, (fake_a, fake_b) = model.generator_losses(real_a, real_b)
    # G_A(a) = 0.45, G_B(0.45) = 0.70: cycle_a = 10 |0.70 - 0.9| = 2.0
    # G_B(b) = -0.15, G_A(-0.15) = -0.075: cycle_b = 10 |-0.075 + 0.4| = 3.25
    # identity: G_A(b) = -0.2 -> 10 * 0.5 * 0.2 = 1.0;  G_B(a) = 1.15 -> 10 * 0.5 * 0.25 = 1.25
    # LSGAN: (0.5 - 1)^2 = 0.25 for each generator.
    expected = {"gan_a": 0.25, "gan_b": 0.25, "cycle_a": 2.0, "cycle_b": 3.25,
                "idt_a": 1.0, "idt_b": 1.25, "total": 8.0}
    assert {k: round(float(v), 5) for k, v in result.items()} == expected
    np.testing.assert_allclose(fake_b.numpy(), 0.45, rtol=1e-6)
    np.testing.assert_allclose(fake_a.numpy(), -0.15, rtol=1e-6)
    d_losses, _ = model.discriminator_losses(real_a, real_b, fake_a, fake_b)
    # 0.5 [(0.5 - 1)^2 + 0.5^2] per discriminator.
    assert {k: round(float(v), 5) for k, v in d_losses.items()} == {"D/a": 0.25, "D/b": 0.25,
                                                                     "D/total": 0.5}


def test_identity_uses_the_other_domains_lambda_and_can_be_switched_off():
    real_a, real_b = tf.fill([1, 8, 8, 3], 0.9), tf.fill([1, 8, 8, 3], -0.4)
    model = _known_networks(CycleGAN(_tiny_config(pool_size=0, lambda_a=1.0, lambda_b=4.0)))
    result, _ = model.generator_losses(real_a, real_b)
    assert float(result["cycle_a"]) == pytest.approx(0.2) and float(result["cycle_b"]) == pytest.approx(1.3)
    assert float(result["idt_a"]) == pytest.approx(4.0 * 0.5 * 0.2)   # lambda_B * 0.5 * |G_A(b) - b|
    assert float(result["idt_b"]) == pytest.approx(1.0 * 0.5 * 0.25)  # lambda_A * 0.5 * |G_B(a) - a|
    off = _known_networks(CycleGAN(_tiny_config(pool_size=0, lambda_identity=0.0)))
    result, _ = off.generator_losses(real_a, real_b)
    assert float(result["idt_a"]) == float(result["idt_b"]) == 0.0
    assert float(result["total"]) == pytest.approx(0.25 + 0.25 + 2.0 + 3.25)


# ------------------------------------------------------------------------- training

def test_optimizers_are_one_adam_per_pair_with_linear_decay():
    model = CycleGAN(_tiny_config())
    model.prepare_training(steps_per_epoch=7)
    assert list(model.optimizers) == ["G", "D"] and list(model.learning_rates()) == ["G", "D"]
    generator, discriminator = model.optimizers["G"], model.optimizers["D"]
    for optimizer in (generator, discriminator):
        assert isinstance(optimizer, keras.optimizers.Adam) and optimizer.beta_1 == 0.5
        schedule = optimizer._learning_rate
        assert isinstance(schedule, LinearDecay) and schedule.steps_per_epoch == 7
        assert schedule.initial_learning_rate == 2e-4
        assert (schedule.constant_epochs, schedule.decay_epochs) == (100, 100)
    assert {group.name: group.loss for group in model._groups} == {"G": "total", "D": "D/total"}
    assert all(group.start_step == 0 and group.stop_step is None for group in model._groups)
    groups = {group.name: group.variables() for group in model._groups}
    assert {id(v) for v in groups["G"]} == {
        id(v) for v in model.G_A.trainable_variables + model.G_B.trainable_variables}
    assert len(groups["G"]) == len(model.G_A.trainable_variables) * 2
    assert {id(v) for v in groups["D"]} == {
        id(v) for v in model.D_A.trainable_variables + model.D_B.trainable_variables}


class _RecordingCycleGAN(CycleGAN):
    def apply_group_gradients(self, loss_name, gradients):
        self.update_order.append(loss_name)
        super().apply_group_gradients(loss_name, gradients)


def test_train_step_updates_generators_then_discriminators():
    keras.utils.set_random_seed(2)
    model = _RecordingCycleGAN(_tiny_config())
    model.update_order = []
    model.prepare_training(steps_per_epoch=10)
    before = {name: [w.numpy().copy() for w in net.trainable_weights] for name, net in model.networks.items()}
    result = model.train_step(_batch())  # eagerly; the CLI tests run it traced
    assert set(result) == LOSS_KEYS
    assert all(np.isfinite(float(value)) for value in result.values()), result
    assert model.update_order == ["total", "D/total"]
    for name, network in model.networks.items():
        after = network.trainable_weights
        assert all(not np.array_equal(old, new.numpy()) for old, new in zip(before[name], after)), name
    assert [int(model.optimizers[name].iterations) for name in ("G", "D")] == [1, 1]
    assert int(model.pool_a.count.numpy()) == int(model.pool_b.count.numpy()) == 2  # both fakes pooled
    # The total generator loss is the sum of its six terms.
    terms = sum(float(result[k]) for k in ("gan_a", "gan_b", "cycle_a", "cycle_b", "idt_a", "idt_b"))
    assert float(result["total"]) == pytest.approx(terms, rel=1e-5)
    assert float(result["D/total"]) == pytest.approx(float(result["D/a"]) + float(result["D/b"]), rel=1e-6)


def test_phase_losses_have_every_key_and_touch_no_pool(tiny):
    real_a, real_b = tiny._real_pair(_batch())
    g_losses, (fake_a, fake_b) = tiny.generator_losses(real_a, real_b, training=False)
    assert set(g_losses) == G_LOSS_KEYS
    assert tuple(fake_a.shape) == tuple(fake_b.shape) == (2, 32, 64, 3)
    d_losses, extras = tiny.discriminator_losses(real_a, real_b, fake_a, fake_b, training=False)
    assert set(d_losses) == D_LOSS_KEYS and extras == ()
    assert float(d_losses["D/total"]) == pytest.approx(float(d_losses["D/a"]) + float(d_losses["D/b"]),
                                                       rel=1e-6)
    assert all(np.isfinite(float(value)) for value in {**g_losses, **d_losses}.values())
    assert int(tiny.pool_a.count.numpy()) == int(tiny.pool_b.count.numpy()) == 0


# ------------------------------------------------------------------------- inference

def test_translate_maps_uint8_to_0_255_in_both_directions(tiny):
    images = tf.constant(np.random.default_rng(1).integers(0, 256, (2, 32, 64, 3), dtype=np.uint8))
    assert [endpoint.name for endpoint in tiny.serving_endpoints()] == ["a_to_b", "b_to_a"]
    for name, network in (("a_to_b", tiny.G_A), ("b_to_a", tiny.G_B)):
        out = tiny.translate(name, images).numpy()
        expected = (network(tf.cast(images, tf.float32) / 127.5 - 1).numpy() + 1) * 127.5
        np.testing.assert_allclose(out, expected, atol=1e-3)
        assert out.shape == (2, 32, 64, 3) and out.min() >= 0 and out.max() <= 255
        # The served function of the endpoint of that name is the same translation.
        endpoint, function = tiny.endpoint(name)
        assert endpoint.name == name and endpoint.outputs == ("image",)
        outputs = function(image=images)
        assert set(outputs) == {"image"}
        np.testing.assert_allclose(outputs["image"].numpy(), out, atol=1e-4)
    with pytest.raises(KeyError):
        tiny.translate("a_to_c", images)
    with pytest.raises(KeyError, match="a_to_b, b_to_a"):
        tiny.endpoint("a_to_c")
    assert tiny.endpoint()[0].name == "a_to_b"  # the first endpoint is serving_default
    assert tiny.size_multiple == 4
    assert tiny.training_size == (32, 64)


def test_export_state_is_the_two_generators(tiny):
    assert tiny.serving_state_keys == ("G_A", "G_B")
    state = tiny.serving_state()
    assert list(state) == ["G_A", "G_B"]
    assert state["G_A"] is tiny.G_A and state["G_B"] is tiny.G_B


def test_unpaired_endpoints_read_photos_and_have_no_reference(tiny):
    a_to_b, b_to_a = tiny.serving_endpoints()
    for endpoint in (a_to_b, b_to_a):
        assert [(i.name, i.kind, i.source) for i in endpoint.inputs] == [("image", "image", "image")]
        assert endpoint.reference is None and not endpoint.conditioned_on_labels
    assert tiny.eval_metrics(_batch()) == {}  # unpaired batches hold no pairs


def test_label_domain_endpoints_read_the_colour_coded_labels_as_trained():
    model = CycleGAN(_tiny_config(domains_from="labels", pool_size=0))
    a_to_b, b_to_a = model.serving_endpoints()
    assert [(i.name, i.kind, i.source) for i in a_to_b.inputs] == [("image", "image", "label_color")]
    assert a_to_b.reference == "image" and a_to_b.conditioned_on_labels
    assert [(i.name, i.kind, i.source) for i in b_to_a.inputs] == [("image", "image", "image")]
    assert b_to_a.reference == "label_color" and not b_to_a.conditioned_on_labels
    # A record fed to a_to_b gives the colour image that training showed G_A as domain A.
    batch = _batch()
    records = {"image": batch["A"]["image"], "label": batch["A"]["label"]}
    inputs = model.record_inputs(a_to_b, records)
    np.testing.assert_array_equal(inputs["image"].numpy(), model.domain_images(batch)[0].numpy())
    assert model.record_inputs(b_to_a, records)["image"] is records["image"]


def test_sample_columns_are_a_fake_cycle_b_fake_cycle(tiny):
    columns = tiny.sample_columns(_batch())
    assert len(columns) == 6
    assert all(c.dtype == tf.uint8 and tuple(c.shape) == (2, 32, 64, 3) for c in columns)
    batch = _batch()
    np.testing.assert_array_equal(columns[0].numpy(), batch["A"]["image"].numpy())
    np.testing.assert_array_equal(columns[3].numpy(), batch["B"]["image"].numpy())
    np.testing.assert_array_equal(columns[1].numpy(), pixels.unit_range_to_uint8(tiny.G_A(
        pixels.to_unit_range(batch["A"]["image"]))).numpy())
