"""Export the serving state as a TF Serving SavedModel: ``python -m tfsynth.export --model_dir=D``.

Every signature is derived from the family's declared endpoints (:mod:`tfsynth.endpoints`):

* one signature per endpoint, named after it (the first is also ``serving_default``), taking
  the declared inputs by name (``label`` uint8 [N, H, W], ``image`` uint8 [N, H, W, 3],
  ``instance`` int32 [N, H, W], ``seed`` int64 [N] ...) and returning the declared outputs as
  uint8 (``image`` [N, H', W', 3], ``images`` [N, K, H', W', 3], ``label`` [N, H, W]);
* an endpoint with optional inputs gets a signature for every subset of them left out,
  ``<name>_without_<input>[_<input>...]``;
* ``predict_png`` for the first endpoint that reads one file: ``<input>_png_bytes`` string [N]
  -> ``<output>_png_bytes`` string [N] (TF Serving's REST API base64-encodes outputs whose names
  end in ``_bytes``).

Inputs are checked in the graph before any work: ids outside the label space, sizes whose
output would exceed ``max_size``, sizes the architecture cannot take, and instance maps of
another size than their label map fail with INVALID_ARGUMENT. The SavedModel holds the model's
serving state alone (``serving_state_keys``: generators, EMA weights, cluster centres), never
discriminators, image pools or optimizer slots, and ``tfsynth_export.json`` records the
declaration that ``infer``, ``evaluate`` and the studio read back, with the family's
``serving_metadata()`` (e.g. pix2pixHD's ``style_clusters``). The export is written to a temporary
folder beside its version folder and renamed when complete, so TF Serving never sees half of it.
"""

from __future__ import annotations

import os
import shutil
import sys

from absl import flags

from tfsynth import flags as tfsynth_flags
from tfsynth import run_dir


def _uint8(name: str, tensor):
    import tensorflow as tf

    from tfsynth import pixels

    if name == "label":
        return tf.cast(tensor, tf.uint8)
    return pixels.to_uint8(tensor)


def runtime_shape(value):
    """The shape ``value`` has when the graph runs, even where it differs from the signature's.

    Serving does not check a fed tensor's rank against the signature, and ``tf.rank`` (or the
    size of ``tf.shape``) is folded to the declared rank when the graph is optimised; the
    data-dependent mask keeps the length a runtime value.
    """
    import tensorflow as tf

    shape = tf.shape(value)
    return tf.boolean_mask(shape, shape >= 0)


def _assert(condition, message: str, *values):
    """A graph assertion whose INVALID_ARGUMENT reads ``message`` followed by ``values``."""
    import tensorflow as tf

    return tf.debugging.Assert(condition, [message, *values], summarize=8)


def shape_checks(spec, value) -> list:
    """Rank, channels, a non-empty batch and a non-empty image, each with its own message."""
    import tensorflow as tf

    shape = runtime_shape(value)
    rank = len(spec.shape)
    hint = " (a batch of class-id maps; a colour image has rank 4)" if spec.kind == "label" else ""
    rank_check = _assert(tf.equal(tf.size(shape), rank),
                         f"{spec.describe()} expected{hint}; got an input of rank", tf.size(shape))
    with tf.control_dependencies([rank_check]):
        checks = [_assert(shape[0] > 0, f"{spec.name}: the batch is empty; send at least one")]
        if rank >= 3:
            checks.append(_assert(tf.reduce_min(shape[1:3]) > 0,
                                  f"{spec.name}: height and width must be at least 1; got", shape[1:3]))
        if spec.shape[-1] is not None:
            checks.append(_assert(tf.equal(shape[-1], spec.shape[-1]),
                                  f"{spec.describe()} expected; got channels", shape[-1]))
    return [rank_check] + checks


def input_checks(model, endpoint, inputs: dict, max_size: int) -> list:
    """Graph assertions on an endpoint's inputs (INVALID_ARGUMENT with a message naming them):
    shapes first, then what needs a well-shaped input (id range, size, size multiple)."""
    import tensorflow as tf

    given = [spec for spec in endpoint.inputs if spec.name in inputs]
    checks = [check for spec in given for check in shape_checks(spec, inputs[spec.name])]
    with tf.control_dependencies(checks):
        checks += _value_checks(model, endpoint, given, inputs, max_size)
    return checks


