"""Tests for tfsynth.layers against numpy references (TF1 conventions CRN relied on)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfsynth.layers import (AreaDownsample2D, BilinearResize, SlicedCropping2D, SlimLayerNormalization, SmallMapConv2D,
                            SmallMapConv2DTranspose)

pytestmark = pytest.mark.unit


# ----------------------------------------------------------------- SlimLayerNormalization

def _slim_layer_norm_reference(x, gamma, beta, epsilon=1e-12):
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    var = x.var(axis=(1, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon) * gamma + beta


def _random_input(shape, seed=0):
    rng = np.random.default_rng(seed)
    # Per-example offsets and scales, so per-example moments matter.
    x = rng.normal(size=shape) * rng.uniform(0.5, 3, (shape[0], 1, 1, 1)) + rng.normal(
        size=(shape[0], 1, 1, 1)) * 5
    return x.astype(np.float32)


def test_slim_layer_norm_matches_numpy_with_per_channel_gamma_beta():
    x = _random_input((3, 4, 5, 6))
    layer = SlimLayerNormalization()
    layer.build(x.shape)
    assert tuple(layer.gamma.shape) == (6,)
    assert tuple(layer.beta.shape) == (6,)
    assert layer.epsilon == 1e-12
    # Default init: gamma=1, beta=0.
    np.testing.assert_array_equal(layer.gamma.numpy(), np.ones(6))
    np.testing.assert_array_equal(layer.beta.numpy(), np.zeros(6))
    gamma = np.linspace(0.5, 2.0, 6).astype(np.float32)
    beta = np.linspace(-1.0, 1.0, 6).astype(np.float32)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    out = layer(x).numpy()
    np.testing.assert_allclose(out, _slim_layer_norm_reference(x, gamma, beta), rtol=1e-4,
                               atol=1e-4)
    # Moments are per example: each example of the output (gamma=1, beta=0) has mean 0, var 1.
    layer.gamma.assign(np.ones(6, np.float32))
    layer.beta.assign(np.zeros(6, np.float32))
    plain = layer(x).numpy()
    np.testing.assert_allclose(plain.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(plain.var(axis=(1, 2, 3)), 1, atol=1e-4)


@pytest.mark.parametrize("negative_slope", [None, 0.2])
def test_slim_layer_norm_gradients_equal_automatic_differentiation(negative_slope):
    """The written-out backward pass against TensorFlow's differentiation of the formula."""
    x = tf.constant(_random_input((2, 5, 6, 4), seed=3))
    layer = SlimLayerNormalization(negative_slope=negative_slope)
    layer.build(x.shape)
    layer.gamma.assign(np.linspace(0.5, 2.0, 4).astype(np.float32))
    layer.beta.assign(np.linspace(-1.0, 1.0, 4).astype(np.float32))
    upstream = tf.constant(np.random.default_rng(4).normal(size=x.shape).astype(np.float32))

    def formula(x, gamma, beta):
        mean, variance = tf.nn.moments(x, axes=[1, 2, 3], keepdims=True)
        z = (x - mean) * tf.math.rsqrt(variance + 1e-12) * gamma + beta
        return z if negative_slope is None else tf.nn.leaky_relu(z, negative_slope)

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        fused = layer(x)
        expected = formula(x, layer.gamma, layer.beta)
    np.testing.assert_allclose(fused.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    sources = [x, layer.gamma, layer.beta]
    for ours, theirs in zip(tape.gradient(fused, sources, upstream), tape.gradient(expected, sources, upstream)):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-5)
    if negative_slope is not None:
        assert fused.numpy().min() < 0 and np.isclose(fused.numpy().min(), expected.numpy().min())


def test_slim_layer_norm_epsilon_is_tiny():
    # Variance 1e-10: with epsilon 1e-12 the values normalise to ~ +-1; with a typical
    # 1e-3 or 1e-5 epsilon they would be crushed towards 0.
    x = np.zeros((1, 2, 2, 2), np.float32)
    x[0, 0] = 1e-5
    x[0, 1] = -1e-5
    out = SlimLayerNormalization()(x).numpy()
    np.testing.assert_allclose(np.abs(out), np.full_like(out, 1 / np.sqrt(1 + 1e-2)), rtol=1e-3)
    np.testing.assert_allclose(out, _slim_layer_norm_reference(x, 1.0, 0.0), rtol=1e-3)


