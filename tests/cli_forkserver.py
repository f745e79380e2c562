"""Runs the tests' commands in forks of one process that has imported TensorFlow already.

A command in a fresh interpreter spends about 5 s of CPU importing TensorFlow before it does
anything; the CLI tests run about 150 commands. This server imports TensorFlow once (which starts
no thread, so a fork is safe) and runs each command in a fork of itself, as ``python -m MODULE``
or ``python SCRIPT`` would: its own argv, environment, working directory, and stdout and stderr
to files. Only what a fresh process must prove (that a flag error comes before TensorFlow loads,
that an export reloads without tfsynth) runs in a fresh interpreter (``run_module(...,
fresh=True)``).

Protocol, one JSON object a line: a request ``{"target", "args", "env", "cwd", "stdout",
"stderr"}`` on stdin; the answers ``{"pid": PID}`` once the fork runs, then ``{"returncode": N}``
(``-signal`` when a signal ended it).
"""

import json
import os
import runpy
import sys
import traceback

import keras  # noqa: F401 - imported here once, for every fork
import tensorflow  # noqa: F401


def run_in_child(request) -> int:
    """Runs the request's command in this (forked) process; returns its exit status."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    target, args = request["target"], request["args"]
    try:
        if target.endswith(".py"):
            sys.argv = [target, *args]
            sys.path[0] = os.path.dirname(os.path.abspath(target))
            runpy.run_path(target, run_name="__main__")
        else:
            sys.argv = [target, *args]
            sys.path[0] = request["cwd"]
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        return 0
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        print(exit_.code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 - reported as an interpreter would, then exit 1
        traceback.print_exc()
        return 1


def serve() -> None:
    replies = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            status = run_in_child(request)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve()
