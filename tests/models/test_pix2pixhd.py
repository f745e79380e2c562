"""Tests for tfsynth.models.pix2pixhd against the facts of docs/papers.md section 3 (pix2pixHD)."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from family_support import smoke_config
from tfsynth import losses
from tfsynth.layers import AvgPoolDownsample
from tfsynth.layers.discriminators import build_feature_discriminator
from tfsynth.models.pix2pixhd import (Pix2PixHD, Pix2PixHDConfig, build_encoder, instance_average,
                                      instance_edges)

pytestmark = pytest.mark.family("pix2pixhd")


#: The smoke configuration without instance features (tests that use them say so), with overrides.
tiny = functools.partial(smoke_config, "pix2pixhd", instance_features=False)


def batch(size=(32, 64), seed=0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 34, (2, *size)).astype(np.uint8)
    instance = label.astype(np.int32)
    instance[:, 4:12, 8:20] = 26001  # a car
    instance[:, 16:24, 30:50] = 26002  # another car
    label[instance >= 26000] = 26
    return {"image": tf.constant(rng.integers(0, 256, (2, *size, 3)).astype(np.uint8)),
            "label": tf.constant(label), "instance": tf.constant(instance)}


# ------------------------------------------------------------------------- architecture

@pytest.mark.paper
def test_parameter_counts_of_the_paper_networks():
    global_g = Pix2PixHD(Pix2PixHDConfig())
    assert global_g.parameter_counts() == {"generator": 182_546_755, "D0": 2_801_601, "D1": 2_801_601}
    with_features = Pix2PixHD(Pix2PixHDConfig(instance_features=True)).parameter_counts()
    assert with_features["generator"] == 182_556_163 and with_features["encoder"] == 788_803
    local = Pix2PixHD(Pix2PixHDConfig(generator="local", base_filters=32, discriminator_scales=3,
                                      image_size=(1024, 2048))).parameter_counts()
    assert local["generator"] == 182_857_059 and sorted(local) == ["D0", "D1", "D2", "generator"]


@pytest.mark.unit
def test_multiscale_discriminator_output_sizes_at_512x1024():
    discriminator = build_feature_discriminator(39)
    outputs = discriminator(tf.zeros([1, 512, 1024, 39]))
    assert [tuple(o.shape[1:3]) for o in outputs] == [(257, 513), (129, 257), (65, 129), (66, 130), (67, 131)]
    assert outputs[-1].shape[-1] == 1  # the final logits; the others are features for matching
    half = discriminator(AvgPoolDownsample()(tf.zeros([1, 512, 1024, 39])))
    assert tuple(half[-1].shape[1:3]) == (35, 67)  # the second scale sees 256x512


@pytest.mark.unit
def test_average_pool_excludes_padding_like_pytorch():
    x = tf.reshape(tf.range(1.0, 17.0), [1, 4, 4, 1])
    pooled = AvgPoolDownsample()(x)[0, ..., 0].numpy()
    # Windows centred on (0, 0), (0, 2), (2, 0), (2, 2), padded cells left out of the mean.
    expected = [[np.mean([1, 2, 5, 6]), np.mean([2, 3, 4, 6, 7, 8])],
                [np.mean([5, 6, 9, 10, 13, 14]), np.mean([6, 7, 8, 10, 11, 12, 14, 15, 16])]]
    np.testing.assert_allclose(pooled, expected, rtol=1e-6)


@pytest.mark.unit
def test_local_enhancer_names_the_global_layers_as_the_global_generator():
    global_names = {layer.name for layer in Pix2PixHD(tiny()).generator.layers if layer.weights}
    local = Pix2PixHD(tiny(generator="local", base_filters=2, image_size=(32, 64)))
    local_names = {layer.name for layer in local.generator.layers if layer.weights}
    # --init_from copies every global layer but the 512p output; the enhancer's are new.
    assert global_names - local_names == {"g_output"}
    assert {name for name in local_names - global_names} == {n for n in local_names if n.startswith("l_")}


# ------------------------------------------------------------------------ instance maps

@pytest.mark.unit
def test_edge_map_marks_both_pixels_of_every_differing_neighbour_pair():
    instance = np.array([[[1, 1, 2],
                          [1, 1, 2],
                          [3, 3, 3]]])
    expected = np.array([[0, 1, 1],
                         [1, 1, 1],
                         [1, 1, 1]], np.float32)
    np.testing.assert_array_equal(instance_edges(tf.constant(instance))[0, ..., 0].numpy(), expected)
    assert not instance_edges(tf.ones([1, 3, 3], tf.int32)).numpy().any()


@pytest.mark.unit
def test_instance_average_replaces_features_by_their_instance_mean():
    features = tf.constant([[[[1.0], [3.0]], [[5.0], [7.0]]],
                            [[[2.0], [2.0]], [[4.0], [10.0]]]])  # [2, 2, 2, 1]
    instance = tf.constant([[[1, 2], [1, 2]],
                            [[1, 1], [1, 2]]])  # the same ids in both examples, pooled apart
    averaged = instance_average(features, instance)[..., 0].numpy()
    np.testing.assert_allclose(averaged, [[[3.0, 5.0], [3.0, 5.0]], [[8 / 3, 8 / 3], [8 / 3, 10.0]]])


@pytest.mark.unit
def test_encoder_output_is_three_channels_at_the_input_size():
    encoder = build_encoder(tiny())
    assert tuple(encoder(tf.zeros([1, 32, 64, 3])).shape) == (1, 32, 64, 3)


# ------------------------------------------------------------------------------- losses

@pytest.mark.unit
def test_feature_matching_on_a_hand_computed_case():
    # Two scales, each: two feature maps and logits (excluded). |diff| means: 1, 2 and 3, 5.
    fake = [[tf.fill([1, 2, 2, 1], 1.0), tf.fill([1, 1, 1, 2], 2.0), tf.fill([1, 1, 1, 1], 100.0)],
            [tf.fill([1, 2, 2, 1], 3.0), tf.fill([1, 1, 1, 2], -5.0), tf.fill([1, 1, 1, 1], -100.0)]]
    real = [[tf.zeros([1, 2, 2, 1]), tf.zeros([1, 1, 1, 2]), tf.zeros([1, 1, 1, 1])] for _ in range(2)]
    # (1 / scales) * (4 / (3 + 1)) * sum of the means.
    assert float(losses.feature_matching(fake, real, num_layers=3)) == pytest.approx(0.5 * (1 + 2 + 3 + 5))
    assert float(losses.feature_matching(fake, real, num_layers=1)) == pytest.approx(0.5 * 2 * 11)


@pytest.mark.unit
def test_vgg_term_weights_layers_by_one_over_32_to_one():
    fake = [tf.fill([1, 2, 2, 4], float(i + 1)) for i in range(5)]
    real = [tf.zeros([1, 2, 2, 4]) for _ in range(5)]
    weights = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
    expected = 1 / 32 * 1 + 1 / 16 * 2 + 1 / 8 * 3 + 1 / 4 * 4 + 5
    assert float(losses.weighted_feature_l1(fake, real, weights)) == pytest.approx(expected)


@pytest.mark.unit
def test_lsgan_terms_sum_over_scales_on_the_final_logits():
    real = [[tf.zeros([1, 2, 2, 3]), tf.fill([1, 2, 2, 1], 1.0)], [tf.zeros([1, 1]), tf.fill([1, 1, 1, 1], 0.0)]]
    fake = [[tf.zeros([1, 2, 2, 3]), tf.fill([1, 2, 2, 1], 0.5)], [tf.zeros([1, 1]), tf.fill([1, 1, 1, 1], 1.0)]]
    d_real, d_fake = losses.multiscale_gan_losses(real, fake, "lsgan")
    assert float(d_real) == pytest.approx(0.0 + 1.0) and float(d_fake) == pytest.approx(0.25 + 1.0)
    assert float(losses.multiscale_gan_generator_loss(fake, "lsgan")) == pytest.approx(0.25 + 0.0)


# ----------------------------------------------------------------------------- training

def stepper(model, seed=0):
    """``run(n)``: n more training steps of ``model`` (the loop's step function and counter)."""
    from tfsynth import training

    step = training.make_step_function(model, tf.distribute.get_strategy(), tf.Variable(0, dtype=tf.int64))
    iterator = iter(tf.data.Dataset.from_tensors(batch(seed=seed)).repeat())
    return lambda steps: [step(iterator) for _ in range(steps)]


def trained_steps(model, steps):
    return stepper(model)(steps)


@pytest.mark.slow
def test_the_global_generator_stays_frozen_until_the_switch_then_a_fresh_adam_trains_all():
    keras.utils.set_random_seed(0)
    model = Pix2PixHD(tiny(generator="local", base_filters=2, epochs_fix_global=2))
    model.prepare_training(steps_per_epoch=1)  # the switch after 2 epochs = 2 steps
    global_weights = [v for layer in model.generator.layers if layer.name.startswith("g_")
                      for v in layer.trainable_variables]
    local_weights = [v for layer in model.generator.layers if layer.name.startswith("l_")
                     for v in layer.trainable_variables]
    start_global = [v.numpy() for v in global_weights]
    start_local = [v.numpy() for v in local_weights]
    run = stepper(model)
    for losses_ in run(2):
        assert all(np.isfinite(float(v)) for v in losses_.values())
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(start_global, global_weights))
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(start_local, local_weights))
    assert int(model.optimizers["G_local"].iterations) == 2 and int(model.optimizers["G"].iterations) == 0
    (joint,) = run(1)
    assert all(np.isfinite(float(v)) for v in joint.values())
    assert all(not np.array_equal(a, v.numpy()) for a, v in zip(start_global, global_weights))
    assert int(model.optimizers["G"].iterations) == 1 and int(model.optimizers["D"].iterations) == 3
    # The fresh Adam's rate counts epochs from the start of training, not from its first step.
    schedule = model.optimizers["G"].learning_rate
    assert float(schedule) == pytest.approx(model.config.learning_rate)


