"""What tests share besides fixtures: paths, the environment of CLI commands, and running them."""

import json
import os
import select
import signal
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE_FLAGS = os.path.join(REPO_ROOT, "configs", "smoke", "crn_tiny.flags")
#: Set to 0 to run every command in a fresh interpreter (slower; to rule the fork server out).
FORKS = os.environ.get("TFSYNTH_TEST_FORKS", "1") != "0"


def cli_env(cache: str) -> dict:
    """The test process's environment, with an isolated data cache and no GPU."""
    return dict(os.environ, TFSYNTH_CACHE=cache, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2",
                CUDA_VISIBLE_DEVICES="")


def run_module(cache: str, module_or_script: str, *args, check: bool = True, timeout: int = 600,
               env: dict | None = None, fresh: bool = False):
    """Runs ``python -m MODULE ARGS`` (or a ``.py`` script) from the repo root, with ``env``
    added to the environment; returns a ``subprocess.CompletedProcess`` with text output.

    The command runs in a fork of a process that imported TensorFlow already
    (``tests/cli_forkserver.py``), or with ``fresh`` in a new interpreter, for what only a fresh
    process can show (a flag error before TensorFlow loads). With ``check``, a non-zero exit
    fails the test and shows the tail of both streams.
    """
    args = [str(arg) for arg in args]
    environment = cli_env(cache) | (env or {})
    if fresh or not FORKS:
        target = [module_or_script] if module_or_script.endswith(".py") else ["-m", module_or_script]
        result = subprocess.run([sys.executable, *target, *args], cwd=REPO_ROOT, env=environment,
                                capture_output=True, text=True, timeout=timeout)
    else:
        result = _forked(cache, module_or_script, args, environment, timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{module_or_script} {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


class _ForkServer:
    """This test process's ``cli_forkserver.py``, started on first use."""

    def __init__(self, cache: str):
        self.process = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, "tests", "cli_forkserver.py")],
                                        cwd=REPO_ROOT, env=cli_env(cache), stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE)
        self.pending = b""

    def send(self, request: dict) -> None:
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()

    def receive(self, timeout: float | None = None) -> dict | None:
        """The next answer, or None when none came within ``timeout`` seconds."""
        descriptor = self.process.stdout.fileno()
        while b"\n" not in self.pending:
            ready, _, _ = select.select([descriptor], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(descriptor, 65536)
            if not chunk:
                raise RuntimeError("the test fork server ended")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)


_server: list[_ForkServer] = []


def _forked(cache: str, target: str, args: list[str], environment: dict, timeout: float):
    """The command run by this process's fork server (one per test process; each request brings
    its own environment, the data cache included)."""
    if not _server or _server[0].process.poll() is not None:
        _server[:] = [_ForkServer(cache)]
    server = _server[0]
    with tempfile.TemporaryDirectory() as folder:
        streams = {name: os.path.join(folder, name) for name in ("stdout", "stderr")}
        server.send({"target": target, "args": args, "env": environment, "cwd": REPO_ROOT, **streams})
        pid = server.receive()["pid"]
        answer = server.receive(timeout)
        if answer is None:
            os.kill(pid, signal.SIGKILL)
            server.receive()
            raise subprocess.TimeoutExpired([target, *args], timeout)
        output = {name: open(path, encoding="utf-8", errors="replace").read() for name, path in streams.items()}
    return subprocess.CompletedProcess([target, *args], answer["returncode"], output["stdout"], output["stderr"])
