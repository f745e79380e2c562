"""Run an exported model on files: ``python -m tfsynth.infer --saved_model=S --input=X --output=D``.

For image -> image exports (CycleGAN), ``--input`` is a photo or a directory of them and
``--signature`` picks the direction (``a_to_b``, ``b_to_a``). For label -> image exports,
``--input`` is a label PNG or a directory of them: 8-bit id maps
in the export's label space (e.g. Cityscapes ``*_gtFine_labelIds.png``), or colour-coded label
images, mapped to ids by nearest palette colour. Each input ``name.png`` gives ``name.png`` in
``--output`` (and ``name_k.png`` for every output k of a multi-output model with
``--all_outputs``).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from absl import flags
from PIL import Image, UnidentifiedImageError

from tfsynth import flags as tfsynth_flags

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class InferenceError(ValueError):
    """Bad input to inference; names the file at fault."""


def list_inputs(path: str) -> list[str]:
    if os.path.isdir(path):
        files = sorted(os.path.join(path, name) for name in os.listdir(path)
                       if name.lower().endswith(IMAGE_SUFFIXES))
        if not files:
            raise InferenceError(f"--input: no PNG/JPEG files in {path}")
        return files
    if not os.path.exists(path):
        raise InferenceError(f"--input: {path} does not exist")
    return [path]


def read_label(path: str, info: dict) -> np.ndarray:
    """uint8 [H, W] ids from an id PNG or a colour-coded label image; checks range and size."""
    from tfsynth.data import labels

    try:
        with Image.open(path) as image:
            image.load()
            array = np.asarray(image.convert("RGB") if image.mode not in ("L", "P", "I;16", "I") else image)
    except (UnidentifiedImageError, OSError) as error:
        raise InferenceError(f"{path}: not a readable image ({error})") from None
    space = labels.get_label_space(info["label_space"])
    ids = labels.ids_from_colors(array, space) if array.ndim == 3 else array.astype(np.int64)
    if ids.max() >= space.num_classes:
        raise InferenceError(f"{path}: label id {int(ids.max())} is outside {space.name} "
                             f"(0..{space.num_classes - 1})")
    _check_size(path, ids.shape, info)
    return ids.astype(np.uint8)


def read_image(path: str, info: dict) -> np.ndarray:
    """uint8 [H, W, 3] photo; checks the size against the export's limits."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise InferenceError(f"{path}: not a readable image ({error})") from None
    _check_size(path, array.shape[:2], info)
    return array


def _check_size(path: str, shape, info: dict) -> None:
    multiple, max_size = info["size_multiple"], info["max_size"]
    height, width = shape
    if height % multiple or width % multiple:
        raise InferenceError(f"{path}: size {height}x{width} is not a multiple of {multiple}, "
                             "which this model's architecture needs")
    if max(height, width) > max_size:
        raise InferenceError(f"{path}: size {height}x{width} exceeds the export's max_size {max_size}")


#: export kind -> (file reader, signature input name)
READERS = {"label_to_image": (read_label, "label"), "image_to_image": (read_image, "image"),
           "image_to_label": (read_image, "image")}


def main(argv):
    del argv
    flags_values = flags.FLAGS
    info_path = os.path.join(flags_values.saved_model, "tfsynth_export.json")
    if not os.path.exists(info_path):
        sys.exit(f"error: {info_path} not found: is --saved_model a tfsynth export (export/<version>)?")
    with open(info_path) as f:
        info = json.load(f)
    reader, input_name = READERS[info["kind"]]
    if flags_values.signature not in info.get("signatures", ["serving_default"]):
        sys.exit(f"error: --signature={flags_values.signature}: this export has "
                 f"{', '.join(info.get('signatures', []))}")
    try:
        files = list_inputs(flags_values.input)
        inputs = [(path, reader(path, info)) for path in files]
    except InferenceError as error:
        sys.exit(f"error: {error}")

    import tensorflow as tf

    signature = tf.saved_model.load(flags_values.saved_model).signatures[flags_values.signature]
    os.makedirs(flags_values.output, exist_ok=True)
    start = time.time()
    for count, (path, array) in enumerate(inputs, 1):
        outputs = signature(**{input_name: tf.constant(array[None])})
        stem = os.path.splitext(os.path.basename(path))[0]
        result = outputs["image"] if "image" in outputs else outputs["label"]  # photo, or id map
        Image.fromarray(result[0].numpy()).save(os.path.join(flags_values.output, f"{stem}.png"))
        if flags_values.all_outputs and "images" in outputs:
            for k, image in enumerate(outputs["images"][0].numpy()):
                Image.fromarray(image).save(os.path.join(flags_values.output, f"{stem}_{k}.png"))
        print(f"[{count}/{len(inputs)}] {path} -> {flags_values.output}/{stem}.png", flush=True)
    print(f"Wrote {len(inputs)} image(s) to {flags_values.output} in {time.time() - start:.1f} s")


def run():
    tfsynth_flags.run_command(main, tfsynth_flags.define_infer_flags, required=("saved_model", "input", "output"))


if __name__ == "__main__":
    run()
