"""The pix2pix_ab converter format (pix2pix's side-by-side A|B files) and the Cityscapes
256x256 route to the same pairs, through the real tool."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from cli_support import run_module
from tfsynth.data import labels, sources, synthetic, tfrecord
from tfsynth.data.tfrecord import DataError

pytestmark = pytest.mark.family("pix2pix")

TOOL = os.path.join("tools", "build_tfrecords.py")
SIZE = 64


def run_tool(*args, timeout=120):
    return run_module(os.environ.get("TFSYNTH_CACHE", ""), TOOL, *args, check=False, timeout=timeout)


def write_ab(root, split="train", count=3, seed=0, size=SIZE, **jpeg_options):
    """Cityscapes-style AB JPEGs as pix2pix makes them: photo (A) | colour label (B).

    Returns the scenes, in file order.
    """
    folder = os.path.join(root, split)
    os.makedirs(folder, exist_ok=True)
    scenes = []
    for index in range(count):
        scene = synthetic.render_scene(seed, index, size, size)
        pair = np.concatenate([scene.image, labels.colorize(scene.label, "cityscapes35")], axis=1)
        Image.fromarray(pair).save(os.path.join(folder, f"{index}.jpg"), **jpeg_options)
        scenes.append(scene)
    return scenes


def canonical_ids(ids):
    """What colour coding keeps of an id map: classes sharing a colour become the lowest id."""
    return labels.ids_from_colors(labels.colorize(ids, "cityscapes35"), "cityscapes35")


def read_split(data_dir, split, **parse_options):
    import tensorflow as tf

    records = tf.data.TFRecordDataset(tfrecord.list_shards(data_dir, split))
    return [{name: value.numpy() for name, value in tfrecord.parse(record, **parse_options).items()}
            for record in records]


def halves(path):
    pair = np.asarray(Image.open(path).convert("RGB"))
    width = pair.shape[1] // 2
    return pair[:, :width], pair[:, width:]


# ----------------------------------------------------------------------------- the reader

@pytest.mark.unit
def test_labels_to_photo_btoa_maps_colours_to_ids(tmp_path):
    # pix2pix's own setting: JPEG quality 100 without chroma subsampling -> every id survives.
    scenes = write_ab(tmp_path, quality=100, subsampling=0)
    examples = [lazy.read() for lazy in sources.pix2pix_ab(str(tmp_path), "train", "cityscapes35", "BtoA")]
    assert [e.key for e in examples] == [os.path.join("train", f"{i}.jpg") for i in range(3)]
    for index, (example, scene) in enumerate(zip(examples, scenes)):
        photo, _ = halves(tmp_path / "train" / f"{index}.jpg")
        np.testing.assert_array_equal(example.image, photo)  # the output half, as decoded
        np.testing.assert_array_equal(example.label, canonical_ids(scene.label))
        assert example.target is None


@pytest.mark.unit
def test_colour_to_id_mapping_survives_lossy_jpeg(tmp_path):
    scenes = write_ab(tmp_path, quality=75)  # 4:2:0 chroma: colours bleed across edges
    examples = [lazy.read() for lazy in sources.pix2pix_ab(str(tmp_path), "train", "cityscapes35", "BtoA")]
    for example, scene in zip(examples, scenes):
        expected = canonical_ids(scene.label)
        interior = ndimage.maximum_filter(expected, 5) == ndimage.minimum_filter(expected, 5)
        agree = example.label == expected
        assert agree.mean() > 0.9 and agree[interior].mean() > 0.995, (agree.mean(), agree[interior].mean())


@pytest.mark.unit
def test_direction_picks_the_input_half_and_photo_pairs_use_target(tmp_path):
    write_ab(tmp_path, count=1, quality=95)
    photo, coloured = halves(tmp_path / "train" / "0.jpg")
    # label_space=None: photo -> photo; image is always the half to be generated.
    (a_to_b,) = [lazy.read() for lazy in sources.pix2pix_ab(str(tmp_path), "train", None, "AtoB")]
    np.testing.assert_array_equal(a_to_b.image, coloured)
    np.testing.assert_array_equal(a_to_b.target, photo)
    assert a_to_b.label is None
    (b_to_a,) = [lazy.read() for lazy in sources.pix2pix_ab(str(tmp_path), "train", None, "BtoA")]
    np.testing.assert_array_equal(b_to_a.image, photo)
    np.testing.assert_array_equal(b_to_a.target, coloured)
    # A photo is not a colour-coded label: the wrong direction is caught, naming the file.
    (wrong,) = sources.pix2pix_ab(str(tmp_path), "train", "cityscapes35", "AtoB")
    with pytest.raises(DataError, match=r"0\.jpg.*direction"):
        wrong.read()


@pytest.mark.unit
def test_reader_errors_name_the_file_or_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        sources.pix2pix_ab(str(tmp_path / "nowhere"), "train", None, "AtoB")
    with pytest.raises(DataError, match="no val folder"):
        sources.pix2pix_ab(str(tmp_path), "val", None, "AtoB")
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match=r"train: split 'train' has no examples"):
        sources.pix2pix_ab(str(tmp_path), "train", None, "AtoB")
    Image.fromarray(np.zeros((8, 17, 3), np.uint8)).save(tmp_path / "train" / "odd.png")
    (odd,) = sources.pix2pix_ab(str(tmp_path), "train", None, "AtoB")
    with pytest.raises(DataError, match=r"odd\.png: width 17 is odd"):
        odd.read()


# ----------------------------------------------------------------------------- the tool

@pytest.mark.cli
def test_cli_writes_label_records_and_dataset_json(tmp_path):
    src, out = tmp_path / "ab", tmp_path / "out"
    scenes = write_ab(src, quality=100, subsampling=0)
    write_ab(src, split="val", count=1, seed=1, quality=100, subsampling=0)
    result = run_tool("--format=pix2pix_ab", f"--src={src}", f"--out={out}", "--direction=BtoA")
    assert result.returncode == 0, result.stderr
    info = json.load(open(out / "dataset.json"))
    assert info["format"] == "pix2pix_ab" and info["label_space"] == "cityscapes35"
    assert info["splits"] == {"train": 3, "val": 1} and info["direction"] == "BtoA"
    assert info["image_size"] == [SIZE, SIZE]
    records = read_split(str(out), "train", num_classes=35)
    for record, scene in zip(records, scenes):
        np.testing.assert_array_equal(record["label"], canonical_ids(scene.label))
        assert record["image"].shape == (SIZE, SIZE, 3)


@pytest.mark.cli
def test_cli_photo_pairs_store_the_input_as_target(tmp_path):
    src, out = tmp_path / "ab", tmp_path / "out"
    write_ab(src, count=2, quality=95)
    result = run_tool("--format=pix2pix_ab", f"--src={src}", f"--out={out}", "--direction=AtoB",
                      "--label_space=none", "--splits=train")
    assert result.returncode == 0, result.stderr
    info = json.load(open(out / "dataset.json"))
    assert info["label_space"] is None and info["splits"] == {"train": 2}
    (first, _) = read_split(str(out), "train", with_target=True)
    photo, coloured = halves(src / "train" / "0.jpg")
    np.testing.assert_array_equal(first["target"], photo)
    np.testing.assert_array_equal(first["image"], coloured)
    assert "label" not in first


@pytest.mark.cli
@pytest.mark.parametrize("case", ["odd_width", "empty_split", "missing_dir", "missing_split"])
def test_cli_bad_input_fails_naming_the_file_or_folder(tmp_path, case):
    src, out = tmp_path / "ab", tmp_path / "out"
    args = ["--format=pix2pix_ab", f"--src={src}", f"--out={out}", "--direction=AtoB", "--label_space=none"]
    if case == "odd_width":
        write_ab(src, count=2, quality=95)
        Image.fromarray(np.zeros((SIZE, 2 * SIZE + 1, 3), np.uint8)).save(src / "train" / "bad.png")
        expected = [os.path.join(str(src), "train", "bad.png"), "odd"]
    elif case == "empty_split":
        write_ab(src, count=1, quality=95)
        (src / "val").mkdir()
        expected = [os.path.join(str(src), "val"), "no examples"]
    elif case == "missing_dir":
        expected = [str(src), "does not exist"]
    else:
        write_ab(src, count=1, quality=95)
        args.append("--splits=train,test")
        expected = [str(src), "no test folder"]
    result = run_tool(*args)
    assert result.returncode != 0
    for text in expected:
        assert text in result.stderr, result.stderr
    assert not os.path.exists(out / "dataset.json")


@pytest.mark.cli
def test_cli_direction_is_required_and_only_for_pix2pix_ab(tmp_path):
    result = run_tool("--format=pix2pix_ab", f"--src={tmp_path}", f"--out={tmp_path / 'o'}")
    assert result.returncode != 0 and "--direction is required" in result.stderr
    result = run_tool("--format=image_folder", f"--src={tmp_path}", f"--out={tmp_path / 'o'}",
                      "--direction=AtoB")
    assert result.returncode != 0 and "--direction" in result.stderr
    result = run_tool("--format=paired_folders", f"--src={tmp_path}", f"--out={tmp_path / 'o'}",
                      "--label_space=none")
    assert result.returncode != 0 and "--label_space=none only applies" in result.stderr


@pytest.mark.cli
def test_cityscapes_layout_at_256x256_gives_the_same_pairs(tmp_path):
    """--format=cityscapes --size=256x256 squashes the official layout to pix2pix's 256x256
    pairs, as prepare_cityscapes_dataset.py does; its AB JPEGs converted with pix2pix_ab agree."""
    layout, ab = tmp_path / "cityscapes", tmp_path / "ab" / "train"
    synthetic.write_cityscapes_layout(layout, 2, 64, 128, seed=3, split="train")
    result = run_tool("--format=cityscapes", f"--src={layout}", f"--out={tmp_path / 'direct'}",
                      "--size=256x256", "--splits=train")
    assert result.returncode == 0, result.stderr
    direct = read_split(str(tmp_path / "direct"), "train", num_classes=35)

    # prepare_cityscapes_dataset.py: photo and colour label squashed to 256x256, photo left.
    ab.mkdir(parents=True)
    photos = sorted((layout / "leftImg8bit" / "train" / "synthville").iterdir())
    for index, photo in enumerate(photos):
        color = str(photo).replace("leftImg8bit", "gtFine").replace("_gtFine.png", "_gtFine_color.png")
        a = Image.open(photo).convert("RGB").resize((256, 256), Image.BICUBIC)
        b = Image.open(color).convert("RGB").resize((256, 256), Image.NEAREST)
        pair = np.concatenate([np.asarray(a), np.asarray(b)], axis=1)
        Image.fromarray(pair).save(ab / f"{index}.jpg", quality=100, subsampling=0)
    result = run_tool("--format=pix2pix_ab", f"--src={ab.parent}", f"--out={tmp_path / 'via_ab'}",
                      "--direction=BtoA")
    assert result.returncode == 0, result.stderr
    via_ab = read_split(str(tmp_path / "via_ab"), "train", num_classes=35)

    assert len(direct) == len(via_ab) == 2
    for one, other in zip(direct, via_ab):
        assert one["image"].shape == other["image"].shape == (256, 256, 3)
        np.testing.assert_array_equal(canonical_ids(one["label"]), other["label"])
        assert np.abs(one["image"].astype(int) - other["image"]).mean() < 2  # JPEG q100