@pytest.mark.slow
def test_generator_then_discriminator_with_every_loss_term():
    keras.utils.set_random_seed(0)
    model = Pix2PixHD(tiny(instance_features=True))
    model.prepare_training()
    (losses_,) = trained_steps(model, 1)
    assert set(losses_) == {"gan", "feature_matching", "vgg", "total", "D/real", "D/fake", "D/total"}
    values = {k: float(v) for k, v in losses_.items()}
    assert values["total"] == pytest.approx(values["gan"] + values["feature_matching"] + values["vgg"], rel=1e-5)
    assert values["D/total"] == pytest.approx(0.5 * (values["D/real"] + values["D/fake"]), rel=1e-5)
    without = Pix2PixHD(tiny(lambda_feature=0.0, lambda_vgg=0.0, instance_edges=False))
    without.prepare_training()
    assert "vgg" not in without.build_loss_networks() and without.record_fields == ("image", "label")
    (plain,) = trained_steps(without, 1)
    assert set(plain) == {"gan", "total", "D/real", "D/fake", "D/total"}


# ------------------------------------------------------------------------------- styles

@pytest.fixture(scope="module")
def clustered():
    """A tiny model with instance features whose K-means ran over a few batches."""
    keras.utils.set_random_seed(0)
    model = Pix2PixHD(tiny(instance_features=True, num_clusters=3, cluster_min_area=0.0))
    batches = [batch(seed=i) for i in range(3)]
    assert model.finish_training(lambda split: batches)
    return model


