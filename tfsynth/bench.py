"""Measure speed and memory: ``python -m tfsynth.bench --flagfile=configs/X.flags``.

Reports, for the model and data of a training flagfile:

* the training step: median time, images/s, analytic FLOPs per step, achieved GFLOP/s and its
  fraction of the fp32 matmul peak measured on the same machine in the same run;
* inference latency at batch 1, at the training size and at each of ``--inference_sizes`` (the
  output's size, e.g. ``256,1024`` for a fully convolutional model), of the family's serving
  function traced in this process ("graph") and of the same endpoint exported as a SavedModel
  and loaded back ("export", what TF Serving runs);
* the input pipeline's images/s (decode + transforms, no model);
* peak resident memory: after the training steps (what training needs) and at the end.

FLOPs are analytic: the traced step graph's convolutions (forward, input and filter gradients)
and matmuls, each 2*k*k*Cin*Cout*H*W (2*M*N*K), summed; elementwise work is not counted.
Timings on shared machines vary by 20-40 %: compare ratios from one run, not absolutes.
``--compare=A.json,B.json`` prints two bench reports side by side with B's ratio to A, so a
change is judged by the ratio of two runs measured in one session.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time

from absl import flags

from tfsynth import flags as tfsynth_flags
from tfsynth.console import print_summary
from tfsynth.parsing import parse_size
from tfsynth.profiling import StepProfiler

tfsynth_flags.define_runtime_flags()
flags.DEFINE_integer("bench_steps", 10, "Timed training steps.", lower_bound=1)
flags.DEFINE_integer("warmup_steps", 2, "Untimed steps first (tracing, allocation).", lower_bound=1)
flags.DEFINE_integer("pipeline_batches", 50, "Batches read when timing the input pipeline.", lower_bound=1)
flags.DEFINE_list("inference_sizes", [], "Output sizes (S or HxW) at which to time batch-1 inference too, "
                  "e.g. 256,1024.")
flags.DEFINE_string("bench_out", None, "JSON output path (default: bench.json in --model_dir, or stdout only).")
flags.DEFINE_list("compare", [], "Two bench JSON files A,B: print them side by side with B/A, and run nothing.")
flags.register_validator("compare", lambda paths: len(paths) in (0, 2),
                         message="--compare: two bench JSON files, A,B")
flags.register_validator("inference_sizes", lambda sizes: all(_is_size(size) for size in sizes),
                         message="--inference_sizes: each size is S or HxW, e.g. 256,1024 or 512x1024")
FLAGS = flags.FLAGS


def _is_size(text: str) -> bool:
    try:
        return bool(parse_size(text, square=True))
    except ValueError:
        return False

_CONV_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")


def graph_flops(concrete_function) -> int:
    """Analytic multiply-add FLOPs (x2) of the convolutions and matmuls in a traced graph."""
    import numpy as np

    total = 0
    for op in _live_ops(concrete_function.graph):
        if op.type in _CONV_OPS:
            # Every variant costs what the forward conv costs: output pixels x kernel volume.
            # Take the forward output shape from whichever tensor holds it.
            if op.type == "Conv2D":
                kernel, out = op.inputs[1].shape, op.outputs[0].shape
            elif op.type == "Conv2DBackpropInput":
                kernel, out = op.inputs[1].shape, op.inputs[2].shape
            else:
                kernel, out = op.outputs[0].shape, op.inputs[2].shape
            if kernel.is_fully_defined() and out.is_fully_defined():
                kh, kw, cin, cout = kernel.as_list()
                batch, height, width, _ = out.as_list()
                total += 2 * kh * kw * cin * cout * batch * height * width
        elif op.type in ("MatMul", "BatchMatMulV2"):
            a, b = op.inputs[0].shape, op.inputs[1].shape
            if a.is_fully_defined() and b.is_fully_defined():
                transpose_a = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
                k = a[-2] if transpose_a else a[-1]
                total += 2 * int(np.prod(op.outputs[0].shape.as_list())) * int(k)
    return total


def _live_ops(graph):
    """Ops the graph's outputs depend on. Gradient functions also emit ops nobody uses (filter
    gradients of frozen networks) that grappler prunes before running; they cost nothing."""
    # Optimizer updates are side effects: reached through the function's control outputs.
    live, stack = set(), [t.op for t in graph.outputs] + list(graph.control_outputs)
    while stack:
        op = stack.pop()
        if op in live:
            continue
        live.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return live


def measure_peak_gflops(size: int = 2048, repeats: int = 7) -> float:
    """Best fp32 matmul throughput of this machine, in GFLOP/s."""
    import tensorflow as tf

    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    matmul().numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul().numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def exported_function(model, signature: str):
    """The ``signature`` of ``model``'s SavedModel, written to a temporary folder and loaded
    back: what TF Serving and ``tfsynth.infer`` run (uint8 out, input checks included)."""
    import tempfile

    import tensorflow as tf

    from tfsynth import export

    with tempfile.TemporaryDirectory() as folder:
        path = export.export_model(model, os.path.join(folder, "1"))
        loaded = tf.saved_model.load(path)
    function = loaded.signatures[signature]
    function.loaded = loaded  # the signature does not keep its SavedModel's variables alive
    return function


def peak_rss_mib() -> float:
    """This process's largest resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(function, steps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        _block(function())
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        _block(function())
        times.append(time.perf_counter() - start)
    return times


