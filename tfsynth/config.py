"""Model hyper-parameters from ``--hparams=key=value,...``, strictly.

Every family's config is a frozen dataclass; this module turns the flag string into one,
rejecting unknown keys and badly typed values with a message that lists the valid keys.
"""

from __future__ import annotations

import dataclasses
import math
import typing


class HParamsError(ValueError):
    """A bad ``--hparams`` string; the message names the key at fault."""


def _parse_value(key: str, text: str, kind) -> object:
    origin = typing.get_origin(kind)
    if origin is tuple:
        element = typing.get_args(kind)[0]
        parts = text.replace("x", ":").split(":")
        return tuple(_parse_value(key, part, element) for part in parts)
    if typing.get_origin(kind) is typing.Union or type(kind).__name__ == "UnionType":
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return lowered in ("true", "1")
        return kind(text)
    except ValueError:
        raise HParamsError(
            f"--hparams: {key} expects {getattr(kind, '__name__', kind)}, got {text!r}") from None


def describe(config_class) -> str:
    hints = typing.get_type_hints(config_class)
    return ", ".join(
        f"{field.name} ({getattr(hints[field.name], '__name__', hints[field.name])})"
        for field in dataclasses.fields(config_class)
    )


def parse_hparams(texts: str | list[str]) -> dict[str, str]:
    """``"a=1,b=x"`` -> ``{"a": "1", "b": "x"}``.

    Several strings (``--hparams`` given in a flagfile and again on the command line) merge
    left to right: later keys win, like later flags, and earlier keys stay.
    """
    pairs = {}
    items = [part.strip() for text in ([texts] if isinstance(texts, str) else texts) for part in text.split(",")]
    for item in filter(None, items):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise HParamsError(f"--hparams: expected key=value, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def build_config(config_class, overrides: dict[str, str] | None = None, base: dict | None = None):
    """Config dataclass from its defaults, then ``base`` (typed values), then ``overrides`` (text).

    Raises:
      HParamsError: an unknown key (the message lists the valid keys), a badly typed value, or a
        value the config itself rejects.
    """
    hints = typing.get_type_hints(config_class)
    values = dict(base or {})
    for key, text in (overrides or {}).items():
        if key not in hints:
            raise HParamsError(
                f"--hparams: unknown key {key!r} for {config_class.__name__}; valid keys: "
                f"{describe(config_class)}")
        values[key] = _parse_value(key, text, hints[key])
    try:
        return config_class(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    except (TypeError, ValueError) as error:
        raise HParamsError(f"--hparams: {error}") from None


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def non_default_values(config) -> dict:
    """The fields of ``config`` whose values differ from the dataclass defaults."""
    return {field.name: getattr(config, field.name) for field in dataclasses.fields(config)
            if field.default is not dataclasses.MISSING and getattr(config, field.name) != field.default}


def check_positive(config, *names: str) -> None:
    """Raises ValueError unless each named field of ``config`` is a finite number above 0.

    For learning rates: a negative one climbs the loss, zero trains nothing and NaN poisons every
    weight, all without an error of their own. Families call it from ``__post_init__``.
    """
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
