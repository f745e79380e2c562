"""Training across machines for real: two MultiWorkerMirroredStrategy workers on loopback ports,
each its own process with its own ``TF_CONFIG``, as on two machines.

For a tiny CRN and a tiny pix2pix: a two-worker run that loses a worker after its first checkpoint
(killed; the chief's next step fails with one error line naming where to resume) and is restarted
resumes from that checkpoint,
finishes on both workers, leaves checkpoints, logs, samples and the export written by the chief
alone, and ends with every weight, optimizer slot and step equal to a one-process run over two
devices with the same global batch. A worker whose peer never starts says which one it waits
for, gives up after --worker_timeout, and stops on SIGTERM or Ctrl-C while it waits.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading

import pytest

from cli_support import REPO_ROOT, cli_env, run_module
from family_support import assert_same_state, checkpoint_state, smoke_flagfile

pytestmark = pytest.mark.slow

STEPS = ["--train_steps=4", "--checkpoint_every=2", "--image_every=2"]


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(cache_dir, flagfile, model_dir, log_dir):
    """Both workers of a two-worker cluster; the chief's stdout is piped, the other's logged."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        env = dict(cli_env(cache_dir), TF_CONFIG=json.dumps({"cluster": cluster,
                                                             "task": {"type": "worker", "index": index}}))
        log = open(log_dir / f"worker{index}.log", "w")
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "tfsynth.train", f"--flagfile={flagfile}", f"--model_dir={model_dir}",
             "--strategy=multi_worker", *STEPS], cwd=REPO_ROOT, env=env, text=True,
            stdout=subprocess.PIPE if index == 0 else log, stderr=subprocess.STDOUT))
    return workers


@pytest.mark.parametrize("family", ["crn", "pix2pix"])
def test_two_workers_resume_after_a_kill_and_train_as_one_process(family, tmp_path, cache_dir):
    flagfile = smoke_flagfile(family)
    model_dir = tmp_path / "two_workers"

    chief, other = start_workers(cache_dir, flagfile, model_dir, tmp_path)
    for line in chief.stdout:
        if line.startswith("saved checkpoint") and line.split()[2].endswith("ckpt-2"):
            # A machine taken away (SIGTERM, which TensorFlow's strategy would swallow if let): the
            # worker stops at once, and the chief cannot step without it.
            other.send_signal(signal.SIGTERM)
            break
    other.wait(timeout=300)
    assert other.returncode == -signal.SIGTERM, "the run ended before it could be stopped"
    # The chief's next collective fails: one line saying so and where the workers resume from.
    lost = chief.communicate(timeout=300)[0]
    assert chief.returncode == 1 and "Traceback" not in lost, lost[-3000:]
    assert re.match(r"error: --strategy=multi_worker: step \d failed because another worker stopped answering .*"
                    r"resume from .*ckpt-2", lost.strip().splitlines()[-1]), lost[-1000:]

    chief, other = start_workers(cache_dir, flagfile, model_dir, tmp_path)
    output = chief.communicate(timeout=600)[0]
    other.wait(timeout=60)
    worker_log = (tmp_path / "worker1.log").read_text()
    assert chief.returncode == 0 and other.returncode == 0, output[-3000:] + worker_log[-3000:]
    for log in (output, worker_log):
        assert "resumed from" in log and "ckpt-2" in log and "step 4/4" in log and "step 1/4" not in log

    # The chief wrote everything, once: no worker's scratch checkpoints, one event file per log.
    checkpoints = sorted(os.listdir(model_dir / "checkpoints"))
    assert checkpoints == ["checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index",
                           "ckpt-4.data-00000-of-00001", "ckpt-4.index"], checkpoints
    for stream in ("train", "eval"):
        assert len(os.listdir(model_dir / "logs" / stream)) == 2  # the killed run's and the resumed one's
    assert os.listdir(model_dir / "export") == ["1"] and "Exported SavedModel" in output
    assert "Exported SavedModel" not in worker_log

    reference = tmp_path / "one_process"
    run_module(cache_dir, "tfsynth.train", f"--flagfile={flagfile}", f"--model_dir={reference}",
               "--strategy=mirrored", "--cpu_devices=2", "--export=false", *STEPS)
    assert_same_state(checkpoint_state(reference), checkpoint_state(model_dir))


def lone_worker(cache_dir, model_dir, *flags):
    """Worker 0 of a two-worker cluster whose worker 1 never starts."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    env = dict(cli_env(cache_dir), TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    process = subprocess.Popen(
        [sys.executable, "-m", "tfsynth.train", f"--flagfile={smoke_flagfile('crn')}", f"--model_dir={model_dir}",
         "--strategy=multi_worker", *flags], cwd=REPO_ROOT, env=env, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    return process, cluster["worker"][1]


def test_a_worker_whose_peer_never_starts_gives_up_naming_it(tmp_path, cache_dir):
    process, peer = lone_worker(cache_dir, tmp_path / "run", "--worker_timeout=15")
    with process:
        output = process.communicate(timeout=120)[0]
    assert process.returncode == 1, output[-3000:]
    last = output.strip().splitlines()[-1]
    assert last.startswith("error: --worker_timeout=15") and f"worker 1 at {peer} (nothing listens there)" in last
    assert "waiting for the other workers" in output and "Traceback" not in output


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_worker_waiting_for_its_peer_stops_on_sigterm_and_ctrl_c(stop, tmp_path, cache_dir):
    process, _ = lone_worker(cache_dir, tmp_path / "run")
    deadline = threading.Timer(120, process.kill)  # a wait that never says so fails, never hangs
    deadline.start()
    try:
        for line in process.stdout:
            if "waiting for the other workers" in line:
                break
        process.send_signal(stop)
        output = process.communicate(timeout=60)[0]
    finally:
        deadline.cancel()
        process.kill()
    assert process.returncode != 0 and "Traceback" not in output, output[-3000:]
    if stop == signal.SIGINT:
        assert output.strip().splitlines()[-1].startswith("error: interrupted")
