"""What tests share besides fixtures: paths and the environment of CLI subprocesses."""

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE_FLAGS = os.path.join(REPO_ROOT, "configs", "smoke", "crn_tiny.flags")


def cli_env(cache: str) -> dict:
    """The test process's environment, with an isolated data cache and no GPU."""
    return dict(os.environ, TFSYNTH_CACHE=cache, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2",
                CUDA_VISIBLE_DEVICES="")
