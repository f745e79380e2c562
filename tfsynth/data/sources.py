"""Readers that turn datasets on disk into ``tfrecord.Example``s, one function per format.

Every reader lists the examples of one split eagerly and cheaply (file names only) and returns
them as ``LazyExample``s, whose ``read()`` decodes the files. Listing first gives the converter
a count for progress and shard sizing; reading lazily lets it skip one bad example
(``--skip_bad``) without losing the rest, since a generator cannot resume after raising.

Errors are ``tfrecord.DataError``s whose message starts with the path of the file at fault:

* listing errors (a missing root, a missing split folder, a split with no examples) concern the
  whole split and are never skippable;
* reading errors (an unreadable or truncated file, a missing companion file, sizes that differ,
  an id outside the label space) concern one example and are skippable.

Formats (``SOURCES``, at the end, maps each ``--format`` name to its reader and defaults):

* ``cityscapes``: the official layout ``ROOT/leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with
  ``ROOT/gtFine/<split>/<city>/*_gtFine_labelIds.png`` and ``*_gtFine_instanceIds.png``.
* ``paired_folders``: ``SRC/<split>/images/<stem>.png|jpg`` with ``SRC/<split>/labels/<stem>.png``
  (8-bit class ids) and, when the folder exists, ``SRC/<split>/instances/<stem>.png`` (16-bit).
* ``image_folder``: every image under ``SRC/<split>/`` (recursively), image-only records.
  Unpaired domains (``trainA/``, ``trainB/``) are simply splits.
* ``pix2pix_ab``: pix2pix's aligned files ``SRC/<split>/*.jpg|png``, each two images side by
  side (width 2W: A on the left, B on the right). ``direction`` names the input half. The
  half to be generated is stored as ``image``; the input as ``label`` ids when it is a
  colour-coded label image (mapped by nearest palette colour, since the files are JPEG), or
  as ``target`` when ``label_space`` is None (photo -> photo pairs).
* ``synthetic``: the procedural street scenes of ``tfsynth.data.synthetic``.

A new format is one more reader plus one more ``SOURCES`` entry;
``tools/build_tfrecords.py`` takes its ``--format`` choices from ``SOURCES``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import zlib
from typing import Callable

import numpy as np
from PIL import Image

from tfsynth.data import labels as label_spaces
from tfsynth.data.tfrecord import DataError, Example

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
CITYSCAPES_PHOTO_SUFFIX = "_leftImg8bit.png"
CITYSCAPES_LABEL_SUFFIX = "_gtFine_labelIds.png"
CITYSCAPES_INSTANCE_SUFFIX = "_gtFine_instanceIds.png"

SYNTHETIC_MIN_SIZE = 32  # synthetic.render_scene refuses smaller scenes; say so before rendering

# Splits of the built-in scenes differ by their seed. The offsets are far apart so that runs with
# nearby --seed values (0, 1, 2, ...) never share scenes between one run's train and another's val.
_SYNTHETIC_SPLIT_SEED_OFFSETS = {"train": 0, "val": 1_000_003, "test": 2_000_006}


@dataclasses.dataclass(frozen=True)
class LazyExample:
    """One example of a split, not read yet.

    Attributes:
      key: the name stored as ``image/key`` (a path relative to the dataset root).
      read: decodes the files; returns a ``tfrecord.Example`` or raises ``DataError``.
    """

    key: str
    read: Callable[[], Example]


# ----------------------------------------------------------------------------- file reading

def printable(path: str) -> str:
    """``path`` as text any terminal takes: bytes a file name holds that are not UTF-8 (Python
    keeps them as surrogates) shown as ``\\xNN``."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_name(path: str) -> None:
    """Raises ``DataError`` for a file name that is not UTF-8: a record key must be text."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(f"{printable(path)}: the file name is not UTF-8; rename the file") from None



def read_image(path: str) -> np.ndarray:
    """Decodes a photo to uint8 [H, W, 3]; grey and RGBA images are converted to RGB, and 16-bit
    greyscale is scaled to 8 bits (``round(v * 255 / 65535)``: PIL's own conversion clips it to
    white).

    Raises:
      DataError: naming ``path`` when the file is missing, truncated or not an image.
    """
    with _open_image(path) as image:
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            grey = np.round(np.asarray(image, dtype=np.float64) * (255.0 / 65535.0))
            return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
        if image.mode != "RGB":
            image = image.convert("RGB")
        return np.asarray(image, dtype=np.uint8)


def read_id_map(path: str, num_classes: int | None, colors=None, palette=None) -> np.ndarray:
    """Decodes a class-id label file to uint8 [H, W], checking its format and the id range.

    Labels are 8-bit single-channel PNGs (greyscale, or palette): a JPEG changes ids wherever it
    compresses, and a 16-bit or colour file holds something else.

    Args:
      path: the label file.
      num_classes: ids must be below this; None checks only that they fit in 8 bits.
      colors: a label space whose palette colour-coded label PNGs may be drawn in, exactly
        (``infer`` takes Cityscapes ``*_color.png``); None refuses colour files.
      palette: the label space a palette-mode file's colours are read in (``label_ids``).

    Raises:
      DataError: naming ``path`` and saying what was found.
    """
    with _open_image(path) as image:
        ids = label_ids(image, path, colors=colors, palette=palette or colors)
    return check_id_range(ids, path, num_classes)


def label_ids(image: Image.Image, where: str, colors=None, palette=None) -> np.ndarray:
    """The class ids of an opened label image: the one reading of a label file that the
    converter, ``infer`` and the studio share.

    A greyscale image holds the ids. A palette image holds ids as its indices, unless its colours
    are exactly ``palette``'s (a label space) in another order: then, as a person sees it, each
    colour names its class. A colour image is read by its colours when ``colors`` allows it and
    every pixel is exactly one of them; anything else is refused, saying what it is.

    Raises:
      DataError: naming ``where`` and what was found.
    """
    if image.format not in ("PNG", None):
        raise DataError(f"{where}: a {image.format} file; labels must be 8-bit single-channel PNGs of class ids "
                        "(lossy compression changes ids)")
    if image.mode == "L":
        return np.asarray(image)
    if image.mode == "P":
        indices = np.asarray(image)
        if palette is not None:
            used = np.unique(indices)
            colours = np.asarray(image.getpalette() or [], np.uint8).reshape(-1, 3)
            known = label_spaces.ids_from_exact_colors(colours[used][None], palette)[0] if used.max() < len(colours) \
                else np.full(len(used), -1)
            in_order = np.array_equal(colours[used], label_spaces.colorize(used, palette))
            if not in_order and (known >= 0).all():
                return np.asarray(known, np.int64)[np.searchsorted(used, indices)]
        return indices
    if image.mode in ("RGB", "RGBA") and colors is not None:
        return _ids_from_palette_image(where, np.asarray(image.convert("RGB")), colors)
    found = "a colour image (a photo?)" if image.mode in ("RGB", "RGBA") else f"PIL mode {image.mode} (16-bit?)"
    raise DataError(f"{where}: {found}; labels must be 8-bit single-channel PNGs of class ids")


def check_id_range(ids: np.ndarray, where: str, num_classes: int | None) -> np.ndarray:
    """``ids`` as uint8, refused (naming ``where``) when an id is outside ``num_classes``."""
    limit = 256 if num_classes is None else num_classes
    if ids.size and ids.max() >= limit:
        raise DataError(f"{where}: label id {int(ids.max())} is outside the label space (ids 0..{limit - 1})")
    return ids.astype(np.uint8)


def _ids_from_palette_image(path: str, rgb: np.ndarray, space) -> np.ndarray:
    ids = label_spaces.ids_from_exact_colors(rgb, space)
    outside = np.mean(ids < 0)
    if outside:
        raise DataError(f"{path}: {outside:.1%} of the pixels are not colours of the {space.name} palette; a colour-coded "
                        "label must be drawn exactly in it (a photo, or a JPEG-compressed label?)")
    return ids


def read_instance_map(path: str) -> np.ndarray:
    """Decodes a 16-bit instance-id PNG (class*1000+k for things) to int32 [H, W]."""
    ids = _read_single_channel(path, "instance")
    if ids.size and (ids.min() < 0 or ids.max() > 65535):
        raise DataError(f"{path}: instance ids must fit in 16 bits, got {int(ids.max())}")
    return ids.astype(np.int32)


def _open_image(path: str) -> Image.Image:
    """Opens and fully decodes ``path``, so a truncated file fails here and not later."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: file is missing")
    try:
        image = Image.open(path)
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        # PIL reports truncation as OSError and some malformed chunks as SyntaxError.
        raise DataError(f"{path}: cannot decode image ({error})") from None
    return image


