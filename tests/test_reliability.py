"""Nothing lost, nothing silently wrong: converter staging, atomic config writes, the NaN policy,
torn-checkpoint fallback and the resume and input checks, through the real commands."""

import glob
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from cli_support import REPO_ROOT, SMOKE_FLAGS, cli_env
from tfsynth.data import tfrecord

TOOL = "tools/build_tfrecords.py"


# ----------------------------------------------------------------------------- helpers

def assert_one_error(result, *names):
    """Non-zero exit, exactly one ``error:`` line naming each of ``names``, and no traceback."""
    assert result.returncode != 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr[-4000:]
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


def snapshot(folder):
    """Every file under ``folder`` with its bytes."""
    return {os.path.relpath(path, folder): open(path, "rb").read()
            for path in sorted(glob.glob(os.path.join(folder, "**", "*"), recursive=True)) if os.path.isfile(path)}


def checkpoint_tensors(prefix, skip=("_CHECKPOINTABLE_OBJECT_GRAPH", "data/", "save_counter/")):
    """The checkpoint's tensors by key, but those under the ``skip`` prefixes (by default: the
    object graph, the data iterator's serialized state and the save counter)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(prefix))
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map() if not key.startswith(skip)}


def train(run_cli, model_dir, *args, flagfile=SMOKE_FLAGS, module="tfsynth.train"):
    return run_cli(module, f"--flagfile={flagfile}", f"--model_dir={model_dir}", *args, check=False)


def convert_synthetic(run_cli, out, *args, check=True):
    return run_cli(TOOL, "--format=synthetic", f"--out={out}", "--size=32x64", *args, check=check)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, cache_dir):
    """A converted dataset (train 8 in 2 shards, val 1), copied by the tests that change it."""
    from cli_support import run_module

    out = tmp_path_factory.mktemp("data") / "g"
    run_module(cache_dir, TOOL, "--format=synthetic", f"--out={out}", "--size=32x64", "--num_examples=8",
               "--num_shards=2")
    return out


@pytest.fixture
def own_dataset(dataset, tmp_path):
    import shutil

    copy = tmp_path / "g"
    shutil.copytree(dataset, copy)
    return copy


# ----------------------------------------------------------------------------- 1. converter staging

def test_converting_over_a_dataset_needs_overwrite(own_dataset, run_cli):
    before = snapshot(own_dataset)
    result = convert_synthetic(run_cli, own_dataset, "--num_examples=4", check=False)
    assert_one_error(result, own_dataset, "--overwrite")
    assert snapshot(own_dataset) == before


def test_a_failed_reconversion_keeps_the_existing_dataset(own_dataset, run_cli, tmp_path):
    src = tmp_path / "cs"
    run_cli(TOOL, "--format=synthetic", f"--out={src}", "--num_examples=4", "--size=32x64", "--layout=cityscapes")
    photos = sorted((src / "leftImg8bit" / "train").rglob("*.png"))
    data = open(photos[2], "rb").read()
    open(photos[2], "wb").write(data[: len(data) // 2])  # a truncated photo, the third of the split
    before = snapshot(own_dataset)
    result = run_cli(TOOL, "--format=cityscapes", f"--src={src}", f"--out={own_dataset}", "--overwrite",
                     "--num_workers=1", check=False)
    assert_one_error(result, photos[2].name)
    assert snapshot(own_dataset) == before
    assert not glob.glob(f"{own_dataset}.tmp-*") and not glob.glob(f"{own_dataset}.old-*")


def test_a_killed_reconversion_keeps_the_existing_dataset(own_dataset, cache_dir):
    before = snapshot(own_dataset)
    process = subprocess.Popen([sys.executable, TOOL, "--format=synthetic", f"--out={own_dataset}", "--size=32x64",
                                "--num_examples=400", "--num_workers=1", "--overwrite"],
                               cwd=REPO_ROOT, env=cli_env(cache_dir), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:
        if line.startswith("train: "):  # midway through the first split
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=300)
    assert process.returncode == -signal.SIGKILL, "the conversion ended before it could be killed"
    assert snapshot(own_dataset) == before


def test_overwrite_replaces_the_whole_dataset(own_dataset, run_cli):
    convert_synthetic(run_cli, own_dataset, "--num_examples=4", "--splits=train", "--overwrite")
    assert sorted(os.listdir(own_dataset)) == ["dataset.json", "train-00000-of-00001.tfrecord"]  # no stale val
    assert tfrecord.read_dataset_json(str(own_dataset))["splits"] == {"train": 4}
    assert not glob.glob(f"{own_dataset}.tmp-*") and not glob.glob(f"{own_dataset}.old-*")


def test_converter_refuses_a_file_or_a_folder_of_other_files_as_out(run_cli, tmp_path):
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("mine")
    assert_one_error(convert_synthetic(run_cli, not_a_folder, check=False), not_a_folder)
    assert not_a_folder.read_text() == "mine"
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "photo.jpg").write_text("mine")
    assert_one_error(convert_synthetic(run_cli, folder, "--overwrite", check=False), folder, "photo.jpg")
    assert os.listdir(folder) == ["photo.jpg"]


def test_skipped_examples_leave_no_empty_shard(tmp_path):
    from tfsynth.data import convert, pipelines, sources

    def example(i):
        image = np.full((4, 6, 3), i, np.uint8)
        if i in (1, 2):
            return tfrecord.Example(str(i), image, label=np.full((4, 6), 99, np.uint8))  # outside the space
        return tfrecord.Example(str(i), image, label=np.zeros((4, 6), np.uint8))

    listed = [sources.LazyExample(str(i), lambda i=i: example(i)) for i in range(4)]
    info = convert.convert_dataset({"train": listed}, str(tmp_path / "d"), format_name="test", source="test",
                                   label_space="cityscapes35", num_shards=4, skip_bad=True, log=lambda line: None)
    assert info["splits"] == {"train": 2} and info["skipped"] == {"train": 2}
    assert sorted(os.listdir(tmp_path / "d")) == ["dataset.json", "train-00000-of-00002.tfrecord",
                                                  "train-00001-of-00002.tfrecord"]
    assert pipelines.load_split(str(tmp_path / "d"), "train").count == 2


# ----------------------------------------------------------------------------- 8, 10. resume and input checks

def test_dataset_json_count_that_disagrees_with_the_shards_is_refused(own_dataset, run_cli, tmp_path):
    info = json.loads((own_dataset / "dataset.json").read_text())
    info["splits"]["train"] = 500
    (own_dataset / "dataset.json").write_text(json.dumps(info))
    result = train(run_cli, tmp_path / "run", f"--train_data={own_dataset}")
    assert_one_error(result, own_dataset / "dataset.json", "500", "8 records")
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_empty_or_truncated_shard_is_refused_naming_it(own_dataset, run_cli, tmp_path):
    shard = own_dataset / "train-00001-of-00002.tfrecord"
    raw = shard.read_bytes()
    shard.write_bytes(raw[: len(raw) - 10])
    assert_one_error(train(run_cli, tmp_path / "a", f"--train_data={own_dataset}"), shard, "record")
    shard.write_bytes(b"")
    assert_one_error(train(run_cli, tmp_path / "b", f"--train_data={own_dataset}"), shard, "empty")
    assert not os.path.exists(tmp_path / "b" / "checkpoints")


@pytest.mark.parametrize("family", ["crn", "pix2pix", "cyclegan", "segmenter"])
@pytest.mark.parametrize("rate", ["-1", "0", "nan", "inf"])
def test_non_positive_learning_rate_is_refused(family, rate):
    from tfsynth import config as config_lib
    from tfsynth import registry

    config_class = registry.get(family).load().config_class
    with pytest.raises(config_lib.HParamsError, match="learning_rate must be a finite number > 0"):
        config_lib.build_config(config_class, {"learning_rate": rate})
    assert config_lib.build_config(config_class, {"learning_rate": "0.5"}).learning_rate == 0.5


def test_negative_learning_rate_on_the_command_line(tmp_path, run_cli):
    result = train(run_cli, tmp_path / "run", "--hparams=learning_rate=-1", "--dry_run")
    assert_one_error(result, "learning_rate", "-1")
