r"""Converts a dataset on disk to sharded TFRecords with a dataset.json (docs/architecture.md, "Data flow").

Examples:
  python tools/build_tfrecords.py --format=cityscapes --src=/data/cityscapes \
      --out=/data/tfr/cityscapes_256p --size=256x512
  python tools/build_tfrecords.py --format=image_folder --src=/data/horse2zebra \
      --out=/data/tfr/horse2zebra --splits=trainA,trainB
  python tools/build_tfrecords.py --format=synthetic --out=/tmp/synth --num_examples=200 --size=128x256
  python tools/build_tfrecords.py --format=synthetic --layout=cityscapes --out=/tmp/fake_cityscapes
  python tools/build_tfrecords.py --format=pix2pix_ab --src=/data/pix2pix/cityscapes \
      --direction=BtoA --out=data/pix2pix_cityscapes
  python tools/build_tfrecords.py --format=pix2pix_ab --src=/data/pix2pix/facades \
      --direction=BtoA --label_space=none --out=data/pix2pix_facades

Formats (tfsynth/data/sources.py has the details):
  cityscapes      ROOT/leftImg8bit/<split>/<city>/*_leftImg8bit.png with gtFine labelIds and
                  instanceIds; labels in cityscapes35.
  paired_folders  SRC/<split>/images/* with SRC/<split>/labels/<stem>.png (8-bit ids in
                  --label_space) and optional SRC/<split>/instances/<stem>.png (16-bit).
  image_folder    every image under SRC/<split>/ (trainA/, trainB/ ... are splits); image only.
  pix2pix_ab      pix2pix's aligned files SRC/<split>/*.jpg|png: A | B side by side (width 2W).
                  --direction (required) names the input half: BtoA for pix2pix's Cityscapes
                  files (photo | colour label) trained labels -> photo. The half to generate is
                  stored as image/encoded. The input half is mapped to label/encoded ids by
                  nearest --label_space palette colour (default cityscapes35; the files are
                  JPEG), or with --label_space=none stored as target/encoded (photo -> photo).
                  The same 256x256 Cityscapes pairs come from the official layout with
                  --format=cityscapes --size=256x256 (squashed like pix2pix's
                  prepare_cityscapes_dataset.py; exact labelIds instead of colours).
  synthetic       the built-in street scenes (no --src); --layout=cityscapes writes them as the
                  official Cityscapes folder layout instead, to exercise the cityscapes format.

Errors name the file at fault and exit with status 1; nothing invalid is ever written.
TensorFlow is imported only after the flags are parsed and checked. The dataset is written to
a staging folder beside --out (<out>.tmp-<pid>) and swapped in when complete; replacing an
existing dataset needs --overwrite.
"""

import os
import sys

# Runnable from a checkout without `pip install -e .`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from tfsynth.data import sources  # noqa: E402  (numpy and Pillow only: --help stays fast)
from tfsynth import flags as tfsynth_flags  # noqa: E402

DEFAULT_SYNTHETIC_SIZE = (256, 512)

flags.DEFINE_enum("format", None, list(sources.SOURCES), "Layout of the data under --src.")
flags.DEFINE_string("src", None, "Dataset root folder (not used by --format=synthetic).")
flags.DEFINE_string("out", None, "Output folder for the shards and dataset.json.")
flags.DEFINE_string("size", None,
                    "HxW, e.g. 256x512: resize every example (photos bicubic, labels nearest). "
                    f"For --format=synthetic, the rendered size (default "
                    f"{DEFAULT_SYNTHETIC_SIZE[0]}x{DEFAULT_SYNTHETIC_SIZE[1]}).")
flags.DEFINE_list("splits", None,
                  "Splits to convert. Default: train,val for cityscapes and synthetic; every "
                  "split folder under --src for paired_folders and image_folder.")
flags.DEFINE_integer("num_shards", None,
                     "Shards per split. Default ceil(count/200) (about 100 MB each); never more "
                     "than the split's examples.", lower_bound=1)
