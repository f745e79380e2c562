"""Tests for tfsynth.models.fastgan, tfsynth.diffaugment and FastGAN's losses against docs/papers.md
section 5 (FastGAN). Parameter counts, resume and export parity are the contract test's."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from family_support import smoke_config
from tfsynth import diffaugment, losses, seeded
from tfsynth.layers import GLU, NoiseInjection, quarter
from tfsynth.models.fastgan import FastGAN, FastGANConfig, build_decoder, build_discriminator, skip_layer_excitation
from tfsynth.perceptual import PerceptualWeightsError, load_lpips_weights
from tfsynth.run_dir import copy_run_files

pytestmark = pytest.mark.family("fastgan")


#: The smoke configuration, with overrides.
tiny = functools.partial(smoke_config, "fastgan")


def seeds_for(count, base=5):
    return seeded.seed_pairs(tf.range(base, base + count, dtype=tf.int64))


# ----------------------------------------------------------------------------- blocks

@pytest.mark.unit
def test_glu_gates_the_first_half_of_the_channels_by_the_second():
    a, b = np.float32([[1.0, -2.0]]), np.float32([[0.0, 3.0]])
    out = GLU()(tf.constant(np.concatenate([a, b], -1)[:, None, None]))
    assert out.shape == (1, 1, 1, 2)
    np.testing.assert_allclose(out[0, 0, 0], a[0] / (1 + np.exp(-b[0])), rtol=1e-6)


@pytest.mark.unit
def test_noise_injection_starts_at_zero_and_adds_one_seeded_map_per_example():
    layer = NoiseInjection(salt=3)
    x = tf.random.normal([2, 8, 8, 5])
    seeds = seeds_for(2)
    np.testing.assert_array_equal(layer([x, seeds]), x)
    assert layer.trainable_weights[0].shape == (1,) and float(layer.trainable_weights[0][0]) == 0.0
    layer.trainable_weights[0].assign([2.0])
    noise = (layer([x, seeds]) - x).numpy()
    assert noise.shape == (2, 8, 8, 5)
    np.testing.assert_allclose(noise[..., 1:], np.repeat(noise[..., :1], 4, -1), atol=1e-6)  # one map, all channels
    assert not np.allclose(noise[0], noise[1])  # each example its own
    np.testing.assert_allclose(layer([x, seeds]) - x, noise, atol=1e-6)  # same seeds, same noise


@pytest.mark.unit
def test_skip_layer_excitation_gates_the_big_feature_per_channel():
    small, big = keras.Input((8, 8, 6)), keras.Input((32, 32, 3))
    model = keras.Model([small, big], skip_layer_excitation(small, big, "se"))
    big_value = tf.random.uniform([2, 32, 32, 3], 0.5, 1.0)
    out = model([tf.random.normal([2, 8, 8, 6]), big_value])
    assert out.shape == (2, 32, 32, 3)
    gate = (out / big_value).numpy()
    # One sigmoid value per example and channel, the same at every pixel.
    np.testing.assert_allclose(gate, np.broadcast_to(gate[:, :1, :1], gate.shape), rtol=1e-5)
    assert ((gate > 0) & (gate < 1)).all()
    # conv4x4 6 -> 3 and conv1x1 3 -> 3, no biases.
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 4 * 4 * 6 * 3 + 3 * 3


# ------------------------------------------------------------------------- DiffAugment

@pytest.mark.unit
def test_brightness_saturation_contrast_at_the_ends_of_their_ranges():
    pixel = np.float32([0.2, -0.4, 0.5])
    image = tf.constant(np.broadcast_to(pixel, (1, 2, 2, 3)).copy())
    grey = pixel.mean()
    for draws, brightness, saturation in (([0.0, 0.0, 0.5], -0.5, 0.0), ([1.0, 1.0, 0.5], 0.5, 2.0)):
        out = diffaugment.color(image, tf.constant([draws]))[0, 0, 0].numpy()
        # A uniform image keeps its mean under contrast, so only brightness and saturation act.
        np.testing.assert_allclose(out, grey + brightness + saturation * (pixel - grey), atol=1e-6)
    ramp = tf.reshape(tf.range(4.0), [1, 2, 2, 1]) * tf.ones([1, 1, 1, 3])
    for contrast_draw, contrast in ((0.0, 0.5), (1.0, 1.5)):
        out = diffaugment.color(ramp, tf.constant([[0.5, 0.5, contrast_draw]]))
        np.testing.assert_allclose(out - tf.reduce_mean(out), contrast * (ramp - 1.5), atol=1e-6)


@pytest.mark.unit
def test_diffaugment_ranges_on_a_seeded_batch():
    count = 256
    seeds = seeds_for(count)
    # Brightness on a flat grey image: saturation and contrast leave it alone, so each example
    # is shifted by its own b in [-0.5, 0.5].
    flat = tf.fill([count, 16, 16, 3], 0.25)
    shifts = (diffaugment.diff_augment(flat, seeds, "color") - 0.25).numpy()
    per_example = shifts[:, 0, 0, 0]
    np.testing.assert_allclose(shifts, np.broadcast_to(per_example[:, None, None, None], shifts.shape), atol=1e-6)
    assert per_example.min() >= -0.5 and per_example.max() <= 0.5
    assert per_example.min() < -0.45 and per_example.max() > 0.45 and np.std(per_example) > 0.2
    # Translation of a one-hot image: the pixel moves by at most round(16 / 8) = 2 rows and columns
    # each way, every offset occurs, and a pixel moved out of view leaves zeros.
    dot = np.zeros([count, 16, 16, 1], np.float32)
    dot[:, 8, 8] = 1.0
    moved = diffaugment.diff_augment(tf.constant(dot), seeds, "translation").numpy()
    examples, position = np.nonzero(moved[..., 0].reshape(count, -1) == 1.0)
    rows, cols = position // 16, position % 16
    assert list(examples) == list(range(count))
    assert set(rows - 8) == set(range(-2, 3)) and set(cols - 8) == set(range(-2, 3))
    corner = np.zeros([1, 16, 16, 1], np.float32)
    corner[0, 0, 0] = 1.0
    shifted = diffaugment.translation(tf.constant(corner), tf.constant([[0.99, 0.99]]))  # +2, +2
    assert float(tf.reduce_sum(shifted)) == 0.0
    # Same seeds, same augmentation; other seeds, another.
    images = tf.random.normal([4, 16, 16, 3])
    first = diffaugment.diff_augment(images, seeds[:4])
    np.testing.assert_array_equal(first, diffaugment.diff_augment(images, seeds[:4]))
    assert not np.allclose(first, diffaugment.diff_augment(images, seeds[4:8]))


@pytest.mark.unit
def test_diffaugment_passes_gradients_to_the_images():
    images = tf.Variable(tf.random.normal([3, 16, 16, 3]))
    with tf.GradientTape() as tape:
        augmented = diffaugment.diff_augment(images, seeds_for(3))
        loss = tf.reduce_sum(augmented * tf.random.normal(augmented.shape, seed=1))
    gradient = tape.gradient(loss, images)
    assert gradient is not None and np.isfinite(gradient.numpy()).all()
    assert (np.abs(gradient.numpy()).reshape(3, -1).max(axis=1) > 0).all()


@pytest.mark.unit
def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="cutout"):
        FastGANConfig(augment_policy="color,cutout")


# ------------------------------------------------------------------------- discriminator

@pytest.mark.unit
def test_decoder_reconstructs_the_small_image_size_from_8x8():
    decoder = build_decoder(12, 32, 4, "decoder")
    out = decoder(tf.random.normal([2, 8, 8, 12]))
    assert out.shape == (2, 32, 32, 3) and float(tf.reduce_max(tf.abs(out))) <= 1.0
    paper = build_decoder(512, 128, 32, "paper")  # decoder_big, docs/papers.md 5(g)
    assert sum(int(np.prod(w.shape)) for w in paper.trainable_weights) == 1_439_712


@pytest.mark.unit
def test_discriminator_outputs_50_logits_and_three_reconstructions():
    discriminator, critic = build_discriminator(tiny())
    images, small = tf.zeros([2, 64, 64, 3]), tf.zeros([2, 32, 32, 3])
    logits, *reconstructions = discriminator([images, small, tf.zeros([2], tf.int32)])
    assert logits.shape == (2, 50) and critic([images, small]).shape == (2, 50)
    assert [r.shape for r in reconstructions] == [(2, 32, 32, 3)] * 3
    assert {w.path for w in critic.weights} < {w.path for w in discriminator.weights}  # shared, minus decoders


@pytest.mark.unit
def test_quarter_crop_matches_its_feature_quadrant():
    grid = tf.reshape(tf.range(16.0), [1, 4, 4, 1])
    expected = {0: [[0, 1], [4, 5]], 1: [[2, 3], [6, 7]], 2: [[8, 9], [12, 13]], 3: [[10, 11], [14, 15]]}
    for part, values in expected.items():
        np.testing.assert_array_equal(quarter(grid, tf.constant([part]))[0, ..., 0], values)
    # In D, decoder_part reads the quadrant of the 16x16 feature that ``part`` names, per example.
    discriminator, _ = build_discriminator(tiny())
    crop = discriminator.get_layer("feat_16_quarter")
    probe = keras.Model(discriminator.inputs, [crop.input[0], crop.output])
    parts = tf.constant([1, 2])
    feature, cropped = probe([tf.random.normal([2, 64, 64, 3]), tf.random.normal([2, 32, 32, 3]), parts])
    assert feature.shape[1:3] == (16, 16) and cropped.shape[1:3] == (8, 8)
    np.testing.assert_array_equal(cropped[0], feature[0, :8, 8:])
    np.testing.assert_array_equal(cropped[1], feature[1, 8:, :8])


# ------------------------------------------------------------------------------ losses

@pytest.mark.unit
def test_margin_hinge_on_a_hand_computed_case():
    real, fake = losses.margin_hinge_discriminator_loss(
        tf.constant([[0.5, 1.2]]), tf.constant([[-1.5, 0.3]]), tf.fill([1, 2], 0.9), tf.fill([1, 2], 0.9))
    np.testing.assert_allclose([float(real), float(fake)], [(0.4 + 0.0) / 2, (0.0 + 1.2) / 2], rtol=1e-6)
    assert float(losses.gan_generator_loss(tf.constant([[0.5, -1.5]]), "hinge")) == pytest.approx(0.5)


@pytest.mark.unit
def test_lpips_distance_on_a_hand_computed_case(tmp_path):
    # Pixel vectors (3, 4) and (1, 0) against (0, 5) and (0, 1): unit vectors (.6, .8), (1, 0)
    # and (0, 1), (0, 1); squared differences (.36, .04) and (1, 1).
    a = tf.constant([[[[3.0, 4.0], [1.0, 0.0]]]])
    b = tf.constant([[[[0.0, 5.0], [0.0, 1.0]]]])
    np.testing.assert_allclose(losses.lpips_distance([a], [b]), [(0.4 + 2.0) / 2], rtol=1e-6)
    weights = [np.float32([2.0, 0.5])]
    np.testing.assert_allclose(losses.lpips_distance([a, a], [b, a], weights + weights),
                               [((0.72 + 0.02) + (2.0 + 0.5)) / 2], rtol=1e-6)
    # The weights file: LPIPS v0.1's five layers, in any shape.
    path = tmp_path / "lpips.npz"
    np.savez(path, **{f"lin{i}": np.full([1, c, 1, 1], i, np.float32) for i, c in enumerate((64, 128, 256, 512, 512))})
    assert [w.shape for w in load_lpips_weights(str(path))] == [(64,), (128,), (256,), (512,), (512,)]
    np.savez(path, lin0=np.zeros(3))
    with pytest.raises(PerceptualWeightsError, match="lin0 has 3 weights"):
        load_lpips_weights(str(path))


@pytest.mark.unit
def test_the_run_keeps_its_own_copy_of_the_lpips_weights(tmp_path):
    """A run reads the LPIPS weights from its folder, so resuming needs neither the user's file
    nor its unchanged content; a bad file is refused naming the flag."""
    from tfsynth.data.tfrecord import DataError
    from tfsynth.models.fastgan import LPIPS_COPY

    user_file = tmp_path / "lpips.npz"
    np.savez(user_file, **{f"lin{i}": np.full([c], i + 1, np.float32) for i, c in enumerate((64, 128, 256, 512, 512))})
    run = tmp_path / "run"
    run.mkdir()
    copy_run_files(FastGAN(tiny(lpips_weights=str(user_file))), str(run))
    user_file.unlink()
    resumed = FastGAN(tiny(lpips_weights=str(user_file)))
    copy_run_files(resumed, str(run))
    assert resumed.run_file(LPIPS_COPY) == str(run / LPIPS_COPY)
    resumed.build_loss_networks()
    assert [float(w[0]) for w in resumed.lpips_weights] == [1.0, 2.0, 3.0, 4.0, 5.0]

    np.savez(user_file, lin0=np.zeros(3))
    with pytest.raises(DataError, match="lpips_weights: .*lin0 has 3 weights"):
        copy_run_files(FastGAN(tiny(lpips_weights=str(user_file))), str(tmp_path / "other"))


# ----------------------------------------------------------------------- training, EMA, export

def one_batch(seed=0):
    rng = np.random.default_rng(seed)
    return {"image": tf.constant(rng.integers(0, 256, (2, 64, 64, 3)).astype(np.uint8))}


@pytest.mark.slow
def test_ema_after_two_steps_is_the_hand_computed_average_and_the_export_holds_it(tmp_path):
    from tfsynth import export

    keras.utils.set_random_seed(0)
    model = FastGAN(tiny(ema_decay=0.5))
    model.prepare_training()
    step = tf.function(model.train_step)
    raw = [[w.numpy() for w in model.generator.trainable_weights]]
    for seed in (1, 2):
        result = step(one_batch(seed))
        assert all(np.isfinite(float(value)) for value in result.values()), result
        assert {"total", "D/total", "D/real", "D/fake", "D/reconstruction"} <= set(result)
        raw.append([w.numpy() for w in model.generator.trainable_weights])
    # e1 = .5 w0 + .5 w1, e2 = .5 e1 + .5 w2.
    pairs = list(zip(model.generator_ema.weights, model.generator.weights))
    averaged = [average for average, current in pairs if current.trainable]
    assert len(averaged) == len(raw[0]) and [a.path for a, _ in pairs] == [c.path for _, c in pairs]
    for index, average in enumerate(averaged):
        expected = 0.25 * raw[0][index] + 0.25 * raw[1][index] + 0.5 * raw[2][index]
        np.testing.assert_allclose(average.numpy(), expected, rtol=1e-5, atol=1e-7, err_msg=average.path)
    # Buffers (running statistics, spectral-norm vectors) are G's, not averaged.
    for average, current in pairs:
        if not current.trainable:
            np.testing.assert_array_equal(average.numpy(), current.numpy(), err_msg=average.path)

    loaded = tf.saved_model.load(export.export_model(model, str(tmp_path / "1")))
    exported = sorted(float(np.sum(v.numpy())) for v in loaded.variables)
    np.testing.assert_allclose(exported, sorted(float(np.sum(v.numpy())) for v in model.generator_ema.weights),
                               rtol=1e-6)
    assert not np.allclose(exported, sorted(float(np.sum(v.numpy())) for v in model.generator.weights))


@pytest.mark.slow
def test_a_seed_names_one_image_after_an_export_reload(tmp_path):
    from tfsynth import export

    keras.utils.set_random_seed(1)
    model = FastGAN(tiny())
    for weight in model.generator_ema.trainable_weights:  # noise weights away from 0, so noise shows
        if "noise" in weight.path:
            weight.assign(tf.ones_like(weight))
    path = export.export_model(model, str(tmp_path / "1"))
    first = tf.saved_model.load(path).signatures
    pair = first["serving_default"](seed=tf.constant([3, 7], tf.int64))["image"].numpy()
    alone = tf.saved_model.load(path).signatures["serving_default"](seed=tf.constant([7], tf.int64))["image"].numpy()
    assert pair.shape == (2, 64, 64, 3) and pair.dtype == np.uint8
    np.testing.assert_array_equal(pair[1], alone[0])  # neither the batch nor the process matters
    assert np.abs(pair[0].astype(int) - pair[1].astype(int)).max() > 0
    latent = seeded.latents_from_seeds(tf.constant([7], tf.int64), 16)
    via_z = first["from_latent"](z=latent)["image"].numpy()
    assert np.abs(via_z.astype(int) - alone.astype(int)).max() <= 1  # the seed's latent is its image
