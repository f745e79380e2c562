"""The run directory (``model_dir``) and export directories, in one place.

``config.json`` (the resolved run), rebuilding the model it describes, restoring what a purpose
needs from its checkpoints, the next export version, and an export's ``tfsynth_export.json``.
Training, export, infer, evaluate and bench all go through here. Every file is written
atomically (a temporary file renamed over the target), so a crash or a full disk never leaves
a truncated ``config.json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

from tfsynth import config as config_lib
from tfsynth import registry

CONFIG_JSON = "config.json"
EXPORT_INFO = "tfsynth_export.json"


class RunDirError(ValueError):
    """A model_dir or export that cannot be used; the message names the flag and the file."""


def write_json(path: str, data) -> None:
    """Writes ``data`` as JSON to ``path`` atomically."""
    write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def write_bytes(path: str, data: bytes) -> None:
    """Writes ``path`` atomically: a temporary file beside it, flushed, then renamed over it.

    The file gets the permissions an ordinary ``open`` would give it (0666 less the umask), not
    ``mkstemp``'s private 0600, so a server running as another user can read an export's files.
    """
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        if os.path.exists(temporary):
            os.remove(temporary)
        if isinstance(error, OSError) and error.filename is None:  # a failed write names no file
            raise OSError(error.errno, error.strerror, path) from None
        raise


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: put it straight back
    os.umask(mask)
    return mask


def read_json(path: str, flag: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise RunDirError(f"{flag}: {path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunDirError(f"{flag}: {path} is not valid JSON ({error})") from None


# ----------------------------------------------------------------------------------- model_dir

def read_config(model_dir: str, flag: str = "--model_dir") -> dict:
    path = os.path.join(model_dir, CONFIG_JSON)
    if not os.path.exists(path):
        raise RunDirError(f"{flag}: {path} not found: is {model_dir} a tfsynth model_dir?")
    return read_json(path, flag)


def write_config(model_dir: str, resolved: dict) -> None:
    write_json(os.path.join(model_dir, CONFIG_JSON), resolved)


def resumed_config(model_dir: str) -> dict | None:
    """The ``config.json`` of the run in ``model_dir`` (None for a new run); refuses a damaged one."""
    path = os.path.join(model_dir, CONFIG_JSON)
    if not os.path.exists(path):
        return None
    saved = read_json(path, "--model_dir")
    if not isinstance(saved, dict) or not isinstance(saved.get("hparams"), dict):
        raise RunDirError(f"{path}: damaged (no model and hparams in it), so the run cannot be "
                          "resumed safely; restore the file or use another --model_dir")
    return saved


def check_resume_config(saved: dict | None, model_dir: str, model_name: str, config) -> None:
    """Refuses to resume the run ``saved`` (its ``config.json``) as another model or with other
    hyper-parameters."""
    if saved is None:
        return
    path = os.path.join(model_dir, CONFIG_JSON)
    if saved.get("model") != model_name:
        raise RunDirError(f"{path}: this model_dir holds a {saved.get('model')!r} model, not "
                          f"{model_name!r}; use another --model_dir")
    current = json.loads(json.dumps(config_lib.to_dict(config)))
    changed = {k: (saved["hparams"].get(k), v) for k, v in current.items()
               if k != "vgg_weights" and saved["hparams"].get(k) != v}
    if changed:
        detail = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise RunDirError(f"{path}: hyper-parameters differ from the run being resumed ({detail}); "
                          "rerun with the same flags or use another --model_dir")


def check_resume_data(saved: dict | None, model_dir: str, *, train_data: str, data_dir: str,
                      global_batch_size: int, splits: dict) -> None:
    """Refuses to resume on other data, another batch size or another shard layout: the
    checkpointed data position is only meaningful for the same input pipeline.

    Args:
      saved: the resumed run's ``config.json`` (None: a new run, nothing to check).
      train_data: ``--train_data`` as given, for messages; ``data_dir``: where it resolved to.
      splits: the ``pipelines.Split`` of each input stream.
    """
    if not saved:
        return
    path = os.path.join(model_dir, CONFIG_JSON)
    data, runtime = saved.get("data") or {}, saved.get("runtime") or {}
    before = data.get("dir")
    if before and not same_data_dir(before, data_dir):
        raise RunDirError(f"--train_data={train_data}: the run in {model_dir} trained on "
                          f"{before}, not {data_dir}; resume with the same data or use another --model_dir")
    batch = runtime.get("global_batch_size")
    if batch is not None and batch != global_batch_size:
        raise RunDirError(f"--global_batch_size={global_batch_size}: the run being resumed "
                          f"used {batch} ({path}), and its checkpointed data position holds batches of that "
                          "size; rerun with the same value or use another --model_dir")
    for split in splits.values():
        shards = (data.get("shards") or {}).get(split.name)
        if shards is not None and shards != len(split.files):
            raise RunDirError(f"--train_data={train_data}: split {split.name!r} now has "
                              f"{len(split.files)} shard(s), the run being resumed read {shards} ({path}); "
                              "its checkpointed data position needs the same shards: convert with "
                              f"--num_shards={shards} or use another --model_dir")
        sizes = (data.get("shard_bytes") or {}).get(split.name)
        if sizes is not None and sizes != shard_bytes(split.files):
            raise RunDirError(f"--train_data={train_data}: the shards of split {split.name!r} changed since the "
                              f"run started (reconverted?), and its checkpointed data position points into the "
                              f"old ones ({path}); resume on the data it started with or use another --model_dir")


def shard_bytes(files: list[str]) -> list[int]:
    """The size of each shard: what tells a reconverted dataset from the one a run started on."""
    return [os.path.getsize(path) for path in files]


def same_data_dir(first: str, second: str) -> bool:
    """Whether two dataset paths are one dataset: the same folder, or the same built-in scenes,
    whose cache folders are named after their size, count and seed wherever the cache lies."""
    first, second = os.path.realpath(first), os.path.realpath(second)
    if first == second:
        return True
    return (os.path.basename(first) == os.path.basename(second)
            and all(os.path.basename(os.path.dirname(path)) == "synthetic" for path in (first, second)))


def build_model(saved: dict):
    """The (untrained) model a ``config.json`` describes."""
    model_class = registry.get(saved["model"]).load()
    config = config_lib.build_config(model_class.config_class, base=saved["hparams"])
    return model_class(config, source_label_space=saved["data"]["label_space"])


def latest_checkpoint(model_dir: str, flag: str = "--model_dir") -> str:
    return checkpoint_paths(model_dir, flag)[-1]


def checkpoint_paths(model_dir: str, flag: str = "--model_dir") -> list[str]:
    """The checkpoints of ``model_dir``, oldest first: those its CheckpointManager keeps, or,
    when the state file (``checkpoints/checkpoint``) is missing or unreadable, every checkpoint
    whose files are there."""
    directory = os.path.join(model_dir, "checkpoints")
    paths = _listed_checkpoints(directory) or checkpoint_files(directory)
    if not paths:
        raise RunDirError(f"{flag}: no checkpoint in {directory}")
    return paths


def checkpoint_files(directory: str) -> list[str]:
    """The checkpoint prefixes (``ckpt-N``) whose index file is in ``directory``, by step."""
    if not os.path.isdir(directory):
        return []
    found = [(int(match[1]), os.path.join(directory, f"ckpt-{match[1]}"))
             for match in map(re.compile(r"ckpt-(\d+)\.index").fullmatch, os.listdir(directory)) if match]
    return [path for _, path in sorted(found)]


def _listed_checkpoints(directory: str) -> list[str]:
    """The checkpoints the state file lists, oldest first; [] when it is missing or unreadable
    (TensorFlow then reads it as no checkpoint at all)."""
    import tensorflow as tf

    try:
        state = tf.train.get_checkpoint_state(directory)
    except (UnicodeDecodeError, ValueError):  # binary garbage: TensorFlow catches only parse errors
        return []
    if state is None or not state.model_checkpoint_path:
        return []
    paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    if paths[-1] != state.model_checkpoint_path:
        paths.append(state.model_checkpoint_path)
    return paths


def recover_checkpoint_state(model_dir: str, log) -> None:
    """Rewrites ``checkpoints/checkpoint`` from the checkpoint files when it is missing, empty or
    unreadable while checkpoints are there, so that a resume finds them (TensorFlow would read
    such a file as no checkpoint, and the run would start over and overwrite them)."""
    import tensorflow as tf

    directory = os.path.join(model_dir, "checkpoints")
    found = checkpoint_files(directory)
    if not found or _listed_checkpoints(directory):
        return
    tf.compat.v1.train.update_checkpoint_state(
        directory, found[-1], found, all_model_checkpoint_timestamps=[os.path.getmtime(f"{path}.index") for path in found])
    log(f"{os.path.join(directory, 'checkpoint')} was missing or unreadable: rebuilt from the checkpoint files "
        f"({', '.join(os.path.basename(path) for path in found)})")


def remove_leftovers(model_dir: str, log) -> None:
    """Removes what a killed process left in ``model_dir``: a checkpoint save's temporary folder
    (``checkpoints/ckpt-N_temp``) and an export's partial folder (``export/.N.partial-PID``)
    whose process is gone. Neither is ever read: a save or an export becomes visible only by its
    final rename."""
    candidates = [os.path.join(model_dir, "checkpoints", name) for name in _names(os.path.join(model_dir, "checkpoints"))
                  if re.fullmatch(r"ckpt-\d+_temp", name)]
    for name in _names(os.path.join(model_dir, "export")):
        match = re.fullmatch(r"\.\d+\.partial-(\d+)", name)
        if match and not _process_alive(int(match[1])):
            candidates.append(os.path.join(model_dir, "export", name))
    for path in candidates:
        shutil.rmtree(path, ignore_errors=True)
        log(f"removed {path}, left by a process that was stopped while writing it")


def _names(directory: str) -> list[str]:
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def copy_run_files(model, model_dir: str) -> None:
    """Copies into ``model_dir`` the files ``model.run_files()`` declares, and points the model
    at the copies (``model.run_file``).

    The training loop calls it once the run directory exists, before ``prepare_training``, on
    every start and resume. A copy already there is kept (a resume trains the objective it
    started with) once the family's ``check_run_file`` accepts it; a source is checked before it
    is copied, and one that is missing or unreadable raises ``tfrecord.DataError`` naming it.
    Every copy is written atomically.
    """
    from tfsynth.data.tfrecord import DataError

    for name, source in model.run_files().items():
        copy = os.path.join(model_dir, name)
        if os.path.exists(copy):
            model.check_run_file(name, copy)
            continue
        if isinstance(source, str):
            model.check_run_file(name, source)
            try:
                with open(source, "rb") as f:
                    source = f.read()
            except OSError as error:
                raise DataError(f"{name}: cannot read {source} ({error.strerror or error})") from None
        write_bytes(copy, source)
    model.run_files_dir = model_dir


def restore_newest(checkpoint, paths: list[str], *, partial: bool = False, log=None) -> str:
    """Restores the newest of ``paths`` (oldest first) that restores; returns its path.

    A checkpoint torn by a crash, a kill during the write or a full disk (a truncated or corrupt
    data file, a missing index) is skipped with one line naming it and why, and the one before it
    is tried. A failed attempt may have set some variables already; the next restore sets every
    one of them again, since all checkpoints of a run hold the same objects.

    Args:
      checkpoint: a ``tf.train.Checkpoint``.
      paths: checkpoint prefixes, oldest first (``CheckpointManager.checkpoints``).
      partial: the checkpoint may hold more than ``checkpoint`` restores (serving state only).
      log: receives the line for each skipped checkpoint (default: a warning).

    Raises:
      RunDirError: when none restores, naming each and its error.
    """
    import tensorflow as tf
    from absl import logging

    log = log or logging.warning
    failures = []
    for path in reversed(paths):
        try:
            status = checkpoint.restore(path)
            if partial:
                status.expect_partial()
            status.assert_existing_objects_matched()
            return path
        except (tf.errors.OpError, AssertionError, IndexError, KeyError, OSError, ValueError) as error:
            reason = getattr(error, "message", None) or str(error) or type(error).__name__
            # One line, without TensorFlow's function-node and op decorations.
            reason = " ".join(re.sub(r"\{\{[^}]*\}\}|\[Op:\w+\]", " ", reason).split())
            failures.append(f"{path}: {reason[:300]}")
            log(f"skipped checkpoint {path}: it does not restore ({reason[:300]})")
    raise RunDirError("no checkpoint restores: " + "; ".join(failures) +
                      ". Move the checkpoints folder away to start over")


def holds_training_state(path: str) -> bool:
    """Whether checkpoint ``path`` holds a training run's state (its data position), rather than
    networks alone (what ``tfsynth.import_weights`` writes). A checkpoint that cannot be read
    counts as a run's: restoring it reports (and skips) it."""
    import tensorflow as tf

    try:
        names = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError):
        return True
    return any(name.startswith("data/") for name in names)