def test_slim_layer_norm_none_spatial_dims_and_resolution_independent_params():
    inputs = keras.Input((None, None, 5))
    layer = SlimLayerNormalization()
    model = keras.Model(inputs, layer(inputs))
    assert tuple(layer.gamma.shape) == (5,)
    layer.gamma.assign(np.arange(1, 6, dtype=np.float32))
    layer.beta.assign(np.arange(5, dtype=np.float32) / 10)
    for shape in [(2, 3, 4, 5), (1, 8, 16, 5)]:
        x = _random_input(shape, seed=shape[1])
        np.testing.assert_allclose(
            model(x).numpy(),
            _slim_layer_norm_reference(x, layer.gamma.numpy(), layer.beta.numpy()),
            rtol=1e-4, atol=1e-4)
    # Separately built layers at different resolutions have the same parameter shapes.
    small, large = SlimLayerNormalization(), SlimLayerNormalization()
    small(np.zeros((1, 4, 8, 7), np.float32))
    large(np.zeros((1, 32, 64, 7), np.float32))
    assert [tuple(w.shape) for w in small.weights] == [tuple(w.shape) for w in large.weights]
    assert [tuple(w.shape) for w in small.weights] == [(7,), (7,)]


def test_slim_layer_norm_bfloat16():
    x = _random_input((2, 6, 8, 4))
    layer = SlimLayerNormalization(dtype="mixed_bfloat16")
    out = layer(tf.cast(x, tf.bfloat16))
    assert out.dtype == tf.bfloat16
    assert layer.gamma.dtype == "float32"  # variables stay float32 under mixed precision
    np.testing.assert_allclose(tf.cast(out, tf.float32).numpy(),
                               _slim_layer_norm_reference(tf.cast(tf.cast(x, tf.bfloat16),
                                                                  tf.float32).numpy(), 1.0, 0.0),
                               atol=0.05)
    # The layer's own computation casts back to the input's dtype.
    direct = layer.call(tf.cast(x, tf.bfloat16))
    assert direct.dtype == tf.bfloat16


def test_slim_layer_norm_config_round_trip():
    layer = SlimLayerNormalization(epsilon=1e-6, negative_slope=0.2, name="norm")
    clone = SlimLayerNormalization.from_config(layer.get_config())
    assert clone.epsilon == 1e-6 and clone.negative_slope == 0.2 and clone.name == "norm"


# ------------------------------------------------------------------------ BilinearResize

def _interp_matrix_align_corners(in_size, out_size):
    """[out, in] matrix of 1-D linear interpolation with aligned corners."""
    matrix = np.zeros((out_size, in_size))
    scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    for i in range(out_size):
        position = i * scale
        low = int(np.floor(position))
        high = min(low + 1, in_size - 1)
        frac = position - low
        matrix[i, low] += 1 - frac
        matrix[i, high] += frac
    return matrix


def _bilinear_align_corners_reference(x, out_h, out_w):
    rows = _interp_matrix_align_corners(x.shape[1], out_h)
    cols = _interp_matrix_align_corners(x.shape[2], out_w)
    return np.einsum("ih,jw,nhwc->nijc", rows, cols, x.astype(np.float64))


def test_bilinear_align_corners_hand_example_2x3_to_4x5():
    x = np.array([[0.0, 10.0, 20.0],
                  [30.0, 40.0, 50.0]], np.float32)[None, :, :, None]
    reference = np.zeros((1, 4, 5, 7), np.float32)  # only its spatial size matters
    out = BilinearResize(align_corners=True)([x, reference]).numpy()
    assert out.shape == (1, 4, 5, 1)
    # Rows sample input rows at 0, 1/3, 2/3, 1; columns at 0, 0.5, 1, 1.5, 2:
    # value = 30 * row_pos + 10 * col_pos.
    expected = 30 * np.array([0, 1 / 3, 2 / 3, 1])[:, None] + 10 * np.array([0, 0.5, 1, 1.5, 2])
    np.testing.assert_allclose(out[0, :, :, 0], expected, rtol=1e-5, atol=1e-4)
    # Corner pixels are preserved exactly.
    for (i, j), (p, q) in {(0, 0): (0, 0), (0, 4): (0, 2), (3, 0): (1, 0), (3, 4): (1, 2)}.items():
        assert out[0, i, j, 0] == x[0, p, q, 0]


