"""Strategy, XLA and precision policy from the runtime flags."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time

from absl import logging


def make_strategy(name: str, cpu_devices: int = 1, worker_timeout: float = 600.0, log=print):
    """The tf.distribute strategy called ``name``.

    Args:
      name: auto | default | mirrored | multi_worker | tpu. ``auto`` mirrors over all local GPUs
        when there are several, and otherwise uses the default strategy.
      cpu_devices: on a machine without GPUs, split the CPU into this many logical devices so
        ``mirrored`` has several replicas (for testing distribution on one CPU).
      worker_timeout: multi_worker: seconds to wait for every worker of ``TF_CONFIG`` to join.
      log: receives the lines saying which workers are awaited.
    """
    import tensorflow as tf

    if name == "multi_worker":
        config = check_tf_config(os.environ.get("TF_CONFIG"))
        # Must exist before any other op touches the runtime.
        return join_cluster(tf.distribute.MultiWorkerMirroredStrategy, config, worker_timeout, log)
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        if gpus:
            return tf.distribute.MirroredStrategy()
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


class StrategyError(ValueError):
    """A distribution setting that cannot work; the message names the flag or variable."""


def check_tf_config(text: str | None) -> dict:
    """``TF_CONFIG`` parsed, or refused when ``MultiWorkerMirroredStrategy`` cannot use it, saying
    why: JSON with ``cluster`` (task type -> list of ``host:port``) and ``task`` (``type`` and an
    ``index`` within that type's list)."""
    if not text:
        raise StrategyError("--strategy=multi_worker: set TF_CONFIG on every machine (docs: README, "
                            "'Training on several machines')")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise StrategyError(f"TF_CONFIG is not JSON ({error})") from None
    cluster, task = (config.get("cluster"), config.get("task")) if isinstance(config, dict) else (None, None)
    if not isinstance(cluster, dict) or not cluster or not all(
            isinstance(hosts, list) and hosts and all(isinstance(host, str) and host.rpartition(":")[2].isdigit()
                                                      for host in hosts)
            for hosts in cluster.values()):
        raise StrategyError(f"TF_CONFIG: 'cluster' must map each task type to a list of host:port, got {cluster!r}")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise StrategyError(f"TF_CONFIG: 'task' must name a type of the cluster ({', '.join(cluster)}), got {task!r}")
    index, hosts = task.get("index"), cluster[task["type"]]
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(hosts):
        raise StrategyError(f"TF_CONFIG: task index {index!r} is not one of the {len(hosts)} "
                            f"{task['type']!r} task(s)")
    return config


def join_cluster(create_strategy, config: dict, timeout: float, log=print):
    """``create_strategy()`` (MultiWorkerMirroredStrategy) once every other worker of ``config``
    (``TF_CONFIG``) is up, waiting at most ``timeout`` seconds and saying which it waits for.

    The strategy's constructor blocks in TensorFlow's C++ runtime, holding Python's lock, until
    every worker has joined: with no time limit, deaf to Ctrl-C, and with a SIGTERM handler of its
    own that swallows the signal (docs/tensorflow-notes.md Q12). So the wait happens here first,
    in Python: this worker listens on its own address (as its server will), and the constructor
    runs once something listens at every other worker's address, which each one's own wait (or
    its running server) provides. Ctrl-C and SIGTERM stop the wait as they stop any command.

    Raises:
      StrategyError: a worker did not come up in time (named, with its address), or this
        worker's own address cannot be listened on.
    """
    own = _task_address(config, config["task"]["type"], config["task"]["index"])
    listener = socket.socket(socket.AF_INET6 if ":" in own[0] else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("::" if ":" in own[0] else "", own[1]))
        listener.listen()
    except OSError as error:
        listener.close()
        raise StrategyError(f"TF_CONFIG: this worker cannot listen on port {own[1]} ({error.strerror}); is another "
                            "process using it?") from None
    start = time.monotonic()
    next_report = start + 10.0
    try:
        while missing := [task for task in _other_tasks(config) if not _listening(task[2])]:
            waited = time.monotonic() - start
            if waited >= timeout:
                raise StrategyError(f"--worker_timeout={timeout:g}: the cluster did not form within {timeout:g} s; "
                                    f"{_describe(missing)} (nothing listens there). Start every worker of TF_CONFIG")
            if time.monotonic() >= next_report:
                log(f"waiting for the other workers ({waited:.0f} s of --worker_timeout={timeout:g}): "
                    f"{_describe(missing)}")
                next_report += 30.0
            time.sleep(0.5)  # the pace of the probes: each is a TCP connect per missing worker
    finally:
        listener.close()
    sigterm = signal.getsignal(signal.SIGTERM)
    strategy = create_strategy()
    # The constructor installs TensorFlow's preemption notifier, which swallows SIGTERM (Q12): a
    # worker told to stop stops, as any other process does.
    signal.signal(signal.SIGTERM, sigterm)
    return strategy


def _task_address(config: dict, task_type: str, index: int) -> tuple[str, int]:
    host, _, port = config["cluster"][task_type][index].rpartition(":")
    return host.strip("[]"), int(port)


def _other_tasks(config: dict) -> list[tuple[str, int, tuple[str, int]]]:
    task = config["task"]
    return [(task_type, index, _task_address(config, task_type, index))
            for task_type, hosts in config["cluster"].items() for index in range(len(hosts))
            if (task_type, index) != (task["type"], task["index"])]


def _listening(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1.0):
            return True
    except OSError:
        return False


def _describe(tasks) -> str:
    return "; ".join(f"{task_type} {index} at {host}:{port}" for task_type, index, (host, port) in tasks)


@contextlib.contextmanager
def naming_lost_workers(strategy, step: int, last_saved: str | None):
    """Inside: a collective that fails because another worker of a multi-worker run died or
    stopped answering becomes a ``StrategyError`` saying so and how to resume, instead of the
    runtime's traceback."""
    import tensorflow as tf

    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
            tf.errors.CancelledError, tf.errors.InternalError) as error:
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            raise
        resume = f"they resume from {last_saved}" if last_saved else "no checkpoint was saved yet"
        raise StrategyError(f"--strategy=multi_worker: step {step} failed because another worker stopped answering "
                            f"({type(error).__name__} in a collective); restart every worker with the same command: "
                            f"{resume}") from None


