"""Traces chosen steps with the TensorFlow profiler (``--profile_steps=A,B``), and sums a trace
up by kind of work (the library behind ``python -m tfsynth.profiling --logdir=RUN/logs
[--onednn_log=FILE]``, whose command is ``tfsynth/profiling/__main__.py``).

The trace goes to ``<logdir>/plugins/profile/<time>/``, where TensorBoard's Profile tab (the
``tensorboard-plugin-profile`` package: ``pip install -e '.[profile]'``) shows where each step's
time goes. The command prints, for the same trace, the breakdown docs/performance.md quotes:

- each traced step's wall time split into computing (an op running on an executor thread),
  waiting for the input pipeline, and the host's share (no op running: Python, dispatch and the
  executor's scheduling);
- self-time by kind of op (convolutions by direction, optimizer, normalisation, elementwise,
  data movement, an idle executor thread) and by op type;
- with ``--onednn_log``, oneDNN's own time by primitive within the traced steps, which shows the
  layout reorders that run inside TensorFlow's convolution ops (they are no ops of their own):
  ``ONEDNN_VERBOSE=1 ONEDNN_VERBOSE_TIMESTAMP=1 python -m tfsynth.bench ... --profile_steps=A,B
  > FILE``.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import json
import os
import statistics


#: The trace event around each profiled step; it carries the step's number, from which
#: TensorBoard's step-time views and ``step_times`` find the steps.
STEP_EVENT = "train"


class StepProfiler:
    """Starts the profiler before step ``first`` and stops it after step ``last`` (1-based)."""

    def __init__(self, steps: tuple[int, int] | None, logdir: str):
        self.steps, self.logdir = steps, logdir
        self.running = False
        self.step_event = None

    def before(self, step: int) -> None:
        """Call before running ``step``."""
        import tensorflow as tf

        if self.steps and step == self.steps[0] and not self.running:
            tf.profiler.experimental.start(self.logdir)
            self.running = True
        if self.running:
            self.step_event = tf.profiler.experimental.Trace(STEP_EVENT, step_num=step, _r=1)
            self.step_event.__enter__()

    def after(self, step: int) -> None:
        """Call after ``step`` has run (and its results were read, so its work is in the trace)."""
        if self.step_event is not None:
            self.step_event.__exit__(None, None, None)
            self.step_event = None
        if self.running and step >= self.steps[1]:
            self.stop()

    def stop(self) -> None:
        if self.running:
            import tensorflow as tf

            tf.profiler.experimental.stop()
            self.running = False
            print(f"profiled steps {self.steps[0]}-{self.steps[1]}: tensorboard --logdir={self.logdir} "
                  "(Profile tab)", flush=True)


#: Op types by the kind of work they do (TensorFlow's oneDNN ops carry an ``_MklNative`` prefix).
CATEGORIES = {
    "convolution, forward": ("Conv2D", "FusedConv2D", "PadWithConv2D", "PadWithFusedConv2D", "DepthwiseConv2dNative"),
    "convolution, input gradient (and transposed forward)": ("Conv2DBackpropInput",),
    "convolution, filter gradient": ("Conv2DBackpropFilter", "Conv2DBackpropFilterWithBias"),
    "matmul": ("MatMul", "BatchMatMulV2", "FusedMatMul"),
    "optimizer update": ("ResourceApplyAdam", "AssignAddVariableOp", "AssignSubVariableOp", "AssignVariableOp"),
    "normalisation": ("FusedBatchNormV3", "FusedBatchNormGradV3", "Mean", "SquaredDifference", "Rsqrt",
                      "RsqrtGrad", "Variance"),
    "data movement": ("Slice", "StridedSlice", "StridedSliceGrad", "ConcatV2", "Pad", "MirrorPad", "MirrorPadGrad",
                      "Transpose", "Reshape", "Tile", "GatherV2", "Cast", "Identity", "ResizeBilinear",
                      "ResizeBilinearGrad", "ResizeNearestNeighbor", "ResizeNearestNeighborGrad"),
    "idle (an inter-op thread waiting)": ("IDLE",),
}


def category(op_type: str) -> str:
    name = op_type.removeprefix("_MklNative").removeprefix("_Mkl")
    for label, types in CATEGORIES.items():
        if name in types:
            return label
    return "elementwise and other"


def latest_trace(logdir: str) -> str:
    """The newest ``*.xplane.pb`` under ``logdir``.

    Raises:
      ValueError: there is none.
    """
    traces = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")))
    if not traces:
        raise ValueError(f"--logdir: no profiler trace under {logdir}/plugins/profile (train or bench "
                         "with --profile_steps=A,B first)")
    return traces[-1]


def op_self_times(trace: str) -> dict[str, float]:
    """Self-time in microseconds by op type in a trace (``*.xplane.pb``).

    Raises:
      ValueError: the trace reader is not installed.
    """
    try:
        from xprof.convert import raw_to_tool_data
    except ImportError:
        try:
            from tensorboard_plugin_profile.convert import raw_to_tool_data
        except ImportError:
            raise ValueError("reading a trace needs the profiler plugin: pip install -e '.[profile]'") from None
    data, _ = raw_to_tool_data.xspace_to_tool_data([trace], "framework_op_stats", {})
    table = json.loads(data)[0]  # a Google DataTable: cols, then rows of {"v": value} cells
    columns = [column["id"] for column in table["cols"]]
    times = collections.Counter()
    for row in table["rows"]:
        cells = dict(zip(columns, [cell["v"] if cell else None for cell in row["c"]]))
        times[cells["type"]] += float(cells["total_self_time"])
    return dict(times)


@dataclasses.dataclass(frozen=True)
class StepTime:
    """One traced step's wall time and how it was spent, in seconds."""

    number: int
    start_ms: float  #: epoch milliseconds
    wall: float
    computing: float  #: some op running on an executor thread
    input_wait: float  #: only the input pipeline's get-next running: the step waiting for its batch

    @property
    def host(self) -> float:
        """No op running at all: Python, dispatching the step's function, the executor's scheduling."""
        return self.wall - self.computing - self.input_wait