def _read_single_channel(path: str, what: str) -> np.ndarray:
    # Id maps are palette ("P": indices are the ids), 8-bit grey ("L") or 16/32-bit integer ("I*").
    with _open_image(path) as image:
        if image.mode not in ("L", "P") and not image.mode.startswith("I"):
            raise DataError(
                f"{path}: {what} map must be a single-channel id image, got PIL mode {image.mode}"
                " (a colour-coded image?)")
        return np.asarray(image).astype(np.int64)


def check_same_size(image: np.ndarray, image_path: str, other: np.ndarray, other_path: str) -> None:
    """Raises DataError naming ``other_path`` when its size differs from the photo's."""
    if other.shape[:2] != image.shape[:2]:
        (h, w), (oh, ow) = image.shape[:2], other.shape[:2]
        raise DataError(f"{other_path}: size {ow}x{oh} does not match photo {image_path} size {w}x{h} "
                        "(width x height)")


# ----------------------------------------------------------------------------- resizing


def resize_example(example: Example, size: tuple[int, int]) -> Example:
    """Resizes every map of ``example`` to ``size`` = (height, width), as CRN prepared Cityscapes.

    Photos use PIL's bicubic filter, which widens its kernel when downsampling and so antialiases
    like MATLAB's ``imresize``; label and instance maps use nearest, so that no id is invented.
    The caller must have checked that the maps share one size.
    """
    height, width = size
    if example.image.shape[:2] == (height, width):
        return example

    def photo(array):
        return np.asarray(Image.fromarray(array).resize((width, height), Image.BICUBIC))

    def ids(array, dtype):
        # PIL's NEAREST on mode "I" keeps 32-bit ids intact (uint16 instances included).
        resized = Image.fromarray(array.astype(np.int32)).resize((width, height), Image.NEAREST)
        return np.asarray(resized).astype(dtype)

    return dataclasses.replace(
        example,
        image=photo(example.image),
        label=None if example.label is None else ids(example.label, np.uint8),
        instance=None if example.instance is None else ids(example.instance, np.int32),
        target=None if example.target is None else photo(example.target),
    )


