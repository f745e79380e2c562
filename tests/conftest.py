"""Shared fixtures: the repo root, an isolated cache for the built-in data, and CLI runners."""

import functools
import os

import pytest

from cli_support import run_module


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