flags.DEFINE_enum("image_format", "png", ["png", "jpeg"], "Encoding of the photos in the records.")
flags.DEFINE_bool("skip_bad", False,
                  "Skip and log bad examples (counted in dataset.json) instead of stopping.")
flags.DEFINE_string("label_space", None,
                    "Label space of the ids (cityscapes35, cityscapes20) for "
                    "--format=paired_folders and pix2pix_ab (default cityscapes35; 'none' for "
                    "pix2pix_ab with image inputs); cityscapes and synthetic are always "
                    "cityscapes35.")
flags.DEFINE_enum("direction", None, list(sources.AB_DIRECTIONS),
                  "--format=pix2pix_ab (required): which half is the input, AtoB (left) or BtoA "
                  "(right).")
flags.DEFINE_integer("num_examples", 100,
                     "--format=synthetic: train examples; other splits get max(1, N//10).",
                     lower_bound=1)
flags.DEFINE_integer("seed", 0, "--format=synthetic: scene seed (each split offsets it).",
                     lower_bound=0)
flags.DEFINE_enum("layout", "tfrecord", ["tfrecord", "cityscapes"],
                  "--format=synthetic: write TFRecords, or the official Cityscapes PNG layout.")
flags.DEFINE_integer("num_workers", None, "Reader threads (default: min(4, CPU count)).",
                     lower_bound=1)
flags.DEFINE_bool("overwrite", False,
                  "Replace a dataset already in --out. The new one is written beside it and swapped "
                  "in only once every split has converted, so a failure leaves the old one whole.")

FLAGS = flags.FLAGS


def _parse_size_flag(text):
    from tfsynth.parsing import parse_size

    return parse_size(text)


def _size_is_valid(text):
    if text is None:
        return True
    try:
        _parse_size_flag(text)
    except ValueError:
        return False
    return True


def _label_space_is_valid(name):
    from tfsynth.data import labels

    return name is None or name in labels.LABEL_SPACES or name == "none"


flags.register_validator("size", _size_is_valid,
                         message="--size must be HxW with positive integers, e.g. 256x512")
flags.register_validator("label_space", _label_space_is_valid,
                         message="--label_space must be one of cityscapes20, cityscapes35, none")
flags.mark_flags_as_required(["format", "out"])


def _check_flag_combinations():
    """Raises UsageError naming the flag when flags contradict the chosen --format."""
    synthetic = FLAGS.format == "synthetic"
    if not synthetic and not FLAGS.src:
        raise app.UsageError(f"--src is required for --format={FLAGS.format}")
    if synthetic and FLAGS.src:
        raise app.UsageError("--src is not used by --format=synthetic")
    if not synthetic:
        for name in ("num_examples", "seed", "layout"):
            if FLAGS[name].present:
                raise app.UsageError(f"--{name} only applies to --format=synthetic")
    if FLAGS.label_space == "none" and FLAGS.format != "pix2pix_ab":
        raise app.UsageError("--label_space=none only applies to --format=pix2pix_ab")
    if (FLAGS.format == "pix2pix_ab") != (FLAGS.direction is not None):
        raise app.UsageError("--direction is required for --format=pix2pix_ab (AtoB or BtoA: "
                             "which half is the input) and applies to it only")
    if FLAGS.label_space and FLAGS.format not in ("paired_folders", "pix2pix_ab"):
        if FLAGS.format == "image_folder":
            raise app.UsageError("--label_space does not apply to --format=image_folder (no labels)")
        if FLAGS.label_space != "cityscapes35":
            raise app.UsageError(f"--label_space: --format={FLAGS.format} is always cityscapes35")
    if FLAGS.layout == "cityscapes" and (FLAGS["num_shards"].present or FLAGS.skip_bad
                                         or FLAGS["image_format"].present):
        raise app.UsageError("--num_shards, --image_format and --skip_bad do not apply to "
                             "--layout=cityscapes (it writes PNG files, not TFRecords)")
    if synthetic and FLAGS.size:
        if min(_parse_size_flag(FLAGS.size)) < sources.SYNTHETIC_MIN_SIZE:
            raise app.UsageError(f"--size={FLAGS.size}: synthetic scenes need at least "
                                 f"{sources.SYNTHETIC_MIN_SIZE}x{sources.SYNTHETIC_MIN_SIZE}")
    if FLAGS.splits is not None and (not FLAGS.splits or not all(FLAGS.splits)):
        raise app.UsageError("--splits must name at least one split, comma-separated")
    if FLAGS.layout == "cityscapes" and FLAGS.overwrite:
        raise app.UsageError("--overwrite does not apply to --layout=cityscapes")