def test_bilinear_align_corners_matches_numpy_reference():
    x = np.random.default_rng(3).normal(size=(2, 4, 8, 3)).astype(np.float32)
    for out_h, out_w in [(8, 16), (7, 15), (4, 8), (16, 5)]:
        out = BilinearResize(align_corners=True)([x, np.zeros((2, out_h, out_w, 1), np.float32)])
        assert tuple(out.shape) == (2, out_h, out_w, 3)
        np.testing.assert_allclose(out.numpy(), _bilinear_align_corners_reference(x, out_h, out_w),
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(out.numpy()[:, [0, 0, -1, -1], [0, -1, 0, -1]],
                                      x[:, [0, 0, -1, -1], [0, -1, 0, -1]])


def test_bilinear_takes_size_from_reference_with_unknown_spatial_dims():
    features = keras.Input((None, None, 3))
    reference = keras.Input((None, None, 20))
    layer = BilinearResize(align_corners=True)
    output = layer([features, reference])
    assert tuple(output.shape) == (None, None, None, 3)
    model = keras.Model([features, reference], output)
    x = np.random.default_rng(4).normal(size=(1, 4, 8, 3)).astype(np.float32)
    for out_h, out_w in [(8, 16), (16, 32)]:
        out = model([x, np.zeros((1, out_h, out_w, 20), np.float32)]).numpy()
        np.testing.assert_allclose(out, _bilinear_align_corners_reference(x, out_h, out_w),
                                   rtol=1e-5, atol=1e-5)
    assert layer.compute_output_shape(((None, 4, 8, 3), (None, 8, 16, 20))) == (None, 8, 16, 3)


# ---------------------------------------------------------------------- AreaDownsample2D

@pytest.mark.parametrize("cropping", [2, ((1, 0), (1, 0)), ((0, 3), (2, 1))])
def test_sliced_cropping_equals_keras_cropping_with_a_pad_for_gradient(cropping):
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 7, 9, 3)), tf.float32)
    ours, keras_crop = SlicedCropping2D(cropping), keras.layers.Cropping2D(cropping)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3])])  # sizes unknown, as in the models
    def cropped_and_gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = ours(x)
        return y, tape.gradient(y, x, output_gradients=tf.ones_like(y))

    y, gradient = cropped_and_gradient(x)
    np.testing.assert_array_equal(y.numpy(), keras_crop(x).numpy())
    # The gradient is 1 on the kept window, 0 on the cropped border.
    np.testing.assert_array_equal(gradient.numpy(), np.pad(np.ones_like(y.numpy()), [(0, 0), *ours.cropping, (0, 0)]))
    ops = {op.type for op in cropped_and_gradient.get_concrete_function().graph.get_operations()}
    assert "StridedSliceGrad" not in ops  # the slow kernel this layer exists to avoid
    assert ours.compute_output_shape((None, 7, 9, 3)) == keras_crop.compute_output_shape((None, 7, 9, 3))
    # What is known statically stays known: a norm after the crop needs the channels.
    assert cropped_and_gradient.get_concrete_function().structured_outputs[0].shape.as_list() == [None, None, None, 3]
    assert ours(x).shape == keras_crop(x).shape


# ------------------------------------------------------- SmallMapConv2D(Transpose)

@pytest.mark.parametrize("ours_class, keras_class", [(SmallMapConv2D, keras.layers.Conv2D),
                                                     (SmallMapConv2DTranspose, keras.layers.Conv2DTranspose)])
