"""Traces chosen steps with the TensorFlow profiler (``--profile_steps=A,B``).

The trace goes to ``<logdir>/plugins/profile/<time>/``, where TensorBoard's Profile tab (the
``tensorboard-plugin-profile`` package: ``pip install -e '.[profile]'``) shows where each step's
time goes: ops by kind, layout conversions, host and input pipeline.
"""

from __future__ import annotations


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