# ----------------------------------------------------------------------------- formats


def cityscapes(root: str, split: str) -> list[LazyExample]:
    """Lists one split of the official Cityscapes layout, sorted by city then file name.

    Labels are in the ``cityscapes35`` space. The official labelIds files hold ids 0..33 only:
    the license plate (official id -1) is never drawn into them (cityscapesscripts'
    ``json2labelImg`` skips labels with a negative id, leaving the car beneath), so id 34 cannot
    occur, and any id above 34 is rejected as corrupt.

    Raises:
      DataError: when ``root`` or the split folders are missing, or the split is empty.
    """
    _require_dir(root, "--src")
    photo_dir = os.path.join(root, "leftImg8bit", split)
    label_dir = os.path.join(root, "gtFine", split)
    for folder, name in ((photo_dir, "leftImg8bit"), (label_dir, "gtFine")):
        if not os.path.isdir(folder):
            raise DataError(f"{root}: no {name}/{split} under it (expected the official Cityscapes layout)")
    space = label_spaces.cityscapes35()
    examples = []
    for city in sorted(os.listdir(photo_dir)):
        city_dir = os.path.join(photo_dir, city)
        if not os.path.isdir(city_dir):
            continue
        for name in sorted(os.listdir(city_dir)):
            if not name.endswith(CITYSCAPES_PHOTO_SUFFIX):
                continue
            stem = name[: -len(CITYSCAPES_PHOTO_SUFFIX)]
            photo = os.path.join(city_dir, name)
            label = os.path.join(label_dir, city, stem + CITYSCAPES_LABEL_SUFFIX)
            instance = os.path.join(label_dir, city, stem + CITYSCAPES_INSTANCE_SUFFIX)
            examples.append(LazyExample(
                key=os.path.relpath(photo, root),
                read=functools.partial(_read_labelled, root, photo, label, instance, space)))
    if not examples:
        raise DataError(f"{photo_dir}: split {split!r} has no examples (no <city>/*{CITYSCAPES_PHOTO_SUFFIX})")
    return examples


