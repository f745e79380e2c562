"""The small text formats every command shares: sizes and ``name:PATH`` lists."""

from __future__ import annotations

import os
import re
from typing import Callable

#: Whether ``C:\\...`` is a path (Windows) rather than a model named C.
DRIVE_LETTERS = os.name == "nt"

_SIZE = re.compile(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?")


def parse_size(text: str, square: bool = False) -> tuple[int, int]:
    """``HxW`` (e.g. ``256x512``) -> ``(256, 512)``; with ``square``, a bare ``S`` -> ``(S, S)``.

    Raises:
      ValueError: naming ``text`` when it is not positive integers in that form.
    """
    match = _SIZE.fullmatch(str(text))
    if match and (match[2] is not None or square):
        height, width = int(match[1]), int(match[2] or match[1])
        if height > 0 and width > 0:
            return height, width
    example = "S or HxW, e.g. 256 or 256x512" if square else "HxW with positive integers, e.g. 256x512"
    raise ValueError(f"bad size {text!r}: expected {example}")


def parse_named_paths(text: str, default_name: Callable[[str], str]) -> list[tuple[str, str]]:
    """``"a:PATH,b:PATH"`` -> ``[("a", PATH), ("b", PATH)]``; an item without a name is named
    ``default_name(PATH)``. A URL (``gs://...``), and on Windows a drive letter (``C:\\...``), is a
    path, not a name.

    Raises:
      ValueError: for an empty list or a name given twice.
    """
    items = []
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, path = item.partition(":")
        drive = DRIVE_LETTERS and len(name) == 1 and path[:1] in "/\\"
        if not sep or not name or path.startswith("//") or drive:
            name, path = default_name(item), item
        items.append((name, path))
    if not items:
        raise ValueError("give at least one NAME:PATH (or a PATH)")
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        raise ValueError(f"names must be unique, got {', '.join(names)}")
    return items
