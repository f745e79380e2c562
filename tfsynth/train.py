"""Train a model from a flagfile: ``python -m tfsynth.train --flagfile=configs/X.flags``.

Rerunning the same command resumes from the last checkpoint; training ends with an export.
"""

import sys

from absl import app, flags

from tfsynth import flags as tfsynth_flags

tfsynth_flags.define_runtime_flags()
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tfsynth import training

    options = tfsynth_flags.train_options(FLAGS)
    try:
        if FLAGS.dry_run:
            training.describe(options)
            return
        run = training.prepare(options)
        run.fit()
        if FLAGS.export and run.is_chief:
            export(run)
    except training.USER_ERRORS as error:
        sys.exit(f"error: {error}")


def export(run) -> None:
    """The trained model's SavedModel as the run directory's next export version."""
    from tfsynth import export as export_lib
    from tfsynth import run_dir

    model = run.model
    path = export_lib.export_model(model, run_dir.next_export_dir(run.options.model_dir), model_name=run.spec.name)
    spatial = next(iter(model.serving_endpoints())).spatial_input
    example = f"--input={spatial.kind.upper()}S --output=OUT" if spatial else "--num_samples=16 --output=OUT"
    print(f"Exported SavedModel: {path}  (try: python -m tfsynth.infer --saved_model={path} {example})", flush=True)


def run():
    tfsynth_flags.run_command(main, required=("model_dir",))


if __name__ == "__main__":
    run()
