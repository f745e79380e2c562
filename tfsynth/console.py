"""What the commands print: titled tables of name/value rows, and durations a person reads."""

from __future__ import annotations

import math


def print_summary(title: str, rows: list[tuple[str, str]]) -> None:
    """``title``, then each row as an indented name column and its value."""
    width = max((len(name) for name, _ in rows), default=0)
    print(title, flush=True)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}", flush=True)


def format_duration(seconds: float) -> str:
    """``H:MM:SS``, with days in front past 24 hours (``6d 03:00:00``); ``?`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    days, rest = divmod(int(round(seconds)), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock
