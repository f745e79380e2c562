"""TF Serving's REST API, answered from SavedModels in this process or forwarded to a real server.

:class:`LocalServing` implements the part of TF Serving's REST API the page uses, with its
bodies: model status, model metadata (the SignatureDefs, read from ``saved_model.pb`` and
written as TF Serving writes them) and predict, in the row (``instances`` -> ``predictions``) and
columnar (``inputs`` -> ``outputs``) formats, ``{"b64": ...}`` for bytes, and ``{"error": ...}``
with a 4xx status for what the caller got wrong. :class:`ForwardedServing` passes the same
calls to ``tensorflow_model_server --rest_api_port`` (``--serving_url``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re

import numpy as np

#: The largest request body accepted (bytes): a 2048x2048 label, instance and cluster map as JSON
#: lists is about 60 MB.
MAX_BODY_BYTES = 64 * 1024 * 1024
#: The most pixels (batch x height x width, per input) one predict request may ask for, unless
#: the backend is told otherwise: one image at the exports' default max_size of 2048.
MAX_PIXELS = 2048 * 2048


class ServingError(Exception):
    """A request TF Serving would refuse: an HTTP status and its ``{"error": ...}`` message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_json(body: bytes):
    """A request body (already bounded in size as it arrived) as JSON; malformed is a 400."""
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ServingError(400, f"malformed JSON in the request body: {error}") from None
    except RecursionError:
        raise ServingError(400, "the request body's JSON is nested too deeply") from None


def dump_json(data) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


# ------------------------------------------------------------------------- predict bodies

def _decode_bytes(value, name: str):
    """Nested lists with ``{"b64": ...}`` (or text) leaves -> the same nesting of bytes."""
    if isinstance(value, list):
        return [_decode_bytes(item, name) for item in value]
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise ServingError(400, f'input {name!r}: a bytes value must be {{"b64": "<base64>"}}')
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise ServingError(400, f"input {name!r}: invalid base64") from None
    if isinstance(value, str):
        return value.encode()
    raise ServingError(400, f"input {name!r}: expected strings or {{\"b64\": ...}}, got {type(value).__name__}")


def to_array(name: str, value, dtype: np.dtype, shape: list) -> np.ndarray:
    """A JSON value as the input tensor ``name`` of ``dtype`` and ``shape`` (None: any size);
    every mismatch is a 400 naming the input."""
    if dtype == object:
        array = np.array(_decode_bytes(value, name), dtype=object)
    else:
        try:
            array = np.asarray(value)
        except ValueError:
            raise ServingError(400, f"input {name!r}: nested lists of different lengths") from None
        if array.size and array.dtype.kind not in "biuf":
            raise ServingError(400, f"input {name!r}: expected numbers, got {'text' if array.dtype.kind == 'U' else 'objects'}")
        if np.dtype(dtype).kind in "iu" and array.size:
            if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
                raise ServingError(400, f"input {name!r}: {np.dtype(dtype).name} takes integers")
            limits = np.iinfo(dtype)
            if array.min() < limits.min or array.max() > limits.max:
                raise ServingError(400, f"input {name!r}: values {array.min()}..{array.max()} do not fit "
                                        f"{np.dtype(dtype).name} ({limits.min}..{limits.max})")
        array = array.astype(dtype)
    if array.ndim != len(shape) or any(want is not None and want != got for want, got in zip(shape, array.shape)):
        described = "[" + ", ".join("?" if side is None else str(side) for side in shape) + "]"
        raise ServingError(400, f"input {name!r}: expected shape {described}, got {list(array.shape)}")
    return array


def _is_named(instance, specs: dict) -> bool:
    """Whether a row names its inputs (``{"label": ..}``) rather than being the one input's
    value (a bare list, or ``{"b64": ..}`` for a single bytes input)."""
    return isinstance(instance, dict) and not (set(instance) == {"b64"} and "b64" not in specs)


def _named(values: dict, specs: dict, signature: str) -> dict:
    unknown = sorted(set(values) - set(specs))
    missing = sorted(set(specs) - set(values))
    if unknown or missing:
        problem = "; ".join(filter(None, [unknown and f"unknown input(s) {', '.join(unknown)}",
                                          missing and f"missing input(s) {', '.join(missing)}"]))
        raise ServingError(400, f"{problem}: signature {signature!r} takes {', '.join(sorted(specs))}")
    return values


