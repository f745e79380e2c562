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
NAN_FAMILY = os.path.join(REPO_ROOT, "tests", "nan_family.py")


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


def private_copy(source, tmp_path, name):
    """A copy of a module fixture's folder that one test may change."""
    import shutil

    shutil.copytree(source, tmp_path / name)
    return tmp_path / name


@pytest.fixture
def own_dataset(dataset, tmp_path):
    return private_copy(dataset, tmp_path, "g")


# ----------------------------------------------------------------------------- 1. converter staging

@pytest.mark.cli
def test_converting_over_a_dataset_needs_overwrite(own_dataset, run_cli):
    before = snapshot(own_dataset)
    result = convert_synthetic(run_cli, own_dataset, "--num_examples=4", check=False)
    assert_one_error(result, own_dataset, "--overwrite")
    assert snapshot(own_dataset) == before


@pytest.mark.cli
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


@pytest.mark.cli
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


@pytest.mark.cli
def test_overwrite_replaces_the_whole_dataset(own_dataset, run_cli):
    convert_synthetic(run_cli, own_dataset, "--num_examples=4", "--splits=train", "--overwrite")
    assert sorted(os.listdir(own_dataset)) == ["dataset.json", "train-00000-of-00001.tfrecord"]  # no stale val
    assert tfrecord.read_dataset_json(str(own_dataset))["splits"] == {"train": 4}
    assert not glob.glob(f"{own_dataset}.tmp-*") and not glob.glob(f"{own_dataset}.old-*")


@pytest.mark.cli
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


@pytest.mark.unit
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


# ----------------------------------------------------------------------------- 3. atomic config.json

@pytest.mark.unit
@pytest.mark.parametrize("failure", ["write", "serialisation"])
def test_a_failed_config_write_keeps_the_previous_file(tmp_path, monkeypatch, failure):
    from tfsynth import run_dir

    run_dir.write_config(str(tmp_path), {"model": "crn", "hparams": {"image_size": [32, 64]}})
    before = (tmp_path / "config.json").read_bytes()
    if failure == "write":
        def fail(*_):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "fsync", fail)  # after the bytes went to the temporary file
        new = {"model": "crn", "hparams": {"image_size": [64, 128]}}
    else:
        new = {"model": "crn", "hparams": {"image_size": {1, 2}}}  # a set: json.dumps raises
    with pytest.raises((OSError, TypeError)):
        run_dir.write_config(str(tmp_path), new)
    assert (tmp_path / "config.json").read_bytes() == before
    assert os.listdir(tmp_path) == ["config.json"]


@pytest.mark.unit
def test_atomically_written_files_are_as_readable_as_ordinary_ones(tmp_path):
    # mkstemp's temporary files are private (0600): renamed as they are, a tfsynth_export.json
    # would be unreadable to a TF Serving process running as another user.
    from tfsynth import run_dir

    previous = os.umask(0o022)
    try:
        run_dir.write_json(str(tmp_path / "a.json"), {})
        with open(tmp_path / "b.json", "w") as f:
            f.write("{}")
    finally:
        os.umask(previous)
    assert oct(os.stat(tmp_path / "a.json").st_mode & 0o777) == oct(os.stat(tmp_path / "b.json").st_mode & 0o777) == "0o644"


@pytest.mark.cli
@pytest.mark.parametrize("content", ['{"model": "crn", "hpar', "[]", '{"model": "crn"}'])
def test_a_damaged_config_json_is_one_error_line(tmp_path, run_cli, content):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(content)
    assert_one_error(train(run_cli, model_dir, "--train_steps=1"), model_dir / "config.json")
    assert (model_dir / "config.json").read_text() == content


# ----------------------------------------------------------------------------- atomic exports

@pytest.mark.slow
def test_a_failed_export_leaves_no_version_and_an_existing_one_is_never_replaced(tmp_path, monkeypatch, cache_dir):
    from family_support import tiny_family
    from tfsynth import export, run_dir

    model, _, _ = tiny_family("crn")
    target = tmp_path / "export" / "1"

    def full_disk(*_):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:  # the SavedModel is written, its tfsynth_export.json fails
        patch.setattr(run_dir, "write_json", full_disk)
        with pytest.raises(OSError):
            export.export_model(model, str(target))
    assert os.listdir(tmp_path / "export") == []  # no version, no hidden partial folder
    export.export_model(model, str(target))
    before = snapshot(target)
    with pytest.raises(run_dir.RunDirError, match="never overwritten"):
        export.export_model(model, str(target))
    assert snapshot(target) == before


