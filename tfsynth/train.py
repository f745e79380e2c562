"""Train a model from a flagfile: ``python -m tfsynth.train --flagfile=configs/X.flags``.

Rerunning the same command resumes from the last checkpoint; training ends with an export.
"""

import os
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
    new_run_dir = not os.path.exists(options.model_dir)
    try:
        if FLAGS.dry_run:
            training.describe(options)
            return
        run = training.prepare(options)
        run.fit()
        if FLAGS.export and run.is_chief:
            export(run)
    except training.USER_ERRORS as error:
        if new_run_dir and os.path.isdir(options.model_dir) and not os.listdir(options.model_dir):
            os.rmdir(options.model_dir)  # a run that failed before writing anything leaves nothing
        sys.exit(f"error: {error}")


def export(run) -> None:
    """The trained model's SavedModel as the run directory's next export version, unless the
    latest export already holds the checkpoint training ended with (a rerun of a finished run)."""
    from tfsynth import export as export_lib
    from tfsynth import run_dir

    model, model_dir = run.model, run.options.model_dir
    latest = run_dir.latest_export_dir(model_dir)
    if latest and os.path.exists(os.path.join(latest, run_dir.EXPORT_INFO)):
        held = run_dir.read_json(os.path.join(latest, run_dir.EXPORT_INFO), "--model_dir").get("checkpoint")
        if held and held == os.path.basename(run.last_checkpoint or ""):
            print(f"Export {latest} holds {held} already: not exported again.", flush=True)
            return
    path = export_lib.export_model(model, run_dir.next_export_dir(model_dir), model_name=run.spec.name,
                                   checkpoint=run.last_checkpoint)
    spatial = next(iter(model.serving_endpoints())).spatial_input
    example = f"--input={spatial.kind.upper()}S --output=OUT" if spatial else "--num_samples=16 --output=OUT"
    print(f"Exported SavedModel: {path}  (try: python -m tfsynth.infer --saved_model={path} {example})", flush=True)


def run():
    tfsynth_flags.run_command(main, required=("model_dir",))


if __name__ == "__main__":
    run()
