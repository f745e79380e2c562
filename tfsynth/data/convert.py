"""The conversion driver: examples listed by ``sources`` -> sharded TFRecords + ``dataset.json``.

Used by ``tools/build_tfrecords.py`` and by training, which caches its built-in data with
``build_synthetic``. The driver never writes a bad record: each example is read, checked, resized
and validated again by ``tfrecord.serialize`` before it reaches a shard. Without ``skip_bad``
the first bad example stops the split, and ``tfrecord.ShardedWriter`` removes its unfinished
shards; with ``skip_bad`` bad examples are logged with their reason and counted, and the counts
go into ``dataset.json``. A dataset is written in a staging folder and swapped in whole, so a
failed or killed conversion never touches the dataset already in its output folder.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import glob
import itertools
import math
import os
import shutil
import sys
import time
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from tfsynth.data import labels as label_spaces
from tfsynth.data import sources, tfrecord
from tfsynth.data.tfrecord import DataError, Example

# A 256x512 Cityscapes example is about 0.5 MB as PNG, so 200 examples make a shard of ~100 MB:
# large enough for sequential reads, small enough to interleave several per epoch.
EXAMPLES_PER_SHARD = 200

# Decoding and resizing run in threads (PIL releases the GIL there) while the main thread encodes
# and writes; the window bounds memory when full-resolution photos pile up ahead of the writer.
DEFAULT_NUM_WORKERS = min(4, os.cpu_count() or 1)
_READ_AHEAD_PER_WORKER = 4

Log = Callable[[str], None]


def print_line(message: str) -> None:
    """The default ``log``: one line on stdout, flushed so progress shows through pipes."""
    print(message, file=sys.stdout, flush=True)


@dataclasses.dataclass
class SplitResult:
    """What ``convert`` wrote for one split.

    Attributes:
      split: the split name.
      count: records written.
      skipped: bad examples left out (only with ``skip_bad``).
      shards: the shard paths, in index order.
      image_sizes: every distinct (height, width) written.
      has_instance: whether every record carries an instance map.
      has_target: whether every record carries a target photo.
    """

    split: str
    count: int
    skipped: int
    shards: list[str]
    image_sizes: set[tuple[int, int]]
    has_instance: bool
    has_target: bool


def default_num_shards(count: int) -> int:
    """About one shard per ~100 MB of output: ceil(count / 200), at least 1, at most ``count``."""
    return max(1, min(count, math.ceil(count / EXAMPLES_PER_SHARD)))


def convert(
    source_examples: Sequence[sources.LazyExample],
    out_dir: str,
    split: str,
    num_shards: int | None = None,
    *,
    label_space: str | None = None,
    image_format: str = "png",
    size: tuple[int, int] | None = None,
    skip_bad: bool = False,
    num_workers: int = DEFAULT_NUM_WORKERS,
    log: Log = print_line,
) -> SplitResult:
    """Writes one split as ``<split>-NNNNN-of-MMMMM.tfrecord`` shards in ``out_dir``.

    Shards of ``split`` already in ``out_dir`` are removed first, so an earlier run with another
    shard count cannot mix with this one, and a failed run leaves no shard of the split at all.

    Args:
      source_examples: the split's examples, as listed by a ``sources`` reader.
      out_dir: output folder, created if needed.
      split: split name, used in shard names and messages.
      num_shards: shard count; None picks ``default_num_shards``. Never more than the examples.
      label_space: name of the label space whose id range labels must respect; None for
        image-only data.
      image_format: ``png`` (lossless) or ``jpeg`` (quality 95) for photos.
      size: (height, width) to resize every example to, or None to keep source sizes.
      skip_bad: leave out (and log) bad examples instead of stopping at the first.
      num_workers: reader threads; 1 reads in the calling thread.
      log: receives progress lines and one line per skipped example.

    Returns:
      A ``SplitResult``.

    Raises:
      DataError: naming the file at fault, for a bad example (without ``skip_bad``), an empty
        split, or a split whose every example was bad.
    """
    total = len(source_examples)
    if total == 0:
        raise DataError(f"split {split!r} has no examples")
    num_shards = min(num_shards or default_num_shards(total), total)
    num_classes = label_spaces.get_label_space(label_space).num_classes if label_space else None
    remove_split(out_dir, split)

    def prepare(lazy: sources.LazyExample) -> Example | DataError:
        try:
            sources.check_name(lazy.key)
            example = lazy.read()
            # Check before resizing: resizing would hide a size mismatch between the maps.
            tfrecord.validate(example, num_classes)
            return sources.resize_example(example, size) if size else example
        except DataError as error:
            return error

    skipped, image_sizes, all_have_instance, all_have_target = 0, set(), True, True
    with tfrecord.ShardedWriter(out_dir, split, num_shards, image_format=image_format,
                                num_classes=num_classes) as writer:
        progress = _Progress(split, total, log)  # after the writer, whose TF import is slow
        for done, (lazy, outcome) in enumerate(_ordered_map(prepare, source_examples, num_workers), 1):
            if isinstance(outcome, Example):
                outcome = _write_or_error(writer, outcome)
            if isinstance(outcome, DataError):
                if not skip_bad:
                    raise outcome
                skipped += 1
                log(f"skipped {sources.printable(lazy.key)}: {outcome}")
            else:
                image_sizes.add(outcome.image.shape[:2])
                all_have_instance &= outcome.instance is not None
                all_have_target &= outcome.target is not None
            progress.update(done, skipped)
        if writer.count == 0:
            raise DataError(f"split {split!r}: all {total} examples were bad, nothing to write")
    return SplitResult(split=split, count=writer.count, skipped=skipped, shards=writer.paths,
                       image_sizes=image_sizes, has_instance=all_have_instance,
                       has_target=all_have_target)


def convert_dataset(
    splits: Mapping[str, Sequence[sources.LazyExample]],
    out_dir: str,
    *,
    format_name: str,
    source: str,
    label_space: str | None,
    image_format: str = "png",
    size: tuple[int, int] | None = None,
    num_shards: int | None = None,
    skip_bad: bool = False,
    num_workers: int = DEFAULT_NUM_WORKERS,
    extra_info: Mapping | None = None,
    overwrite: bool = False,
    log: Log = print_line,
) -> dict:
    """Converts every split, then writes ``dataset.json``; returns what it wrote there.

    Everything is written to a staging folder beside ``out_dir`` (``<out_dir>.tmp-<pid>``) and
    swapped in only once every split and ``dataset.json`` are complete, so a bad source, a full
    disk or a kill leaves a dataset already in ``out_dir`` as it was, and a replaced dataset
    keeps no shard of a split that was not converted again.

    Args:
      splits: split name -> its listed examples (list them all first, so that a missing split
        fails before hours of converting the others).
      out_dir: output folder.
      format_name: the ``--format`` the data came from.
      source: the source folder, or ``"synthetic"``.
      label_space: label space name, or None for image-only data.
      image_format, size, num_shards, skip_bad, num_workers, log: as for ``convert``.
      extra_info: more keys for ``dataset.json`` (the synthetic seed, say).
      overwrite: replace a dataset already in ``out_dir`` (without it, that is an error).

    Raises:
      DataError: as ``check_output_dir`` and ``convert`` do.
    """
    check_output_dir(out_dir, overwrite)
    start = time.monotonic()
    staging = staging_dir(out_dir)
    try:
        info, results = _write_dataset(splits, staging, format_name=format_name, source=source,
                                       label_space=label_space, image_format=image_format, size=size,
                                       num_shards=num_shards, skip_bad=skip_bad,
                                       num_workers=num_workers, extra_info=extra_info, log=log)
        _swap_in(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    counts = ", ".join(f"{r.split} {r.count} in {len(r.shards)} shard(s) ({r.skipped} skipped)"
                       for r in results)
    log(f"wrote {out_dir}: {counts}; {time.monotonic() - start:.1f} s")
    return info


def check_output_dir(out_dir: str, overwrite: bool = False) -> None:
    """Refuses an output folder that cannot take a new dataset, before any work.

    ``out_dir`` may be missing or empty, or hold a dataset that ``overwrite`` allows replacing.
    A file, or a folder holding anything besides a dataset's own files, is never replaced.

    Raises:
      DataError: naming ``out_dir``.
    """
    if not os.path.exists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise DataError(f"{out_dir} is a file, not a dataset folder")
    names = os.listdir(out_dir)
    foreign = sorted(name for name in names if not _is_dataset_file(name))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise DataError(f"{out_dir} holds files that are not part of a tfsynth dataset ({shown}); "
                        "refusing to replace it: choose another --out")
    if names and not overwrite:
        raise DataError(f"{out_dir} holds a dataset already; pass --overwrite to replace it "
                        "(it is swapped in only once every split has converted)")


def staging_dir(out_dir: str) -> str:
    """The folder a dataset for ``out_dir`` is written in before it is swapped in: a sibling, so
    that the swap is a rename on the same file system, named per process so that concurrent
    writers never share one."""
    return f"{os.path.abspath(out_dir).rstrip(os.sep)}.tmp-{os.getpid()}"


def _write_dataset(splits, out_dir, *, format_name, source, label_space, image_format, size,
                   num_shards, skip_bad, num_workers, extra_info, log) -> tuple[dict, list[SplitResult]]:
    """Writes every split and then ``dataset.json`` into ``out_dir``, a fresh folder."""
    shutil.rmtree(out_dir, ignore_errors=True)  # a leftover of an earlier run of this process id
    os.makedirs(out_dir)
    results = [
        convert(examples, out_dir, split, num_shards, label_space=label_space,
                image_format=image_format, size=size, skip_bad=skip_bad,
                num_workers=num_workers, log=log)
        for split, examples in splits.items()
    ]
    sizes = set().union(*(result.image_sizes for result in results))
    info = {
        "format": format_name,
        "label_space": label_space,
        "splits": {result.split: result.count for result in results},
        "image_size": list(next(iter(sizes))) if len(sizes) == 1 else None,
        "source": source,
        "has_instance": all(result.has_instance for result in results),
        "has_target": all(result.has_target for result in results),
        "image_format": image_format,
        "skipped": {result.split: result.skipped for result in results},
        **(extra_info or {}),
    }
    tfrecord.write_dataset_json(out_dir, info)
    return info, results


def _swap_in(staging: str, out_dir: str) -> None:
    """Puts the complete ``staging`` folder in place of ``out_dir``.

    The old dataset is renamed aside and deleted only once the new one is in place: a kill
    between the two renames leaves both folders whole (``<out_dir>.old-<pid>`` and the staging
    folder), never a mixture.
    """
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        retired = f"{os.path.abspath(out_dir).rstrip(os.sep)}.old-{os.getpid()}"
        os.rename(out_dir, retired)
        os.rename(staging, out_dir)
        shutil.rmtree(retired)
    else:  # a rename replaces a missing or empty folder
        os.makedirs(os.path.dirname(os.path.abspath(out_dir)), exist_ok=True)
        os.rename(staging, out_dir)


def synthetic_splits(splits: Iterable[str], num_examples: int, height: int, width: int,
                     seed: int = 0) -> dict[str, list[sources.LazyExample]]:
    """Built-in scenes per split: ``train`` gets ``num_examples``, others max(1, num_examples // 10)."""
    return {
        split: sources.synthetic(split, num_examples if split == "train" else max(1, num_examples // 10),
                                 height, width, seed)
        for split in splits
    }


def build_synthetic(out_dir: str, num_train: int, num_val: int, height: int, width: int,
                    seed: int = 0, *, log: Log = print_line) -> str:
    """Writes the built-in scenes as a TFRecord dataset (train and val, ``cityscapes35``, instances).

    Training calls this to cache ``--train_data=synthetic``: when ``out_dir`` already holds the
    same dataset (same counts, size and seed, all shards present) it returns at once. The data is
    written to a temporary sibling folder and renamed into place, so concurrent callers (several
    workers of one job) never see a half-written dataset.

    Returns:
      ``out_dir``.

    Raises:
      DataError: when ``out_dir`` exists and is not a synthetic dataset (it is never deleted then).
    """
    wanted = {"splits": {"train": num_train, "val": num_val}, "image_size": [height, width], "seed": seed}
    if _is_synthetic_dataset(out_dir, wanted):
        return out_dir
    if os.path.exists(out_dir) and os.listdir(out_dir) and not _is_synthetic_dataset(out_dir):
        raise DataError(f"{out_dir}: exists and is not a synthetic dataset; refusing to replace it")
    splits = {
        "train": sources.synthetic("train", num_train, height, width, seed),
        "val": sources.synthetic("val", num_val, height, width, seed),
    }
    staging = staging_dir(out_dir)
    try:
        _write_dataset(splits, staging, format_name="synthetic", source="synthetic",
                       label_space="cityscapes35", image_format="png", size=None, num_shards=None,
                       skip_bad=False, num_workers=DEFAULT_NUM_WORKERS, extra_info={"seed": seed},
                       log=log)
        if os.path.exists(out_dir):  # a synthetic dataset with other parameters: replace it
            shutil.rmtree(out_dir)
        try:
            os.rename(staging, out_dir)
        except OSError:
            # Another process renamed its copy first; use it if it is what we want.
            if not _is_synthetic_dataset(out_dir, wanted):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _is_dataset_file(name: str) -> bool:
    """Whether ``name`` is one of the files a converted dataset consists of."""
    return name == tfrecord.DATASET_JSON or tfrecord.is_shard_name(name.removesuffix(".partial"))


def remove_split(out_dir: str, split: str) -> None:
    """Deletes the shards (finished or partial) of ``split`` in ``out_dir``."""
    pattern = os.path.join(glob.escape(out_dir), f"{glob.escape(split)}-[0-9][0-9][0-9][0-9][0-9]-of-"
                                                 "[0-9][0-9][0-9][0-9][0-9].tfrecord")
    for path in glob.glob(pattern) + glob.glob(pattern + ".partial"):
        os.remove(path)


# ----------------------------------------------------------------------------- helpers


def _is_synthetic_dataset(data_dir: str, wanted: Mapping | None = None) -> bool:
    """Whether ``data_dir`` holds a complete synthetic dataset, matching ``wanted`` if given."""
    try:
        info = tfrecord.read_dataset_json(data_dir)
        if info.get("format") != "synthetic":
            return False
        if wanted and any(info.get(key) != value for key, value in wanted.items()):
            return False
        for split in info.get("splits", {}):
            tfrecord.list_shards(data_dir, split)
    except DataError:
        return False
    return True


def _write_or_error(writer: tfrecord.ShardedWriter, example: Example) -> Example | DataError:
    # serialize() validates once more; its error then counts as this example's, like a read error.
    try:
        writer.write(example)
    except DataError as error:
        return error
    return example


def _ordered_map(function: Callable, items: Sequence, num_workers: int) -> Iterator[tuple]:
    """Yields ``(item, function(item))`` in input order, computing a bounded window ahead."""
    if num_workers <= 1:
        for item in items:
            yield item, function(item)
        return
    window = num_workers * _READ_AHEAD_PER_WORKER
    with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
        remaining = iter(items)
        pending = collections.deque((item, pool.submit(function, item))
                                    for item in itertools.islice(remaining, window))
        try:
            while pending:
                item, future = pending.popleft()
                for following in itertools.islice(remaining, 1):
                    pending.append((following, pool.submit(function, following)))
                yield item, future.result()
        finally:  # on an early stop, do not decode the rest of the window for nothing
            for _, future in pending:
                future.cancel()


class _Progress:
    """Logs ``done/total`` about every 5 % of the split or every 2 s, whichever comes first."""

    def __init__(self, split: str, total: int, log: Log, fraction: float = 0.05, seconds: float = 2.0):
        self._split, self._total, self._log, self._seconds = split, total, log, seconds
        self._step = max(1, math.ceil(total * fraction))
        self._start = self._last = time.monotonic()
        self._next = self._step

    def update(self, done: int, skipped: int) -> None:
        now = time.monotonic()
        if done < self._total and done < self._next and now - self._last < self._seconds:
            return
        self._last, self._next = now, (done // self._step + 1) * self._step
        rate = done / max(now - self._start, 1e-9)
        skipped_text = f", {skipped} skipped" if skipped else ""
        self._log(f"{self._split}: {done}/{self._total} ({100 * done // self._total}%), "
                  f"{rate:.1f} examples/s{skipped_text}")
