"""``tfsynth.import_weights``: bad checkpoints are one ``error:`` line and leave nothing behind."""

import os
import shutil

import numpy as np
import pytest

from import_support import fixture, import_original
from tfsynth.importing.tensors import ImportFailure


def _rewrite_crn(tmp_path, change):
    """The CRN fixture rewritten as a TF bundle after ``change(name -> array dict)``."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(fixture("crn"))
    arrays = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    change(arrays)
    prefix = str(tmp_path / "model.ckpt")
    names = sorted(arrays)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(arrays[name]) for name in names])
    return prefix


@pytest.mark.unit
def test_missing_tensor_is_named_and_nothing_is_written(tmp_path):
    prefix = _rewrite_crn(tmp_path, lambda arrays: arrays.pop("g_8_conv2/LayerNorm/gamma"))
    with pytest.raises(ImportFailure, match="'g_8_conv2/LayerNorm/gamma' is missing"):
        import_original("crn_tf1", prefix, tmp_path / "run")
    assert not os.path.exists(tmp_path / "run")
    assert not [name for name in os.listdir(tmp_path) if "import" in name]


@pytest.mark.unit
def test_tensor_of_the_wrong_shape_is_named_with_both_shapes(tmp_path):
    def widen(arrays):
        arrays["g_32_conv100/biases"] = np.zeros(30, np.float32)

    prefix = _rewrite_crn(tmp_path, widen)
    with pytest.raises(ImportFailure, match=r"'g_32_conv100/biases' has shape \(30,\), layer g_32_output expects \(27,\)"):
        import_original("crn_tf1", prefix, tmp_path / "run")


@pytest.mark.unit
def test_unknown_tensor_is_refused(tmp_path):
    def add(arrays):
        arrays["discriminator/weights"] = np.zeros((3, 3), np.float32)

    prefix = _rewrite_crn(tmp_path, add)
    with pytest.raises(ImportFailure, match=r"discriminator/weights \(3, 3\)"):
        import_original("crn_tf1", prefix, tmp_path / "run")


@pytest.mark.unit
def test_hparams_that_contradict_the_checkpoint_name_the_tensor(tmp_path):
    with pytest.raises(ImportFailure, match="g_4_conv1/weights"):
        import_original("crn_tf1", fixture("crn"), tmp_path / "run", "max_channels=16")


@pytest.mark.cli
def test_truncated_checkpoint_is_one_error_line(tmp_path, run_cli):
    copy = tmp_path / "crn"
    shutil.copytree(fixture("crn"), copy)
    data = copy / "model.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    result = run_cli("tfsynth.import_weights", f"--from=crn_tf1:{copy}", f"--model_dir={tmp_path / 'run'}",
                     check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: "), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.cli
def test_import_never_writes_into_a_directory_that_holds_something(tmp_path, run_cli):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    result = run_cli("tfsynth.import_weights", f"--from=crn_tf1:{fixture('crn')}",
                     f"--model_dir={tmp_path / 'run'}", check=False)
    assert result.returncode != 0 and "is not empty" in result.stderr
    assert os.listdir(tmp_path / "run") == ["notes.txt"]
