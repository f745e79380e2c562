"""Tests for tfsynth.data.labels: label spaces and CRN's cityscapes35 -> cityscapes20 mapping.

The oracle is the original CRN colour table (docs/papers.md 1(e), from CRN's
datasets/cityscapes.json), written out here by hand in trainId order.
"""

import itertools

import numpy as np
import pytest

from tfsynth.data import labels

pytestmark = pytest.mark.unit

# CRN's 19 train-class colours, trainId order (docs/papers.md 1(e)).
CRN_TRAIN_COLORS = [
    (128, 64, 128),   # 0 road
    (244, 35, 232),   # 1 sidewalk
    (70, 70, 70),     # 2 building
    (102, 102, 156),  # 3 wall
    (190, 153, 153),  # 4 fence
    (153, 153, 153),  # 5 pole
    (250, 170, 30),   # 6 traffic light
    (220, 220, 0),    # 7 traffic sign
    (107, 142, 35),   # 8 vegetation
    (152, 251, 152),  # 9 terrain
    (70, 130, 180),   # 10 sky
    (220, 20, 60),    # 11 person
    (255, 0, 0),      # 12 rider
    (0, 0, 142),      # 13 car
    (0, 0, 70),       # 14 truck
    (0, 60, 100),     # 15 bus
    (0, 80, 100),     # 16 train
    (0, 0, 230),      # 17 motorcycle
    (119, 11, 32),    # 18 bicycle
]
VOID = 19

# Cityscapes labelId -> trainId of the 19 train classes.
TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
             25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}

# The whole expected table, labelId 0..34 -> CRN channel.
EXPECTED_35_TO_20 = [
    VOID,  # 0 unlabeled (0,0,0)
    VOID,  # 1 ego vehicle
    VOID,  # 2 rectification border
    VOID,  # 3 out of roi
    VOID,  # 4 static
    VOID,  # 5 dynamic
    VOID,  # 6 ground
    0,     # 7 road
    1,     # 8 sidewalk
    VOID,  # 9 parking
    VOID,  # 10 rail track
    2,     # 11 building
    3,     # 12 wall
    4,     # 13 fence
    VOID,  # 14 guard rail
    VOID,  # 15 bridge
    VOID,  # 16 tunnel
    5,     # 17 pole
    5,     # 18 polegroup: same colour as pole
    6,     # 19 traffic light
    7,     # 20 traffic sign
    8,     # 21 vegetation
    9,     # 22 terrain
    10,    # 23 sky
    11,    # 24 person
    12,    # 25 rider
    13,    # 26 car
    14,    # 27 truck
    15,    # 28 bus
    VOID,  # 29 caravan
    VOID,  # 30 trailer
    16,    # 31 train
    17,    # 32 motorcycle
    18,    # 33 bicycle
    13,    # 34 license plate: same colour as car
]


def test_cityscapes20_colors_are_crn_colors():
    space = labels.cityscapes20()
    assert space.num_classes == 20
    assert [tuple(int(v) for v in c) for c in space.colors[:19]] == CRN_TRAIN_COLORS
    assert space.class_names[0] == "road" and space.class_names[13] == "car"
    assert space.class_names[VOID] == "void"
    assert space.palette().shape == (20, 3) and space.palette().dtype == np.uint8


def test_cityscapes35_space():
    space = labels.cityscapes35()
    assert space.num_classes == 35
    assert space.class_names[7] == "road"
    assert space.class_names[34] == "license plate"
    assert tuple(space.colors[34]) == (0, 0, 142)


def test_mapping_table_named_cases():
    table = labels.mapping_table("cityscapes35", "cityscapes20")
    assert table.dtype == np.uint8 and table.shape == (35,)
    assert table[7] == 0                 # road
    assert table[17] == 5                # pole
    assert table[18] == 5                # polegroup -> pole
    assert table[34] == 13               # license plate -> car
    assert table[26] == 13               # car
    for void_id in (29, 30, 0, 6, 10, 14, 15, 16, 9, 5, 1, 2, 3, 4):
        # caravan, trailer, unlabeled, ground, rail track, guard rail, bridge, tunnel, parking,
        # dynamic, ego vehicle, rectification border, out of roi, static
        assert table[void_id] == VOID, void_id