def paired_folders(src: str, split: str, label_space: str = "cityscapes35") -> list[LazyExample]:
    """Lists ``SRC/<split>/images/*`` with their ``labels/<stem>.png`` (and ``instances/``).

    Labels are 8-bit single-channel PNGs of class ids in ``label_space`` (grey or palette mode).
    Instances are optional for the whole split: when ``SRC/<split>/instances/`` exists, every
    image needs a 16-bit ``instances/<stem>.png``. Labels without an image are ignored.

    Raises:
      DataError: when the folders are missing or the split is empty.
    """
    _require_dir(src, "--src")
    split_dir = os.path.join(src, split)
    image_dir, label_dir = os.path.join(split_dir, "images"), os.path.join(split_dir, "labels")
    for folder in (image_dir, label_dir):
        if not os.path.isdir(folder):
            raise DataError(f"{src}: no {split}/{os.path.basename(folder)} under it "
                            "(expected SRC/<split>/images and SRC/<split>/labels)")
    instance_dir = os.path.join(split_dir, "instances")
    has_instances = os.path.isdir(instance_dir)
    space = label_spaces.get_label_space(label_space)
    examples = []
    for name in sorted(os.listdir(image_dir)):
        stem, extension = os.path.splitext(name)
        if extension.lower() not in IMAGE_EXTENSIONS:
            continue
        photo = os.path.join(image_dir, name)
        label = os.path.join(label_dir, stem + ".png")
        instance = os.path.join(instance_dir, stem + ".png") if has_instances else None
        examples.append(LazyExample(
            key=os.path.relpath(photo, src),
            read=functools.partial(_read_labelled, src, photo, label, instance, space)))
    if not examples:
        raise DataError(f"{image_dir}: split {split!r} has no examples (no {'/'.join(IMAGE_EXTENSIONS)} files)")
    return examples


def image_folder(src: str, split: str) -> list[LazyExample]:
    """Lists every image under ``SRC/<split>/`` (subfolders included), sorted by relative path.

    Raises:
      DataError: when the folder is missing or holds no image.
    """
    return [LazyExample(key=os.path.relpath(path, src), read=functools.partial(_read_photo_only, src, path))
            for path in _images_under(src, split)]


def _images_under(src: str, split: str) -> list[str]:
    """Every image file under ``SRC/<split>/`` (subfolders included), sorted by relative path.

    Raises:
      DataError: when the folder is missing or holds no image.
    """
    _require_dir(src, "--src")
    split_dir = os.path.join(src, split)
    if not os.path.isdir(split_dir):
        found = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)))
        raise DataError(f"{src}: no {split} folder under it (folders found: {', '.join(found) or 'none'})")
    paths = []
    for folder, subfolders, names in os.walk(split_dir):
        subfolders.sort()  # os.walk's order is the file system's; sort for determinism
        paths.extend(os.path.join(folder, name) for name in names
                     if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS)
    paths.sort(key=lambda path: os.path.relpath(path, split_dir))
    if not paths:
        raise DataError(f"{split_dir}: split {split!r} has no examples (no {'/'.join(IMAGE_EXTENSIONS)} files)")
    return paths


