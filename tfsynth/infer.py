"""Run an exported model on files: ``python -m tfsynth.infer --saved_model=S --input=X --output=D``.

For label -> image exports, ``--input`` is a label PNG or a directory of them: 8-bit id maps
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
from absl import app, flags
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
    multiple, max_size = info["size_multiple"], info["max_size"]
    height, width = ids.shape
    if height % multiple or width % multiple:
        raise InferenceError(f"{path}: size {height}x{width} is not a multiple of {multiple}, "
                             "which this model's architecture needs")
    if max(height, width) > max_size:
        raise InferenceError(f"{path}: size {height}x{width} exceeds the export's max_size {max_size}")
    return ids.astype(np.uint8)


def main(argv):
    del argv
    flags_values = flags.FLAGS
    info_path = os.path.join(flags_values.saved_model, "tfsynth_export.json")
    if not os.path.exists(info_path):
        sys.exit(f"error: {info_path} not found: is --saved_model a tfsynth export (export/<version>)?")
    with open(info_path) as f:
        info = json.load(f)
    try:
        files = list_inputs(flags_values.input)
        label_maps = [(path, read_label(path, info)) for path in files]
    except InferenceError as error:
        sys.exit(f"error: {error}")

    import tensorflow as tf

    serving = tf.saved_model.load(flags_values.saved_model).signatures["serving_default"]
    os.makedirs(flags_values.output, exist_ok=True)
    start = time.time()
    for count, (path, ids) in enumerate(label_maps, 1):
        outputs = serving(label=tf.constant(ids[None]))
        stem = os.path.splitext(os.path.basename(path))[0]
        Image.fromarray(outputs["image"][0].numpy()).save(os.path.join(flags_values.output, f"{stem}.png"))
        if flags_values.all_outputs and "images" in outputs:
            for k, image in enumerate(outputs["images"][0].numpy()):
                Image.fromarray(image).save(os.path.join(flags_values.output, f"{stem}_{k}.png"))
        print(f"[{count}/{len(label_maps)}] {path} -> {flags_values.output}/{stem}.png", flush=True)
    print(f"Wrote {len(label_maps)} image(s) to {flags_values.output} in {time.time() - start:.1f} s")


def run():
    tfsynth_flags.define_infer_flags()
    for name in ("saved_model", "input", "output"):
        flags.mark_flag_as_required(name)
    app.run(main)


if __name__ == "__main__":
    run()