@pytest.mark.unit
def test_kmeans_stores_centres_per_class(clustered):
    counts = clustered.cluster_counts.value.numpy()
    assert counts[26] == 3  # six cars over three batches: three clusters
    centres = clustered.clusters.value.numpy()[26]
    assert np.unique(centres.round(6), axis=0).shape[0] == 3  # three distinct centres
    assert counts.max() <= 3 and not clustered.clusters.value.numpy()[counts == 0].any()


@pytest.mark.unit
def test_one_cluster_choice_changes_only_that_instance(clustered):
    (render, function), _ = clustered.serving_endpoints().items()
    data = batch()
    label, instance = data["label"][:1], data["instance"][:1]
    seed = tf.constant([5], tf.int64)
    choose = lambda k: tf.where(instance == 26001, k, -1)  # noqa: E731
    first = function(label=label, instance=instance, seed=seed, clusters=choose(0))["image"].numpy()
    again = function(label=label, instance=instance, seed=seed, clusters=choose(0))["image"].numpy()
    second = function(label=label, instance=instance, seed=seed, clusters=choose(1))["image"].numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, second)
    # The features of the other instances are unchanged (the output changes near the car only
    # through G's receptive field, so compare the feature maps G receives).
    f0 = clustered.cluster_features(instance, seed, choose(0)).numpy()
    f1 = clustered.cluster_features(instance, seed, choose(1)).numpy()
    car = instance.numpy() == 26001
    assert not np.allclose(f0[car], f1[car]) and np.array_equal(f0[~car], f1[~car])
    # Seeds alone render deterministically.
    assert np.array_equal(clustered.cluster_features(instance, seed).numpy(),
                          clustered.cluster_features(instance, seed).numpy())
    assert render.inputs[-1].optional and render.inputs[-1].source == "none"


