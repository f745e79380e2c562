"""The studio's web app (Starlette): the page, TF Serving's REST API, and the studio-only calls.

See the package docstring for the routes. Every error a caller can cause answers a 4xx with
``{"error": message}`` (TF Serving's error body), which the page shows; an unexpected one
answers 500 the same way and the server carries on.
"""

from __future__ import annotations

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

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
log = logging.getLogger("tfsynth.studio")


def json_response(data, status: int = 200) -> Response:
    # Compact JSON: rendered images travel as nested lists.
    return Response(dump_json(data), status, media_type="application/json")


def create_app(models: list, serving, examples=None) -> Starlette:
    """The studio for ``models`` (:class:`exports.StudioModel`), computing with ``serving``
    (:class:`serving.LocalServing`, or :class:`serving.ForwardedServing` for ``--serving_url``)
    and offering ``examples`` (:class:`scenes.Examples`) to start from."""
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

    async def body_json(request: Request):
        declared = request.headers.get("content-length", "")
        # Refused from the header, before a huge body is read into memory.
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise ServingError(413, f"request body of {declared} bytes exceeds {MAX_BODY_BYTES}")
        return parse_json(await request.body())

    # ------------------------------------------------------------------ TF Serving's REST API
    async def tf_serving(request: Request, compute):
        """TF Serving's answer to ``request``: forwarded as it is (``--serving_url``), or
        ``compute(body)`` here, in a worker thread so the page stays answered while a model renders."""
        if forwarded:
            body = await request.body() if request.method == "POST" else None
            status, content, media_type = await serving.forward(request.method, request.url.path, body)
            return Response(content, status, media_type=media_type)
        body = await body_json(request) if request.method == "POST" else None
        return json_response(await run_in_threadpool(compute, body))

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
        return json_response(await run_in_threadpool(scenes.uploaded_scene, body, canvas, label_space, max_size))

    async def png(request: Request):
        body = await body_json(request)
        data = await run_in_threadpool(scenes.encode_png, body, label_space, max_size)
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
    return Starlette(routes=routes, exception_handlers={
        ServingError: serving_error, scenes.SceneError: scene_error, Exception: unexpected})