# ----------------------------------------------------------------------------- 10. a full disk

@pytest.mark.cli
def test_a_full_disk_is_one_error_line_naming_the_file_and_keeps_what_was_saved(tmp_path, dataset, cache_dir):
    # A file-size limit makes every write past 100 kB fail as a full disk does (EFBIG instead
    # of ENOSPC), without a mount: config, events and the sample grid fit, the checkpoint not.
    import resource

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    model_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "tfsynth.train", f"--flagfile={SMOKE_FLAGS}", f"--model_dir={model_dir}",
         f"--train_data={dataset}", "--train_steps=2", "--checkpoint_every=1"],
        cwd=REPO_ROOT, env=cli_env(cache_dir), capture_output=True, text=True, timeout=300,
        preexec_fn=limit_file_size)
    line = assert_one_error(result, model_dir / "checkpoints" / "ckpt-1", "File too large", "rerun")
    assert "training resumes from its last checkpoint" in line
    assert json.load(open(model_dir / "config.json"))["model"] == "crn"
    assert not (model_dir / "checkpoints" / "checkpoint").exists()  # no checkpoint claimed saved


# ----------------------------------------------------------------------------- 4. NaN policy

@pytest.mark.cli
def test_nan_stops_before_it_is_saved_and_keeps_the_good_checkpoints(tmp_path, run_cli):
    """The issue's case: a learning rate of 1e30 makes every loss after step 1 NaN."""
    model_dir = tmp_path / "run"
    result = train(run_cli, model_dir, "--hparams=learning_rate=1e30", "--checkpoint_every=1",
                   "--keep_checkpoints=1")
    line = assert_one_error(result, "step 2", "non-finite loss", "total=", "ckpt-1")
    assert "--on_nan" in line
    kept = sorted(os.path.basename(p) for p in glob.glob(str(model_dir / "checkpoints" / "ckpt-*.index")))
    assert kept == ["ckpt-1.index"]
    assert all(np.all(np.isfinite(value)) for value in checkpoint_tensors(model_dir / "checkpoints" / "ckpt-1").values()
               if value.dtype.kind == "f")
    assert not os.path.exists(model_dir / "export")


@pytest.mark.cli
def test_nan_loss_of_one_batch_stops_with_the_step_and_term(tmp_path, run_cli):
    model_dir = tmp_path / "run"
    result = train(run_cli, model_dir, "--model=nan_crn", "--checkpoint_every=1", "--keep_checkpoints=2",
                   module=NAN_FAMILY)
    assert_one_error(result, "step 3", "total=nan", "ckpt-2")
    kept = sorted(os.path.basename(p) for p in glob.glob(str(model_dir / "checkpoints" / "ckpt-*.index")))
    assert kept == ["ckpt-1.index", "ckpt-2.index"]