@pytest.mark.parametrize("size", [(1, 1), (2, 4), (8, 10), (16, 16), (16, 18)])
def test_small_map_convolutions_equal_keras_in_values_and_gradients(ours_class, keras_class, size):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, *size, 5)), tf.float32)
    settings = dict(filters=3, kernel_size=4, strides=2, padding="same", use_bias=True,
                    bias_initializer="random_normal")
    ours, reference = ours_class(**settings), keras_class(**settings)
    ours.build(x.shape), reference.build(x.shape)
    reference.set_weights(ours.get_weights())

    def value_and_gradients(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            # A weighted sum, so every output position's gradient differs.
            loss = tf.reduce_sum(y * tf.constant(rng.normal(size=y.shape), tf.float32))
        ops = {op.type for op in tf.function(layer).get_concrete_function(x).graph.get_operations()}
        return [y, *tape.gradient(loss, [x, layer.kernel, layer.bias])], ops

    rng = np.random.default_rng(1)
    expected, _ = value_and_gradients(reference)
    rng = np.random.default_rng(1)
    got, ops = value_and_gradients(ours)
    for ours_value, keras_value in zip(got, expected):
        np.testing.assert_allclose(ours_value.numpy(), keras_value.numpy(), rtol=1e-5, atol=1e-5)
    # Up to 256 pixels the product, with no convolution in the graph; beyond, Keras' own.
    small = size[0] * size[1] <= 256
    assert ("MatMul" in ops and not any("Conv2D" in op for op in ops)) == small, ops


@pytest.mark.parametrize("ours_class, keras_class", [(SmallMapConv2D, keras.layers.Conv2D),
                                                     (SmallMapConv2DTranspose, keras.layers.Conv2DTranspose)])
def test_small_map_convolutions_choose_when_run_where_the_size_is_unknown(ours_class, keras_class):
    # As in an export's serving function: one graph for every size, the product on small maps.
    ours = ours_class(3, 4, strides=2, padding="same", matmul_pixels=16)
    reference = keras_class(3, 4, strides=2, padding="same")
    ours.build((None, None, None, 2)), reference.build((None, None, None, 2))
    reference.set_weights(ours.get_weights())
    served = tf.function(ours, input_signature=[tf.TensorSpec([None, None, None, 2])])
    graph = served.get_concrete_function().graph
    assert {"If", "StatelessIf"} & {op.type for op in graph.get_operations()}
    for size in [(4, 4), (6, 6)]:  # 16 pixels: the product; 36: the convolution
        x = tf.constant(np.random.default_rng(size[0]).normal(size=(1, *size, 2)), tf.float32)
        np.testing.assert_allclose(served(x).numpy(), reference(x).numpy(), rtol=1e-5, atol=1e-5)
    assert keras.layers.deserialize(keras.layers.serialize(ours)).matmul_pixels == 16
    with pytest.raises(ValueError, match="only 4x4 kernels, stride 2"):
        ours_class(4, 3, strides=2, padding="same")


def test_area_downsample_is_2x2_block_mean():
    x = np.random.default_rng(5).normal(size=(2, 6, 10, 4)).astype(np.float32)
    out = AreaDownsample2D()(x).numpy()
    expected = x.reshape(2, 3, 2, 5, 2, 4).mean(axis=(2, 4))
    assert out.shape == (2, 3, 5, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    # One-hot labels stay a partition of unity.
    ids = np.random.default_rng(6).integers(0, 5, (1, 8, 8))
    pooled = AreaDownsample2D()(np.eye(5, dtype=np.float32)[ids]).numpy()
    np.testing.assert_allclose(pooled.sum(-1), 1.0, rtol=1e-6)


def test_area_downsample_matches_tf_resize_area():
    x = np.random.default_rng(7).normal(size=(1, 8, 16, 2)).astype(np.float32)
    area = tf.image.resize(x, (4, 8), method="area").numpy()
    np.testing.assert_allclose(AreaDownsample2D()(x).numpy(), area, rtol=1e-5, atol=1e-6)


def test_area_downsample_output_shape_with_unknown_dims():
    layer = AreaDownsample2D()
    assert layer.compute_output_shape((None, None, None, 20)) == (None, None, None, 20)
    assert layer.compute_output_shape((None, 64, 128, 20)) == (None, 32, 64, 20)


def test_patchgan_kernels_are_independent_and_follow_the_seed():
    """One initializer per layer: two discriminators start differently, and --seed decides how."""
    import keras

    from tfsynth.layers.discriminators import build_patch_discriminator

    keras.utils.set_random_seed(3)
    first, second = build_patch_discriminator(3, norm="instance"), build_patch_discriminator(3, norm="instance")
    keras.utils.set_random_seed(3)
    again = build_patch_discriminator(3, norm="instance")
    kernel = lambda model: model.get_layer("conv2").kernel.numpy()  # noqa: E731
    assert not np.allclose(kernel(first), kernel(second))
    np.testing.assert_array_equal(kernel(first), kernel(again))
    assert abs(float(np.std(kernel(first))) - 0.02) < 0.002
