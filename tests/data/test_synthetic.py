"""Tests of the built-in procedural street scenes (tfsynth.data.synthetic)."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import labels as CITYSCAPES_LABELS
from PIL import Image

from tfsynth.data import synthetic

ID = {label.name: label.id for label in CITYSCAPES_LABELS}
OFFICIAL_IDS = {label.id for label in CITYSCAPES_LABELS if 0 <= label.id <= 33}
THING_IDS = sorted(label.id for label in CITYSCAPES_LABELS if label.hasInstances)
COLOR_OF = {label.id: label.color for label in CITYSCAPES_LABELS if label.id >= 0}
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def scenes(count, height=64, width=128, seed=0):
    return [synthetic.render_scene(seed, index, height, width) for index in range(count)]


@pytest.fixture(scope="module")
def batch():
    return scenes(8)


def mean_color(scene, name):
    mask = scene.label == ID[name]
    return scene.image[mask].astype(np.float64).mean(0) if mask.sum() >= 10 else None


# ----------------------------------------------------------------------------- determinism


@pytest.mark.unit
def test_same_arguments_give_identical_scenes():
    a, b = (synthetic.render_scene(3, 7, 64, 128) for _ in range(2))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    np.testing.assert_array_equal(a.instance, b.instance)
    assert a.key == b.key == "synthetic_s3_000007"


@pytest.mark.unit
@pytest.mark.parametrize("seed, index", [(3, 8), (4, 7)])
def test_other_index_or_seed_gives_other_scene(seed, index):
    reference = synthetic.render_scene(3, 7, 64, 128)
    other = synthetic.render_scene(seed, index, 64, 128)
    assert not np.array_equal(reference.image, other.image)
    assert not np.array_equal(reference.label, other.label)
    assert other.key == f"synthetic_s{seed}_{index:06d}"


@pytest.mark.unit
def test_layout_does_not_depend_on_size():
    for index in range(3):
        small = synthetic.render_scene(0, index, 64, 128).label
        large = synthetic.render_scene(0, index, 256, 512).label
        shrunk = np.asarray(Image.fromarray(large).resize((128, 64), Image.NEAREST))
        assert (shrunk == small).mean() > 0.9


@pytest.mark.unit
def test_generate_yields_the_requested_indices():
    made = list(synthetic.generate(3, 32, 64, seed=2, start=5))
    assert [scene.key for scene in made] == [f"synthetic_s2_{i:06d}" for i in (5, 6, 7)]
    np.testing.assert_array_equal(made[1].image, synthetic.render_scene(2, 6, 32, 64).image)
    assert list(synthetic.generate(0, 32, 64)) == []


# ----------------------------------------------------------------------------- arrays


@pytest.mark.parametrize("height, width", [(32, 32), (32, 64), (64, 128), (96, 96), (33, 65),
                                           (100, 40)])
@pytest.mark.unit
def test_shapes_and_dtypes(height, width):
    scene = synthetic.render_scene(1, 2, height, width)
    assert scene.image.shape == (height, width, 3) and scene.image.dtype == np.uint8
    assert scene.label.shape == (height, width) and scene.label.dtype == np.uint8
    assert scene.instance.shape == (height, width) and scene.instance.dtype == np.int32
    assert scene.image.std() > 10  # a picture, not a flat fill
    assert len(np.unique(scene.label)) >= 4


@pytest.mark.parametrize("args", [(0, 0, 31, 64), (0, 0, 64, 31), (-1, 0, 64, 128),
                                  (0, -1, 64, 128)])
@pytest.mark.unit
def test_bad_arguments_raise(args):
    with pytest.raises(ValueError):
        synthetic.render_scene(*args)


@pytest.mark.unit
def test_label_ids_are_official_cityscapes_label_ids(batch):
    for scene in batch + scenes(4, 33, 65, seed=9):
        assert set(np.unique(scene.label).tolist()) <= OFFICIAL_IDS


@pytest.mark.unit
def test_main_classes_appear(batch):
    seen = set().union(*(np.unique(scene.label).tolist() for scene in batch))
    for name in ("road", "sidewalk", "building", "sky", "car", "vegetation", "person", "pole",
                 "ego vehicle"):
        assert ID[name] in seen, name
    assert all((scene.label == ID["road"]).mean() > 0.15 for scene in batch)


@pytest.mark.unit
def test_instance_ids_follow_cityscapes_convention(batch):
    cars_seen = 0
    for scene in batch:
        thing = np.isin(scene.label, THING_IDS)
        np.testing.assert_array_equal(scene.instance[thing] // 1000, scene.label[thing])
        np.testing.assert_array_equal(scene.instance[~thing], scene.label[~thing])
        cars = np.unique(scene.instance[scene.label == ID["car"]])
        cars_seen += len(cars)
        assert (cars % 1000 < 100).all()
    assert cars_seen >= 2 * len(batch)  # several separately numbered cars per scene


# ----------------------------------------------------------------------------- photo statistics


@pytest.mark.unit
def test_label_is_informative_about_the_photo(batch):
    for scene in batch:
        sky, road = mean_color(scene, "sky"), mean_color(scene, "road")
        if sky is not None and road is not None:
            assert np.linalg.norm(sky - road) > 30, scene.key
        vegetation = mean_color(scene, "vegetation")
        if vegetation is not None:  # foliage is greener than asphalt, whatever the light
            assert vegetation[1] - vegetation[[0, 2]].mean() > road[1] - road[[0, 2]].mean()

        def roughness(name):  # mean step between horizontal neighbours inside the class
            inside = (scene.label[:, 1:] == ID[name]) & (scene.label[:, :-1] == ID[name])
            steps = np.abs(np.diff(scene.image.astype(np.float64), axis=1)).mean(-1)
            return steps[inside].mean()

        assert roughness("sky") < 3 < roughness("road")  # smooth sky, grainy asphalt


@pytest.mark.unit
def test_one_label_many_photos(batch):
    car_colors = [scene.image[scene.instance == car].astype(np.float64).mean(0)
                  for scene in batch for car in np.unique(scene.instance[scene.label == ID["car"]])]
    assert np.ptp(np.array(car_colors), axis=0).min() > 60
    skies = [mean_color(scene, "sky") for scene in batch + scenes(8, seed=1)]
    skies = np.array([sky for sky in skies if sky is not None])
    assert np.ptp(skies, axis=0).max() > 60  # time of day varies


# ----------------------------------------------------------------------------- files


@pytest.mark.unit
def test_write_cityscapes_layout(tmp_path):
    root = tmp_path / "cityscapes"
    names = synthetic.write_cityscapes_layout(root, 2, 32, 64, seed=1, split="val",
                                              city="testville")
    assert names == ["testville_000000_000000", "testville_000000_000001"]
    written = {os.path.relpath(os.path.join(folder, name), root)
               for folder, _, files in os.walk(root) for name in files}
    expected = set()
    for base in names:
        expected.add(os.path.join("leftImg8bit", "val", "testville", f"{base}_leftImg8bit.png"))
        for kind in ("labelIds", "instanceIds", "color"):
            expected.add(os.path.join("gtFine", "val", "testville", f"{base}_gtFine_{kind}.png"))
    assert written == expected

    for index, base in enumerate(names):
        scene = synthetic.render_scene(1, index, 32, 64)
        gt = root / "gtFine" / "val" / "testville"
        files = {"photo": (root / "leftImg8bit" / "val" / "testville" / f"{base}_leftImg8bit.png",
                           "RGB", scene.image),
                 "label": (gt / f"{base}_gtFine_labelIds.png", "L", scene.label),
                 "instance": (gt / f"{base}_gtFine_instanceIds.png", "I;16", scene.instance),
                 "color": (gt / f"{base}_gtFine_color.png", "RGB",
                           np.array([COLOR_OF[i] for i in range(34)], np.uint8)[scene.label])}
        for what, (path, mode, want) in files.items():
            with Image.open(path) as image:
                assert image.format == "PNG" and image.mode == mode and image.size == (64, 32), what
                np.testing.assert_array_equal(np.asarray(image).astype(want.dtype), want, what)


# ----------------------------------------------------------------------------- cost


@pytest.mark.cli
def test_no_tensorflow_import():
    code = "import sys, tfsynth.data.synthetic; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT).returncode == 0


@pytest.mark.unit
def test_small_scenes_render_fast():
    synthetic.render_scene(0, 0, 64, 128)
    start = time.process_time()
    scenes(10)
    assert (time.process_time() - start) / 10 < 0.1  # a few ms is typical; generous for CI