def resolve_jit_compile(flag: str) -> bool:
    """auto: XLA on GPU/TPU, off on CPU where it is 2.5x slower (docs/tensorflow-notes.md Q2)."""
    if flag != "auto":
        return flag == "true"
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"))


#: CPU flags (Linux /proc/cpuinfo) of instructions that compute bfloat16 products natively.
NATIVE_BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def native_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """What computes bfloat16 natively here ("GPU compute capability 8.0", "avx512_bf16", ..),
    or None: then bfloat16 is emulated, and slower than float32."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and tuple(capability) >= (8, 0):  # Ampere and later: bfloat16 tensor cores
            return f"GPU compute capability {capability[0]}.{capability[1]}"
    if tf.config.list_physical_devices("GPU"):
        return None  # the GPU computes, whatever the CPU could do
    try:
        with open(cpuinfo) as f:
            flags = set(" ".join(line for line in f if line.startswith("flags")).split())
    except OSError:
        return None
    return next((flag for flag in NATIVE_BFLOAT16_CPU_FLAGS if flag in flags), None)


def resolve_precision(flag: str, cpuinfo: str = "/proc/cpuinfo") -> tuple[str, str]:
    """``--mixed_precision`` as (policy, why): ``auto`` is bfloat16 where the hardware computes
    it natively (the quickstarts' setting), else none (float32)."""
    if flag != "auto":
        return flag, "--mixed_precision"
    native = native_bfloat16(cpuinfo)
    if native:
        return "bfloat16", f"auto: bfloat16 is native here ({native})"
    return "none", "auto: no native bfloat16 here, so float32"


def set_precision(policy: str) -> None:
    """Sets the Keras global dtype policy (none, bfloat16 or float16, already resolved); must run
    before any model is built."""
    import keras

    keras.mixed_precision.set_global_policy(
        {"none": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}[policy])
    if policy == "float16":
        logging.warning("float16 is 6x slower than float32 on CPUs without AVX512-FP16; "
                        "prefer --mixed_precision=bfloat16 there")


def worker_index(strategy) -> int:
    """This worker's index in a multi-worker cluster (0, the chief, elsewhere)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 0
    return resolver.task_id or 0
