"""Every absl flag of the entry points, defined here once (never in a ``-m`` module, where a
second import would define them twice; docs/tensorflow-notes.md Q9).

Entry points call the ``define_*`` functions they need before ``app.run``. Flags are parsed
before TensorFlow is imported, so a wrong flag fails in a fraction of a second.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import sys
import types

from absl import app, flags, logging

from tfsynth import registry

FLAGS = flags.FLAGS

# Entry points import this module before TensorFlow: keep TF's C++ info and CUDA-probe lines
# (e.g. "failed call to cuInit" on machines without a GPU) out of the output; set it to 0 to debug.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


_HELP_ARGS = {"-h", "-?", "-help", "--help", "-helpshort", "--helpshort", "-helpfull", "--helpfull"}


def parse_flags(argv):
    """absl's parser, except that asking for help exits 0 (absl exits 1 after printing it)."""
    try:
        remaining = app.parse_flags_with_usage(argv)
    except SystemExit as error:
        if error.code == 1 and _HELP_ARGS.intersection(argv[1:]):
            raise SystemExit(0) from None
        raise
    # Commands print their own progress and results; TensorFlow's INFO lines (signature renaming,
    # sharding callbacks ...) appear only when asked for with --verbosity=1 or higher.
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    return remaining


#: A write that failed for want of space, as the OS (errno) and TensorFlow (message) say it.
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_TF_STORAGE_ERROR = re.compile(r"(\S+?);? (No space left on device|Disk quota exceeded|File too large)")


def storage_error(error: BaseException) -> str | None:
    """``FILE: reason`` when ``error`` is a write that failed for want of space, else None."""
    if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
        return f"{error.filename or 'writing a file'}: {error.strerror}"
    if type(error).__module__.startswith("tensorflow"):  # tf.errors.*: C++ writers (checkpoints, events)
        match = _TF_STORAGE_ERROR.search(str(error))
        if match:
            return f"{match.group(1)}: {match.group(2)}"
    return None


def profile_range(steps: list[str]) -> tuple[int, int] | None:
    """``--profile_steps`` as (first, last), or None when it is not two steps 1 <= A <= B."""
    if len(steps) != 2 or not all(step.strip().isdigit() for step in steps):
        return None
    first, last = (int(step) for step in steps)
    return (first, last) if 1 <= first <= last else None


def run_command(main, define_flags=None, required: tuple[str, ...] = ()) -> None:
    """Defines a command's flags, marks the required ones, and runs ``main`` under absl.

    A full disk ends any command with one ``error:`` line naming the file it could not write
    (files are written atomically, so what was saved before is intact) instead of a traceback.
    """
    if define_flags is not None:
        define_flags()
    for name in required:
        flags.mark_flag_as_required(name)

    def main_reporting_full_disks(argv):
        try:
            return main(argv)
        except KeyboardInterrupt:
            sys.exit("error: interrupted; what was saved before is intact (training resumes from its last "
                     "checkpoint)")
        except Exception as error:  # noqa: BLE001 - re-raised unless it is a full disk
            where = storage_error(error)
            if where is None:
                raise
            sys.exit(f"error: {where}. Free space and rerun: files saved before are intact, "
                     "and training resumes from its last checkpoint")

    app.run(main_reporting_full_disks, flags_parser=parse_flags)


def _once(define):
    """Lets several entry points (and tests importing them) share a definition function: it
    defines its flags once on each ``FlagValues`` (the global one by default)."""
    done = []

    def wrapper(values=FLAGS):
        if not any(values is seen for seen in done):
            define(values)
            done.append(values)

    wrapper.__doc__ = define.__doc__
    return wrapper


def _definer(values):
    """absl's ``DEFINE_*`` and ``register_validator``, each bound to ``values``."""
    names = ("DEFINE_string", "DEFINE_integer", "DEFINE_float", "DEFINE_bool", "DEFINE_enum", "DEFINE_list",
             "DEFINE_multi_string", "register_validator")
    return types.SimpleNamespace(**{name: functools.partial(getattr(flags, name), flag_values=values)
                                    for name in names})


