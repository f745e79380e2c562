"""The studio's web app (Starlette): the page, TF Serving's REST API, and the studio-only calls.

See the package docstring for the routes. Every error a caller can cause answers a 4xx with
``{"error": message}`` (TF Serving's error body), which the page shows; an unexpected one
answers 500 the same way and the server carries on.

The network cannot take it down or use it from elsewhere (:class:`Limits`): a request body is
counted as it arrives (chunked or not) and refused past its size or its time, a predict request
holds a bounded number of pixels (checked before any array is built), a bounded number of
requests compute at once while a bounded number wait, and the rest are told the studio is busy.
Only the host names of this machine's loopback are answered unless more are allowed (a web page
elsewhere that resolves its own name to 127.0.0.1 cannot reach it: DNS rebinding), and a POST
must say its body is JSON, which a cross-site form cannot (CSRF).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tfsynth.studio import exports as exports_lib
from tfsynth.studio import scenes
from tfsynth.studio.serving import MAX_BODY_BYTES, ForwardedServing, ServingError, dump_json, parse_json

#: Host names a studio answers whatever it is told: this machine's loopback.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may cost the studio, and who may call it.

    Attributes:
      max_body_bytes: the largest request body (413 beyond, counted as the bytes arrive).
      body_timeout: seconds a client has to send a whole request body (408 after).
      render_slots: requests computed at once (the rest wait their turn).
      waiting_requests: requests that may wait for a slot; more are answered 503.
      allowed_hosts: host names answered besides the loopback ones; ``*`` answers any.
    """

    max_body_bytes: int = MAX_BODY_BYTES
    body_timeout: float = 60.0
    render_slots: int = 2
    waiting_requests: int = 16
    allowed_hosts: tuple[str, ...] = ()

    def answers_host(self, header: str) -> bool:
        allowed = {*LOOPBACK_HOSTS, *(host.lower() for host in self.allowed_hosts)}
        return "*" in allowed or host_name(header) in allowed


