"""What tests share besides fixtures: paths and the environment of CLI subprocesses."""

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE_FLAGS = os.path.join(REPO_ROOT, "configs", "smoke", "crn_tiny.flags")


def cli_env(cache: str) -> dict:
    """The test process's environment, with an isolated data cache and no GPU."""
    return dict(os.environ, TFSYNTH_CACHE=cache, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2",
                CUDA_VISIBLE_DEVICES="")


def run_module(cache: str, module_or_script: str, *args, check: bool = True, timeout: int = 600,
               env: dict | None = None):
    """Runs ``python -m MODULE ARGS`` (or a ``.py`` script) from the repo root, with ``env``
    added to the environment.

    With ``check``, a non-zero exit fails the test and shows the tail of both streams.
    """
    import subprocess
    import sys

    target = [module_or_script] if module_or_script.endswith(".py") else ["-m", module_or_script]
    result = subprocess.run([sys.executable, *target, *map(str, args)], cwd=REPO_ROOT, env=cli_env(cache) | (env or {}),
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{module_or_script} {' '.join(map(str, args))} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result