@pytest.mark.cli
@pytest.mark.parametrize("strategy", [[], ["--strategy=mirrored", "--cpu_devices=2"]], ids=["one", "mirrored"])
def test_skip_step_drops_exactly_the_nan_update(tmp_path, run_cli, strategy):
    from tensorboard.backend.event_processing import event_accumulator
    import tensorflow as tf

    model_dir = tmp_path / "run"
    result = train(run_cli, model_dir, "--model=nan_crn", "--checkpoint_every=1", "--keep_checkpoints=4",
                   "--on_nan=skip_step", "--export=false", *strategy, module=NAN_FAMILY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step 3: skipped (non-finite loss total=nan" in result.stdout
    assert "1 step(s) dropped" in result.stdout
    counters = ("_CHECKPOINTABLE_OBJECT_GRAPH", "data/", "save_counter/", "step/", "skipped_steps/")
    state = {step: checkpoint_tensors(model_dir / "checkpoints" / f"ckpt-{step}", skip=counters)
             for step in (2, 3, 4)}
    assert state[2].keys() == state[3].keys() and any(key.startswith("optimizer_G/") for key in state[2])
    for key in state[2]:  # every weight and optimizer slot (and its iteration count) as before step 3
        np.testing.assert_array_equal(state[3][key], state[2][key], err_msg=key)
    assert any(not np.array_equal(state[4][key], state[3][key]) for key in state[3])  # step 4 trains
    assert all(np.all(np.isfinite(v)) for v in state[4].values() if v.dtype.kind == "f")
    reader = tf.train.load_checkpoint(str(model_dir / "checkpoints" / "ckpt-4"))
    assert int(reader.get_tensor("skipped_steps/.ATTRIBUTES/VARIABLE_VALUE")) == 1

    accumulator = event_accumulator.EventAccumulator(str(model_dir / "logs" / "train"),
                                                     size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    counts = [(e.step, int(tf.make_ndarray(e.tensor_proto))) for e in accumulator.Tensors("train/skipped_steps")]
    assert counts == [(1, 0), (2, 0), (3, 1), (4, 1)]


@pytest.mark.cli
def test_skip_step_gives_up_after_ten_nan_steps_in_a_row(tmp_path, run_cli):
    """A learning rate of 1e30 makes every step after the first NaN: going back cannot recover."""
    result = train(run_cli, tmp_path / "run", "--hparams=learning_rate=1e30", "--on_nan=skip_step",
                   "--train_steps=20", "--checkpoint_every=100", "--image_every=100")
    assert_one_error(result, "step 11", "10 steps in a row", "No checkpoint was written")
    assert result.stdout.count(": skipped (") == 9  # steps 2 to 10; the tenth in a row is the error
    assert not os.path.exists(tmp_path / "run" / "checkpoints") and not os.path.exists(tmp_path / "run" / "export")


# ----------------------------------------------------------------------------- 5. torn checkpoints

@pytest.mark.cli
@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_torn_latest_checkpoint_resumes_from_the_one_before(tmp_path, run_cli, damage):
    model_dir = tmp_path / "run"
    steps = ["--train_steps=4", "--checkpoint_every=2", "--image_every=100", "--export=false"]
    first = train(run_cli, model_dir, *steps)
    assert first.returncode == 0, first.stderr[-3000:]
    expected = checkpoint_tensors(model_dir / "checkpoints" / "ckpt-4")
    data_file = model_dir / "checkpoints" / "ckpt-4.data-00000-of-00001"
    raw = bytearray(data_file.read_bytes())
    if damage == "truncated":
        raw = raw[: len(raw) // 2]
    else:
        raw[len(raw) // 2:len(raw) // 2 + 64] = bytes(64)
    data_file.write_bytes(bytes(raw))

    result = train(run_cli, model_dir, *steps)
    assert result.returncode == 0, result.stderr[-3000:]
    skipped = [line for line in result.stdout.splitlines() if line.startswith("skipped checkpoint")]
    assert len(skipped) == 1 and "ckpt-4" in skipped[0], result.stdout
    assert "resumed from" in result.stdout and "ckpt-2" in result.stdout.split("resumed from")[1].split()[0]
    assert "step 3/4" in result.stdout and "step 2/4" not in result.stdout
    actual = checkpoint_tensors(model_dir / "checkpoints" / "ckpt-4")
    assert actual.keys() == expected.keys()
    for key in expected:  # redone from ckpt-2, exactly as the first time
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.cli
def test_no_checkpoint_that_restores_is_one_error_line(tmp_path, run_cli):
    model_dir = tmp_path / "run"
    steps = ["--train_steps=2", "--checkpoint_every=2", "--image_every=100", "--export=false"]
    assert train(run_cli, model_dir, *steps).returncode == 0
    data_file = model_dir / "checkpoints" / "ckpt-2.data-00000-of-00001"
    data_file.write_bytes(data_file.read_bytes()[:100])
    before = snapshot(model_dir / "checkpoints")
    assert_one_error(train(run_cli, model_dir, "--train_steps=4", "--export=false"), "ckpt-2")
    assert snapshot(model_dir / "checkpoints") == before  # nothing deleted or rewritten


# ----------------------------------------------------------------------------- 8, 10. resume and input checks

@pytest.fixture(scope="module")
def two_step_run(tmp_path_factory, cache_dir, dataset):
    """A 2-step run on ``dataset``, copied by each test that resumes it."""
    from cli_support import run_module

    model_dir = tmp_path_factory.mktemp("runs") / "base"
    run_module(cache_dir, "tfsynth.train", f"--flagfile={SMOKE_FLAGS}", f"--model_dir={model_dir}",
               f"--train_data={dataset}", "--train_steps=2", "--export=false")
    return model_dir


@pytest.fixture
def resumable(two_step_run, tmp_path):
    return private_copy(two_step_run, tmp_path, "run")


@pytest.mark.cli
def test_resume_on_other_data_is_refused_naming_both(resumable, dataset, run_cli):
    before = (resumable / "config.json").read_bytes()
    result = train(run_cli, resumable, "--train_data=synthetic:32x64:20", "--train_steps=4")
    line = assert_one_error(result, "--train_data", dataset)
    assert "synthetic" in line.split(str(dataset))[1]  # the other path too
    assert (resumable / "config.json").read_bytes() == before


@pytest.mark.cli
def test_resume_on_the_same_data_by_another_path_is_accepted(resumable, dataset, run_cli, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(dataset)
    result = train(run_cli, resumable, f"--train_data={link}", "--train_steps=3", "--export=false")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step 3/3" in result.stdout and "step 1/3" not in result.stdout


@pytest.mark.cli
def test_resume_with_another_global_batch_size_is_one_error_line(resumable, dataset, run_cli):
    result = train(run_cli, resumable, f"--train_data={dataset}", "--train_steps=4", "--global_batch_size=4")
    assert_one_error(result, "--global_batch_size=4", "2")


@pytest.mark.cli
def test_resume_on_reconverted_shards_is_one_error_line(run_cli, tmp_path):
    data = tmp_path / "data"
    convert_synthetic(run_cli, data, "--num_examples=8", "--num_shards=2")
    first = train(run_cli, tmp_path / "run", f"--train_data={data}", "--train_steps=2", "--export=false")
    assert first.returncode == 0, first.stderr[-3000:]
    convert_synthetic(run_cli, data, "--num_examples=8", "--num_shards=3", "--overwrite")
    assert_one_error(train(run_cli, tmp_path / "run", f"--train_data={data}", "--train_steps=4"),
                     "--train_data", "3 shard(s)", "read 2")
    # Reconverted in place with the same shard count: other scenes in shards of other sizes.
    convert_synthetic(run_cli, data, "--num_examples=8", "--num_shards=2", "--seed=1", "--overwrite")
    assert_one_error(train(run_cli, tmp_path / "run", f"--train_data={data}", "--train_steps=4"),
                     "--train_data", "changed since the run started")


@pytest.mark.cli
def test_dataset_json_count_that_disagrees_with_the_shards_is_refused(own_dataset, run_cli, tmp_path):
    info = json.loads((own_dataset / "dataset.json").read_text())
    info["splits"]["train"] = 500
    (own_dataset / "dataset.json").write_text(json.dumps(info))
    result = train(run_cli, tmp_path / "run", f"--train_data={own_dataset}")
    assert_one_error(result, own_dataset / "dataset.json", "500", "8 records")
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


@pytest.mark.cli
def test_empty_or_truncated_shard_is_refused_naming_it(own_dataset, run_cli, tmp_path):
    shard = own_dataset / "train-00001-of-00002.tfrecord"
    raw = shard.read_bytes()
    shard.write_bytes(raw[: len(raw) - 10])
    assert_one_error(train(run_cli, tmp_path / "a", f"--train_data={own_dataset}"), shard, "record")
    shard.write_bytes(b"")
    assert_one_error(train(run_cli, tmp_path / "b", f"--train_data={own_dataset}"), shard, "empty")
    assert not os.path.exists(tmp_path / "b" / "checkpoints")


@pytest.mark.unit
@pytest.mark.parametrize("family", ["crn", "pix2pix", "cyclegan", "segmenter"])
@pytest.mark.parametrize("rate", ["-1", "0", "nan", "inf"])
def test_non_positive_learning_rate_is_refused(family, rate):
    from tfsynth import config as config_lib
    from tfsynth import registry

    config_class = registry.get(family).load().config_class
    with pytest.raises(config_lib.HParamsError, match="learning_rate must be a finite number > 0"):
        config_lib.build_config(config_class, {"learning_rate": rate})
    assert config_lib.build_config(config_class, {"learning_rate": "0.5"}).learning_rate == 0.5


@pytest.mark.cli
def test_negative_learning_rate_on_the_command_line(tmp_path, run_cli):
    result = train(run_cli, tmp_path / "run", "--hparams=learning_rate=-1", "--dry_run")
    assert_one_error(result, "learning_rate", "-1")


@pytest.mark.cli
def test_model_dir_that_is_a_file_is_one_error_line(tmp_path, run_cli):
    path = tmp_path / "run"
    path.write_text("mine")
    assert_one_error(train(run_cli, path), path)
    assert path.read_text() == "mine"


# ----------------------------------------------------------------------------- 7. label files

def encoded(array, format_name="PNG", mode=None):
    import io

    from PIL import Image

    image = Image.fromarray(array)
    buffer = io.BytesIO()
    (image.convert(mode) if mode else image).save(buffer, format=format_name)
    return buffer.getvalue()


IDS = np.random.default_rng(0).integers(0, 34, (16, 24)).astype(np.uint8)
NOT_LABELS = {  # name -> (bytes, what the message must say)
    "jpeg_named_png": (encoded(IDS, "JPEG"), "a JPEG file"),
    "sixteen_bit": (encoded(IDS.astype(np.uint16)), "16-bit"),
    "photo": (encoded(np.random.default_rng(1).integers(0, 255, (16, 24, 3)).astype(np.uint8)), "colour image"),
}


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(NOT_LABELS))
def test_a_label_file_that_is_no_8_bit_single_channel_png_is_refused_saying_what_it_is(tmp_path, name):
    from tfsynth.data import sources

    data, found = NOT_LABELS[name]
    path = tmp_path / "label.png"
    path.write_bytes(data)
    with pytest.raises(tfrecord.DataError, match=found) as error:
        sources.read_id_map(str(path), 35)
    assert str(path) in str(error.value)


@pytest.mark.unit
def test_a_colour_label_is_read_when_drawn_exactly_in_the_palette_and_a_photo_is_not(tmp_path):
    from tfsynth.data import labels, sources

    drawn, photo = tmp_path / "drawn.png", tmp_path / "photo.png"
    drawn.write_bytes(encoded(labels.colorize(IDS, "cityscapes35")))
    off_palette = labels.colorize(IDS, "cityscapes35").astype(np.int16)
    off_palette[:4] += 3  # a quarter of the pixels a few units off their colour, as a photo or a JPEG
    photo.write_bytes(encoded(off_palette.astype(np.uint8)))
    space = labels.get_label_space("cityscapes35")
    expected = labels.ids_from_colors(labels.colorize(IDS, space), space)  # shared colours: lowest id
    np.testing.assert_array_equal(sources.read_id_map(str(drawn), 35, colors=space), expected)
    with pytest.raises(tfrecord.DataError, match=r"25\.0% of the pixels are not colours of the cityscapes35"):
        sources.read_id_map(str(photo), 35, colors=space)
    with pytest.raises(tfrecord.DataError, match="colour image"):
        sources.read_id_map(str(drawn), 35)  # the converter takes ids only


@pytest.mark.cli
def test_converter_refuses_a_jpeg_label_named_png(tmp_path, run_cli):
    root = tmp_path / "cs"
    run_cli(TOOL, "--format=synthetic", f"--out={root}", "--num_examples=2", "--size=32x64", "--layout=cityscapes")
    label = sorted((root / "gtFine" / "train" / "synthville").glob("*_labelIds.png"))[1]
    from PIL import Image

    label.write_bytes(encoded(np.asarray(Image.open(label)), "JPEG"))
    out = tmp_path / "tfr"
    assert "JPEG" in assert_one_error(run_cli(TOOL, "--format=cityscapes", f"--src={root}", f"--out={out}",
                                              "--splits=train", check=False), label.name)
    assert not out.exists()


# ----------------------------------------------------------------------------- 9, 10. served inputs

@pytest.fixture(scope="module")
def served(tmp_path_factory, cache_dir):
    """The signatures of a tiny CRN export (labels -> images, multiples of 8, max_size 64)."""
    import tensorflow as tf

    from family_support import tiny_family
    from tfsynth import export

    model, _, _ = tiny_family("crn")
    path = str(tmp_path_factory.mktemp("export") / "1")
    export.export_model(model, path, max_size=64)
    return tf.saved_model.load(path).signatures


SERVED_LABELS = {  # name -> (label tensor, what the message must say)
    "rank_2": (np.zeros((32, 64), np.uint8), r"label uint8 \[N, H, W\] expected.*rank\] \[2\]"),
    "rgb_image": (np.zeros((1, 32, 64, 3), np.uint8), r"a colour image has rank 4\); got an input of rank\] \[4\]"),
    "empty_batch": (np.zeros((0, 32, 64), np.uint8), "the batch is empty"),
    "size_0": (np.zeros((1, 0, 64), np.uint8), r"height and width must be at least 1; got\] \[0 64\]"),
    "colour_values": (np.full((1, 32, 64), 90, np.uint8), r"labels are class ids, not colours; the largest id found is\] \[90\]"),
    "too_large": (np.zeros((1, 72, 64), np.uint8), r"larger than the export.{0,2}s max_size 64; height and width are\] \[72\] \[64\]"),
}


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(SERVED_LABELS))
def test_served_inputs_of_the_wrong_shape_or_values_say_what_is_wrong(served, name):
    import tensorflow as tf

    label, message = SERVED_LABELS[name]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        served["serving_default"](label=tf.constant(label))


def header_only_png(height, width):
    """A PNG whose header claims ``height`` x ``width`` (its pixel data is a 1x1 image's)."""
    data = bytearray(encoded(np.zeros((1, 1), np.uint8)))
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return bytes(data)


PNG_LABELS = {
    "jpeg": (encoded(IDS, "JPEG"), "not a PNG; labels are 8-bit greyscale PNGs"),
    "sixteen_bit": (encoded(IDS.astype(np.uint16)), r"got bit depth\] \[16\] \[and colour type\] \[0\]"),
    "rgb": (encoded(np.stack([IDS] * 3, -1)), r"got bit depth\] \[8\] \[and colour type\] \[2\]"),
    "palette": (encoded(IDS, mode="P"), r"\[and colour type\] \[3\]"),
    # 16384 x 16384 would cost 1 GiB decoded and cast; the header alone refuses it.
    "huge": (header_only_png(16384, 16384), r"larger than 64 \(checked before decoding\).*\[16384\] \[16384\]"),
}


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(PNG_LABELS))
def test_predict_png_refuses_what_is_no_label_png_from_its_header(served, name):
    import tensorflow as tf

    data, message = PNG_LABELS[name]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        served["predict_png"](label_png_bytes=tf.constant([data]))
    good = served["predict_png"](label_png_bytes=tf.constant([encoded(np.zeros((32, 64), np.uint8))]))
    assert good["image_png_bytes"].shape == [1]


# ------------------------------------------------- a run directory's own files (hostile run, part two)

def fit_in_process(model_dir, steps, *args):
    """The CRN smoke run through the loop's API in this process (what ``tfsynth.train`` runs)."""
    from tfsynth import flags as tfsynth_flags
    from tfsynth import training

    run = training.prepare(tfsynth_flags.parse_train_options([
        f"--flagfile={SMOKE_FLAGS}", f"--model_dir={model_dir}", f"--train_steps={steps}", "--checkpoint_every=2",
        "--image_every=100", *args]))
    run.fit()
    return run


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory, cache_dir):
    """A finished 4-step CRN run with ckpt-2 and ckpt-4, copied by the tests that change it."""
    model_dir = tmp_path_factory.mktemp("finished") / "run"
    fit_in_process(model_dir, 4)
    return model_dir


@pytest.mark.slow
@pytest.mark.parametrize("state", ["missing", "empty", "garbage text", "binary"])
def test_a_missing_or_unreadable_checkpoint_state_resumes_from_the_checkpoint_files(two_checkpoints, tmp_path,
                                                                                    capsys, state):
    model_dir = private_copy(two_checkpoints, tmp_path, "run")
    state_file = model_dir / "checkpoints" / "checkpoint"
    if state == "missing":
        state_file.unlink()
    else:
        state_file.write_bytes({"empty": b"", "garbage text": b"model_checkpoint_path: {{{",
                                "binary": bytes(range(256))}[state])
    capsys.readouterr()
    fit_in_process(model_dir, 5)
    printed = capsys.readouterr().out
    assert "rebuilt from the checkpoint files (ckpt-2, ckpt-4)" in printed
    assert f"resumed from {model_dir / 'checkpoints' / 'ckpt-4'}" in printed
    assert "step 5/5" in printed and "step 1/5" not in printed
    np.testing.assert_equal(checkpoint_tensors(model_dir / "checkpoints" / "ckpt-4"),
                            checkpoint_tensors(two_checkpoints / "checkpoints" / "ckpt-4"))  # not overwritten


@pytest.mark.slow
def test_what_killed_saves_and_exports_left_is_removed_at_the_next_start(two_checkpoints, tmp_path, capsys):
    model_dir = private_copy(two_checkpoints, tmp_path, "run")
    torn_save = model_dir / "checkpoints" / "ckpt-6_temp"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    torn_export = model_dir / "export" / f".2.partial-{int(dead.stdout)}"
    live_export = model_dir / "export" / f".3.partial-{os.getpid()}"  # a process still writing it
    for folder in (torn_save, torn_export, live_export):
        folder.mkdir(parents=True)
        (folder / "part").write_bytes(b"half")
    capsys.readouterr()
    fit_in_process(model_dir, 4)
    printed = capsys.readouterr().out
    assert not torn_save.exists() and not torn_export.exists() and live_export.exists()
    assert f"removed {torn_save}" in printed and f"removed {torn_export}" in printed


@pytest.mark.cli
def test_rerunning_a_finished_run_does_not_export_it_again(tmp_path, run_cli):
    model_dir = tmp_path / "run"
    first = train(run_cli, model_dir, "--train_steps=2")
    assert first.returncode == 0 and os.path.isdir(model_dir / "export" / "1"), first.stderr[-2000:]
    again = train(run_cli, model_dir, "--train_steps=2")
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"Export {model_dir / 'export' / '1'} holds ckpt-2 already: not exported again." in again.stdout
    assert sorted(os.listdir(model_dir / "export")) == ["1"]
    longer = train(run_cli, model_dir, "--train_steps=3")  # trained further: a new version
    assert longer.returncode == 0 and sorted(os.listdir(model_dir / "export")) == ["1", "2"]
    assert json.load(open(model_dir / "export" / "2" / "tfsynth_export.json"))["checkpoint"] == "ckpt-3"


@pytest.mark.cli
def test_a_run_that_fails_before_writing_anything_leaves_no_model_dir(tmp_path, run_cli):
    result = train(run_cli, tmp_path / "run", f"--init_from={tmp_path / 'nowhere'}", "--train_steps=1")
    assert_one_error(result, "--init_from")
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.cli
def test_hparams_a_family_cannot_build_are_one_error_line(tmp_path, run_cli):
    assert_one_error(train(run_cli, tmp_path / "run", "--hparams=max_channels=-5", "--train_steps=1"),
                     "--hparams", "crn")
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.cli
def test_zero_epochs_is_refused_naming_the_value_before_anything_is_created(tmp_path, run_cli):
    by_epochs = tmp_path / "epochs.flags"  # the smoke flags without their --train_steps, which wins
    by_epochs.write_text("".join(line for line in open(SMOKE_FLAGS) if not line.startswith("--train_steps")))
    result = train(run_cli, tmp_path / "run", "--epochs=0", flagfile=by_epochs)
    assert_one_error(result, "--epochs=0")
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.cli
def test_a_wrong_tf_config_is_one_error_line(tmp_path, run_cli):
    result = run_cli("tfsynth.train", f"--flagfile={SMOKE_FLAGS}", f"--model_dir={tmp_path / 'run'}",
                     "--strategy=multi_worker", "--train_steps=1", check=False, env={"TF_CONFIG": "{not json"})
    assert_one_error(result, "TF_CONFIG", "not JSON")
    assert not os.path.exists(tmp_path / "run")
