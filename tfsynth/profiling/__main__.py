"""Sum a profiler trace up by kind of work: ``python -m tfsynth.profiling --logdir=RUN/logs
[--onednn_log=FILE]`` (what it prints: ``tfsynth.profiling``'s docstring)."""

import sys

from absl import flags

from tfsynth import flags as tfsynth_flags
from tfsynth.console import print_summary
from tfsynth.profiling import (latest_trace, onednn_times, op_self_times, read_trace, share_rows, step_rows,
                               step_times, step_windows_ms, summary_rows)


def define_flags():
    flags.DEFINE_string("logdir", None, "A run's logs/ (or bench --model_dir's logs/) holding a profiler trace.")
    flags.DEFINE_integer("top", 15, "Op types listed after the categories.", lower_bound=0)
    flags.DEFINE_string("onednn_log", None, "The same run's output with ONEDNN_VERBOSE=1 ONEDNN_VERBOSE_TIMESTAMP=1: "
                        "adds oneDNN's time by primitive (layout reorders included) within the traced steps.")


def main(argv):
    del argv
    values = flags.FLAGS
    try:
        trace = latest_trace(values.logdir)
        space = read_trace(trace)
        times = op_self_times(trace)
        steps = step_times(space)
        if values.onednn_log and not steps:
            raise ValueError(f"--onednn_log: the trace {trace} marks no steps to select the log's lines by "
                             "(trace again with this version's --profile_steps)")
        onednn = onednn_times(values.onednn_log, step_windows_ms(steps)) if values.onednn_log else None
    except ValueError as error:
        sys.exit(f"error: {error}")
    if steps:
        print_summary(f"the traced steps' wall time ({trace})", step_rows(steps))
    print_summary("self-time of the traced steps by kind of op, both executor threads", summary_rows(times, values.top))
    if onednn:
        print_summary(f"oneDNN's time by primitive within the traced steps ({values.onednn_log})",
                      share_rows(onednn, 1e-3))


def run():
    tfsynth_flags.run_command(main, define_flags, required=("logdir",))


if __name__ == "__main__":
    run()
