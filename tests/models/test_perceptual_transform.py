"""Johnson et al. 2016: the paper's parameter counts, output sizes, the losses on hand-computed
cases, the super-resolution degradation against scipy + PIL, the style image's life in a run,
bad inputs, and evaluate's bicubic baseline against a direct computation."""

import json
import os

import numpy as np
import pytest

from family_support import first_batch, tiny_family
from tfsynth.run_dir import copy_run_files

pytestmark = pytest.mark.usefixtures("cache_dir")


def _configs():
    from tfsynth.models import perceptual_transform as pt

    return pt


def _count(network):
    return sum(int(np.prod(w.shape)) for w in network.trainable_weights)


# ------------------------------------------------------------------ architecture

@pytest.mark.unit
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_paper_parameter_counts(norm):
    pt = _configs()
    assert _count(pt.build_style_network(pt.StyleTransferConfig(norm=norm))) == 1_679_235
    assert _count(pt.build_super_resolution_network(pt.SuperResolutionConfig(scale=4, norm=norm))) == 401_859
    assert _count(pt.build_super_resolution_network(pt.SuperResolutionConfig(scale=8, norm=norm))) == 438_915


@pytest.mark.unit
def test_style_output_is_as_large_as_the_input_on_the_0_255_scale():
    pt = _configs()
    network = pt.build_style_network(pt.StyleTransferConfig())
    rng = np.random.default_rng(0)
    for size in ((256, 256), (200, 300)):
        output = network(rng.uniform(0, 255, (1, *size, 3)).astype(np.float32)).numpy()
        assert output.shape == (1, *size, 3)
        # 150 tanh plus the ImageNet mean: within mean +- 150 whatever the weights.
        assert output.min() >= 103.939 - 150 - 1e-3 and output.max() <= 123.68 + 150 + 1e-3


@pytest.mark.unit
@pytest.mark.parametrize("scale", [4, 8])
def test_super_resolution_output_is_exactly_scale_times_larger(scale):
    pt = _configs()
    network = pt.build_super_resolution_network(pt.SuperResolutionConfig(scale=scale, base_filters=8))
    assert network(np.zeros((2, 18, 25, 3), np.float32)).shape == (2, 18 * scale, 25 * scale, 3)


@pytest.mark.unit
def test_pytorch_examples_variant_pads_every_convolution_so_only_its_9x9_limits_the_size():
    """TransformerNet: the paper's parameter count; its largest reflection is the 9x9's 4
    pixels, so inputs from 5 pixels on pass (the Johnson layout needs 41) and small crops are
    valid; it is only ever instance norm."""
    pt = _configs()
    model = pt.StyleTransfer(pt.StyleTransferConfig(architecture="pytorch_examples", norm="instance", crop_size=8))
    assert _count(model.generator) == 1_679_235
    assert model.minimum_input_size == 5
    assert model.generator(np.zeros((1, 8, 12, 3), np.float32)).shape == (1, 8, 12, 3)
    assert model.generator(np.zeros((1, 5, 6, 3), np.float32)).shape == (1, 8, 8, 3)  # 4 ceil(side / 4)
    with pytest.raises(ValueError, match="set norm=instance"):
        pt.StyleTransferConfig(architecture="pytorch_examples")
    with pytest.raises(ValueError, match="architecture must be one of johnson, pytorch_examples"):
        pt.StyleTransferConfig(architecture="torch")


@pytest.mark.unit
def test_reflection_pad_is_what_the_unpadded_residual_blocks_remove():
    pt = _configs()
    assert pt.reflection_pad(5, 2) == 40  # the paper's 40-pixel reflection padding at 256x256
    assert pt.reflection_pad(4, 0) == 8


# ------------------------------------------------------------------ losses

@pytest.mark.unit
def test_gram_matrix_and_style_loss_by_hand():
    import tensorflow as tf

    from tfsynth import losses

    # One image, 1x2 pixels, 2 channels: F = [[1, 3], [2, 4]] (C x HW).
    features = tf.constant([[[[1.0, 2.0], [3.0, 4.0]]]])
    # F F^T = [[10, 14], [14, 20]], divided by C H W = 4.
    np.testing.assert_allclose(losses.gram_matrix(features).numpy(), [[[2.5, 3.5], [3.5, 5.0]]])
    # MSE against zero Grams: (2.5^2 + 2 * 3.5^2 + 5^2) / 4 = 13.9375 per layer, summed over layers.
    zeros = tf.zeros([2, 2])
    assert float(losses.style_loss([features], [zeros])) == pytest.approx(13.9375)
    assert float(losses.style_loss([features, features], [zeros, zeros])) == pytest.approx(27.875)
    target = losses.gram_matrix(features)[0]
    assert float(losses.style_loss([features], [target])) == 0.0