def nested_shape(value) -> list[int]:
    """The shape nested lists claim along their first elements (what an array of them would
    have, if they are regular), without building the array."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return shape


def check_pixels(columns: dict, max_pixels: int) -> None:
    """Refuses (413) a request whose inputs hold more than ``max_pixels`` pixels (batch x height
    x width) each, before any array is built or any model runs."""
    for name, value in columns.items():
        shape = nested_shape(value)
        pixels = math.prod(shape[:3]) if len(shape) >= 3 else 0
        if pixels > max_pixels:
            raise ServingError(413, f"input {name!r}: {' x '.join(map(str, shape[:3]))} = {pixels} pixels in one "
                                    f"request; this studio renders at most {max_pixels} per request: send fewer "
                                    "or smaller images per request")


def request_inputs(request, specs: dict, signature: str, max_pixels: int = MAX_PIXELS) -> tuple[dict, bool]:
    """A predict body -> ({input name: array}, whether it used the row format).

    Args:
      request: the parsed JSON body (an object).
      specs: input name -> (numpy dtype, shape with None for any size) of the signature.
      signature: its name, for messages.
      max_pixels: the most pixels an input may hold (batch x height x width).
    """
    if ("instances" in request) == ("inputs" in request):
        raise ServingError(400, 'give exactly one of "instances" (row format) and "inputs" (columnar format)')
    if "instances" in request:
        rows = request["instances"]
        if not isinstance(rows, list) or not rows:
            raise ServingError(400, '"instances" must be a non-empty list')
        if all(_is_named(row, specs) for row in rows):
            if any(set(row) != set(rows[0]) for row in rows):
                raise ServingError(400, "every instance must name the same inputs")
            columns = {name: [row[name] for row in rows] for name in _named(rows[0], specs, signature)}
        elif not any(_is_named(row, specs) for row in rows):
            columns = _named(_sole_input(rows, specs, signature), specs, signature)
        else:
            raise ServingError(400, "instances must all name their inputs, or all be bare values")
        check_pixels(columns, max_pixels)
        return {name: to_array(name, value, *specs[name]) for name, value in columns.items()}, True
    given = request["inputs"]
    columns = _named(given if _is_named(given, specs) else _sole_input(given, specs, signature), specs, signature)
    check_pixels(columns, max_pixels)
    return {name: to_array(name, value, *specs[name]) for name, value in columns.items()}, False


def _sole_input(value, specs: dict, signature: str) -> dict:
    """Bare values, which TF Serving takes for a signature with a single input."""
    if len(specs) != 1:
        raise ServingError(400, f"signature {signature!r} takes named inputs ({', '.join(sorted(specs))}); "
                                "give objects naming them")
    return {next(iter(specs)): value}


def _json_value(name: str, array: np.ndarray):
    """An output as JSON; bytes of outputs named ``*_bytes`` as ``{"b64": ...}``, as TF Serving."""
    if array.dtype != object:
        return array.tolist()

    def encode(item):
        if isinstance(item, (np.ndarray, list)):
            return [encode(element) for element in item]
        if name.endswith("_bytes"):
            return {"b64": base64.b64encode(item).decode()}
        return item.decode("utf-8", "replace")

    return encode(array)


def response_body(outputs: dict, row_format: bool) -> dict:
    """TF Serving's predict response: ``predictions`` (one entry per instance; the bare value when
    the signature has one output) or ``outputs``."""
    encoded = {name: _json_value(name, np.asarray(value)) for name, value in outputs.items()}
    single = len(encoded) == 1
    if not row_format:
        return {"outputs": next(iter(encoded.values())) if single else encoded}
    count = len(next(iter(encoded.values())))
    if single:
        return {"predictions": next(iter(encoded.values()))}
    return {"predictions": [{name: value[index] for name, value in encoded.items()} for index in range(count)]}


def op_error_message(error) -> str:
    """A TensorFlow error's message without its graph decorations (node names, op ids)."""
    text = getattr(error, "message", None) or str(error)
    # A failed input check reads best from its own message on.
    text = text[text.find("assertion failed:"):] if "assertion failed:" in text else text
    text = re.sub(r"\{\{[^}]*\}\}|\[Op:[^\]]*\]|\n\s*\[\[[^\]]*\]\]", " ", text)
    return " ".join(text.split())[:1000]