@_once
def define_runtime_flags(values):
    """Flags shared by train and bench."""
    define = _definer(values)
    define.DEFINE_enum("model", None, sorted(registry.MODELS),
                       "Model family to train; default: the resumed run's (its config.json), else crn.")
    define.DEFINE_string("model_dir", None, "Run directory: config.json, checkpoints/, logs/, samples/, export/.")
    define.DEFINE_string("train_data", "synthetic",
                         "TFRecord dataset directory (with dataset.json), or 'synthetic[:HxW[:N]]' for the "
                         "built-in street scenes (generated once, cached under $TFSYNTH_CACHE).")
    define.DEFINE_string("eval_data", None, "Dataset for sample grids; default: the train data's val split "
                         "when it has one, else its first train examples.")
    define.DEFINE_string("train_split", "train", "Split of --train_data to train on.")
    define.DEFINE_integer("global_batch_size", 1, "Examples per step over all replicas.", lower_bound=1)
    define.DEFINE_integer("train_steps", None, "Steps to train (overrides --epochs).", lower_bound=1)
    define.DEFINE_float("epochs", None, "Epochs to train, when --train_steps is not given.", lower_bound=0)
    define.DEFINE_enum("strategy", "auto", ["auto", "default", "mirrored", "multi_worker", "tpu"],
                       "tf.distribute strategy.")
    define.DEFINE_float("worker_timeout", 600.0, "--strategy=multi_worker: seconds to wait for every worker of "
                        "TF_CONFIG to join before giving up with the names of those missing.", lower_bound=1)
    define.DEFINE_integer("cpu_devices", 1, "Without GPUs: logical CPU devices for --strategy=mirrored "
                          "(to test distribution on one machine).", lower_bound=1)
    define.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"],
                       "XLA for the per-replica gradient computation; auto = on for GPU/TPU, off on CPU.")
    define.DEFINE_enum("mixed_precision", "none", ["none", "bfloat16", "float16", "auto"],
                       "Compute precision (variables stay float32). auto: bfloat16 where the CPU (AVX512-BF16, "
                       "AMX) or GPU (compute capability 8.0+) computes it natively, else float32.")
    define.DEFINE_bool("recompute", False, "Trade time for memory: recompute activations in the backward pass "
                       "instead of keeping them (the family's generator and its VGG loss network stage by "
                       "stage; docs/performance.md has the cost). Families that cannot recompute refuse it.")
    define.DEFINE_integer("seed", 0, "Seed for initialisation and data order.")
    define.DEFINE_bool("deterministic", False, "Deterministic ops (slower); the data order is always seeded.")
    define.DEFINE_integer("log_every", 50, "Steps between progress lines and scalar summaries.", lower_bound=1)
    define.DEFINE_integer("image_every", 500, "Steps between image grids (TensorBoard and samples/).", lower_bound=1)
    define.DEFINE_integer("checkpoint_every", 1000, "Steps between checkpoints.", lower_bound=1)
    define.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.", lower_bound=1)
    define.DEFINE_list("profile_steps", [], "A,B: trace steps A to B (1-based) with the TensorFlow profiler into "
                       "<model_dir>/logs, for TensorBoard's Profile tab (pip install -e '.[profile]'); bench "
                       "profiles steps run after the timed ones.")
    define.register_validator("profile_steps", lambda steps: not steps or profile_range(steps) is not None,
                              message="--profile_steps: two step numbers A,B with 1 <= A <= B")
    define.DEFINE_multi_string("hparams", [], "Model hyper-parameters, key=value,... (strict: unknown keys "
                               "fail). Repeatable: a flagfile's and the command line's merge left to right, "
                               "later keys win.")
    define.DEFINE_string("vgg_weights", None,
                         "Perceptual network weights for models that have one: imagenet | auto | random | "
                         "PATH (MatConvNet imagenet-vgg-verydeep-19.mat, keras *_notop.h5 or torchvision "
                         "vgg16-*.pth / vgg19-*.pth). Same as "
                         "--hparams=vgg_weights=...")
    define.DEFINE_string("init_from", None, "Warm start: a model_dir (or checkpoint prefix) whose network "
                         "weights are copied by layer name where shapes match (e.g. CRN 512p from 256p).")
    define.DEFINE_integer("num_samples", 2, "Examples in the image grid.", lower_bound=1)
    define.DEFINE_integer("eval_every", 0, "Steps between cheap metrics (PSNR, SSIM, output diversity) on a "
                          "fixed eval subset, written to logs/eval; 0: off.", lower_bound=0)
    define.DEFINE_integer("eval_examples", 16, "Examples in that eval subset.", lower_bound=1)
    define.DEFINE_bool("dry_run", False, "Build the networks, print their parameter counts, and exit "
                       "without reading data.")
    define.DEFINE_bool("export", True, "Export a SavedModel at the end of training.")
    define.DEFINE_enum("on_nan", "stop", ["stop", "skip_step"],
                       "A NaN or infinite loss (or weight): stop with an error before anything non-finite "
                       "is saved (the last good checkpoint is kept), or drop that step's update and go on "
                       "(counted in TensorBoard as train/skipped_steps; keeps a second copy of the weights "
                       "and optimizer state in memory).")