def _block(result):
    import tensorflow as tf

    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, result)


#: What --compare shows: (key, label, higher is better).
COMPARED = [
    ("train_step_s_median", "train step s (median)", False),
    ("train_images_per_s", "train images/s", True),
    ("achieved_gflops", "achieved GFLOP/s", True),
    ("fraction_of_peak", "fraction of fp32 matmul peak", True),
    ("peak_fp32_matmul_gflops", "fp32 matmul peak GFLOP/s", True),
    ("inference_latency_ms_median", "inference ms (batch 1, training size)", False),
    ("export_latency_ms_median", "exported inference ms (batch 1, training size)", False),
    ("pipeline_images_per_s", "input pipeline images/s", True),
    ("training_peak_rss_mib", "peak RSS MiB, training", False),
    ("peak_rss_mib", "peak RSS MiB", False),
]


def compare(path_a: str, path_b: str) -> list[tuple[str, str]]:
    """Rows of B against A: both values and B/A, marked better or worse."""
    reports = []
    for path in (path_a, path_b):
        try:
            with open(path) as f:
                reports.append(json.load(f))
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"--compare: {path}: not a readable bench JSON ({error})") from None
    a, b = reports
    rows = [(name, f"{path}: {report.get('model')} {report.get('precision')}, XLA {report.get('xla')}, "
                   f"recompute {report.get('recompute', False)}, {report.get('device')}")
            for name, path, report in (("A", path_a, a), ("B", path_b, b))]
    for key, label, higher_is_better in COMPARED:
        if key in a and key in b and a[key]:
            ratio = b[key] / a[key]
            verdict = "same" if abs(ratio - 1) < 0.005 else (
                "better" if (ratio > 1) == higher_is_better else "worse")
            rows.append((label, f"{a[key]:.4g} -> {b[key]:.4g}   B/A = {ratio:.3f} ({verdict})"))
    return rows