#: pix2pix_ab with a label space: the input half must be a colour-coded label image, i.e. at
#: least this fraction of its pixels within AB_PALETTE_RADIUS (RGB units) of a palette colour.
#: Measured on the built-in scenes: JPEG labels (quality 75, 64x64) >= 0.33, at 256x256 >= 0.77,
#: pix2pix's quality-100 files 1.0; photos <= 0.16.
AB_MIN_PALETTE_FRACTION = 0.25
AB_PALETTE_RADIUS = 8.0
AB_DIRECTIONS = ("AtoB", "BtoA")


def pix2pix_ab(src: str, split: str, label_space: str | None = "cityscapes35",
               direction: str = "AtoB") -> list[LazyExample]:
    """Lists pix2pix's aligned AB images under ``SRC/<split>/`` (subfolders included), sorted.

    Each file holds A (left half) and B (right half) side by side; ``direction`` says which is
    the input: ``AtoB`` reads A -> B, ``BtoA`` reads B -> A (pix2pix's Cityscapes files hold
    photo | colour label, so labels -> photo is ``BtoA``). Records store the half to be
    generated as ``image``, always; the input half becomes

    * ``label``: ids in ``label_space``, by nearest palette colour (the files are JPEG), when
      ``label_space`` is given;
    * ``target``: the input image itself when ``label_space`` is None (photo -> photo, or an
      input drawn in a palette other than the label space's, like facades).

    Raises:
      DataError: when ``src`` or the split folder is missing or the split has no image; when
        reading, for an odd width (halves of different sizes) or an input half that is not a
        colour-coded label image of ``label_space`` (a wrong ``direction``, say).
    """
    if direction not in AB_DIRECTIONS:
        raise DataError(f"direction must be AtoB or BtoA, got {direction!r}")
    return [LazyExample(key=os.path.relpath(path, src),
                        read=functools.partial(_read_ab, src, path, label_space, direction))
            for path in _images_under(src, split)]