def host_name(header: str) -> str:
    """The host of a ``Host`` header, without its port (``[::1]:8080`` -> ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class RenderSlots:
    """At most ``slots`` computations at once, at most ``waiting`` callers waiting for one."""

    def __init__(self, slots: int, waiting: int):
        self.semaphore = asyncio.Semaphore(slots)
        self.capacity = waiting
        self.waiting = 0

    async def run(self, function, *args):
        if self.semaphore.locked() and self.waiting >= self.capacity:
            raise ServingError(503, f"the studio is busy ({self.waiting} requests wait for a render); retry shortly")
        self.waiting += 1
        try:
            await self.semaphore.acquire()
        finally:
            self.waiting -= 1
        try:
            return await run_in_threadpool(function, *args)
        finally:
            self.semaphore.release()

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
log = logging.getLogger("tfsynth.studio")


def json_response(data, status: int = 200) -> Response:
    # Compact JSON: rendered images travel as nested lists.
    return Response(dump_json(data), status, media_type="application/json")


def create_app(models: list, serving, examples=None, limits: Limits = Limits()) -> Starlette:
    """The studio for ``models`` (:class:`exports.StudioModel`), computing with ``serving``
    (:class:`serving.LocalServing`, or :class:`serving.ForwardedServing` for ``--serving_url``),
    offering ``examples`` (:class:`scenes.Examples`) to start from, within ``limits``."""
    label_space = models[0].info["label_space"]
    canvas = exports_lib.canvas_size(models)
    max_size = min(model.info["max_size"] for model in models)
    forwarded = isinstance(serving, ForwardedServing)
    config = {
        "label_space": exports_lib.label_space_json(label_space),
        "canvas": list(canvas),
        "models": [model.to_json() for model in models],
        "examples": examples.keys if examples else [],
        "serving": serving.url if forwarded else "in-process",
    }

    model_names = {model.name for model in models}
    slots = RenderSlots(limits.render_slots, limits.waiting_requests)

    async def body_bytes(request: Request) -> bytes:
        """The body, counted as it arrives (a chunked one declares no length) and refused past
        ``max_body_bytes`` or ``body_timeout``; a declared length too large is refused unread."""
        limit = limits.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ServingError(413, f"request body of {declared} bytes exceeds {limit}")
        chunks, size = [], 0
        stream = request.stream()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limits.body_timeout
        while True:
            try:
                chunk = await asyncio.wait_for(anext(stream), max(deadline - loop.time(), 0.0))
            except StopAsyncIteration:
                return b"".join(chunks)
            except asyncio.TimeoutError:
                raise ServingError(408, f"the request body did not arrive within {limits.body_timeout:g} s") from None
            size += len(chunk)
            if size > limit:
                raise ServingError(413, f"request body exceeds {limit} bytes")
            chunks.append(chunk)

    async def body_json(request: Request):
        return parse_json(await body_bytes(request))

    # ------------------------------------------------------------------ TF Serving's REST API
    async def tf_serving(request: Request, compute):
        """TF Serving's answer to ``request``: forwarded as it is (``--serving_url``), or
        ``compute(body)`` here, in a worker thread so the page stays answered while a model renders."""
        if request.path_params["name"] not in model_names:
            # TF Serving's words for an unknown model; nothing is forwarded for it.
            raise ServingError(404, f"Servable not found for request: Latest({request.path_params['name']})")
        if forwarded:
            body = await body_bytes(request) if request.method == "POST" else None
            status, content, media_type = await serving.forward(request.method, request.url.path, body)
            return Response(content, status, media_type=media_type)
        body = await body_json(request) if request.method == "POST" else None
        return json_response(await slots.run(compute, body))

    async def model_status(request: Request):
        return await tf_serving(request, lambda _: serving.status(request.path_params["name"]))

    async def model_metadata(request: Request):
        return await tf_serving(request, lambda _: serving.metadata(request.path_params["name"]))

    async def predict(request: Request):
        return await tf_serving(request, lambda body: serving.predict(request.path_params["name"], body))

    # ------------------------------------------------------------------ studio-only calls
    async def studio_config(request: Request):
        return json_response(config)

    async def synthetic_scene(request: Request):
        index = request.path_params["index"]
        return json_response(await run_in_threadpool(scenes.synthetic_scene, index, canvas, label_space))

    async def example_scene(request: Request):
        if examples is None:
            raise scenes.SceneError("no --examples were given to the studio", status=404)
        return json_response(await run_in_threadpool(examples.scene, request.path_params["index"], canvas, label_space))

    async def upload_scene(request: Request):
        body = await body_json(request)
        return json_response(await slots.run(scenes.uploaded_scene, body, canvas, label_space, max_size))

    async def png(request: Request):
        body = await body_json(request)
        data = await slots.run(scenes.encode_png, body, label_space, max_size)
        return Response(data, media_type="image/png")

    async def page(request: Request):
        return FileResponse(os.path.join(STATIC, "index.html"))

    # ------------------------------------------------------------------ errors
    async def serving_error(request: Request, error: ServingError):
        return JSONResponse({"error": error.message}, error.status)

    async def scene_error(request: Request, error: scenes.SceneError):
        return JSONResponse({"error": str(error)}, error.status)

    async def unexpected(request: Request, error: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": f"internal error: {type(error).__name__}: {error}"}, 500)

    routes = [
        Route("/", page),
        Route("/v1/models/{name}", model_status),
        Route("/v1/models/{name}/metadata", model_metadata),
        Route("/v1/models/{name}:predict", predict, methods=["POST"]),
        Route("/studio/v1/config", studio_config),
        Route("/studio/v1/scenes/synthetic/{index:int}", synthetic_scene),
        Route("/studio/v1/scenes/examples/{index:int}", example_scene),
        Route("/studio/v1/scenes/upload", upload_scene, methods=["POST"]),
        Route("/studio/v1/png", png, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={
        ServingError: serving_error, scenes.SceneError: scene_error, Exception: unexpected})
    return _guarded(app, limits)


def _guarded(app, limits: Limits):
    """``app`` behind the two checks every request passes first: a ``Host`` this studio answers,
    and a JSON body for a POST."""

    async def guarded(scope, receive, send):
        if scope["type"] == "http":
            headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
            refusal = None
            if not limits.answers_host(headers.get("host", "")):
                refusal = (400, f"Host {headers.get('host', '')!r} is not one this studio answers (loopback only: "
                                "start it with --allowed_hosts=NAME to answer NAME)")
            elif scope["method"] == "POST" and headers.get("content-type", "").split(";")[0].strip() != "application/json":
                refusal = (415, "POST bodies must be JSON and say so (Content-Type: application/json)")
            if refusal:
                await JSONResponse({"error": refusal[1]}, refusal[0])(scope, receive, send)
                return
        await app(scope, receive, send)

    guarded.app = app
    return guarded