@_once
def define_import_flags(values):
    """import_weights: train's flags (so a training flagfile gives what a checkpoint does not
    record) and the checkpoint to read."""
    from tfsynth.importing import formats

    define_runtime_flags(values)
    listing = "; ".join(f"{name}: {text}" for name, (_, text) in sorted(formats.FORMATS.items()))
    _definer(values).DEFINE_string("from", None, f"FORMAT:PATH of the original's checkpoint. Formats: {listing}.")


def parse_train_options(args: list[str]):
    """The ``training.TrainOptions`` of ``tfsynth.train``'s arguments (``--flagfile=...``, flags),
    parsed apart from the global flags: a notebook or a test trains from a flagfile with
    ``training.prepare(parse_train_options([...])).fit()``."""
    values = flags.FlagValues()
    define_runtime_flags(values)
    values(["tfsynth.train", *args])
    return train_options(values)


def train_options(values=FLAGS):
    """The ``training.TrainOptions`` that train's and bench's flags describe: the one place where
    the loop's options are read from flags."""
    import dataclasses

    from tfsynth.training import TrainOptions

    fields = {field.name: values[field.name].value for field in dataclasses.fields(TrainOptions)
              if field.name not in ("hparams", "profile_steps")}
    return TrainOptions(**fields, hparams=tuple(values.hparams or ()),
                        profile_steps=profile_range(values.profile_steps))


@_once
def define_export_flags(values):
    define = _definer(values)
    define.DEFINE_string("model_dir", None, "Run directory to export from (latest checkpoint).")
    define.DEFINE_string("export_dir", None, "Destination; default model_dir/export/<next version>.")
    define.DEFINE_integer("max_size", 2048, "Largest accepted height or width; larger inputs fail "
                          "with INVALID_ARGUMENT.", lower_bound=1)


@_once
def define_infer_flags(values):
    define = _definer(values)
    define.DEFINE_string("saved_model", None, "Exported SavedModel directory (export/<version>).")
    define.DEFINE_string("input", None, "A label PNG or photo, or a directory of them (what the export's "
                         "endpoint reads).")
    define.DEFINE_string("instance", None, "Instance-id PNGs (a file, or a directory with the stems of "
                         "--input) for exports that read instance maps.")
    define.DEFINE_integer("num_samples", 0, "Unconditional exports: images to draw.", lower_bound=0)
    define.DEFINE_integer("seed", 0, "Unconditional exports: the first seed (then seed + 1, ...).")
    define.DEFINE_string("interpolate", None, "Unconditional exports: SEED_A,SEED_B writes --steps images along "
                         "the (spherical) path between the two seeds' latents, and the strip of them.")
    define.DEFINE_integer("steps", 8, "Images in an --interpolate strip, both ends included.", lower_bound=2)
    define.DEFINE_string("output", None, "Directory for the generated PNGs.")
    define.DEFINE_string("signature", "serving_default", "Endpoint to run (e.g. a_to_b / b_to_a for CycleGAN).")
    define.DEFINE_enum("fit", "pad", ["pad", "resize", "error"], "Inputs whose size the architecture cannot "
                       "take: pad by reflection to the next multiple and crop the output back, resize there "
                       "and back, or refuse.")
    define.DEFINE_bool("overwrite", False, "Replace outputs that exist already.")


