"""Traces chosen steps with the TensorFlow profiler (``--profile_steps=A,B``), and sums a trace
up by kind of work: ``python -m tfsynth.profiling --logdir=RUN/logs``.

The trace goes to ``<logdir>/plugins/profile/<time>/``, where TensorBoard's Profile tab (the
``tensorboard-plugin-profile`` package: ``pip install -e '.[profile]'``) shows where each step's
time goes: ops by kind, layout conversions, host and input pipeline. The command prints the
same trace's self-time by category (convolutions by direction, optimizer, normalisation,
elementwise, data movement, idle) and by op type, the breakdown docs/performance.md quotes.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import sys

from absl import flags


class StepProfiler:
    """Starts the profiler before step ``first`` and stops it after step ``last`` (1-based)."""

    def __init__(self, steps: tuple[int, int] | None, logdir: str):
        self.steps, self.logdir = steps, logdir
        self.running = False

    def before(self, step: int) -> None:
        """Call before running ``step``."""
        if self.steps and step == self.steps[0] and not self.running:
            import tensorflow as tf

            tf.profiler.experimental.start(self.logdir)
            self.running = True

    def after(self, step: int) -> None:
        """Call after ``step`` has run (and its results were read, so its work is in the trace)."""
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


def op_self_times(logdir: str) -> dict[str, float]:
    """Self-time in microseconds by op type in the latest trace under ``logdir``.

    Raises:
      ValueError: no trace there, or the trace reader is not installed.
    """
    traces = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")))
    if not traces:
        raise ValueError(f"--logdir: no profiler trace under {logdir}/plugins/profile (train or bench "
                         "with --profile_steps=A,B first)")
    try:
        from xprof.convert import raw_to_tool_data
    except ImportError:
        try:
            from tensorboard_plugin_profile.convert import raw_to_tool_data
        except ImportError:
            raise ValueError("reading a trace needs the profiler plugin: pip install -e '.[profile]'") from None
    data, _ = raw_to_tool_data.xspace_to_tool_data([traces[-1]], "framework_op_stats", {})
    table = json.loads(data)[0]  # a Google DataTable: cols, then rows of {"v": value} cells
    columns = [column["id"] for column in table["cols"]]
    times = collections.Counter()
    for row in table["rows"]:
        cells = dict(zip(columns, [cell["v"] if cell else None for cell in row["c"]]))
        times[cells["type"]] += float(cells["total_self_time"])
    return dict(times)


def summary_rows(times: dict[str, float], top: int) -> list[tuple[str, str]]:
    total = sum(times.values()) or 1.0
    by_category = collections.Counter()
    for op_type, microseconds in times.items():
        by_category[category(op_type)] += microseconds
    rows = [(label, f"{100 * value / total:5.1f} %  {value / 1e6:8.2f} s") for label, value in by_category.most_common()]
    rows.append(("", ""))
    rows += [(op_type, f"{100 * value / total:5.1f} %  {value / 1e6:8.2f} s")
             for op_type, value in collections.Counter(times).most_common(top)]
    return rows


def define_flags():
    flags.DEFINE_string("logdir", None, "A run's logs/ (or bench --model_dir's logs/) holding a profiler trace.")
    flags.DEFINE_integer("top", 15, "Op types listed after the categories.", lower_bound=0)


def main(argv):
    del argv
    from tfsynth.training import print_summary

    values = flags.FLAGS
    try:
        times = op_self_times(values.logdir)
    except ValueError as error:
        sys.exit(f"error: {error}")
    print_summary(f"self-time of the traced steps by kind, both threads ({values.logdir})",
                  summary_rows(times, values.top))


def run():
    from tfsynth import flags as tfsynth_flags

    tfsynth_flags.run_command(main, define_flags, required=("logdir",))


if __name__ == "__main__":
    run()
