"""Start from the originals: ``python -m tfsynth.import_weights --from=FORMAT:PATH --model_dir=runs/NAME``.

Reads a checkpoint the original code of a family wrote (``--from``; formats in
``tfsynth.importing.formats``) and writes a tfsynth run directory: ``config.json``, a checkpoint
at step 0 and an export. ``train`` fine-tunes it (resume it with the same ``--model_dir``, or
``--init_from`` it), and ``infer``, ``evaluate``, ``bench``, the studio and TF Serving use it as
any other run. The hyper-parameters are read off the checkpoint; ``--flagfile``/``--hparams``
give the ones it does not record. The run directory is assembled beside its final place and
renamed when complete: a failed import leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile

from absl import app, flags

from tfsynth import flags as tfsynth_flags

tfsynth_flags.define_import_flags()
FLAGS = flags.FLAGS


def import_run(format_name: str, path: str, model_dir: str, options, export: bool = True) -> str:
    """Imports ``path`` (in ``format_name``) into a new run directory ``model_dir``.

    Args:
      options: ``training.TrainOptions``; its ``model`` (when not None) must be the checkpoint's
        family, its ``hparams`` override what the checkpoint implies.

    Returns:
      the export's path ('' without ``export``).
    """
    import tensorflow as tf

    from tfsynth import config as config_lib
    from tfsynth import registry, run_dir, training
    from tfsynth.importing import formats

    if os.path.exists(model_dir) and (not os.path.isdir(model_dir) or os.listdir(model_dir)):
        raise run_dir.RunDirError(f"--model_dir={model_dir} exists and is not empty: an import writes a new run "
                                  "directory, never into one that holds something")
    original = formats.read(format_name, path)
    if options.model and options.model != original.model:
        raise training.TrainingError(f"--model={options.model}: {path} is a {original.model} checkpoint")
    spec = registry.get(original.model)
    inferred = [",".join(f"{key}={_hparam_text(value)}" for key, value in original.hparams.items())]
    config = training.model_config(dataclasses.replace(options, model=spec.name,
                                                       hparams=(*inferred, *options.hparams)))
    label_space = original.label_space or "cityscapes35"
    model = training.build_model(spec, config, label_space)
    original.set_weights(model)

    parent = os.path.dirname(os.path.abspath(model_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(model_dir)}.import-", dir=parent)
    try:
        run_dir.write_config(staging, {
            "model": spec.name,
            "hparams": config_lib.to_dict(config),
            "data": {"label_space": label_space},
            "imported": {"format": format_name, "source": original.source, "iteration": original.iteration},
        })
        checkpoint = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64), **model.networks,
                                         **model.extra_state())
        saved = tf.train.CheckpointManager(checkpoint, os.path.join(staging, "checkpoints"), max_to_keep=1).save(
            checkpoint_number=0)
        export_path = ""
        if export:
            from tfsynth import export as export_lib

            export_lib.export_model(model, os.path.join(staging, "export", "1"), model_name=spec.name,
                                    checkpoint=os.path.basename(saved))
            export_path = os.path.join(model_dir, "export", "1")
        if os.path.isdir(model_dir):
            os.rmdir(model_dir)  # empty, checked above
        os.replace(staging, model_dir)  # the checkpoint state file names its checkpoint relatively
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return export_path


def _hparam_text(value) -> str:
    if isinstance(value, (tuple, list)):
        return "x".join(str(item) for item in value)
    return str(value)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tfsynth import training
    from tfsynth.importing import formats
    from tfsynth.importing.tensors import ImportFailure
    from tfsynth.importing.torch_files import TorchFileError

    format_name, _, path = FLAGS["from"].value.partition(":")
    if format_name not in formats.FORMATS or not path:
        listing = "; ".join(f"{name}: {text}" for name, (_, text) in sorted(formats.FORMATS.items()))
        sys.exit(f"error: --from={FLAGS['from'].value}: give FORMAT:PATH, FORMAT one of: {listing}")
    options = tfsynth_flags.train_options(FLAGS)  # model None unless --model names one
    try:
        export_path = import_run(format_name, path, FLAGS.model_dir, options, export=FLAGS.export)
    except (ImportFailure, TorchFileError, *training.USER_ERRORS) as error:
        sys.exit(f"error: {error}")
    print(f"Imported {path} ({format_name}) into {FLAGS.model_dir}.", flush=True)
    if export_path:
        print(f"Exported SavedModel: {export_path}", flush=True)
    print(f"Fine-tune it: python -m tfsynth.train --model_dir={FLAGS.model_dir} --train_data=DATA --train_steps=N",
          flush=True)


def run():
    tfsynth_flags.run_command(main, required=("from", "model_dir"))


if __name__ == "__main__":
    run()