def _read_ab(root: str, path: str, label_space: str | None, direction: str) -> Example:
    pair = read_image(path)
    height, width = pair.shape[:2]
    if width % 2:
        raise DataError(f"{path}: width {width} is odd, so its A and B halves would differ in size "
                        f"(an AB image is two images of equal size side by side, width 2W)")
    a, b = pair[:, : width // 2], pair[:, width // 2:]
    source, output = (a, b) if direction == "AtoB" else (b, a)
    source, output = np.ascontiguousarray(source), np.ascontiguousarray(output)
    key = os.path.relpath(path, root)
    if label_space is None:
        return Example(key=key, image=output, target=source)
    space = label_spaces.get_label_space(label_space)
    fraction = _palette_fraction(source, space)
    if fraction < AB_MIN_PALETTE_FRACTION:
        half = "left (A)" if direction == "AtoB" else "right (B)"
        raise DataError(f"{path}: the input half, {half} for --direction={direction}, is not a "
                        f"colour-coded {label_space} label image (only {fraction:.0%} of its pixels "
                        f"are near a palette colour); is the direction right? For image inputs use "
                        "--label_space=none")
    return Example(key=key, image=output, label=label_spaces.ids_from_colors(source, space))


def _palette_fraction(rgb: np.ndarray, space) -> float:
    """Fraction of (a sample of) the pixels within AB_PALETTE_RADIUS of a palette colour."""
    palette = np.unique(space.palette().astype(np.int32), axis=0)
    pixels = rgb[::2, ::2].reshape(-1, 1, 3).astype(np.int32)
    nearest = np.square(pixels - palette[None]).sum(-1).min(axis=1)
    return float(np.mean(nearest <= AB_PALETTE_RADIUS**2))


def synthetic(split: str, num_examples: int, height: int, width: int, seed: int = 0) -> list[LazyExample]:
    """Lists ``num_examples`` built-in street scenes of ``split`` (labels in ``cityscapes35``).

    Each split renders from its own seed (``synthetic_split_seed``), so train and val differ.
    """
    from tfsynth.data import synthetic as scenes

    if num_examples < 1:
        raise DataError(f"--num_examples={num_examples}: split {split!r} would have no examples")
    if min(height, width) < SYNTHETIC_MIN_SIZE:
        raise DataError(f"synthetic scenes need at least {SYNTHETIC_MIN_SIZE}x{SYNTHETIC_MIN_SIZE} pixels, "
                        f"got {height}x{width}")
    split_seed = synthetic_split_seed(seed, split)

    def read(key, index):
        scene = scenes.render_scene(split_seed, index, height, width)
        return Example(key=key, image=scene.image, label=scene.label, instance=scene.instance)

    keys = [f"synthetic/{split}/{index:06d}" for index in range(num_examples)]
    return [LazyExample(key=key, read=functools.partial(read, key, index)) for index, key in enumerate(keys)]


def synthetic_split_seed(seed: int, split: str) -> int:
    """The scene seed of ``split``: ``seed`` plus a fixed, split-specific offset."""
    offset = _SYNTHETIC_SPLIT_SEED_OFFSETS.get(split)
    if offset is None:  # any other split name still gets a stable offset of its own
        offset = 3_000_009 + zlib.crc32(split.encode()) % 1_000_000_007
    return seed + offset


def discover_splits(format_name: str, src: str) -> list[str]:
    """Default splits of a folder format: every subfolder of ``src`` laid out as that format wants."""
    _require_dir(src, "--src")
    found = []
    for name in sorted(os.listdir(src)):
        folder = os.path.join(src, name)
        if format_name == "paired_folders":
            if os.path.isdir(os.path.join(folder, "images")):
                found.append(name)
        elif os.path.isdir(folder):
            found.append(name)
    if not found:
        raise DataError(f"{src}: no split folders under it for --format={format_name}")
    return found


# ----------------------------------------------------------------------------- helpers


def _require_dir(path: str, flag: str) -> None:
    if not os.path.isdir(path):
        raise DataError(f"{path}: {flag} directory does not exist")


def _read_labelled(root: str, photo: str, label: str, instance: str | None, space) -> Example:
    for companion, what in ((label, "label map"), (instance, "instance map")):
        if companion is not None and not os.path.isfile(companion):
            raise DataError(f"{companion}: file is missing (the {what} of {photo})")
    image = read_image(photo)
    label_ids = read_id_map(label, space.num_classes, palette=space)
    check_same_size(image, photo, label_ids, label)
    instance_ids = None
    if instance is not None:
        instance_ids = read_instance_map(instance)
        check_same_size(image, photo, instance_ids, instance)
    return Example(key=os.path.relpath(photo, root), image=image, label=label_ids, instance=instance_ids)


def _read_photo_only(root: str, path: str) -> Example:
    return Example(key=os.path.relpath(path, root), image=read_image(path))


# ----------------------------------------------------------------------------- registry


@dataclasses.dataclass(frozen=True)
class SourceFormat:
    """What the converter needs to know about one ``--format``.

    Attributes:
      name: the ``--format`` value.
      list_split: ``(src, split, label_space) -> [LazyExample]`` for formats read from disk;
        None for ``synthetic``, which takes a count and a size instead.
      default_label_space: label space of the records, or None for image-only records.
      default_splits: splits converted when ``--splits`` is not given; None means every split
        folder found under the source (``discover_splits``).
    """

    name: str
    list_split: Callable[[str, str, str | None], list[LazyExample]] | None
    default_label_space: str | None
    default_splits: tuple[str, ...] | None


# --format name -> format. A new format is one reader plus one entry.
SOURCES = {
    "cityscapes": SourceFormat("cityscapes", lambda src, split, _: cityscapes(src, split),
                               "cityscapes35", ("train", "val")),
    "paired_folders": SourceFormat("paired_folders", paired_folders, "cityscapes35", None),
    "image_folder": SourceFormat("image_folder", lambda src, split, _: image_folder(src, split),
                                 None, None),
    "synthetic": SourceFormat("synthetic", None, "cityscapes35", ("train", "val")),
    # Called with direction=... by tools/build_tfrecords.py (its --direction flag).
    "pix2pix_ab": SourceFormat("pix2pix_ab", pix2pix_ab, "cityscapes35", None),
}