@pytest.mark.slow
def test_export_holds_the_centres_and_refuses_an_instance_map_of_another_size(clustered, tmp_path):
    from tfsynth import export

    from tfsynth import run_dir

    path = export.export_model(clustered, str(tmp_path / "1"), model_name="pix2pixhd")
    # A client (the studio) learns from the declaration how many styles each class offers.
    counts = clustered.cluster_counts.value.numpy()
    assert run_dir.read_export_info(path)["style_clusters"] == counts.astype(int).tolist()
    loaded = tf.saved_model.load(path)
    exported = {tuple(v.shape): v.numpy() for v in loaded.variables if tuple(v.shape) == (35, 3, 3)}
    np.testing.assert_array_equal(exported[(35, 3, 3)], clustered.clusters.value.numpy())
    data = batch()
    signature = loaded.signatures["serving_default_without_clusters"]
    out = signature(label=data["label"], instance=data["instance"], seed=tf.constant([1, 2], tf.int64))
    assert out["image"].dtype == tf.uint8 and tuple(out["image"].shape) == (2, 32, 64, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="instance must have the batch size, height and width"):
        signature(label=data["label"], instance=data["instance"][:, :16], seed=tf.constant([1, 2], tf.int64))
    # Without instance maps the boundaries come from the label map.
    no_instance = loaded.signatures["serving_default_without_instance_clusters"]
    assert tuple(no_instance(label=data["label"], seed=tf.constant([1, 2], tf.int64))["image"].shape) == (2, 32, 64, 3)


@pytest.mark.cli
def test_infer_reads_instance_maps_and_draws_styles_from_the_seed(clustered, tmp_path, run_cli):
    from PIL import Image

    from tfsynth import export

    path = export.export_model(clustered, str(tmp_path / "export"), model_name="pix2pixhd")
    data = batch()
    (tmp_path / "labels").mkdir()
    (tmp_path / "instances").mkdir()
    Image.fromarray(data["label"][0].numpy()).save(tmp_path / "labels" / "a.png")
    Image.fromarray(data["instance"][0].numpy().astype(np.uint16)).save(tmp_path / "instances" / "a.png")
    outputs = {}
    for seed in (1, 1, 2):
        out = tmp_path / f"out{seed}"
        run_cli("tfsynth.infer", f"--saved_model={path}", f"--input={tmp_path / 'labels'}",
                f"--instance={tmp_path / 'instances'}", f"--seed={seed}", f"--output={out}", "--overwrite")
        image = np.asarray(Image.open(out / "a.png"))
        assert seed not in outputs or np.array_equal(outputs[seed], image)  # the same seed, the same styles
        outputs[seed] = image
    assert outputs[1].shape == (32, 64, 3) and not np.array_equal(outputs[1], outputs[2])
    # An instance map missing for a label file is named, and so is one of another size.
    (tmp_path / "instances" / "a.png").unlink()
    missing = run_cli("tfsynth.infer", f"--saved_model={path}", f"--input={tmp_path / 'labels'}",
                      f"--instance={tmp_path / 'instances'}", f"--output={tmp_path / 'x'}", check=False)
    assert missing.returncode != 0 and "no instance map" in missing.stderr and "a.png" in missing.stderr
    Image.fromarray(np.zeros((16, 64), np.uint16)).save(tmp_path / "instances" / "a.png")
    wrong = run_cli("tfsynth.infer", f"--saved_model={path}", f"--input={tmp_path / 'labels'}",
                    f"--instance={tmp_path / 'instances'}", f"--output={tmp_path / 'y'}", check=False)
    assert wrong.returncode != 0 and "differs from" in wrong.stderr and "Traceback" not in wrong.stderr
