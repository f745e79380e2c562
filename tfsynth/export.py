"""Export the generator as a TF Serving SavedModel: ``python -m tfsynth.export --model_dir=D``.

The export holds the generator alone with pre- and post-processing in the graph
(DESIGN.md section 2.6). For label -> image models (CRN, pix2pix on label maps):

* ``serving_default``: ``label`` uint8 [N, H, W] ids in the training data's label space ->
  ``image`` uint8 [N, H, W, 3], plus ``images`` uint8 [N, K, H, W, 3] for multi-output models;
* ``predict_png``: ``label_png_bytes`` string [N] -> ``image_png_bytes`` string [N] (TF Serving's
  REST API base64-encodes outputs whose names end in ``_bytes``).

For image -> image models (CycleGAN: ``a_to_b`` and ``b_to_a``; pix2pix on photo pairs), one
signature per direction, ``image`` uint8 [N, H, W, 3] -> ``image`` uint8, the first also as
``serving_default``, and ``predict_png`` (``image_png_bytes`` -> ``image_png_bytes``).

For segmenters, ``serving_default`` maps ``image`` uint8 [N, H, W, 3] to ``label`` uint8
[N, H, W] (trainIds) and ``predict_png`` PNG photos to 8-bit id PNGs.

Out-of-range ids, sizes above the recorded maximum and sizes the architecture cannot take fail
with INVALID_ARGUMENT.
"""

from __future__ import annotations

import json
import os
import re
import sys

from absl import flags

from tfsynth import flags as tfsynth_flags

EXPORT_INFO = "tfsynth_export.json"


def next_version_dir(model_dir: str) -> str:
    """``model_dir/export/<n+1>``: TF Serving serves the highest integer version."""
    root = os.path.join(model_dir, "export")
    versions = [int(name) for name in os.listdir(root) if re.fullmatch(r"\d+", name)] if os.path.isdir(root) else []
    return os.path.join(root, str(max(versions, default=0) + 1))


def _to_uint8(images):
    import tensorflow as tf

    return tf.cast(tf.clip_by_value(tf.round(images), 0, 255), tf.uint8)


def _check_label_input(model, label, max_size: int):
    import tensorflow as tf

    from tfsynth.data import labels

    num_classes = labels.get_label_space(model.source_label_space).num_classes
    height, width = tf.shape(label)[1], tf.shape(label)[2]
    multiple = model.size_multiple
    return [
        tf.debugging.assert_less(tf.reduce_max(tf.cast(label, tf.int32)), num_classes,
                                 message=f"label id outside {model.source_label_space} (0..{num_classes - 1})"),
        tf.debugging.assert_less_equal(tf.maximum(height, width), max_size,
                                       message=f"label larger than the export's max_size {max_size}"),
        tf.debugging.assert_equal(tf.stack([height % multiple, width % multiple]), 0,
                                  message=f"label height and width must be multiples of {multiple}"),
    ]


def label_to_image_endpoints(model, max_size: int) -> dict:
    """The two signatures of a label -> image model, as (function, input signature) pairs."""
    import tensorflow as tf

    multi_output = model.num_outputs > 1

    def serving_default(label):
        with tf.control_dependencies(_check_label_input(model, label, max_size)):
            images = _to_uint8(model.generate({"label": label}))
        outputs = {"image": images[:, 0]}
        if multi_output:
            outputs["images"] = images
        return outputs

    def predict_png(label_png_bytes):
        def one(png):
            label = tf.io.decode_png(png, channels=1)[None, ..., 0]
            with tf.control_dependencies(_check_label_input(model, label, max_size)):
                image = _to_uint8(model.generate({"label": label}))[0, 0]
            return tf.io.encode_png(image)

        encoded = tf.map_fn(one, label_png_bytes, fn_output_signature=tf.TensorSpec([], tf.string))
        return {"image_png_bytes": encoded}

    return {
        "serving_default": (serving_default, [tf.TensorSpec([None, None, None], tf.uint8, name="label")]),
        "predict_png": (predict_png, [tf.TensorSpec([None], tf.string, name="label_png_bytes")]),
    }


def _check_image_input(model, image, max_size: int):
    import tensorflow as tf

    height, width = tf.shape(image)[1], tf.shape(image)[2]
    multiple = model.size_multiple
    return [
        tf.debugging.assert_less_equal(tf.maximum(height, width), max_size,
                                       message=f"image larger than the export's max_size {max_size}"),
        tf.debugging.assert_equal(tf.stack([height % multiple, width % multiple]), 0,
                                  message=f"image height and width must be multiples of {multiple}"),
    ]


