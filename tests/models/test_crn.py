"""Tests for tfsynth.models.crn against the facts of docs/papers.md section 1 (CRN)."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from family_support import smoke_config
from tfsynth.data import labels
from tfsynth.layers import SlimLayerNormalization
from tfsynth.models import crn
from tfsynth.models.crn import CRN, ChannelMajorImages, CRNConfig, build_generator, module_height

pytestmark = pytest.mark.family("crn")

# docs/papers.md 1(b): module width per height, and conv1 input channels (20 label channels included).
PAPER_WIDTHS = {4: 1024, 8: 1024, 16: 1024, 32: 1024, 64: 1024, 128: 512, 256: 512, 512: 128,
                1024: 32}
PAPER_CONV1_INPUTS = {4: 20, 8: 1044, 16: 1044, 32: 1044, 64: 1044, 128: 1044, 256: 532,
                      512: 532, 1024: 148}


@pytest.fixture(scope="module")
def paper_256p():
    return build_generator(CRNConfig())


#: The smoke configuration, with overrides.
_tiny_config = functools.partial(smoke_config, "crn")


def _random_batch(batch=2, height=32, width=64, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": tf.constant(rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)),
        "label": tf.constant(rng.integers(0, 34, (batch, height, width), dtype=np.uint8)),
    }


# ------------------------------------------------------------------------- architecture

@pytest.mark.paper
def test_parameter_counts_match_reference(paper_256p):
    assert paper_256p.count_params() == 97_875_483
    g512 = build_generator(CRNConfig(image_size=(512, 1024), num_outputs=1, loss="simple"))
    assert g512.count_params() == 98_622_851
    g1024 = build_generator(CRNConfig(image_size=(1024, 2048), num_outputs=1, loss="simple"))
    assert g1024.count_params() == 98_674_531


@pytest.mark.paper
def test_paper_256p_input_and_output_shapes(paper_256p):
    # Symbolic: the paper-size network is built and counted, never run (the tiny one runs the same code).
    assert tuple(paper_256p.input_shape) == (None, None, None, 20)
    assert tuple(paper_256p.output_shape) == (None, 9, None, None, 3)
    assert paper_256p.output.dtype == "float32"


@pytest.mark.paper
def test_module_names_and_widths_paper(paper_256p):
    convs = {layer.name: layer for layer in paper_256p.layers
             if isinstance(layer, keras.layers.Conv2D)}
    heights = [4, 8, 16, 32, 64, 128, 256]
    expected_names = {f"g_{h}_conv{i}" for h in heights for i in (1, 2)} | {"g_256_output"}
    assert set(convs) == expected_names
    for h in heights:
        for i in (1, 2):
            kernel = convs[f"g_{h}_conv{i}"].kernel
            in_channels = PAPER_CONV1_INPUTS[h] if i == 1 else PAPER_WIDTHS[h]
            assert tuple(kernel.shape) == (3, 3, in_channels, PAPER_WIDTHS[h]), (h, i)
    assert tuple(convs["g_256_output"].kernel.shape) == (1, 1, 512, 27)


@pytest.mark.paper
def test_module_widths_512p_and_1024p_and_cap():
    config = CRNConfig(image_size=(1024, 2048), num_outputs=1, loss="simple")
    assert config.module_heights == [4, 8, 16, 32, 64, 128, 256, 512, 1024]
    assert {h: config.module_width(h) for h in config.module_heights} == PAPER_WIDTHS
    capped = CRNConfig(image_size=(1024, 2048), num_outputs=1, max_channels=64)
    assert {h: capped.module_width(h) for h in capped.module_heights} == {
        4: 64, 8: 64, 16: 64, 32: 64, 64: 64, 128: 64, 256: 64, 512: 64, 1024: 32}
    generator = build_generator(_tiny_config())
    for layer in generator.layers:
        if isinstance(layer, keras.layers.Conv2D) and "output" not in layer.name:
            assert layer.filters == 16, layer.name
    assert generator.get_layer("g_4_conv1").kernel.shape[2] == 20
    assert generator.get_layer("g_8_conv1").kernel.shape[2] == 16 + 20


@pytest.mark.unit
def test_conv_bias_norm_and_lrelu(paper_256p):
    convs = [layer for layer in paper_256p.layers if isinstance(layer, keras.layers.Conv2D)]
    for layer in convs:
        if layer.name.endswith("_output"):
            assert layer.use_bias and layer.bias is not None
            assert layer.kernel_size == (1, 1)
            assert layer.activation in (None, keras.activations.linear)
        else:
            assert not layer.use_bias and layer.bias is None, layer.name
            assert layer.kernel_size == (3, 3) and layer.padding == "same"
            norm = paper_256p.get_layer(f"{layer.name}_norm")
            assert isinstance(norm, SlimLayerNormalization) and norm.epsilon == 1e-12
            assert norm.negative_slope == pytest.approx(0.2)  # the leaky ReLU, fused
    norms = [layer for layer in paper_256p.layers if isinstance(layer, SlimLayerNormalization)]
    assert len(norms) == 14
    x = np.array([[[[-1.0, 3.0]]]], np.float32)  # normalised to -1, +1 over the example
    np.testing.assert_allclose(SlimLayerNormalization(negative_slope=0.2)(x).numpy(), [[[[-0.2, 1.0]]]], rtol=1e-6)


@pytest.mark.unit
def test_channel_major_images_regrouping():
    k_count = 9
    # Each channel holds its own index j: x[..., j] = j.
    x = np.broadcast_to(np.arange(3 * k_count, dtype=np.float32), (2, 3, 4, 3 * k_count))
    out = ChannelMajorImages(k_count)(x).numpy()
    assert out.shape == (2, k_count, 3, 4, 3)
    for k in range(k_count):
        for colour in range(3):
            source_channel = colour * k_count + k  # image k = channels (k, K+k, 2K+k) as R,G,B
            np.testing.assert_allclose(out[:, k, :, :, colour], (source_channel + 1) / 2 * 255)
    assert ChannelMajorImages(k_count).compute_output_shape((None, 3, 4, 27)) == (
        None, 9, 3, 4, 3)


@pytest.mark.unit
def test_channel_major_images_scale():
    x = np.array([-1.0, 0.0, 1.0], np.float32).reshape(1, 1, 1, 3)
    out = ChannelMajorImages(1)(x).numpy()
    np.testing.assert_allclose(out.reshape(-1), [0.0, 127.5, 255.0])


@pytest.mark.unit
def test_module_height():
    assert module_height("g_256_conv1") == 256
    assert module_height("g_4_conv2_norm") == 4
    assert module_height("g_1024_output") == 1024
    assert module_height("label_128") is None
    assert module_height("images") is None
    assert module_height("g_upsample") is None


@pytest.mark.unit
def test_module_height_of_names_without_underscore():
    # "The module a generator layer belongs to, or None" -- a bare name must not crash.
    assert module_height("g") is None
    assert module_height("generator") is None


@pytest.mark.unit
def test_trainable_from_height_restricts_variables():
    config = CRNConfig(image_size=(256, 512), max_channels=8, trainable_from_height=128)
    model = CRN(config)
    chosen = {id(v) for v in model.trainable_generator_variables()}
    expected = set()
    for layer in model.generator.layers:
        height = module_height(layer.name)
        for variable in layer.trainable_variables:
            if height in (128, 256):
                expected.add(id(variable))
            else:
                assert id(variable) not in chosen, layer.name
    assert chosen == expected
    # g_128 and g_256: 2 conv kernels + 2 norms (gamma, beta) each, plus output kernel + bias.
    assert len(chosen) == 2 * (2 + 2 * 2) + 2
    everything = CRN(CRNConfig(image_size=(256, 512), max_channels=8))
    assert len(everything.trainable_generator_variables()) == len(
        everything.generator.trainable_variables)


@pytest.mark.parametrize("kwargs, message", [
    (dict(image_size=(100, 200)), "power of two"),
    (dict(image_size=(2, 4)), "power of two"),
    (dict(image_size=(256, 500)), "divisible"),
    (dict(layer_weights=(1.0, 1.0, 1.0, 1.0, 1.0)), "layer_weights"),
    (dict(loss="l2"), "loss"),
    (dict(num_outputs=0), "num_outputs"),
])
@pytest.mark.unit
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CRNConfig(**kwargs)


@pytest.mark.unit
def test_config_defaults_are_the_paper_256p():
    config = CRNConfig()
    assert config.image_size == (256, 512) and config.num_outputs == 9
    assert config.loss == "diversity" and config.learning_rate == 1e-4
    assert (config.beta_1, config.beta_2, config.epsilon) == (0.9, 0.999, 1e-8)
    assert config.term_weights == pytest.approx((1, 1 / 1.6, 1 / 2.3, 1 / 1.8, 1 / 2.8, 12.5))
    # The 512p/1024p "simple" loss has its own weights unless overridden.
    simple = CRNConfig(image_size=(512, 1024), num_outputs=1, loss="simple")
    assert simple.term_weights == pytest.approx((1, 1 / 2.6, 1 / 4.8, 1 / 3.7, 1 / 5.6, 10 / 1.5))
    custom = CRNConfig(loss="simple", layer_weights=(1, 2, 3, 4, 5, 6))
    assert custom.term_weights == (1, 2, 3, 4, 5, 6)


# ----------------------------------------------------------------------------- training

def _check_train_step(config):
    model = CRN(config)
    model.prepare_training()
    batch = _random_batch()
    before = [v.numpy().copy() for v in model.generator.trainable_variables]
    result = model.train_step(batch)
    assert set(result) == {"p0", "p1", "p2", "p3", "p4", "p5", "total"}
    values = {key: float(value) for key, value in result.items()}
    for key, value in values.items():
        assert np.isfinite(value), key
    assert values["total"] > 0
    parts = sum(values[f"p{i}"] for i in range(6))
    assert parts == pytest.approx(values["total"], rel=1e-4)
    after = [v.numpy() for v in model.generator.trainable_variables]
    changed = [not np.array_equal(b, a) for b, a in zip(before, after)]
    assert all(changed), [v.path for v, c in zip(model.generator.trainable_variables, changed)
                          if not c]
    assert list(model.optimizers) == ["G"] and list(model.learning_rates()) == ["G"]
    assert [group.loss for group in model._groups] == ["total"]
    assert int(model.optimizers["G"].iterations) == 1
    return model


@pytest.mark.unit
def test_train_step_diversity_loss():
    _check_train_step(_tiny_config())


@pytest.mark.unit
def test_train_step_simple_loss():
    _check_train_step(_tiny_config(num_outputs=1, loss="simple"))


def _avg_pool_np(x, levels):
    for _ in range(levels):
        n, h, w, c = x.shape
        x = x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    return x


@pytest.mark.unit
def test_diversity_losses_match_numpy_reference():
    config = _tiny_config()
    model = CRN(config)
    model.build_loss_networks()
    batch = _random_batch(seed=1)
    result = {k: float(v) for k, v in model.compute_losses(batch, training=False).items()}

    lut = labels.mapping_table("cityscapes35", "cityscapes20")
    one_hot = np.eye(20, dtype=np.float64)[lut[batch["label"].numpy()]]  # [B, H, W, 20]
    fakes = model.generator(one_hot.astype(np.float32)).numpy()  # [B, K, H, W, 3]
    real = batch["image"].numpy().astype(np.float32)
    b_count, k_count = fakes.shape[:2]
    errors = []
    for name, level, weight in zip(crn.LOSS_LAYERS, crn.LOSS_LAYER_LEVELS, config.term_weights):
        real_f = model.vgg(real)[name].numpy().astype(np.float64)
        fake_f = np.stack([model.vgg(fakes[:, k])[name].numpy() for k in range(k_count)], 1)
        mask = _avg_pool_np(one_hot, level)
        assert mask.shape[1:3] == real_f.shape[1:3], name
        diff = np.abs(fake_f - real_f[:, None]).mean(-1)  # [B, K, h, w]
        h, w = mask.shape[1:3]
        errors.append(weight * np.einsum("bkhw,bhwc->bkc", diff, mask) / (h * w))
    content = np.sum(errors, axis=0)  # [B, K, C]
    total = 0.999 * content.min(1).sum(-1) + 0.001 * content.mean(1).sum(-1)
    assert result["total"] == pytest.approx(total.mean(), rel=1e-4)
    # Each term is charged with the same per-class output selection as the total.
    best = content.argmin(1)  # [B, C]
    selection = np.full(content.shape, 0.001 / k_count)
    for b in range(b_count):
        for c in range(content.shape[2]):
            selection[b, best[b, c], c] += 0.999
    for i, error in enumerate(errors):
        assert result[f"p{i}"] == pytest.approx((selection * error).sum((1, 2)).mean(), rel=1e-4)


@pytest.mark.unit
def test_simple_losses_match_numpy_reference():
    config = _tiny_config(num_outputs=2, loss="simple")
    model = CRN(config)
    model.build_loss_networks()
    batch = _random_batch(seed=2)
    result = {k: float(v) for k, v in model.compute_losses(batch, training=False).items()}
    lut = labels.mapping_table("cityscapes35", "cityscapes20")
    one_hot = np.eye(20, dtype=np.float32)[lut[batch["label"].numpy()]]
    fakes = model.generator(one_hot).numpy()
    real = batch["image"].numpy().astype(np.float32)
    for i, (name, weight) in enumerate(zip(crn.LOSS_LAYERS, config.term_weights)):
        real_f = model.vgg(real)[name].numpy().astype(np.float64)
        fake_f = np.stack([model.vgg(fakes[:, k])[name].numpy() for k in range(2)], 1)
        expected = weight * np.abs(fake_f - real_f[:, None]).mean()
        assert result[f"p{i}"] == pytest.approx(expected, rel=1e-4)


@pytest.mark.unit
def test_generate_at_another_size():
    model = CRN(_tiny_config())
    assert model.size_multiple == 8
    label = np.random.default_rng(3).integers(0, 35, (2, 64, 128), dtype=np.uint8)
    images = model.generate(tf.constant(label))
    assert tuple(images.shape) == (2, 3, 64, 128, 3)
    assert np.all(np.isfinite(images.numpy()))
    # Label ids are those of the data's label space, mapped to cityscapes20 inside.
    lut = labels.mapping_table("cityscapes35", "cityscapes20")
    one_hot = np.eye(20, dtype=np.float32)[lut[label]]
    np.testing.assert_allclose(images.numpy(), model.generator(one_hot).numpy(), atol=1e-4)


@pytest.mark.unit
def test_endpoint_serves_the_first_image_and_all_k():
    model = CRN(_tiny_config())
    assert model.record_fields == ("image", "label")
    assert list(model.serving_state()) == ["generator"]
    (endpoint,) = model.serving_endpoints()
    assert endpoint.name == "serving_default" and endpoint.outputs == ("image", "images")
    assert [(i.name, i.kind, i.source) for i in endpoint.inputs] == [("label", "label", "label")]
    assert endpoint.reference == "image" and endpoint.conditioned_on_labels
    label = tf.constant(np.random.default_rng(4).integers(0, 35, (2, 32, 64), dtype=np.uint8))
    outputs = model.endpoint()[1](label=label)
    assert set(outputs) == {"image", "images"}
    images = model.generate(label).numpy()
    assert tuple(outputs["images"].shape) == (2, 3, 32, 64, 3)
    np.testing.assert_allclose(outputs["images"].numpy(), images, atol=1e-4)
    np.testing.assert_allclose(outputs["image"].numpy(), images[:, 0], atol=1e-4)


@pytest.mark.unit
def test_eval_metrics_compare_the_first_image_and_the_k_outputs():
    model = CRN(_tiny_config())
    batch = _random_batch(seed=5)
    metrics = {k: float(v) for k, v in model.eval_metrics(batch).items()}
    assert set(metrics) == {"psnr", "ssim", "diversity_pixel_l1"}
    images = np.clip(model.generate(batch["label"]).numpy(), 0, 255).astype(np.float64)
    real = batch["image"].numpy().astype(np.float64)
    mse = ((images[:, 0] - real) ** 2).mean(axis=(1, 2, 3))
    assert metrics["psnr"] == pytest.approx(np.mean(10 * np.log10(255.0 ** 2 / mse)), rel=1e-4)
    # Mean over the pairs (0, 1), (0, 2), (1, 2) of the mean absolute pixel difference.
    pairs = [np.abs(images[:, i] - images[:, j]).mean() for i, j in ((0, 1), (0, 2), (1, 2))]
    assert metrics["diversity_pixel_l1"] == pytest.approx(np.mean(pairs), rel=1e-4)


@pytest.mark.unit
def test_label_ids_use_crn_mapping():
    model = CRN(_tiny_config())
    ids = model.label_ids(tf.constant([[7, 18, 34, 29, 0, 33]], tf.uint8)).numpy()
    np.testing.assert_array_equal(ids, [[0, 5, 13, 19, 19, 18]])
