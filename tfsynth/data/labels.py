"""Label spaces and the one function that maps between them.

Two spaces matter for Cityscapes:

* ``cityscapes35``: the official labelIds 0..33, plus 34 for *license plate* (whose official id
  is -1), as pix2pixHD and SPADE consume them. Datasets store this space.
* ``cityscapes20``: the 19 train classes plus a void channel (index 19), as CRN consumes them.
* ``cityscapes19``: the official trainIds, 19 evaluated classes and 255 for everything else,
  as segmentation networks and the FCN-score protocol use them.

CRN built its 20 channels by exact colour equality against the 19 train-class colours of the
colour-coded ground truth, then void = 1 - sum. We reproduce that mapping literally from the
official colour table, so classes that share a train-class colour follow it (polegroup -> pole,
license plate -> car) and every other colour becomes void.

The table comes from ``cityscapesscripts.helpers.labels`` (the official package), never retyped.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

LICENSE_PLATE_ID = 34  # official id is -1; pix2pixHD/SPADE store it as 34 in a 35-class space
IGNORE_ID = 255  # the Cityscapes trainId of classes that are not evaluated


@dataclasses.dataclass(frozen=True)
class LabelSpace:
    """A set of class ids with names and display colours.

    Attributes:
      name: registry name, as written in ``dataset.json`` and model configs.
      class_names: one name per id; the id is the index.
      colors: one RGB triple per id, for colourised label images.
      ignore_id: id that metrics ignore, or None.
    """

    name: str
    class_names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    ignore_id: int | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def palette(self) -> np.ndarray:
        """uint8 [num_classes, 3] colour table."""
        return np.asarray(self.colors, dtype=np.uint8)


def _official_labels():
    from cityscapesscripts.helpers import labels as cs_labels

    return cs_labels.labels


@functools.cache
def cityscapes35() -> LabelSpace:
    by_id = {}
    for label in _official_labels():
        label_id = LICENSE_PLATE_ID if label.id == -1 else label.id
        by_id[label_id] = label
    ids = sorted(by_id)
    assert ids == list(range(35)), ids
    return LabelSpace(
        name="cityscapes35",
        class_names=tuple(by_id[i].name for i in ids),
        colors=tuple(tuple(by_id[i].color) for i in ids),
        ignore_id=0,
    )


@functools.cache
def cityscapes20() -> LabelSpace:
    train = sorted(
        (label for label in _official_labels() if 0 <= label.trainId < 255),
        key=lambda label: label.trainId,
    )
    assert [label.trainId for label in train] == list(range(19))
    return LabelSpace(
        name="cityscapes20",
        class_names=tuple(label.name for label in train) + ("void",),
        colors=tuple(tuple(label.color) for label in train) + ((0, 0, 0),),
        ignore_id=19,
    )


@functools.cache
def cityscapes19() -> LabelSpace:
    """The 19 evaluated train classes; every other class is the ignore id 255 (trainIds)."""
    twenty = cityscapes20()
    return LabelSpace(name="cityscapes19", class_names=twenty.class_names[:19],
                      colors=twenty.colors[:19], ignore_id=IGNORE_ID)


LABEL_SPACES = {"cityscapes35": cityscapes35, "cityscapes20": cityscapes20, "cityscapes19": cityscapes19}


def instance_class(instance):
    """Cityscapes instanceIds -> labelIds (a TensorFlow tensor): things are class * 1000 + k,
    stuff is the class id."""
    import tensorflow as tf

    instance = tf.cast(instance, tf.int64)
    return tf.where(instance >= 1000, instance // 1000, instance)


def get_label_space(name: str) -> LabelSpace:
    """Returns the label space called ``name``; an unknown name lists the valid ones."""
    try:
        return LABEL_SPACES[name]()
    except KeyError:
        raise ValueError(
            f"unknown label space {name!r}; valid: {', '.join(sorted(LABEL_SPACES))}"
        ) from None


@functools.cache
def _cityscapes35_to_20() -> np.ndarray:
    """labelId -> CRN channel, by exact colour match against the 19 train colours."""
    source, target = cityscapes35(), cityscapes20()
    void = target.num_classes - 1
    train_colors = {color: index for index, color in enumerate(target.colors[:void])}
    return np.asarray([train_colors.get(color, void) for color in source.colors], np.uint8)


@functools.cache
def _cityscapes35_to_train_ids() -> np.ndarray:
    """labelId -> official trainId; 255 where the table says -1 (license plate) or 255."""
    table = np.full(LICENSE_PLATE_ID + 1, IGNORE_ID, np.uint8)
    for label in _official_labels():
        if 0 <= label.trainId < 19:
            table[LICENSE_PLATE_ID if label.id == -1 else label.id] = label.trainId
    return table


def mapping_table(source: str, target: str) -> np.ndarray:
    """uint8 lookup table ``lut`` such that ``target_ids = lut[source_ids]``.

    Raises:
      ValueError: when no mapping between the two spaces is defined.
    """
    if source == target:
        return np.arange(get_label_space(source).num_classes, dtype=np.uint8)
    if (source, target) == ("cityscapes35", "cityscapes20"):
        return _cityscapes35_to_20()
    if (source, target) == ("cityscapes35", "cityscapes19"):
        return _cityscapes35_to_train_ids()
    raise ValueError(f"no label mapping from {source!r} to {target!r}")


def colorize(ids: np.ndarray, space: str | LabelSpace) -> np.ndarray:
    """uint8 [..., 3] colour image of an id map (ids out of range are drawn black)."""
    space = get_label_space(space) if isinstance(space, str) else space
    palette = np.concatenate([space.palette(), np.zeros((256 - space.num_classes, 3), np.uint8)])
    return palette[np.asarray(ids, dtype=np.uint8)]


def ids_from_colors(rgb: np.ndarray, space: str | LabelSpace) -> np.ndarray:
    """Maps a colour-coded label image to ids by the nearest palette colour.

    Nearest rather than exact, because colour label files in the wild (pix2pix's Cityscapes
    AB pairs) are JPEG-compressed. Where several ids share a colour the lowest id wins.
    """
    space = get_label_space(space) if isinstance(space, str) else space
    palette = space.palette().astype(np.int32)
    # First occurrence of each distinct colour, so shared colours resolve to the lowest id.
    _, first = np.unique(palette, axis=0, return_index=True)
    first = np.sort(first)
    pixels = np.asarray(rgb, dtype=np.int32).reshape(-1, 1, 3)
    distance = np.square(pixels - palette[first][None]).sum(-1)
    return first[np.argmin(distance, axis=1)].astype(np.uint8).reshape(np.shape(rgb)[:-1])


def ids_from_exact_colors(rgb: np.ndarray, space: str | LabelSpace) -> np.ndarray:
    """int16 ids of a colour-coded label image drawn exactly in ``space``'s palette; -1 where a
    pixel is no palette colour. Where several ids share a colour the lowest id wins."""
    space = get_label_space(space) if isinstance(space, str) else space

    def code(colors):
        colors = np.asarray(colors, np.int32)
        return (colors[..., 0] << 16) | (colors[..., 1] << 8) | colors[..., 2]

    palette = code(space.palette())
    lookup = {int(color): index for index, color in reversed(list(enumerate(palette)))}  # lowest id last
    distinct, inverse = np.unique(code(rgb), return_inverse=True)
    ids = np.asarray([lookup.get(int(color), -1) for color in distinct], np.int16)
    return ids[inverse].reshape(np.shape(rgb)[:-1])
