"""Shared fixtures (an isolated cache for the built-in data, CLI runners), the test tiers and
``--family``.

Every test belongs to one tier, by a marker on its file (``pytestmark``) or on itself; a test
without one fails the collection, so a new slow test cannot land in the fast tier unnoticed:

- ``unit``: in-process and quick; ``pytest -m unit`` is the fast tier (every family trains and
  exports through the loop's API there);
- ``cli``: runs a command in a subprocess (its flags, its output, its exit status);
- ``slow``: several processes or runs, or long tracing (kill -9 and resume, two devices, several
  workers, steps of the larger smoke graphs, the studio's exports);
- ``paper``: builds the papers' full-size networks (counted, never run);
- ``browser``: drives the studio in headless Chromium.

``--family=NAME`` keeps the tests of one family: those marked ``family(NAME)`` and the
parametrised ones whose parameter is NAME (``--family=pix2pixhd`` does not pick up pix2pix).
"""

import functools
import os

import pytest

from cli_support import run_module

TIERS = ("unit", "cli", "slow", "paper", "browser")


def pytest_addoption(parser):
    parser.addoption("--family", default=None, metavar="NAME",
                     help="run only the tests of model family NAME (e.g. pix2pixhd)")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    _group_for_workers(items)
    untiered = [item.nodeid for item in items if sum(item.get_closest_marker(tier) is not None for tier in TIERS) != 1]
    if untiered:
        raise pytest.UsageError("each test needs exactly one tier marker (" + ", ".join(TIERS) + "): "
                                + ", ".join(untiered[:20]))
    family = config.getoption("--family")
    if family is None:
        return
    from tfsynth import registry

    if family not in registry.MODELS:
        raise pytest.UsageError(f"--family={family}: not a registered family ({', '.join(sorted(registry.MODELS))})")
    selected, deselected = [], []
    for item in items:
        (selected if _is_about(item, family) else deselected).append(item)
    config.hook.pytest_deselected(items=deselected)
    items[:] = selected


def _group_for_workers(items) -> None:
    """``--dist loadgroup`` groups: a file's tests go to one worker, so its module fixtures are
    built once, except that the tests of a file parametrised by ``family`` (the contract, resume,
    several workers) are split by family, so that one worker does not take every family's
    training while the other idles."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        family = callspec.params.get("family") if callspec is not None else None
        group = item.nodeid.split("::")[0] + (f"[{family}]" if family else "")
        item.add_marker(pytest.mark.xdist_group(group))


def _is_about(item, family: str) -> bool:
    """Whether ``item`` tests ``family``: a ``family`` marker naming it, or a parameter equal to it."""
    if any(family in marker.args for marker in item.iter_markers("family")):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and family in callspec.params.values()


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One synthetic-data cache for the whole session (rendering is the slow part)."""
    path = str(tmp_path_factory.mktemp("tfsynth_cache"))
    os.environ["TFSYNTH_CACHE"] = path
    return path


@pytest.fixture
def run_cli(cache_dir):
    """``run_cli(MODULE_OR_SCRIPT, *args, check=True)``: a real command from the repo root."""
    return functools.partial(run_module, cache_dir)


@pytest.fixture(scope="session")
def studio_exports(tmp_path_factory, cache_dir):
    """Tiny CRN, pix2pix and pix2pixHD exports for the studio's tests, built once per session."""
    from studio_support import build_tiny_exports

    return build_tiny_exports(tmp_path_factory.mktemp("studio_exports"))
