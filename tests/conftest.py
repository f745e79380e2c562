"""Shared fixtures: the repo root, an isolated cache for the built-in data, and CLI runners."""

import os
import subprocess
import sys

import pytest

from cli_support import REPO_ROOT, cli_env


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One synthetic-data cache for the whole session (rendering is the slow part)."""
    path = str(tmp_path_factory.mktemp("tfsynth_cache"))
    os.environ["TFSYNTH_CACHE"] = path
    return path


@pytest.fixture
def run_cli(cache_dir):
    """Runs ``python -m MODULE ARGS`` (or a script path) from the repo root; returns the result."""

    def run(module_or_script, *args, check=True, timeout=600):
        target = [module_or_script] if module_or_script.endswith(".py") else ["-m", module_or_script]
        result = subprocess.run([sys.executable, *target, *args], cwd=REPO_ROOT, env=cli_env(cache_dir),
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{module_or_script} {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
        return result

    return run
