"""Run an export on files: ``python -m tfsynth.infer --saved_model=S --input=X --output=D``.

What is read and written follows the export's declaration (``tfsynth_export.json``, written from
the family's endpoints):

* ``label`` inputs: ``--input`` is an 8-bit id PNG in the export's label space (e.g. Cityscapes
  ``*_gtFine_labelIds.png``) or a directory of them, or colour-coded label PNGs drawn exactly
  in the export's palette (``*_gtFine_color.png``); photos, JPEGs and 16-bit files are refused;
* ``instance`` inputs: ``--instance``, 16-bit instance-id PNGs with the stems of the label files;
* ``image`` inputs: ``--input``, photos (PNG or JPEG) or a directory of them;
* ``seed`` inputs (unconditional models): ``--num_samples`` images from seeds ``--seed``,
  ``--seed + 1`` ..., and a contact sheet of them (``contact_sheet.png``);
  ``--interpolate=A,B --steps=8`` instead walks between the latents of seeds A and B through
  the endpoint that takes a ``latent`` input, writing each frame and the strip of them

Each example ``name`` gives ``name.png`` for an ``image`` or ``label`` output and
``name_<k>.png`` for each of a multi-output model's ``images`` (``seed_<s>`` for seeds). Sizes
the architecture cannot take are padded by reflection to the next multiple and the output is
cropped back (``--fit=pad``), resized there and back (``--fit=resize``), or refused
(``--fit=error``). ``--signature`` picks another endpoint (e.g. ``b_to_a`` for CycleGAN).

Nothing is overwritten unless asked: the output folder may not be the input folder, two inputs
that would write the same file are refused, and existing outputs need ``--overwrite``.
"""

from __future__ import annotations

import io
import os
import sys
import time

import numpy as np
from absl import flags
from PIL import Image, UnidentifiedImageError

from tfsynth import flags as tfsynth_flags
from tfsynth import run_dir

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class InferenceError(ValueError):
    """Bad input to inference; names the file or flag at fault."""


def list_inputs(path: str, flag: str = "--input") -> list[str]:
    if os.path.isdir(path):
        files = sorted(os.path.join(path, name) for name in os.listdir(path)
                       if name.lower().endswith(IMAGE_SUFFIXES))
        if not files:
            raise InferenceError(f"{flag}: no PNG/JPEG files in {path}")
        return files
    if not os.path.exists(path):
        raise InferenceError(f"{flag}: {path} does not exist")
    return [path]


def _open(path: str) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
        return image
    except (UnidentifiedImageError, OSError) as error:
        raise InferenceError(f"{path}: not a readable image ({error})") from None


def read_label(path: str, info: dict) -> np.ndarray:
    """uint8 [H, W] ids from an 8-bit id PNG, or a colour-coded label PNG drawn exactly in the
    export's palette; anything else (a photo, a JPEG, a 16-bit file, ids out of range) is refused."""
    from tfsynth.data import labels, sources, tfrecord

    space = labels.get_label_space(info["label_space"])
    try:
        return sources.read_id_map(path, space.num_classes, colors=space)
    except tfrecord.DataError as error:
        raise InferenceError(str(error)) from None


def read_instance(path: str, info: dict) -> np.ndarray:
    """int32 [H, W] instance ids (Cityscapes ``*_instanceIds.png``: class * 1000 + k for things)."""
    del info
    return np.asarray(_open(path)).astype(np.int32)


def read_image(path: str, info: dict) -> np.ndarray:
    """uint8 [H, W, 3] photo, read as the converter reads it (16-bit greyscale scaled to 8 bits)."""
    from tfsynth.data import sources, tfrecord

    del info
    try:
        return sources.read_image(path)
    except tfrecord.DataError as error:
        raise InferenceError(str(error)) from None


READERS = {"label": read_label, "instance": read_instance, "image": read_image}


# ------------------------------------------------------------------------------------- sizes