def _value_checks(model, endpoint, given, inputs: dict, max_size: int) -> list:
    import tensorflow as tf

    from tfsynth.data import labels

    checks = []
    space = labels.get_label_space(model.source_label_space)
    for spec in given:
        value = inputs[spec.name]
        if spec.kind == "label":
            checks.append(_assert(
                tf.reduce_max(tf.cast(value, tf.int32)) < space.num_classes,
                f"{spec.name} id outside {space.name} (0..{space.num_classes - 1}): labels are class ids, "
                "not colours; the largest id found is", tf.reduce_max(value)))
        elif spec.kind == "instance":
            classes = labels.instance_class(value)
            checks.append(_assert(
                tf.logical_and(tf.reduce_min(value) >= 0, tf.reduce_max(classes) < space.num_classes),
                f"{spec.name}: instance ids are a class id of {space.name} (stuff) or class id x 1000 + k (things); "
                "got ids from", tf.reduce_min(value), "to", tf.reduce_max(value)))
        elif spec.kind == "cluster_map":
            checks.append(_assert(tf.reduce_min(value) >= -1, f"{spec.name}: styles are 0..n-1, or -1 to draw "
                                  "one from the seed; the smallest found is", tf.reduce_min(value)))
    spatial = endpoint.spatial_input
    if spatial is None:
        return checks
    value = inputs[spatial.name]
    height, width = tf.shape(value)[1], tf.shape(value)[2]
    multiple, scale = model.size_multiple, endpoint.scale
    largest = max_size // scale
    too_large = (f"{spatial.name} larger than the export's max_size {max_size}" if scale == 1 else
                 f"{spatial.name} larger than {largest}: x{scale} would exceed the export's max_size {max_size}")
    checks += [
        _assert(tf.maximum(height, width) <= largest, f"{too_large}; height and width are", height, width),
        _assert(tf.reduce_all(tf.stack([height % multiple, width % multiple]) == 0),
                f"{spatial.name} height and width must be multiples of {multiple}; got", height, width),
    ]
    for spec in given:
        if spec.kind in ("label", "instance", "image", "cluster_map") and spec is not spatial:
            checks.append(_assert(
                tf.reduce_all(tf.shape(inputs[spec.name])[:3] == tf.shape(value)[:3]),
                f"{spec.name} must have the batch size, height and width of {spatial.name}; got",
                tf.shape(inputs[spec.name])[:3], "and", tf.shape(value)[:3]))
    return checks


def serving_function(model, endpoint, function, input_names, max_size: int):
    """The signature's function: checks, then the family's function, then uint8 outputs."""
    import tensorflow as tf

    def serve(*values):
        inputs = dict(zip(input_names, values))
        with tf.control_dependencies(input_checks(model, endpoint, inputs, max_size)):
            outputs = function(**{name: tf.identity(value) for name, value in inputs.items()})
        return {name: _uint8(name, outputs[name]) for name in endpoint.outputs}

    return serve


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour types (IHDR byte 25), for messages.
PNG_COLOUR_TYPES = {0: "greyscale", 2: "RGB", 3: "palette", 4: "greyscale + alpha", 6: "RGBA"}


def encoded_image_checks(data, spec, largest: int) -> list:
    """Checks an encoded input from its header alone, before any pixel is decoded, so a
    small file that would decode to gigabytes is refused for the price of reading 33 bytes.

    Labels must be 8-bit greyscale PNGs (a JPEG changes ids where it compresses, a 16-bit PNG
    decodes rescaled and a palette PNG decodes to its colours); photos are PNG or JPEG.
    """
    import tensorflow as tf

    is_png = tf.logical_and(tf.equal(tf.strings.substr(data, 0, 8), PNG_SIGNATURE),
                            tf.strings.length(data) >= 33)
    if spec.kind == "label":
        format_check = _assert(is_png, f"{spec.name}: not a PNG; labels are 8-bit greyscale PNGs of class ids")
    else:
        format_check = _assert(tf.logical_or(is_png, tf.io.is_jpeg(data)), f"{spec.name}: not a PNG or JPEG")

    def png_header():
        # IHDR: width and height (big-endian uint32 at bytes 16 and 20), bit depth, colour type.
        raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, 16, 10), tf.uint8), tf.int64)
        width, height = (tf.reduce_sum(raw[i:i + 4] * tf.constant([1 << 24, 1 << 16, 1 << 8, 1], tf.int64))
                         for i in (0, 4))
        return tf.stack([height, width, raw[8], raw[9]])

    def jpeg_header():
        return tf.concat([tf.cast(tf.io.extract_jpeg_shape(data)[:2], tf.int64), [8, 2]], 0)

    with tf.control_dependencies([format_check]):
        header = tf.cond(is_png, png_header, jpeg_header)
        checks = [format_check, _assert(tf.reduce_max(header[:2]) <= largest,
                                        f"{spec.name} larger than {largest} (checked before decoding); "
                                        "height and width are", header[0], header[1])]
        if spec.kind == "label":
            checks.append(_assert(tf.reduce_all(tf.equal(header[2:], [8, 0])),
                                  f"{spec.name}: labels are 8-bit greyscale PNGs of class ids; got bit depth",
                                  header[2], "and colour type", header[3],
                                  "(" + ", ".join(f"{k}: {v}" for k, v in PNG_COLOUR_TYPES.items()) + ")"))
    return checks