def test_mapping_table_full_and_train_ids():
    table = labels.mapping_table("cityscapes35", "cityscapes20")
    np.testing.assert_array_equal(table, EXPECTED_35_TO_20)
    for label_id, train_id in TRAIN_IDS.items():
        assert table[label_id] == train_id, label_id


def test_mapping_table_agrees_with_crn_colour_matching():
    # CRN's own procedure: exact colour equality against its 19 colours, else void.
    source = labels.cityscapes35()
    table = labels.mapping_table("cityscapes35", "cityscapes20")
    for label_id, color in enumerate(source.colors):
        color = tuple(int(v) for v in color)
        expected = CRN_TRAIN_COLORS.index(color) if color in CRN_TRAIN_COLORS else VOID
        assert table[label_id] == expected, (label_id, color)


def test_mapping_table_identity_and_unknown():
    np.testing.assert_array_equal(labels.mapping_table("cityscapes20", "cityscapes20"),
                                  np.arange(20))
    with pytest.raises(ValueError, match="no label mapping"):
        labels.mapping_table("cityscapes20", "cityscapes35")


def test_colorize_round_trip_cityscapes20():
    ids = np.random.default_rng(0).integers(0, 20, (2, 6, 7)).astype(np.uint8)
    rgb = labels.colorize(ids, "cityscapes20")
    assert rgb.shape == (2, 6, 7, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[ids == 13], np.tile([0, 0, 142], ((ids == 13).sum(), 1)))
    np.testing.assert_array_equal(labels.ids_from_colors(rgb, "cityscapes20"), ids)


def test_colorize_round_trip_cityscapes35_unique_colors():
    space = labels.cityscapes35()
    colors = [tuple(c) for c in space.colors]
    unique_ids = [i for i, c in enumerate(colors) if colors.count(c) == 1]
    # Shared: 0-4 black, pole/polegroup, car/license plate.
    assert sorted(set(range(35)) - set(unique_ids)) == [0, 1, 2, 3, 4, 17, 18, 26, 34]
    ids = np.array(unique_ids, np.uint8).reshape(1, -1)
    rgb = labels.colorize(ids, space)
    np.testing.assert_array_equal(labels.ids_from_colors(rgb, space), ids)
    # Shared colours resolve to the lowest id.
    shared = labels.colorize(np.array([1, 4, 18, 34], np.uint8), space)
    np.testing.assert_array_equal(labels.ids_from_colors(shared, space), [0, 0, 17, 26])


def test_colorize_out_of_range_is_black():
    rgb = labels.colorize(np.array([20, 200], np.uint8), "cityscapes20")
    np.testing.assert_array_equal(rgb, np.zeros((2, 3)))


@pytest.mark.parametrize("space_name", ["cityscapes20", "cityscapes35"])
def test_ids_from_colors_robust_to_jpeg_like_noise(space_name):
    space = labels.get_label_space(space_name)
    colors = [tuple(c) for c in space.colors]
    ids = np.array([i for i, c in enumerate(colors) if colors.index(c) == i], np.uint8)
    rng = np.random.default_rng(1)
    clean = labels.colorize(np.repeat(ids[:, None], 50, axis=1), space).astype(np.int32)
    noisy = np.clip(clean + rng.integers(-6, 7, clean.shape), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(labels.ids_from_colors(noisy, space),
                                  np.repeat(ids[:, None], 50, axis=1))
    # Worst cases: every corner of the +-6 box around every colour.
    corners = np.array(list(itertools.product((-6, 6), repeat=3)))
    boxed = np.clip(space.palette()[ids].astype(np.int32)[:, None] + corners[None], 0, 255)
    np.testing.assert_array_equal(labels.ids_from_colors(boxed.astype(np.uint8), space),
                                  np.repeat(ids[:, None], len(corners), axis=1))


def test_get_label_space_unknown_lists_valid_names():
    with pytest.raises(ValueError) as info:
        labels.get_label_space("nope")
    message = str(info.value)
    assert "nope" in message
    assert "cityscapes20" in message and "cityscapes35" in message
    assert labels.get_label_space("cityscapes20") is labels.cityscapes20()