# ----------------------------------------------------------------------------------- backends

class LocalServing:
    """The exports, loaded in this process, answering TF Serving's REST calls, each predict
    request holding at most ``max_pixels`` pixels per input."""

    def __init__(self, exports: dict[str, str], max_pixels: int = MAX_PIXELS):
        import tensorflow as tf

        self._loaded = {name: tf.saved_model.load(path) for name, path in exports.items()}
        self._paths = dict(exports)
        self.max_pixels = max_pixels

    def _model(self, name: str):
        if name not in self._loaded:
            # TF Serving's words for an unknown model.
            raise ServingError(404, f"Servable not found for request: Latest({name})")
        return self._loaded[name]

    def version(self, name: str) -> str:
        folder = os.path.basename(os.path.normpath(self._paths[name]))
        return folder if folder.isdigit() else "1"

    def status(self, name: str) -> dict:
        self._model(name)
        return {"model_version_status": [{"version": self.version(name), "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    def metadata(self, name: str) -> dict:
        """``GET /v1/models/<name>/metadata``: the SignatureDefMap of ``saved_model.pb`` as JSON."""
        from google.protobuf import json_format
        from tensorflow.core.protobuf import saved_model_pb2

        self._model(name)
        saved = saved_model_pb2.SavedModel()
        with open(os.path.join(self._paths[name], "saved_model.pb"), "rb") as f:
            saved.ParseFromString(f.read())
        signatures = json_format.MessageToDict(saved.meta_graphs[0], preserving_proto_field_name=True)["signature_def"]
        return {"model_spec": {"name": name, "signature_name": "", "version": self.version(name)},
                "metadata": {"signature_def": {"signature_def": signatures}}}

    def predict(self, name: str, request) -> dict:
        """``POST /v1/models/<name>:predict`` (blocking: run it off the event loop)."""
        import tensorflow as tf

        signatures = self._model(name).signatures
        if not isinstance(request, dict):
            raise ServingError(400, 'the body must be a JSON object: {"signature_name": ..., "instances": [...]}')
        signature = request.get("signature_name") or "serving_default"
        if not isinstance(signature, str):
            raise ServingError(400, f'"signature_name" must be a string, got {type(signature).__name__}')
        if signature not in signatures:
            raise ServingError(400, f"Serving signature name: \"{signature}\" not found in signature def; "
                               f"this model serves {', '.join(sorted(signatures))}")
        function = signatures[signature]
        specs = {key: (np.dtype(spec.dtype.as_numpy_dtype) if spec.dtype != tf.string else np.dtype(object),
                       spec.shape.as_list())
                 for key, spec in function.structured_input_signature[1].items()}
        inputs, row_format = request_inputs(request, specs, signature, self.max_pixels)
        try:
            outputs = function(**{key: tf.constant(value) for key, value in inputs.items()})
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError) as error:
            raise ServingError(400, op_error_message(error)) from None
        except tf.errors.ResourceExhaustedError as error:
            raise ServingError(503, op_error_message(error)) from None
        return response_body({key: value.numpy() for key, value in outputs.items()}, row_format)


class ForwardedServing:
    """TF Serving's REST API at ``url`` (``--serving_url``): the studio forwards the page's calls,
    since a browser page may not call another origin that sends no CORS headers."""

    def __init__(self, url: str, transport=None):
        import httpx2 as httpx

        self.url = url.rstrip("/")
        # Renders of large models can take a while on CPU.
        self.client = httpx.AsyncClient(timeout=300, transport=transport)

    async def forward(self, method: str, path: str, body: bytes | None = None):
        """(status, body bytes, content type) of TF Serving's answer; 502 when it does not answer."""
        import httpx2 as httpx

        try:
            reply = await self.client.request(method, self.url + path, content=body,
                                              headers={"content-type": "application/json"})
        except httpx.HTTPError as error:
            return 502, dump_json({"error": f"TF Serving at {self.url} did not answer: {error}"}), "application/json"
        return reply.status_code, reply.content, reply.headers.get("content-type", "application/json")
