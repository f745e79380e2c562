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


@pytest.fixture(scope="session")
def studio_exports(tmp_path_factory, cache_dir):
    """Tiny CRN, pix2pix and pix2pixHD exports for the studio's tests, built once per session."""
    from studio_support import build_tiny_exports

    return build_tiny_exports(tmp_path_factory.mktemp("studio_exports"))