def fit_to_multiple(array: np.ndarray, multiple: int, mode: str, kind: str, path: str) -> np.ndarray:
    """Pads (reflect) or resizes an input's height and width to multiples of ``multiple``."""
    height, width = array.shape[:2]
    target = (-(-height // multiple) * multiple, -(-width // multiple) * multiple)
    if target == (height, width):
        return array
    if mode == "error":
        raise InferenceError(f"{path}: size {height}x{width} is not a multiple of {multiple}, which this "
                             "model's architecture needs (--fit=pad or resize adapts it)")
    if mode == "pad":
        padding = [(0, target[0] - height), (0, target[1] - width)] + [(0, 0)] * (array.ndim - 2)
        return np.pad(array, padding, mode="symmetric" if min(height, width) < 2 else "reflect")
    resample = Image.BICUBIC if kind == "image" else Image.NEAREST
    resized = Image.fromarray(array).resize((target[1], target[0]), resample)
    return np.asarray(resized).astype(array.dtype)


def restore_size(array: np.ndarray, size: tuple[int, int], mode: str, kind: str) -> np.ndarray:
    """An output back at ``size``: cropped (after padding) or resized (after resizing)."""
    if array.shape[:2] == tuple(size):
        return array
    if mode == "pad":
        return array[: size[0], : size[1]]
    resample = Image.NEAREST if kind == "label" else Image.BICUBIC
    return np.asarray(Image.fromarray(array).resize((size[1], size[0]), resample))


# ------------------------------------------------------------------------------------ examples

def read_examples(flags_values, info: dict, endpoint) -> list[tuple[str, str, dict, tuple]]:
    """[(output stem, where it came from, inputs by name, input size)] for every example."""
    file_inputs = [spec for spec in endpoint.inputs if spec.kind in READERS]
    seeds = [spec for spec in endpoint.inputs if spec.kind == "seed"]
    unreadable = [spec.name for spec in endpoint.inputs
                  if spec.kind not in READERS and spec.kind != "seed" and not spec.optional]
    if unreadable:
        raise InferenceError(f"--signature={endpoint.name} takes {', '.join(unreadable)}, which infer cannot read "
                             "from files; call the SavedModel directly")
    if seeds and endpoint.spatial_input is None:
        if not flags_values.num_samples:
            raise InferenceError(f"--num_samples: this export draws images from seeds; say how many")
        return [(f"seed_{seed}", f"seed {seed}", {spec.name: np.array(seed, np.int64) for spec in seeds}, None)
                for seed in range(flags_values.seed, flags_values.seed + flags_values.num_samples)]
    if not flags_values.input:
        raise InferenceError("--input: give a file or directory of inputs")
    primary = endpoint.spatial_input
    extras = [spec for spec in file_inputs if spec is not primary]
    examples = []
    for path in list_inputs(flags_values.input):
        stem = os.path.splitext(os.path.basename(path))[0]
        inputs = {primary.name: READERS[primary.kind](path, info)}
        for spec in extras:
            source = getattr(flags_values, spec.kind, None)
            if not source:
                if spec.optional:
                    continue
                raise InferenceError(f"--{spec.kind}: this export needs {spec.kind} maps beside the inputs")
            candidates = [os.path.join(source, stem + suffix) for suffix in (".png",)] if os.path.isdir(source) else [source]
            match = next((c for c in candidates if os.path.exists(c)), None)
            if match is None:
                raise InferenceError(f"{path}: no {spec.kind} map {candidates[0]} (--{spec.kind})")
            inputs[spec.name] = READERS[spec.kind](match, info)
            if inputs[spec.name].shape[:2] != inputs[primary.name].shape[:2]:
                raise InferenceError(f"{match}: size {inputs[spec.name].shape[:2]} differs from "
                                     f"{path}'s {inputs[primary.name].shape[:2]}")
        # Conditional models with seeds (pix2pixHD's styles): --seed for every input.
        inputs.update({spec.name: np.array(flags_values.seed, np.int64) for spec in seeds})
        examples.append((stem, path, inputs, inputs[primary.name].shape[:2]))
    return examples


def output_files(stem: str, endpoint, num_outputs: int) -> dict[str, list[str]]:
    """Output name -> the file names it is written to."""
    files = {}
    for output in endpoint.outputs:
        files[output] = ([f"{stem}_{k}.png" for k in range(num_outputs)] if output == "images"
                         else [f"{stem}.png"])
    return files


def check_outputs(flags_values, plans: list[tuple[str, list[str]]]) -> None:
    """Refuses to write over inputs, to write one file twice, or to overwrite without asking."""
    # Real paths: a symlink (or ..) naming the input folder is the input folder.
    output = os.path.realpath(flags_values.output)
    if os.path.exists(output) and not os.path.isdir(output):
        raise InferenceError(f"--output: {flags_values.output} is a file, not a directory")
    for flag in ("input", "instance"):
        source = getattr(flags_values, flag, None)
        if source and os.path.isdir(source):
            source = os.path.realpath(source)
            if output == source or output.startswith(source + os.sep):
                raise InferenceError(f"--output: {flags_values.output} is inside --{flag} {source}; outputs "
                                     "would mix with (and could replace) the inputs")
    writers = {}
    for origin, names in plans:
        for name in names:
            if name in writers:
                raise InferenceError(f"{origin} and {writers[name]} would both write {name}; rename one")
            writers[name] = origin
    existing = sorted(name for name in writers if os.path.exists(os.path.join(output, name)))
    if existing and not flags_values.overwrite:
        raise InferenceError(f"--output: {len(existing)} output(s) exist already in {flags_values.output} "
                             f"(e.g. {existing[0]}); pass --overwrite to replace them")


def save_png(path: str, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    run_dir.write_bytes(path, buffer.getvalue())


#: File of the grid of every image drawn from seeds.
CONTACT_SHEET = "contact_sheet.png"


def contact_sheet(images: list[np.ndarray], columns: int = 8) -> np.ndarray:
    """The images (same size) tiled ``columns`` to a row, left to right, the last row padded black."""
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    blank = np.zeros_like(images[0])
    cells = list(images) + [blank] * (rows * columns - len(images))
    return np.concatenate([np.concatenate(cells[r * columns:(r + 1) * columns], axis=1) for r in range(rows)], axis=0)


def slerp(start: np.ndarray, end: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Spherical interpolation [len(fractions), D]. Gaussian latents lie near a sphere; straight
    lines between two of them pass closer to the origin (the midpoint's norm shrinks by up to
    sqrt 2), where the generator saw no latents in training."""
    cosine = np.dot(start, end) / (np.linalg.norm(start) * np.linalg.norm(end))
    angle = np.arccos(np.clip(cosine, -1.0, 1.0))
    if np.sin(angle) < 1e-6:
        return np.stack([(1 - t) * start + t * end for t in fractions])
    return np.stack([(np.sin((1 - t) * angle) * start + np.sin(t * angle) * end) / np.sin(angle)
                     for t in fractions])


def interpolate(flags_values, info: dict) -> None:
    """``--interpolate=A,B``: ``--steps`` images along the great circle between the latents of
    seeds A and B (each seed names a latent, ``seeded.latents_from_seeds``), through the
    endpoint that takes latent vectors; writes each frame and the strip of them."""
    parts = flags_values.interpolate.split(",")
    try:
        first, last = (int(part) for part in parts)
    except ValueError:
        raise InferenceError(f"--interpolate={flags_values.interpolate}: expected two seeds, SEED_A,SEED_B") from None
    endpoint = next((e for e in info["endpoints"] if "image" in e.outputs
                     and [spec.kind for spec in e.inputs if not spec.optional] == ["latent"]), None)
    if endpoint is None or not info.get("latent_size"):
        raise InferenceError(f"--interpolate: {flags_values.saved_model} takes no latent vectors (it serves "
                             f"{', '.join(e.name for e in info['endpoints'])}); only unconditional models interpolate")
    stem = f"interpolation_{first}_{last}"
    frames = [f"{stem}_{index}.png" for index in range(flags_values.steps)]
    check_outputs(flags_values, [(f"--interpolate={flags_values.interpolate}", frames + [f"{stem}.png"])])

    import tensorflow as tf

    from tfsynth import seeded

    ends = seeded.latents_from_seeds(tf.constant([first, last], tf.int64), info["latent_size"]).numpy()
    latents = slerp(ends[0], ends[1], np.linspace(0.0, 1.0, flags_values.steps)).astype(np.float32)
    spec = next(spec for spec in endpoint.inputs if spec.kind == "latent")
    signature = tf.saved_model.load(flags_values.saved_model).signatures[endpoint.signature_name([spec.name])]
    images = signature(**{spec.name: tf.constant(latents)})["image"].numpy()
    os.makedirs(flags_values.output, exist_ok=True)
    for name, image in zip(frames, images):
        save_png(os.path.join(flags_values.output, name), image)
    save_png(os.path.join(flags_values.output, f"{stem}.png"), np.concatenate(list(images), axis=1))
    print(f"Wrote {len(frames)} frames and the strip {os.path.join(flags_values.output, stem + '.png')} "
          f"(seed {first} -> seed {last})")


def main(argv):
    del argv
    flags_values = flags.FLAGS
    try:
        info = run_dir.read_export_info(flags_values.saved_model)
        if flags_values.interpolate:
            return interpolate(flags_values, info)
        endpoint = run_dir.find_endpoint(info, flags_values.signature)
        examples = read_examples(flags_values, info, endpoint)
        plans = [(origin, [name for names in output_files(stem, endpoint, info["num_outputs"]).values()
                           for name in names]) for stem, origin, _, _ in examples]
        drawn_from_seeds = examples[0][3] is None  # no input size: unconditional samples
        if drawn_from_seeds:
            plans.append(("the contact sheet", [CONTACT_SHEET]))
        check_outputs(flags_values, plans)
    except (InferenceError, run_dir.RunDirError) as error:
        sys.exit(f"error: {error}")

    import tensorflow as tf

    loaded = tf.saved_model.load(flags_values.saved_model).signatures
    os.makedirs(flags_values.output, exist_ok=True)
    multiple, scale = info["size_multiple"], endpoint.scale
    start = time.time()
    drawn = []
    for count, (stem, origin, inputs, size) in enumerate(examples, 1):
        name = endpoint.name
        if size is not None:
            kinds = {spec.name: spec.kind for spec in endpoint.inputs}
            try:
                inputs = {key: fit_to_multiple(value, multiple, flags_values.fit, kinds[key], origin)
                          if kinds[key] in READERS else value for key, value in inputs.items()}
                fitted = next(iter(inputs.values())).shape[:2]
                if max(fitted) * scale > info["max_size"]:
                    raise InferenceError(f"{origin}: size {fitted[0]}x{fitted[1]} (x{scale}) exceeds the export's "
                                         f"max_size {info['max_size']}")
            except InferenceError as error:
                sys.exit(f"error: {error}")
            name = endpoint.signature_name(inputs)
        outputs = loaded[name](**{key: tf.constant(np.asarray(value)[None]) for key, value in inputs.items()})
        written = []
        for output, files in output_files(stem, endpoint, info["num_outputs"]).items():
            arrays = outputs[output][0].numpy()
            arrays = list(arrays) if output == "images" else [arrays]
            for file_name, array in zip(files, arrays):
                if size is not None:
                    array = restore_size(array, (size[0] * scale, size[1] * scale), flags_values.fit, output)
                save_png(os.path.join(flags_values.output, file_name), array)
                written.append(file_name)
                if drawn_from_seeds:
                    drawn.append(array)
        print(f"[{count}/{len(examples)}] {origin} -> {', '.join(written)}", flush=True)
    if drawn_from_seeds:
        save_png(os.path.join(flags_values.output, CONTACT_SHEET), contact_sheet(drawn))
        print(f"Contact sheet: {os.path.join(flags_values.output, CONTACT_SHEET)}")
    print(f"Wrote {len(examples)} example(s) to {flags_values.output} in {time.time() - start:.1f} s")


def run():
    tfsynth_flags.run_command(main, tfsynth_flags.define_infer_flags, required=("saved_model", "output"))


if __name__ == "__main__":
    run()