def main(argv):
    del argv
    if FLAGS.compare:
        try:
            print_summary("tfsynth.bench --compare", compare(*FLAGS.compare))
        except ValueError as error:
            sys.exit(f"error: {error}")
        return
    import dataclasses

    import tensorflow as tf

    from tfsynth import config as config_lib
    from tfsynth import run_dir, training
    from tfsynth.records import numeric

    try:
        # The same run training builds, without a run directory: the bench writes no checkpoint.
        run = training.prepare(dataclasses.replace(tfsynth_flags.train_options(FLAGS), model_dir=None))
    except training.USER_ERRORS as error:
        sys.exit(f"error: {error}")
    model, jit, precision = run.model, run.jit, run.precision
    dataset = run.dataset()
    batch = numeric(next(iter(dataset)))

    print("measuring the fp32 matmul peak ...", flush=True)
    peak = measure_peak_gflops()
    # Counted on the plain graph: XLA-compiled parts are opaque calls, and the work is the same.
    flops = graph_flops(tf.function(model.train_step).get_concrete_function(batch))
    if jit:
        model.enable_xla()
    step = tf.function(model.train_step)
    print("timing the training step ...", flush=True)
    step_times = timed(lambda: step(batch), FLAGS.bench_steps, FLAGS.warmup_steps)
    # What training alone needs, before inference and the export trace more graphs.
    training_rss_mib = peak_rss_mib()
    profile = run.options.profile_steps
    if profile:  # after the timing, which the profiler's overhead would distort
        profiler = StepProfiler(profile, os.path.join(FLAGS.model_dir or ".", "logs"))
        for number in range(1, profile[1] + 1):
            profiler.before(number)
            _block(step(batch))
            profiler.after(number)
    endpoint, serve = model.endpoint()
    # An unconditional model's output has its one size: other sizes apply to models fed images.
    sizes = [parse_size(text, square=True) for text in FLAGS.inference_sizes] if endpoint.spatial_input else []
    sizes = [model.training_size or (256, 256)] + sizes
    # The required inputs only, so the export's signature is the one without the optional ones.
    zeros = {size: endpoint.zero_inputs(size, model.latent_size) for size in sizes}
    served = {"graph": tf.function(serve),
              "export": exported_function(model, endpoint.signature_name(zeros[sizes[0]]))}
    inference_ms = {path: {} for path in served}
    for size, inputs in zeros.items():
        print(f"timing inference at {size[0]}x{size[1]} ...", flush=True)
        for path, function in served.items():
            inference_ms[path][f"{size[0]}x{size[1]}"] = 1000 * statistics.median(
                timed(lambda: function(**inputs), FLAGS.bench_steps, 2))
    print("timing the input pipeline ...", flush=True)
    iterator = iter(dataset)
    pipe_times = timed(lambda: next(iterator), FLAGS.pipeline_batches, 5)

    step_time = statistics.median(step_times)
    achieved = flops / step_time / 1e9
    results = {
        "model": run.spec.name,
        "hparams": config_lib.to_dict(run.config),
        "device": _device_name(),
        "global_batch_size": FLAGS.global_batch_size,
        "image_size": list(tf.nest.flatten(batch)[0].shape[1:3]),
        "precision": precision,
        "xla": jit,
        "recompute": FLAGS.recompute,
        "train_step_s_median": step_time,
        "train_step_s_min": min(step_times),
        "train_images_per_s": FLAGS.global_batch_size / step_time,
        "flops_per_step": flops,
        "achieved_gflops": achieved,
        "peak_fp32_matmul_gflops": peak,
        "fraction_of_peak": achieved / peak,
        "inference_latency_ms_median": next(iter(inference_ms["graph"].values())),
        "inference_latency_ms_by_size": inference_ms["graph"],
        "export_latency_ms_median": next(iter(inference_ms["export"].values())),
        "export_latency_ms_by_size": inference_ms["export"],
        "pipeline_images_per_s": FLAGS.global_batch_size / statistics.median(pipe_times),
        "training_peak_rss_mib": training_rss_mib,
        "peak_rss_mib": peak_rss_mib(),
    }
    rows = [
        ("device", results["device"]),
        ("batch x size", f"{FLAGS.global_batch_size} x {results['image_size'][0]}x{results['image_size'][1]}"),
        ("train step (median)", f"{step_time * 1000:.1f} ms  ({results['train_images_per_s']:.2f} img/s)"),
        ("FLOPs per step", f"{flops / 1e9:.1f} GFLOP (analytic: convs + matmuls)"),
        ("achieved", f"{achieved:.0f} GFLOP/s = {100 * results['fraction_of_peak']:.0f}% of the "
                     f"{peak:.0f} GFLOP/s fp32 matmul peak"),
        *((f"inference, {path} (batch 1)", ",  ".join(f"{ms:.1f} ms at {size}" for size, ms in by_size.items()))
          for path, by_size in inference_ms.items()),
        ("input pipeline", f"{results['pipeline_images_per_s']:.0f} img/s"),
        ("peak RSS", f"{training_rss_mib:.0f} MiB training, {results['peak_rss_mib']:.0f} MiB in all"),
    ]
    print_summary(f"tfsynth.bench: {run.spec.name}", rows)
    out = FLAGS.bench_out or (os.path.join(FLAGS.model_dir, "bench.json") if FLAGS.model_dir else None)
    if out:
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        run_dir.write_json(out, results)
        print(f"wrote {out}")
    else:
        json.dump(results, sys.stdout, indent=2)
        print()


def _device_name() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"{len(gpus)} x {details.get('device_name', 'GPU')}"
    return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def run():
    tfsynth_flags.run_command(main)


if __name__ == "__main__":
    run()