@pytest.mark.unit
def test_feature_reconstruction_loss_is_a_mean_of_squares():
    import tensorflow as tf

    from tfsynth import losses

    assert float(losses.feature_reconstruction_loss(tf.constant([[1.0, 2.0]]), tf.constant([[0.0, 0.0]]))) == 2.5


@pytest.mark.unit
def test_total_variation_on_a_known_image():
    import tensorflow as tf

    from tfsynth import losses

    image = np.array([[0.0, 1.0], [2.0, 4.0]])[None, ..., None]
    # vertical: (2-0)^2 + (4-1)^2 = 13; horizontal: (1-0)^2 + (4-2)^2 = 5; a sum per image.
    assert float(losses.total_variation(tf.constant(image))) == pytest.approx(18.0)
    batch = np.concatenate([image, np.zeros_like(image)])
    assert float(losses.total_variation(tf.constant(batch))) == pytest.approx(9.0)  # mean over images


# ------------------------------------------------------------------ the degradation

@pytest.mark.unit
def test_degradation_is_gaussian_blur_then_bicubic_as_scipy_and_pil_compute_it():
    """Blur: scipy.ndimage.gaussian_filter (sigma 1, mode reflect, truncate 4), to 1e-3. Then
    PIL's bicubic downsampling of the float image (antialiased, a = -0.5), rounded: at most one
    grey level apart (TF and PIL sum the same kernel in different orders)."""
    from PIL import Image
    from scipy import ndimage

    from tfsynth.data import transforms

    rng = np.random.default_rng(1)
    image = ndimage.zoom(rng.uniform(0, 255, (16, 20, 3)), (4, 4, 1), order=1).clip(0, 255).astype(np.uint8)
    blurred = ndimage.gaussian_filter(image.astype(np.float64), sigma=(1, 1, 0), mode="reflect", truncate=4.0)
    np.testing.assert_allclose(transforms.gaussian_blur(image[None].astype(np.float32))[0].numpy(), blurred,
                               atol=1e-3)
    for scale in (4, 8):
        height, width = image.shape[0] // scale, image.shape[1] // scale
        expected = np.stack([np.asarray(Image.fromarray(blurred[..., c].astype(np.float32), "F")
                                        .resize((width, height), Image.BICUBIC)) for c in range(3)], -1)
        expected = np.clip(np.round(expected), 0, 255)
        ours = transforms.degrade_for_super_resolution(image[None], scale)[0].numpy()
        assert ours.dtype == np.uint8 and ours.shape == (height, width, 3)
        assert np.abs(ours.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.unit
def test_degradation_crops_to_a_multiple_of_the_scale():
    from tfsynth.data import transforms

    assert transforms.degrade_for_super_resolution(np.zeros((1, 67, 70, 3), np.uint8), 4).shape == (1, 16, 17, 3)


@pytest.mark.unit
def test_content_image_smaller_than_the_crop_is_enlarged_then_cropped():
    import tensorflow as tf

    from tfsynth.data import transforms

    image = np.full((40, 50, 3), 90, np.uint8)
    out = transforms.random_crop_at_least({"image": tf.constant(image)}, tf.constant([1, 2], tf.int64), 64)
    assert out["image"].shape == (64, 64, 3) and out["image"].dtype == tf.uint8
    assert np.all(out["image"].numpy() == 90)
    large = np.arange(100 * 120 * 3, dtype=np.int64).reshape(100, 120, 3) % 251
    out = transforms.random_crop_at_least({"image": tf.constant(large.astype(np.uint8))},
                                          tf.constant([3, 4], tf.int64), 64)
    assert out["image"].shape == (64, 64, 3)  # cropped at its own resolution, never rescaled


# ------------------------------------------------------------------ training

@pytest.mark.parametrize("name,extra", [("style_transfer", "norm=batch"), ("super_resolution", "loss=pixel,norm=batch"),
                                        ("super_resolution", "scale=8,crop_size=64")])
@pytest.mark.unit
def test_one_training_step_gives_finite_losses(name, extra):
    import keras

    keras.utils.set_random_seed(0)
    model, data_dir, _ = tiny_family(name, extra)
    model.prepare_training()
    batch = first_batch(model, data_dir)
    losses = {key: float(value) for key, value in model.train_step(batch).items()}
    assert "total" in losses and all(np.isfinite(v) for v in losses.values()), losses
    expected = {"content", "style", "tv"} if name == "style_transfer" else {model.config.loss, "tv"}
    assert expected <= set(losses)


# ------------------------------------------------------------------ the style image

@pytest.mark.unit
def test_style_image_is_copied_into_the_run_and_read_from_there(tmp_path):
    from PIL import Image

    pt = _configs()
    source = tmp_path / "painting.png"
    painting = np.random.default_rng(2).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(painting).save(source)
    run = tmp_path / "run"
    run.mkdir()
    config = pt.StyleTransferConfig(style_image=str(source), style_image_size=0, crop_size=64, residual_blocks=2)
    copy_run_files(pt.StyleTransfer(config), str(run))
    assert np.array_equal(np.asarray(Image.open(run / "style_image.png")), painting)
    source.unlink()  # a resume never needs the original again
    resumed = pt.StyleTransfer(config)
    copy_run_files(resumed, str(run))
    assert np.array_equal(resumed.style_image(), painting)
    assert pt.StyleTransfer(config).run_file("style_image.png") == str(source)  # until a run directory is given


@pytest.mark.unit
def test_builtin_style_image_is_deterministic_and_copied(tmp_path):
    pt = _configs()
    first, second = pt.builtin_style_image(), pt.builtin_style_image()
    assert first.shape == (256, 256, 3) and np.array_equal(first, second)
    assert first.std() > 20  # a painting, not a flat colour
    model = pt.StyleTransfer(pt.StyleTransferConfig(crop_size=64, residual_blocks=2, style_image_size=64))
    copy_run_files(model, str(tmp_path))
    assert os.path.exists(tmp_path / "style_image.png")
    assert model.style_image().shape == (64, 64, 3)


@pytest.mark.unit
def test_unreadable_style_image_is_a_data_error_naming_it(tmp_path):
    from tfsynth.data.tfrecord import DataError

    pt = _configs()
    broken = tmp_path / "style.jpg"
    broken.write_text("not an image")
    model = pt.StyleTransfer(pt.StyleTransferConfig(style_image=str(broken), crop_size=64, residual_blocks=2))
    with pytest.raises(DataError, match=f"style_image {broken}: not a readable image"):
        copy_run_files(model, str(tmp_path))
    assert not any(name.startswith("style_image") for name in os.listdir(tmp_path))


@pytest.mark.cli
def test_missing_style_image_fails_training_with_one_error_line(run_cli, tmp_path):
    from family_support import smoke_flagfile

    missing = tmp_path / "nowhere" / "starry.jpg"
    result = run_cli("tfsynth.train", f"--flagfile={smoke_flagfile('style_transfer')}",
                     f"--model_dir={tmp_path / 'run'}", f"--hparams=style_image={missing}", check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == f"error: style_image {missing}: no such file"
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ export and evaluate

@pytest.fixture(scope="module")
def sr_export(tmp_path_factory, cache_dir):
    import keras

    from tfsynth import export

    keras.utils.set_random_seed(0)
    model, data_dir, _ = tiny_family("super_resolution")
    path = str(tmp_path_factory.mktemp("sr") / "1")
    export.export_model(model, path, max_size=96, model_name="super_resolution")
    return model, data_dir, path


@pytest.mark.unit
def test_export_refuses_inputs_whose_output_exceeds_max_size(sr_export):
    import tensorflow as tf

    model, _, path = sr_export
    serve = tf.saved_model.load(path).signatures["serving_default"]
    assert serve(image=tf.zeros([1, 24, 20, 3], tf.uint8))["image"].shape == (1, 96, 80, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="x4 would exceed the export.{0,2}s max_size 96"):
        serve(image=tf.zeros([1, 25, 20, 3], tf.uint8))
    smallest = model.minimum_input_size  # 2 residual blocks: 4 pixels of reflection padding, so 5
    assert smallest == 5 and serve(image=tf.zeros([1, 5, 20, 3], tf.uint8))["image"].shape == (1, 20, 80, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="smaller than 5 pixels"):
        serve(image=tf.zeros([1, 4, 20, 3], tf.uint8))
    info = json.load(open(os.path.join(path, "tfsynth_export.json")))
    assert info["endpoints"][0]["scale"] == 4 and info["endpoints"][0]["inputs"][0]["source"] == "degraded_image"


@pytest.mark.cli
def test_evaluate_bicubic_row_equals_a_direct_psnr(sr_export, run_cli, tmp_path):
    """The bicubic row: the record's photo degraded by the shared function, upsampled bicubically
    (tf.image.resize), PSNR per image in numpy, averaged; to 1e-3 dB."""
    import tensorflow as tf

    from tfsynth.data import pipelines, transforms

    _, data_dir, path = sr_export
    count = 4
    run_cli("tfsynth.evaluate", f"--saved_model=sr:{path}", f"--eval_data={data_dir}", f"--out={tmp_path}",
            "--inception=none", "--input_size=label", "--split=train", f"--num_examples={count}", "--batch_size=2")
    rows = {row["model"]: row for row in json.load(open(tmp_path / "report.json"))["rows"]}
    bicubic_row = rows["bicubic x4 (sr's inputs)"]
    assert {"psnr_y", "ssim_y"} <= set(rows["sr"]) and {"psnr", "ssim", "psnr_y", "ssim_y"} <= set(bicubic_row)

    split = pipelines.load_split(data_dir, "train")
    batch = next(iter(pipelines.make_dataset(split, batch_size=count, shuffle=False, repeat=False,
                                             with_label=False, drop_remainder=False)))
    high = batch["image"].numpy()
    low = transforms.degrade_for_super_resolution(high, 4)
    upsampled = tf.image.resize(tf.cast(low, tf.float32), high.shape[1:3], method="bicubic").numpy()
    upsampled = np.clip(np.round(upsampled), 0, 255)
    mse = np.mean((upsampled - high.astype(np.float64)) ** 2, axis=(1, 2, 3))
    direct = float(np.mean(10 * np.log10(255.0**2 / mse)))
    assert bicubic_row["psnr"] == pytest.approx(direct, abs=1e-3)
    # Bicubic is a real baseline on these scenes; an untrained network is far below it.
    assert bicubic_row["psnr"] > rows["sr"]["psnr"]


@pytest.mark.cli
def test_evaluate_takes_photos_of_several_sizes_batching_each_size_apart(sr_export, run_cli, tmp_path):
    """A folder of photos as they come (three sizes in one split): every photo is scored at its
    own size; the bicubic row is the mean of the per-photo PSNRs."""
    import tensorflow as tf
    from PIL import Image

    from tfsynth.data import transforms

    _, _, path = sr_export
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos" / "test"
    folder.mkdir(parents=True)
    photos = [rng.integers(0, 255, size + (3,), dtype=np.uint8) for size in
              [(32, 32), (32, 48), (32, 32), (48, 32), (32, 48)]]
    for index, photo in enumerate(photos):
        Image.fromarray(photo).save(folder / f"p{index}.png")
    run_cli("tools/build_tfrecords.py", "--format=image_folder", f"--src={tmp_path / 'photos'}",
            f"--out={tmp_path / 'data'}")
    run_cli("tfsynth.evaluate", f"--saved_model=sr:{path}", f"--eval_data={tmp_path / 'data'}", "--split=test",
            f"--out={tmp_path / 'eval'}", "--inception=none", "--input_size=label", "--batch_size=2")
    report = json.load(open(tmp_path / "eval" / "report.json"))
    assert report["meta"]["examples"] == len(photos)
    direct = []
    for photo in photos:
        low = transforms.degrade_for_super_resolution(photo[None], 4)
        upsampled = tf.image.resize(tf.cast(low, tf.float32), photo.shape[:2], method="bicubic").numpy()
        mse = np.mean((np.clip(np.round(upsampled), 0, 255) - photo.astype(np.float64)) ** 2)
        direct.append(10 * np.log10(255.0**2 / mse))
    bicubic_row = {row["model"]: row for row in report["rows"]}["bicubic x4 (sr's inputs)"]
    assert bicubic_row["psnr"] == pytest.approx(float(np.mean(direct)), abs=1e-3)
