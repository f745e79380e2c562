"""Start the studio: ``python -m tfsynth.studio --saved_model=crn:S1,pix2pix:S2,pix2pixhd:S3``."""

from __future__ import annotations

import socket
import sys
import time

from absl import flags

from tfsynth import flags as tfsynth_flags
from tfsynth import run_dir
from tfsynth.data import tfrecord
from tfsynth.studio import exports, scenes

#: Connections (and requests in progress) the server keeps at once.
STUDIO_CONNECTIONS = 64


def main(argv):
    del argv
    values = flags.FLAGS
    start = time.time()
    try:
        models = exports.load_models(values.saved_model)
        label_space = models[0].info["label_space"]
        example_files = (scenes.example_files(values.examples, values.examples_split, label_space)
                         if values.examples else None)
        if values.serving_url and not values.serving_url.startswith(("http://", "https://")):
            raise exports.StudioError(f"--serving_url: {values.serving_url} is not an http(s) URL")
        # Bound before any model loads: a busy port fails at once, and --port=0 learns its port.
        listener = socket.socket(socket.AF_INET6 if ":" in values.host else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((values.host, values.port))
        listener.listen(STUDIO_CONNECTIONS)  # connections queue from here on, while the models load
    except (exports.StudioError, run_dir.RunDirError) as error:
        sys.exit(f"error: {error}")
    except tfrecord.DataError as error:
        sys.exit(f"error: --examples: {error}")
    except OSError as error:
        sys.exit(f"error: --host/--port: cannot listen on {values.host}:{values.port} ({error.strerror})")

    import uvicorn

    from tfsynth.studio import serving, server

    examples = scenes.Examples(example_files) if example_files else None
    if values.serving_url:
        backend = serving.ForwardedServing(values.serving_url)
    else:
        max_size = min(model.info["max_size"] for model in models)
        backend = serving.LocalServing({model.name: model.path for model in models}, max_pixels=max_size**2)
    limits = server.Limits(allowed_hosts=tuple(values.allowed_hosts or ()), body_timeout=values.body_timeout)
    app = server.create_app(models, backend, examples, limits)
    host, port = listener.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"tfsynth studio: http://{shown}:{port}/ ({len(models)} model(s): "
          f"{', '.join(m.name for m in models)}; ready in {time.time() - start:.1f} s; Ctrl-C stops it)", flush=True)
    # Connections beyond limit_concurrency are answered 503 at once; idle keep-alive ones close.
    uvicorn.Server(uvicorn.Config(app, log_level="warning", limit_concurrency=STUDIO_CONNECTIONS,
                                  timeout_keep_alive=5)).run(sockets=[listener])


def run():
    tfsynth_flags.run_command(main, tfsynth_flags.define_studio_flags, required=("saved_model",))


if __name__ == "__main__":
    run()