def _write_synthetic_cityscapes_layout(splits, size):
    from tfsynth.data import synthetic

    for split in splits:
        count = FLAGS.num_examples if split == "train" else max(1, FLAGS.num_examples // 10)
        synthetic.write_cityscapes_layout(FLAGS.out, count, size[0], size[1],
                                          seed=sources.synthetic_split_seed(FLAGS.seed, split),
                                          split=split)
        print(f"{split}: wrote {count} scenes", flush=True)
    print(f"wrote the Cityscapes layout under {FLAGS.out} for splits {', '.join(splits)}", flush=True)


def _convert():
    from tfsynth.data import convert

    size = _parse_size_flag(FLAGS.size) if FLAGS.size else None
    source_format = sources.SOURCES[FLAGS.format]
    label_space = FLAGS.label_space or source_format.default_label_space
    label_space = None if label_space == "none" else label_space
    if FLAGS.format == "synthetic":
        size = size or DEFAULT_SYNTHETIC_SIZE
        splits = FLAGS.splits or list(source_format.default_splits)
        if FLAGS.layout == "cityscapes":
            _write_synthetic_cityscapes_layout(splits, size)
            return
        listed = convert.synthetic_splits(splits, FLAGS.num_examples, size[0], size[1], FLAGS.seed)
        # The scenes are rendered at --size already: nothing to resize.
        size, source, extra_info = None, "synthetic", {"seed": FLAGS.seed}
    else:
        src = os.path.abspath(FLAGS.src)
        splits = (FLAGS.splits or list(source_format.default_splits or ())
                  or sources.discover_splits(FLAGS.format, src))
        options = {"direction": FLAGS.direction} if FLAGS.format == "pix2pix_ab" else {}
        # List every split before converting any, so a missing one fails in seconds.
        listed = {split: source_format.list_split(src, split, label_space, **options)
                  for split in splits}
        source, extra_info = src, (options or None)
    convert.convert_dataset(
        listed, FLAGS.out, format_name=FLAGS.format, source=source, label_space=label_space,
        image_format=FLAGS.image_format, size=size, num_shards=FLAGS.num_shards,
        skip_bad=FLAGS.skip_bad, num_workers=FLAGS.num_workers or convert.DEFAULT_NUM_WORKERS,
        extra_info=extra_info, overwrite=FLAGS.overwrite)


def main(argv):
    try:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        _check_flag_combinations()
    except app.UsageError as error:  # absl would print the whole --help before the message
        sys.exit(f"error: {error} (see --help)")
    from tfsynth.data import convert
    from tfsynth.data.tfrecord import DataError

    try:
        if FLAGS.layout == "cityscapes":
            if os.path.exists(FLAGS.out) and not os.path.isdir(FLAGS.out):
                raise DataError(f"--out={FLAGS.out} is a file, not a folder")
        else:  # before listing or converting anything
            convert.check_output_dir(FLAGS.out, FLAGS.overwrite)
        _convert()
    except (DataError, OSError) as error:  # OSError: an unwritable --out, say; it names the path
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    tfsynth_flags.run_command(main)
