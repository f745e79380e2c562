"""Train a model from a flagfile: ``python -m tfsynth.train --flagfile=configs/X.flags``.

Rerunning the same command resumes from the last checkpoint; training ends with an export.
"""

from absl import app, flags

from tfsynth import flags as tfsynth_flags

tfsynth_flags.define_runtime_flags()
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tfsynth import training

    training.main(FLAGS)


def run():
    tfsynth_flags.run_command(main, required=("model_dir",))


if __name__ == "__main__":
    run()