def load_model(model_dir: str, purpose: str = "serving", flag: str = "--model_dir"):
    """Rebuilds the model of ``model_dir`` and restores what ``purpose`` needs from its latest
    checkpoint that restores: ``serving`` (the export's state), or ``networks`` (every network:
    warm starts).

    Returns:
      (model, the model's registry name).
    """
    import tensorflow as tf

    saved = read_config(model_dir, flag)
    model = build_model(saved)
    paths = checkpoint_paths(model_dir, flag)
    state = model.serving_state() if purpose == "serving" else model.networks
    restore_newest(tf.train.Checkpoint(**state), paths, partial=True)
    return model, saved["model"]


# ------------------------------------------------------------------------------------- exports

def next_export_dir(model_dir: str) -> str:
    """``model_dir/export/<n+1>``: TF Serving serves the highest integer version."""
    latest = latest_export_dir(model_dir)
    version = int(os.path.basename(latest)) if latest else 0
    return os.path.join(model_dir, "export", str(version + 1))


def latest_export_dir(model_dir: str) -> str | None:
    """``model_dir/export/<n>`` of the highest version, or None."""
    root = os.path.join(model_dir, "export")
    versions = [int(name) for name in _names(root) if re.fullmatch(r"\d+", name)]
    return os.path.join(root, str(max(versions))) if versions else None


def read_export_info(export_dir: str, flag: str = "--saved_model") -> dict:
    """An export's declaration (``tfsynth_export.json``), with its endpoints parsed."""
    from tfsynth.endpoints import Endpoint

    path = os.path.join(export_dir, EXPORT_INFO)
    if not os.path.exists(path):
        raise RunDirError(f"{flag}: {path} not found: is {export_dir} a tfsynth export (export/<version>)?")
    info = read_json(path, flag)
    try:
        info["endpoints"] = [Endpoint.from_json(item) for item in info["endpoints"]]
    except (KeyError, TypeError, ValueError) as error:
        raise RunDirError(f"{flag}: {path} was written by an older tfsynth or is damaged ({error}); "
                          "export the model again") from None
    return info


def find_endpoint(info: dict, signature: str):
    """The endpoint an export serves under ``signature`` (``serving_default``: the first)."""
    endpoints = info["endpoints"]
    if signature == "serving_default":
        return endpoints[0]
    for endpoint in endpoints:
        if endpoint.name == signature:
            return endpoint
    raise RunDirError(f"--signature={signature}: this export serves "
                      f"{', '.join(['serving_default'] + [e.name for e in endpoints if e.name != 'serving_default'])}")