#: The event of an iterator's get-next (an asynchronous op: it runs on a tf.data thread).
INPUT_EVENT = "IteratorGetNextOp::DoCompute"


def read_trace(trace: str):
    """The ``XSpace`` in a ``*.xplane.pb`` file.

    Raises:
      ValueError: the file is unreadable or not a trace.
    """
    from google.protobuf.message import DecodeError
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    try:
        with open(trace, "rb") as file:
            space.ParseFromString(file.read())
    except (OSError, DecodeError) as error:
        raise ValueError(f"--logdir: {trace} is not a readable profiler trace ({error})") from None
    return space


def profile_start_ns(space) -> int:
    """The epoch time (ns) the trace's own times count from."""
    for plane in space.planes:
        for stat in plane.stats:
            if plane.stat_metadata[stat.metadata_id].name == "profile_start_time":
                return stat.int64_value or stat.uint64_value
    return 0


def union_length(intervals) -> int:
    """The length covered by ``(start, stop)`` intervals, counting overlaps once."""
    total, end = 0, None
    for start, stop in sorted(intervals):
        if end is None or start >= end:
            total, end = total + stop - start, stop
        elif stop > end:
            total, end = total + stop - end, stop
    return total


def step_times(space) -> list[StepTime]:
    """The steps ``StepProfiler`` marked in a trace, each split by what was running."""
    steps, ops, inputs = [], [], []
    for plane in space.planes:
        names = {key: metadata.name for key, metadata in plane.event_metadata.items()}
        stat_names = {key: metadata.name for key, metadata in plane.stat_metadata.items()}
        for line in plane.lines:
            executor = line.name.startswith("tf_Compute")
            for event in line.events:
                name = names[event.metadata_id]
                start = line.timestamp_ns * 1000 + event.offset_ps
                interval = (start, start + event.duration_ps)
                if name == STEP_EVENT:
                    number = next((stat.int64_value or stat.uint64_value for stat in event.stats
                                   if stat_names[stat.metadata_id] == "step_num"), 0)
                    steps.append((number, interval))
                elif name == INPUT_EVENT:
                    inputs.append(interval)
                elif executor and ":" in name and "::" not in name:  # an op: "name:Type"
                    ops.append(interval)

    def within(intervals, start, stop):
        return [(max(a, start), min(b, stop)) for a, b in intervals if b > start and a < stop]

    # Events count from the trace's start; the epoch time lines the steps up with other logs.
    origin_ms = profile_start_ns(space) / 1e6
    times = []
    for number, (start, stop) in sorted(steps, key=lambda step: step[1]):
        computing = union_length(within(ops, start, stop))
        busy = union_length(within(ops + inputs, start, stop))
        times.append(StepTime(number, origin_ms + start / 1e9, (stop - start) / 1e12, computing / 1e12,
                              (busy - computing) / 1e12))
    return times


