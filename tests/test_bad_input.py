"""Bad input gets a clear error naming the file, record or flag at fault (through the real CLI)."""

import json
import os
import shutil

import numpy as np
import pytest

from cli_support import SMOKE_FLAGS
from family_support import smoke_flagfile
from tfsynth.data import tfrecord

pytestmark = pytest.mark.cli


def write_dataset(directory, examples, label_space="cityscapes35", split="train"):
    """A one-shard dataset written without the converter's validation, as a foreign tool might."""
    import tensorflow as tf

    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, tfrecord.SHARD_PATTERN.format(split=split, index=0, count=1))
    with tf.io.TFRecordWriter(path) as writer:
        for example in examples:
            writer.write(_unchecked_serialize(example))
    tfrecord.write_dataset_json(str(directory), {"format": "test", "label_space": label_space,
                                                 "splits": {split: len(examples)}})
    return path


def _unchecked_serialize(example):
    original = tfrecord.validate
    tfrecord.validate = lambda *args, **kwargs: None
    try:
        return tfrecord.serialize(example)
    finally:
        tfrecord.validate = original


def good_example(i, size=(32, 64)):
    rng = np.random.default_rng(i)
    return tfrecord.Example(key=f"good_{i}.png", image=rng.integers(0, 255, (*size, 3), dtype=np.uint8),
                            label=rng.integers(0, 34, size, dtype=np.uint8))


def train(run_cli, tmp_path, data_dir, *extra):
    return run_cli("tfsynth.train", f"--flagfile={SMOKE_FLAGS}", f"--model_dir={tmp_path / 'run'}",
                   f"--train_data={data_dir}", "--train_steps=3", "--export=false", *extra, check=False)


def test_label_id_outside_label_space_names_the_record(tmp_path, run_cli):
    bad = good_example(1)
    bad.label[3, 4] = 60
    bad.key = "frankfurt_000001_labelIds.png"
    data = tmp_path / "data"
    shard = write_dataset(data, [good_example(0), bad, good_example(2), good_example(3)])
    result = train(run_cli, tmp_path, data)
    assert result.returncode != 0
    assert "frankfurt_000001_labelIds.png" in result.stderr
    assert "label id outside the label space" in result.stderr
    assert os.path.basename(shard) in result.stderr


def test_image_label_size_mismatch_names_the_record(tmp_path, run_cli):
    bad = good_example(1)
    bad.label = bad.label[:, :32]
    bad.key = "mismatch.png"
    data = tmp_path / "data"
    write_dataset(data, [bad, good_example(2), good_example(3), good_example(4)])
    result = train(run_cli, tmp_path, data)
    assert result.returncode != 0
    assert "mismatch.png" in result.stderr and "sizes differ" in result.stderr


def test_corrupt_tfrecord_names_the_shard(tmp_path, run_cli):
    data = tmp_path / "data"
    shard = write_dataset(data, [good_example(i) for i in range(6)])
    raw = bytearray(open(shard, "rb").read())
    middle = len(raw) // 2
    raw[middle:middle + 64] = bytes(64)  # zero a stretch: the record CRC no longer matches
    open(shard, "wb").write(bytes(raw))
    result = train(run_cli, tmp_path, data)
    assert result.returncode != 0
    assert os.path.basename(shard) in result.stderr and "corrupt" in result.stderr


