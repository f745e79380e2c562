"""Tests of the TFRecord conversion: schema round trip, sources, resizing, the real CLI, bad input."""

import glob
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from cli_support import run_module
from tfsynth.data import convert, sources, tfrecord
from tfsynth.data.tfrecord import DataError, Example

TOOL = os.path.join("tools", "build_tfrecords.py")
CITY = "testcity"


# ----------------------------------------------------------------------------- helpers


def run_tool(*args, timeout=120):
    return run_module(os.environ.get("TFSYNTH_CACHE", ""), TOOL, *args, check=False, timeout=timeout)


def save_png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def write_cityscapes(root, split="train", count=3, height=32, width=64, seed=0):
    """A tiny official Cityscapes layout; returns the photo, label and instance paths."""
    rng = np.random.default_rng(seed)
    files = []
    for index in range(count):
        stem = f"{CITY}_000000_{index:06d}"
        photo = os.path.join(root, "leftImg8bit", split, CITY, f"{stem}_leftImg8bit.png")
        label = os.path.join(root, "gtFine", split, CITY, f"{stem}_gtFine_labelIds.png")
        instance = os.path.join(root, "gtFine", split, CITY, f"{stem}_gtFine_instanceIds.png")
        ids = rng.integers(0, 34, (height, width), dtype=np.uint8)
        save_png(photo, rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        save_png(label, ids)
        save_png(instance, (ids.astype(np.uint16) * 1000 + index))
        files.append((photo, label, instance))
    return files


def read_split(data_dir, split, **parse_options):
    """Every record of ``split`` as numpy dicts, via the schema's own parser."""
    import tensorflow as tf

    records = tf.data.TFRecordDataset(tfrecord.list_shards(data_dir, split))
    return [{name: value.numpy() for name, value in tfrecord.parse(record, **parse_options).items()}
            for record in records]


def truncate(path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def assert_clean_failure(result, *names):
    """Non-zero exit, a one-line error naming each of ``names``, and no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    for name in names:
        assert name in error_lines[0], (name, error_lines[0])


def assert_nothing_written(out_dir):
    leftovers = glob.glob(os.path.join(out_dir, "*.tfrecord*")) + glob.glob(os.path.join(out_dir, "*.json"))
    assert not leftovers, leftovers


# ----------------------------------------------------------------------------- schema


@pytest.mark.unit
def test_schema_round_trip_png_keeps_every_array_exactly():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    label = rng.integers(0, 35, (16, 24), dtype=np.uint8)
    instance = rng.choice([7, 26001, 26002, 33065, 65535], size=(16, 24)).astype(np.int32)
    example = Example(key="a/b.png", image=image, label=label, instance=instance, target=image[::-1])
    serialized = tfrecord.serialize(example, num_classes=35)
    parsed = tfrecord.parse(serialized, num_classes=35, with_instance=True, with_target=True)
    assert parsed["key"].numpy() == b"a/b.png"
    np.testing.assert_array_equal(parsed["image"].numpy(), image)
    np.testing.assert_array_equal(parsed["label"].numpy(), label)
    np.testing.assert_array_equal(parsed["instance"].numpy(), instance)
    np.testing.assert_array_equal(parsed["target"].numpy(), image[::-1])


@pytest.mark.unit
def test_schema_round_trip_jpeg_is_close_and_label_exact():
    y, x = np.mgrid[0:32, 0:48]
    image = np.stack([x * 5, y * 7, (x + y) * 3], axis=-1).astype(np.uint8)  # smooth, JPEG-friendly
    label = (x // 12).astype(np.uint8)
    serialized = tfrecord.serialize(Example(key="k", image=image, label=label),
                                    image_format="jpeg", num_classes=35)
    parsed = tfrecord.parse(serialized, num_classes=35)
    decoded = parsed["image"].numpy().astype(np.int32)
    assert decoded.shape == image.shape
    assert np.abs(decoded - image).mean() < 3
    np.testing.assert_array_equal(parsed["label"].numpy(), label)


@pytest.mark.unit
def test_serialize_refuses_label_outside_label_space():
    example = Example(key="bad.png", image=np.zeros((4, 4, 3), np.uint8), label=np.full((4, 4), 35, np.uint8))
    with pytest.raises(DataError, match="bad.png"):
        tfrecord.serialize(example, num_classes=35)


@pytest.mark.unit
def test_list_shards_rejects_missing_split_and_incomplete_shard_set(tmp_path):
    out = str(tmp_path)
    examples = [Example(key=str(i), image=np.full((4, 4, 3), i, np.uint8)) for i in range(3)]
    with tfrecord.ShardedWriter(out, "train", 3) as writer:
        for example in examples:
            writer.write(example)
    assert len(tfrecord.list_shards(out, "train")) == 3
    with pytest.raises(DataError, match="val"):
        tfrecord.list_shards(out, "val")
    os.remove(os.path.join(out, "train-00001-of-00003.tfrecord"))
    with pytest.raises(DataError, match="incomplete"):
        tfrecord.list_shards(out, "train")


# ----------------------------------------------------------------------------- resizing


@pytest.mark.unit
def test_resize_uses_nearest_for_ids_and_antialiased_bicubic_for_photos():
    rng = np.random.default_rng(2)
    label = rng.choice(np.array([0, 7, 26, 33], np.uint8), size=(64, 128))
    instance = rng.choice(np.array([7, 26000, 26001, 65535]), size=(64, 128)).astype(np.int32)
    checkerboard = ((np.indices((64, 128)).sum(0) % 2) * 255).astype(np.uint8)
    photo = np.repeat(checkerboard[..., None], 3, axis=-1)
    resized = sources.resize_example(Example("k", photo, label, instance), (16, 32))
    assert resized.image.shape == (16, 32, 3)
    assert resized.label.shape == resized.instance.shape == (16, 32)
    assert resized.label.dtype == np.uint8
    assert set(np.unique(resized.label)) <= {0, 7, 26, 33}
    assert set(np.unique(resized.instance)) <= {7, 26000, 26001, 65535}
    # Nearest picks source pixels: every output id is the id of the pixel it samples.
    expected = np.asarray(Image.fromarray(label).resize((32, 16), Image.NEAREST))
    np.testing.assert_array_equal(resized.label, expected)
    # A 1-pixel checkerboard averages to grey only with an antialiasing (widened) kernel.
    assert np.abs(resized.image.astype(np.float64) - 127.5).max() < 16


@pytest.mark.unit
def test_default_num_shards():
    assert convert.default_num_shards(1) == 1
    assert convert.default_num_shards(200) == 1
    assert convert.default_num_shards(201) == 2
    assert convert.default_num_shards(2975) == 15


# ----------------------------------------------------------------------------- sources in process


@pytest.mark.unit
def test_cityscapes_source_is_sorted_and_reads_ids(tmp_path):
    files = write_cityscapes(str(tmp_path), count=3)
    listed = sources.cityscapes(str(tmp_path), "train")
    assert [item.key for item in listed] == [os.path.relpath(photo, tmp_path) for photo, _, _ in files]
    example = listed[1].read()
    np.testing.assert_array_equal(example.label, np.asarray(Image.open(files[1][1])))
    np.testing.assert_array_equal(example.instance, np.asarray(Image.open(files[1][2])).astype(np.int32))
    assert example.instance.max() > 255


@pytest.mark.unit
def test_cityscapes_missing_label_names_the_file(tmp_path):
    files = write_cityscapes(str(tmp_path), count=2)
    os.remove(files[0][1])
    with pytest.raises(DataError, match=re.escape(files[0][1])):
        sources.cityscapes(str(tmp_path), "train")[0].read()


@pytest.mark.unit
def test_image_folder_domains_are_splits(tmp_path):
    for domain, count in (("trainA", 2), ("trainB", 3)):
        for index in range(count):
            save_png(str(tmp_path / "src" / domain / f"{index}.png"), np.full((8, 12, 3), index, np.uint8))
    (tmp_path / "src" / "trainA" / "notes.txt").write_text("not an image")
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    splits = {split: sources.image_folder(src, split) for split in sources.discover_splits("image_folder", src)}
    info = convert.convert_dataset(splits, out, format_name="image_folder", source=src,
                                   label_space=None, log=lambda line: None)
    assert info["splits"] == {"trainA": 2, "trainB": 3}
    assert info["label_space"] is None and info["has_instance"] is False
    assert info["image_size"] == [8, 12]
    records = read_split(out, "trainB")
    assert [r["key"] for r in records] == [b"trainB/0.png", b"trainB/1.png", b"trainB/2.png"]
    assert "label" not in records[0]


@pytest.mark.unit
def test_paired_folders_reads_labels_and_checks_their_range(tmp_path):
    src, out = tmp_path / "src", str(tmp_path / "out")
    label = np.arange(6 * 8, dtype=np.uint8).reshape(6, 8) % 19
    save_png(str(src / "train" / "images" / "a.jpg"), np.zeros((6, 8, 3), np.uint8))
    save_png(str(src / "train" / "labels" / "a.png"), label)
    info = convert.convert_dataset({"train": sources.paired_folders(str(src), "train", "cityscapes20")},
                                   out, format_name="paired_folders", source=str(src),
                                   label_space="cityscapes20", log=lambda line: None)
    assert info["splits"] == {"train": 1} and info["label_space"] == "cityscapes20"
    np.testing.assert_array_equal(read_split(out, "train", num_classes=20)[0]["label"], label)
    save_png(str(src / "train" / "labels" / "a.png"), np.full((6, 8), 20, np.uint8))  # ids are 0..19
    with pytest.raises(DataError, match=re.escape(str(src / "train" / "labels" / "a.png"))):
        sources.paired_folders(str(src), "train", "cityscapes20")[0].read()


@pytest.mark.unit
def test_failed_split_leaves_no_shards_and_skip_bad_counts(tmp_path):
    files = write_cityscapes(str(tmp_path / "src"), count=4)
    truncate(files[2][0])
    listed = sources.cityscapes(str(tmp_path / "src"), "train")
    out = str(tmp_path / "out")
    with pytest.raises(DataError, match=re.escape(files[2][0])):
        convert.convert(listed, out, "train", 2, label_space="cityscapes35", log=lambda line: None)
    assert_nothing_written(out)
    logged = []
    result = convert.convert(listed, out, "train", 2, label_space="cityscapes35", skip_bad=True,
                             log=logged.append)
    assert (result.count, result.skipped) == (3, 1)
    assert any(line.startswith("skipped") and files[2][0] in line for line in logged)


@pytest.mark.unit
def test_convert_replaces_old_shards_and_logs_progress(tmp_path):
    listed = [sources.LazyExample(str(i), lambda i=i: Example(str(i), np.full((4, 6, 3), i, np.uint8)))
              for i in range(5)]
    out = str(tmp_path)
    convert.convert(listed, out, "train", 3, log=lambda line: None)
    logged = []
    result = convert.convert(listed[:2], out, "train", 9, log=logged.append)  # clamped to 2 shards
    assert sorted(os.listdir(out)) == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert [r["key"] for r in read_split(out, "train")] == [b"0", b"1"]
    assert result.count == 2 and result.image_sizes == {(4, 6)}
    assert logged[-1].startswith("train: 2/2 (100%)")


# ----------------------------------------------------------------------------- the real CLI


@pytest.mark.cli
def test_cli_synthetic_cityscapes_layout_round_trip(tmp_path):
    raw, out = str(tmp_path / "raw"), str(tmp_path / "tfr")
    made = run_tool("--format=synthetic", "--layout=cityscapes", f"--out={raw}", "--size=64x128",
                    "--num_examples=5", "--seed=3")
    assert made.returncode == 0, made.stderr
    assert os.path.isdir(os.path.join(raw, "leftImg8bit", "val"))

    result = run_tool("--format=cityscapes", f"--src={raw}", f"--out={out}", "--size=32x64",
                      "--num_shards=2")
    assert result.returncode == 0, result.stderr
    assert out in result.stdout  # the summary names the output folder

    info = tfrecord.read_dataset_json(out)
    assert info["format"] == "cityscapes" and info["label_space"] == "cityscapes35"
    assert info["splits"] == {"train": 5, "val": 1}
    assert info["skipped"] == {"train": 0, "val": 0}
    assert info["image_size"] == [32, 64] and info["has_instance"] is True
    assert info["source"] == os.path.abspath(raw) and info["image_format"] == "png"
    shard_names = sorted(name for name in os.listdir(out) if name.endswith(".tfrecord"))
    assert shard_names == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord",
                           "val-00000-of-00001.tfrecord"]
    assert not glob.glob(os.path.join(out, "*.partial"))

    for split, count in info["splits"].items():
        records = read_split(out, split, num_classes=35, with_instance=True)
        assert len(records) == count
        for record in records:
            photo_path = os.path.join(raw, record["key"].decode())
            gt_prefix = photo_path.replace("leftImg8bit", "gtFine", 1)[: -len("_leftImg8bit.png")]
            source_label = Image.open(gt_prefix + "_gtFine_labelIds.png")
            source_instance = Image.open(gt_prefix + "_gtFine_instanceIds.png")
            assert source_label.size == (128, 64)
            np.testing.assert_array_equal(record["label"],
                                          np.asarray(source_label.resize((64, 32), Image.NEAREST)))
            np.testing.assert_array_equal(record["instance"],
                                          np.asarray(source_instance.resize((64, 32), Image.NEAREST)))
            assert set(np.unique(record["label"])) <= set(np.unique(np.asarray(source_label)))
            assert record["image"].shape == (32, 64, 3)


@pytest.mark.cli
def test_cli_synthetic_tfrecord_layout_splits_differ(tmp_path):
    out = str(tmp_path / "tfr")
    result = run_tool("--format=synthetic", f"--out={out}", "--size=32x64", "--num_examples=10")
    assert result.returncode == 0, result.stderr
    info = tfrecord.read_dataset_json(out)
    assert info["splits"] == {"train": 10, "val": 1} and info["source"] == "synthetic"
    assert info["has_instance"] is True and info["image_size"] == [32, 64]
    train = read_split(out, "train", num_classes=35, with_instance=True)
    val = read_split(out, "val", num_classes=35, with_instance=True)
    assert not any(np.array_equal(val[0]["image"], record["image"]) for record in train)


@pytest.mark.cli
@pytest.mark.parametrize("defect", ["truncated_photo", "size_mismatch", "label_id_200", "missing_instance"])
def test_cli_bad_example_fails_naming_the_file(tmp_path, defect):
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    photo, label, instance = write_cityscapes(src, count=3)[1]
    if defect == "truncated_photo":
        truncate(photo)
        culprit = photo
    elif defect == "size_mismatch":
        save_png(label, np.zeros((30, 64), np.uint8))
        culprit = label
    elif defect == "label_id_200":
        ids = np.asarray(Image.open(label)).copy()
        ids[3, 5] = 200
        save_png(label, ids)
        culprit = label
    else:
        os.remove(instance)
        culprit = instance
    result = run_tool("--format=cityscapes", f"--src={src}", f"--out={out}", "--splits=train")
    assert_clean_failure(result, culprit)
    assert_nothing_written(out)


@pytest.mark.cli
def test_cli_missing_src_and_empty_split_fail_naming_the_folder(tmp_path):
    missing = str(tmp_path / "nowhere")
    result = run_tool("--format=cityscapes", f"--src={missing}", f"--out={tmp_path / 'out'}")
    assert_clean_failure(result, missing)

    src = str(tmp_path / "src")
    write_cityscapes(src, split="train", count=1)
    os.makedirs(os.path.join(src, "leftImg8bit", "val"))
    os.makedirs(os.path.join(src, "gtFine", "val"))
    result = run_tool("--format=cityscapes", f"--src={src}", f"--out={tmp_path / 'out'}")
    assert_clean_failure(result, os.path.join(src, "leftImg8bit", "val"), "no examples")

    result = run_tool("--format=cityscapes", f"--src={src}", f"--out={tmp_path / 'out'}", "--splits=test")
    assert_clean_failure(result, "leftImg8bit/test", src)
    assert_nothing_written(str(tmp_path / "out"))


@pytest.mark.cli
def test_cli_skip_bad_skips_exactly_the_bad_examples(tmp_path):
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    files = write_cityscapes(src, count=5)
    truncate(files[1][0])
    ids = np.asarray(Image.open(files[3][1])).copy()
    ids[0, 0] = 200
    save_png(files[3][1], ids)
    result = run_tool("--format=cityscapes", f"--src={src}", f"--out={out}", "--splits=train", "--skip_bad")
    assert result.returncode == 0, result.stderr
    info = tfrecord.read_dataset_json(out)
    assert info["splits"] == {"train": 3} and info["skipped"] == {"train": 2}
    keys = [record["key"].decode() for record in read_split(out, "train", num_classes=35, with_instance=True)]
    assert keys == [os.path.relpath(files[i][0], src) for i in (0, 2, 4)]
    skip_lines = [line for line in result.stdout.splitlines() if line.startswith("skipped")]
    assert len(skip_lines) == 2
    assert files[1][0] in skip_lines[0] and files[3][1] in skip_lines[1]


@pytest.mark.cli
def test_cli_help_is_fast_and_bad_flags_fail():
    start = time.monotonic()
    result = run_tool("--help")
    help_seconds = time.monotonic() - start
    assert result.returncode == 0
    for flag in ("--format", "--src", "--out", "--size", "skip_bad", "--num_shards", "--layout"):
        assert flag in result.stdout
    # Far below a TensorFlow import, but no absolute threshold: compare within this run.
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, check=True)
    assert help_seconds < time.monotonic() - start

    assert run_tool("--no_such_flag").returncode != 0
    bad_size = run_tool("--format=synthetic", "--out=/tmp/x", "--size=256by512")
    assert bad_size.returncode != 0 and "--size" in bad_size.stderr
    bad_format = run_tool("--format=pix2pix", "--out=/tmp/x")
    assert bad_format.returncode != 0 and "format" in bad_format.stderr
    no_src = run_tool("--format=cityscapes", "--out=/tmp/x")
    assert no_src.returncode != 0 and "--src" in no_src.stderr


@pytest.mark.unit
def test_build_synthetic_caches(tmp_path):
    out = str(tmp_path / "synthetic")
    assert convert.build_synthetic(out, 3, 1, 32, 64, seed=5, log=lambda line: None) == out
    info = tfrecord.read_dataset_json(out)
    assert info["splits"] == {"train": 3, "val": 1} and info["label_space"] == "cityscapes35"
    assert info["has_instance"] is True and info["seed"] == 5
    stamp = os.path.getmtime(os.path.join(out, tfrecord.DATASET_JSON))
    convert.build_synthetic(out, 3, 1, 32, 64, seed=5, log=lambda line: None)
    assert os.path.getmtime(os.path.join(out, tfrecord.DATASET_JSON)) == stamp
    convert.build_synthetic(out, 4, 1, 32, 64, seed=5, log=lambda line: None)
    assert tfrecord.read_dataset_json(out)["splits"] == {"train": 4, "val": 1}
    assert not glob.glob(str(tmp_path / "*.tmp-*"))


@pytest.mark.unit
def test_a_16_bit_grey_photo_is_read_at_its_depth_by_the_converter_and_infer(tmp_path):
    from tfsynth import infer

    levels = np.array([[0, 257, 32896], [40000, 65278, 65535]], dtype=np.uint16)
    path = tmp_path / "grey16.png"
    Image.fromarray(levels).save(path)
    assert Image.open(path).mode.startswith("I")  # what PIL makes of a 16-bit PNG
    expected = np.repeat(np.round(levels / 257.0).astype(np.uint8)[..., None], 3, axis=2)
    np.testing.assert_array_equal(sources.read_image(str(path)), expected)
    np.testing.assert_array_equal(infer.read_image(str(path), {}), expected)


@pytest.mark.unit
def test_a_file_name_that_is_not_utf8_is_a_bad_example_that_skip_bad_skips(tmp_path):
    src = tmp_path / "src" / "train"
    src.mkdir(parents=True)
    for name in (b"a.png", b"b\xff.png", b"c.png"):
        save_png(os.path.join(os.fsencode(src), name).decode("utf-8", "surrogateescape"),
                 np.full((4, 6, 3), 7, np.uint8))
    listed = sources.image_folder(str(tmp_path / "src"), "train")
    with pytest.raises(DataError, match=re.escape("b\\xff.png: the file name is not UTF-8")):
        convert.convert(listed, str(tmp_path / "out"), "train", 1, log=lambda line: None)
    logged = []
    result = convert.convert(listed, str(tmp_path / "out"), "train", 1, skip_bad=True, log=logged.append)
    assert (result.count, result.skipped) == (2, 1)
    assert any(line.startswith("skipped train/b\\xff.png") for line in logged), logged
    assert [record["key"] for record in read_split(str(tmp_path / "out"), "train")] == [b"train/a.png",
                                                                                         b"train/c.png"]


@pytest.mark.unit
def test_a_label_file_is_read_one_way_by_the_converter_infer_and_the_studio(tmp_path):

    from tfsynth import infer
    from tfsynth.data import labels
    from tfsynth.studio import scenes

    space = labels.get_label_space("cityscapes35")
    ids = np.array([[7, 7, 26, 26], [11, 11, 24, 21]], np.uint8)  # road, car, building, person, vegetation

    def palette_png(name, indices, colours):
        image = Image.fromarray(indices.astype(np.uint8), mode="P")
        image.putpalette(np.asarray(colours, np.uint8).reshape(-1).tolist())
        image.save(tmp_path / name)
        return tmp_path / name

    def readings(path):
        data = path.read_bytes()
        return [sources.read_id_map(str(path), space.num_classes, palette=space),
                infer.read_label(str(path), {"label_space": "cityscapes35"}),
                scenes.decode_label(data, "cityscapes35", "upload")]

    # Indices 0..4 in a palette of the label space's colours in another order: the colours name the classes.
    used = np.unique(ids)
    permuted = palette_png("permuted.png", np.searchsorted(used, ids), labels.colorize(used, space))
    for read in readings(permuted):
        np.testing.assert_array_equal(read, ids)
    # The label space's palette in id order, or a palette of other colours: the indices are the ids.
    in_order = palette_png("in_order.png", ids, labels.colorize(np.arange(256), space))
    foreign = palette_png("foreign.png", ids, np.random.default_rng(0).integers(0, 256, (256, 3)))
    for path in (in_order, foreign):
        for read in readings(path):
            np.testing.assert_array_equal(read, ids)
    # A photo is no label map, wherever it is given.
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (2, 4, 3), dtype=np.uint8)).save(photo)
    with pytest.raises(DataError, match="colour image"):
        sources.read_id_map(str(photo), space.num_classes, palette=space)
    with pytest.raises(infer.InferenceError, match="not colours of the cityscapes35 palette"):
        infer.read_label(str(photo), {"label_space": "cityscapes35"})
    with pytest.raises(scenes.SceneError, match="not colours of the cityscapes35 palette"):
        scenes.decode_label(photo.read_bytes(), "cityscapes35", "upload")