@_once
def define_evaluate_flags(values):
    define = _definer(values)
    define.DEFINE_string("saved_model", None, "An export (export/<version>), or name:PATH,name:PATH,... "
                         "to compare several on the same data.")
    define.DEFINE_string("eval_data", None, "Dataset directory, or 'synthetic[:HxW[:N]]'.")
    define.DEFINE_string("split", "val", "Split of --eval_data, or several comma-separated (e.g. train,val: "
                         "a report for each under --out/<split>/).")
    define.DEFINE_string("out", None, "Directory for report.json, report.md and grid.png.")
    define.DEFINE_string("segmenter", None, "Segmenter export (image -> trainIds), e.g. one trained with "
                         "--model=segmenter; without it no segmentation scores.")
    define.DEFINE_string("inception", "auto", "FID/KID features: auto (keras ImageNet InceptionV3 when cached "
                         "or downloadable, else the report goes without FID/KID and says how to add them), "
                         "keras (the same, but fail without them), PATH to the 2015 graph "
                         "classify_image_graph_def.pb (comparable with papers) or a keras .h5, random (tests "
                         "only), or none.")
    define.DEFINE_string("vgg_weights", "auto", "VGG-19 weights for the feature diversity of multi-output "
                         "models (imagenet | auto | random | PATH).")
    define.DEFINE_integer("num_examples", 0, "Examples to evaluate (0: the whole split).", lower_bound=0)
    define.DEFINE_integer("batch_size", 4, "Examples per batch.", lower_bound=1)
    define.DEFINE_integer("grid_examples", 4, "Examples (rows) in grid.png.", lower_bound=1)
    define.DEFINE_string("input_size", "train", "Label size fed to each model: train (its own training "
                         "size, e.g. 256x256 for pix2pix, as each paper evaluated), label (the data's size) "
                         "or HxW; outputs are resized back to the label size for scoring.")
    define.DEFINE_string("scoring_size", "label", "Resolution of segmentation scoring: label (outputs resized "
                         "to the label size, pix2pix's FCN-score protocol) or HxW (labels nearest, photos "
                         "bilinear).")
    define.DEFINE_string("eval_classes", "", "Classes averaged in class accuracy and mIoU: empty for the 19 "
                         "Cityscapes train classes, or names / trainIds, comma-separated.")
    define.DEFINE_integer("ignore_label", 255, "Label id left out of segmentation scoring (Cityscapes "
                          "classes outside the evaluated 19 map to it).", lower_bound=19)
    define.DEFINE_integer("kid_subset_size", 1000, "KID subset size (capped by the number of examples).",
                          lower_bound=2)


@_once
def define_studio_flags(values):
    define = _definer(values)
    define.DEFINE_string("saved_model", None, "Label -> image exports to compare, name:PATH,name:PATH,... "
                         "(e.g. crn:runs/quickstart/export/1); the names are the REST paths /v1/models/<name>, "
                         "and with --serving_url TF Serving's model names.")
    define.DEFINE_string("examples", None, "A TFRecord dataset directory whose label and instance maps the "
                         "page offers as starting scenes.")
    define.DEFINE_string("examples_split", "val", "Split of --examples.")
    define.DEFINE_string("host", "127.0.0.1", "Address to listen on: loopback only unless you say otherwise "
                         "(0.0.0.0 serves every network the machine is on).")
    define.DEFINE_integer("port", 8080, "Port to listen on (0: any free port; the URL is printed).",
                          lower_bound=0, upper_bound=65535)
    define.DEFINE_float("body_timeout", 60.0, "Seconds a client has to send a request body; a slower (or "
                        "stalled) upload is answered 408 and its connection closed.", lower_bound=0.1)
    define.DEFINE_list("allowed_hosts", [], "Host names the studio answers besides localhost, 127.0.0.1 and "
                       "::1 (the names a browser elsewhere uses for this machine with --host=0.0.0.0); '*' answers "
                       "any, which lets any web page you visit drive the studio.")
    define.DEFINE_string("serving_url", None, "TF Serving's REST address (e.g. http://localhost:8501): the "
                         "studio forwards the page's model calls there instead of loading the exports.")