def png_function(model, endpoint, function, max_size: int):
    """``predict_png``: PNG bytes of the endpoint's one file input -> PNG bytes of its first output."""
    import tensorflow as tf

    spec = endpoint.png_input
    output = endpoint.outputs[0]

    def decode(data):
        with tf.control_dependencies(encoded_image_checks(data, spec, max_size // endpoint.scale)):
            if spec.kind == "label":
                return tf.io.decode_png(data, channels=1)[None, ..., 0]
            return tf.io.decode_image(data, channels=3, expand_animations=False)[None]

    def one(data):
        inputs = {spec.name: decode(data)}
        with tf.control_dependencies(input_checks(model, endpoint, inputs, max_size)):
            result = _uint8(output, function(**{spec.name: tf.identity(inputs[spec.name])})[output])[0]
        return tf.io.encode_png(result[..., None] if output == "label" else result)

    def predict_png(png_bytes):
        encoded = tf.map_fn(one, png_bytes, fn_output_signature=tf.TensorSpec([], tf.string))
        return {f"{output}_png_bytes": encoded}

    return predict_png, [tf.TensorSpec([None], tf.string, name=f"{spec.name}_png_bytes")]


def signature_variants(endpoint) -> list[tuple[str, tuple]]:
    """(signature name, inputs) for the endpoint with every subset of its optional inputs left
    out: ``name``, then ``name_without_a``, ``name_without_a_b`` ... (TF Serving signatures
    have no optional inputs)."""
    optional = [spec.name for spec in endpoint.inputs if spec.optional]
    variants = []
    for mask in range(2 ** len(optional)):
        dropped = {name for bit, name in enumerate(optional) if mask >> bit & 1}
        kept = tuple(spec for spec in endpoint.inputs if spec.name not in dropped)
        variants.append((endpoint.signature_name([spec.name for spec in kept]), kept))
    return variants


def signatures(model, max_size: int) -> dict:
    """Every signature of ``model``'s export: name -> (function, input signature)."""
    import tensorflow as tf

    result = {}
    for index, (endpoint, function) in enumerate(model.serving_endpoints().items()):
        for name, inputs in signature_variants(endpoint):
            specs = [tf.TensorSpec(list(spec.shape), spec.dtype, name=spec.name) for spec in inputs]
            serve = serving_function(model, endpoint, function, [spec.name for spec in inputs], max_size)
            result[name] = (serve, specs)
            if index == 0 and name == endpoint.name:
                result["serving_default"] = (serve, specs)
        if endpoint.png_input is not None and "predict_png" not in result:
            result["predict_png"] = png_function(model, endpoint, function, max_size)
    return result


def export_model(model, export_dir: str, max_size: int = 2048, model_name: str | None = None,
                 checkpoint: str | None = None) -> str:
    """Writes ``model``'s serving state with its signatures to ``export_dir``; returns the path.
    ``checkpoint``, the one the state was restored from or saved to, is recorded (by name) in
    ``tfsynth_export.json``.

    Raises:
      run_dir.RunDirError: ``export_dir`` exists already (an export is never overwritten).
    """
    import keras

    if os.path.exists(export_dir):
        raise run_dir.RunDirError(f"--export_dir: {export_dir} exists already; exports are never overwritten")
    parent = os.path.dirname(os.path.abspath(export_dir))
    os.makedirs(parent, exist_ok=True)
    partial = os.path.join(parent, f".{os.path.basename(export_dir)}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    archive = keras.export.ExportArchive()
    for state in model.serving_state().values():
        archive.track(state)
    served = signatures(model, max_size)
    for name, (function, input_signature) in served.items():
        archive.add_endpoint(name, function, input_signature=input_signature)
    try:
        archive.write_out(partial, verbose=False)
        run_dir.write_json(os.path.join(partial, run_dir.EXPORT_INFO), {
            "model": model_name or type(model).__name__.lower(),
            "endpoints": [endpoint.to_json() for endpoint in model.serving_endpoints()],
            "signatures": sorted(served),
            "label_space": model.source_label_space,
            "output_label_space": model.label_space,
            "max_size": max_size,
            "size_multiple": model.size_multiple,
            "num_outputs": model.num_outputs,
            "training_size": model.training_size,
            "latent_size": model.latent_size,
            "checkpoint": os.path.basename(checkpoint) if checkpoint else None,
            **model.serving_metadata(),
        })
        os.rename(partial, export_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return export_dir


def main(argv):
    del argv
    flags_values = flags.FLAGS
    try:
        model, name = run_dir.load_model(flags_values.model_dir, purpose="serving")
        path = export_model(model, flags_values.export_dir or run_dir.next_export_dir(flags_values.model_dir),
                            flags_values.max_size, model_name=name)
    except ValueError as error:
        sys.exit(f"error: {error}")
    print(f"Exported SavedModel: {path}")


def run():
    tfsynth_flags.run_command(main, tfsynth_flags.define_export_flags, required=("model_dir",))


if __name__ == "__main__":
    run()