def image_to_image_endpoints(model, max_size: int) -> dict:
    """One signature per translation the model names (the first is also ``serving_default``):
    ``image`` uint8 [N, H, W, 3] -> ``image`` uint8 [N, H, W, 3]; plus ``predict_png`` for the
    first: ``image_png_bytes`` string [N] -> ``image_png_bytes`` string [N]."""
    import tensorflow as tf

    def translation(name):
        def translate(image):
            with tf.control_dependencies(_check_image_input(model, image, max_size)):
                return {"image": _to_uint8(model.translate(name, image))}
        return translate

    names = model.translation_names()

    def predict_png(image_png_bytes):
        def one(png):
            image = tf.io.decode_image(png, channels=3, expand_animations=False)[None]
            with tf.control_dependencies(_check_image_input(model, image, max_size)):
                return tf.io.encode_png(_to_uint8(model.translate(names[0], image))[0])

        return {"image_png_bytes": tf.map_fn(one, image_png_bytes,
                                             fn_output_signature=tf.TensorSpec([], tf.string))}

    image_spec = [tf.TensorSpec([None, None, None, 3], tf.uint8, name="image")]
    endpoints = {name: (translation(name), image_spec) for name in names}
    endpoints["serving_default"] = (translation(names[0]), image_spec)
    endpoints["predict_png"] = (predict_png, [tf.TensorSpec([None], tf.string, name="image_png_bytes")])
    return endpoints


def image_to_label_endpoints(model, max_size: int) -> dict:
    """Segmenters: ``image`` uint8 [N, H, W, 3] -> ``label`` uint8 [N, H, W] ids in the model's
    label space; ``predict_png``: ``image_png_bytes`` -> ``label_png_bytes`` (8-bit id PNGs)."""
    import tensorflow as tf

    def serving_default(image):
        with tf.control_dependencies(_check_image_input(model, image, max_size)):
            return {"label": model.segment(image)}

    def predict_png(image_png_bytes):
        def one(png):
            image = tf.io.decode_image(png, channels=3, expand_animations=False)[None]
            with tf.control_dependencies(_check_image_input(model, image, max_size)):
                return tf.io.encode_png(model.segment(image)[0, ..., None])

        return {"label_png_bytes": tf.map_fn(one, image_png_bytes,
                                             fn_output_signature=tf.TensorSpec([], tf.string))}

    return {
        "serving_default": (serving_default, [tf.TensorSpec([None, None, None, 3], tf.uint8, name="image")]),
        "predict_png": (predict_png, [tf.TensorSpec([None], tf.string, name="image_png_bytes")]),
    }


ENDPOINTS = {"label_to_image": label_to_image_endpoints, "image_to_image": image_to_image_endpoints,
             "image_to_label": image_to_label_endpoints}


def export_model(model, export_dir: str, max_size: int = 2048, model_name: str | None = None) -> str:
    """Writes ``model``'s generator with its signatures to ``export_dir``; returns the path."""
    import keras

    archive = keras.export.ExportArchive()
    for network in model.networks.values():
        archive.track(network)
    for name, (function, signature) in ENDPOINTS[model.export_kind](model, max_size).items():
        archive.add_endpoint(name, function, input_signature=signature)
    archive.write_out(export_dir, verbose=False)
    with open(os.path.join(export_dir, EXPORT_INFO), "w") as f:
        json.dump({"model": model_name or type(model).__name__.lower(), "kind": model.export_kind,
                   "output_label_space": getattr(model, "label_space", None),
                   "signatures": sorted(ENDPOINTS[model.export_kind](model, max_size)),
                   "label_space": model.source_label_space, "max_size": max_size,
                   "size_multiple": model.size_multiple, "num_outputs": model.num_outputs,
                   "training_size": model.training_size}, f, indent=2)
    return export_dir


def load_trained_model(model_dir: str):
    """Rebuilds the model described by ``model_dir/config.json`` and restores its networks."""
    import tensorflow as tf

    from tfsynth import training

    model, name, latest = training.rebuild_run_model(model_dir)
    tf.train.Checkpoint(**model.networks).restore(latest).expect_partial().assert_existing_objects_matched()
    return model, name


def main(argv):
    del argv
    flags_values = flags.FLAGS
    try:
        model, name = load_trained_model(flags_values.model_dir)
    except ValueError as error:
        sys.exit(f"error: {error}")
    path = export_model(model, flags_values.export_dir or next_version_dir(flags_values.model_dir),
                        flags_values.max_size, model_name=name)
    print(f"Exported SavedModel: {path}")


def run():
    tfsynth_flags.run_command(main, tfsynth_flags.define_export_flags, required=("model_dir",))


if __name__ == "__main__":
    run()