def step_rows(times: list[StepTime]) -> list[tuple[str, str]]:
    """The steps' count and median, then their time by what was running, as shares of the wall time."""
    wall = sum(step.wall for step in times) or 1.0

    def share(seconds: float) -> str:
        return f"{100 * seconds / wall:5.1f} %"

    return [
        ("steps", f"{len(times)} (step {times[0].number} to {times[-1].number}), "
                  f"median {statistics.median(step.wall for step in times):.3f} s"),
        ("computing", f"{share(sum(step.computing for step in times))}  an op running on an executor thread"),
        ("input pipeline", f"{share(sum(step.input_wait for step in times))}  waiting for the batch"),
        ("host", f"{share(sum(step.host for step in times))}  no op running: Python, dispatch, scheduling"),
    ]


def step_windows_ms(steps: list[StepTime]) -> list[tuple[float, float]]:
    """Each step's start and end, in epoch milliseconds."""
    return [(step.start_ms, step.start_ms + 1e3 * step.wall) for step in steps]


def onednn_category(kind: str, direction: str) -> str:
    """A oneDNN primitive's kind, as the breakdown names it."""
    if kind in ("convolution", "deconvolution"):
        return f"oneDNN {kind}, " + {"backward_data": "input gradient",
                                     "backward_weights": "filter gradient"}.get(direction, "forward")
    if kind == "reorder":
        return "oneDNN reorder (a layout or type conversion)"
    return f"oneDNN {kind}"


def onednn_times(log: str, windows: list[tuple[float, float]]) -> dict[str, float]:
    """Milliseconds by primitive in a oneDNN verbose log, for the primitives run within one of
    ``windows`` (epoch milliseconds: the traced steps).

    The log is what ``ONEDNN_VERBOSE=1 ONEDNN_VERBOSE_TIMESTAMP=1`` prints: one line per primitive
    run, ``onednn_verbose,v1,TIMESTAMP,primitive,exec,cpu,KIND,IMPLEMENTATION,DIRECTION,...,MS``.

    Raises:
      ValueError: the file is unreadable, has no timestamps, or no primitive ran in a window.
    """
    times, stamped = collections.Counter(), False
    try:
        with open(log, errors="replace") as file:
            for line in file:
                fields = line.rstrip("\n").split(",")
                if fields[0] != "onednn_verbose" or len(fields) < 10 or fields[3:5] != ["primitive", "exec"]:
                    continue
                stamped = True
                stamp = float(fields[2])
                if any(start <= stamp <= end for start, end in windows):
                    times[onednn_category(fields[6], fields[8])] += float(fields[-1])
    except (OSError, ValueError) as error:
        raise ValueError(f"--onednn_log: cannot read {log}: {error}") from None
    if not stamped:
        raise ValueError(f"--onednn_log: {log} has no timestamped primitive runs (record it with "
                         "ONEDNN_VERBOSE=1 ONEDNN_VERBOSE_TIMESTAMP=1)")
    if not times:
        raise ValueError(f"--onednn_log: no primitive of {log} ran within the traced steps (record the "
                         "log in the run that wrote the trace)")
    return dict(times)


def share_rows(times: dict[str, float], unit: float, total: float | None = None) -> list[tuple[str, str]]:
    """``name  share of total %  seconds`` rows, largest first; ``unit`` converts to seconds."""
    total = total or sum(times.values()) or 1.0
    return [(name, f"{100 * value / total:5.1f} %  {value * unit:9.3f} s")
            for name, value in collections.Counter(times).most_common()]


def summary_rows(times: dict[str, float], top: int) -> list[tuple[str, str]]:
    """Op self-time (µs) by category, then the ``top`` op types, as shares of all of it."""
    by_category = collections.Counter()
    for op_type, microseconds in times.items():
        by_category[category(op_type)] += microseconds
    top_types = dict(collections.Counter(times).most_common(top))
    return share_rows(by_category, 1e-6) + [("", "")] + share_rows(top_types, 1e-6, total=sum(times.values()))