def test_truncated_png_inside_a_record_names_the_record(tmp_path, run_cli):
    import tensorflow as tf

    data = tmp_path / "data"
    shard = write_dataset(data, [good_example(i) for i in range(4)])
    records = [bytes(r.numpy()) for r in tf.data.TFRecordDataset(shard)]
    parsed = tf.train.Example.FromString(records[1])
    encoded = parsed.features.feature["image/encoded"].bytes_list.value[0]
    parsed.features.feature["image/encoded"].bytes_list.value[0] = encoded[: len(encoded) // 2]
    records[1] = parsed.SerializeToString()
    with tf.io.TFRecordWriter(shard) as writer:
        for record in records:
            writer.write(record)
    result = train(run_cli, tmp_path, data)
    assert result.returncode != 0
    assert os.path.basename(shard) in result.stderr and "record 1" in result.stderr


def test_missing_split_lists_available_splits(tmp_path, run_cli):
    data = tmp_path / "data"
    write_dataset(data, [good_example(0), good_example(1)], split="val")
    result = train(run_cli, tmp_path, data)
    assert result.returncode != 0
    assert "no shards of split 'train'" in result.stderr and "val" in result.stderr


def test_empty_split_is_an_error(tmp_path, run_cli):
    data = tmp_path / "data"
    write_dataset(data, [], split="train")
    result = train(run_cli, tmp_path, data)
    assert result.returncode != 0 and "empty" in result.stderr


def test_missing_data_directory_names_it(tmp_path, run_cli):
    result = train(run_cli, tmp_path, tmp_path / "nowhere")
    assert result.returncode != 0 and str(tmp_path / "nowhere") in result.stderr


def test_directory_without_dataset_json(tmp_path, run_cli):
    (tmp_path / "plain").mkdir()
    result = train(run_cli, tmp_path, tmp_path / "plain")
    assert result.returncode != 0 and "dataset.json" in result.stderr


def test_unknown_hparams_key_lists_valid_keys(tmp_path, run_cli):
    result = run_cli("tfsynth.train", f"--flagfile={SMOKE_FLAGS}", f"--model_dir={tmp_path}",
                     "--hparams=image_size=32x64,num_ouputs=3", check=False)
    assert result.returncode != 0
    assert "num_ouputs" in result.stderr and "num_outputs" in result.stderr and "max_channels" in result.stderr


@pytest.mark.parametrize("flag, message", [
    ("--strategy=bogus", "strategy"),
    ("--global_batch_size=0", "global_batch_size"),
    ("--no_such_flag=1", "no_such_flag"),
])
def test_bad_flag_fails_before_tensorflow_loads(tmp_path, run_cli, flag, message):
    result = run_cli("tfsynth.train", f"--model_dir={tmp_path}", flag, check=False, fresh=True)
    assert result.returncode != 0 and message in result.stderr
    # Flag errors come from absl before the TensorFlow import, whose banner never prints.
    assert "oneDNN" not in result.stderr and "tensorflow" not in result.stderr.lower()


def test_recompute_is_refused_by_a_family_that_cannot_recompute(tmp_path, run_cli):
    model_dir = tmp_path / "run"
    result = run_cli("tfsynth.train", f"--flagfile={smoke_flagfile('pix2pix')}", f"--model_dir={model_dir}",
                     "--recompute", check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: --recompute: pix2pix")
    assert not model_dir.exists()


def test_resuming_with_other_hparams_is_refused(tmp_path, run_cli):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    json.dump({"model": "crn", "hparams": {"image_size": [64, 128]}}, open(model_dir / "config.json", "w"))
    result = run_cli("tfsynth.train", f"--flagfile={SMOKE_FLAGS}", f"--model_dir={model_dir}", check=False)
    assert result.returncode != 0
    assert "config.json" in result.stderr and "image_size" in result.stderr


def test_converter_never_writes_the_bad_record(tmp_path, run_cli):
    """The same bad label, through the converter: it stops and leaves no split behind."""
    from PIL import Image

    root = tmp_path / "cs"
    run_cli("tools/build_tfrecords.py", "--format=synthetic", f"--out={root}", "--num_examples=3",
            "--size=32x64", "--layout=cityscapes")
    labels = sorted((root / "gtFine" / "train" / "synthville").glob("*_labelIds.png"))
    array = np.asarray(Image.open(labels[1])).copy()
    array[0, 0] = 99
    Image.fromarray(array).save(labels[1])
    out = tmp_path / "tfr"
    result = run_cli("tools/build_tfrecords.py", "--format=cityscapes", f"--src={root}", f"--out={out}",
                     "--splits=train", check=False)
    assert result.returncode != 0 and labels[1].name in result.stderr
    assert not list(out.glob("train-*.tfrecord"))
    shutil.rmtree(out, ignore_errors=True)


def test_photo_input_model_on_label_only_data_names_the_dataset(tmp_path, run_cli):
    """pix2pix fed photos (label_input=image) needs target photos that a label dataset lacks."""
    data = tmp_path / "data"
    write_dataset(data, [good_example(i) for i in range(2)])
    tfrecord.write_dataset_json(str(data), {"format": "test", "label_space": "cityscapes35",
                                            "splits": {"train": 2}, "has_target": False})
    flagfile = os.path.join(os.path.dirname(SMOKE_FLAGS), "pix2pix_tiny.flags")
    result = run_cli("tfsynth.train", f"--flagfile={flagfile}", f"--model_dir={tmp_path / 'run'}",
                     f"--train_data={data}", "--hparams=label_input=image", "--train_steps=1", check=False)
    assert result.returncode != 0
    assert "dataset.json" in result.stderr and "target photos" in result.stderr


@pytest.mark.parametrize("command", ["tfsynth.train", "tfsynth.export", "tfsynth.infer", "tfsynth.evaluate",
                                     "tfsynth.bench", "tools/build_tfrecords.py"])
def test_every_command_lists_its_flags_with_help_and_exits_zero(run_cli, command):
    result = run_cli(command, "--help", check=False)
    assert result.returncode == 0
    assert "--" in result.stdout + result.stderr and "flags" in (result.stdout + result.stderr).lower()
