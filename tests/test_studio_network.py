"""The studio on a real loopback socket, against what a hostile network sends it: bodies too
large (declared, or chunked with no length), stalled uploads, foreign Host headers, cross-site
form posts, and more requests than it computes at once."""

import asyncio
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading

import pytest

from cli_support import REPO_ROOT, cli_env
from studio_support import saved_model_flag

#: A body past the studio's limit (64 MB), as the hostile run sent it: valid label maps.
HUGE_BYTES = 100 * 1024 * 1024


@pytest.fixture(scope="module")
def studio(studio_exports, cache_dir):
    """(host, port, pid) of ``python -m tfsynth.studio`` on a free loopback port, 2 s body timeout."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tfsynth.studio", f"--saved_model={saved_model_flag(studio_exports)}", "--port=0",
         "--body_timeout=2"], cwd=REPO_ROOT, env=cli_env(cache_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        for line in process.stdout:
            match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if match:
                break
        else:
            raise AssertionError("the studio did not start")
        threading.Thread(target=process.stdout.read, daemon=True).start()  # keep its pipe drained
        yield "127.0.0.1", int(match[1]), process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def exchange(address, head: bytes, body_chunks=(), timeout: float = 30.0) -> tuple[int, bytes]:
    """Sends ``head`` then each body chunk (as long as the server takes them) and returns the
    response's (status, body); the server may answer and close before the body is all sent."""
    with socket.create_connection(address[:2], timeout=timeout) as connection:
        connection.sendall(head)
        try:
            for chunk in body_chunks:
                if select.select([connection], [], [], 0)[0]:
                    break  # answered already: stop sending, read the answer
                connection.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = b""
        try:
            while True:
                data = connection.recv(65536)
                if not data:
                    break
                reply += data
                if b"\r\n\r\n" in reply and _complete(reply):
                    break
        except (ConnectionResetError, socket.timeout):
            pass
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0
    return status, reply.partition(b"\r\n\r\n")[2]


def _complete(reply: bytes) -> bool:
    head, _, body = reply.partition(b"\r\n\r\n")
    match = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    return bool(match) and len(body) >= int(match[1])


def post_head(path: str, length: int | None, host: str = "127.0.0.1", content_type: str = "application/json") -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n{framing}\r\n"
            "Connection: close\r\n\r\n").encode()


def label_rows(total_bytes: int):
    """Chunks of a JSON predict body of 2048x2048 label maps, ``total_bytes`` long in all."""
    row = b"[" + b",".join([b"7"] * 2048) + b"]"
    image = b"[" + b",".join([row] * 2048) + b"]"
    yield b'{"instances":['
    sent = 15
    while sent < total_bytes:
        piece = image + b","
        yield piece
        sent += len(piece)


def chunked(chunks):
    for chunk in chunks:
        yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    yield b"0\r\n\r\n"


def peak_memory_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read())[1]) * 1024


@pytest.mark.cli
def test_bodies_past_the_limit_are_refused_as_they_arrive_and_memory_stays_bounded(studio):
    declared = exchange(studio, post_head("/v1/models/crn:predict", HUGE_BYTES), label_rows(HUGE_BYTES))
    assert declared[0] == 413 and b"exceeds" in declared[1], declared
    streamed = exchange(studio, post_head("/v1/models/crn:predict", None), chunked(label_rows(HUGE_BYTES)))
    assert streamed[0] == 413 and b"exceeds" in streamed[1], streamed
    peak = peak_memory_bytes(studio[2])
    # Reported in docs/reliability.md; the hostile run's 100 MB request grew the process to 15 GB.
    print(f"studio peak memory after two 100 MB requests: {peak / 2**30:.2f} GiB")
    assert peak < 2 * 2**30


@pytest.mark.cli
def test_a_stalled_upload_is_answered_408_and_closed(studio):
    status, body = exchange(studio, post_head("/v1/models/crn:predict", 1000), [b'{"instances": ['])
    assert status == 408 and b"did not arrive within 2 s" in body, (status, body)


@pytest.mark.cli
def test_foreign_hosts_and_cross_site_form_posts_are_refused(studio):
    body = json.dumps({"instances": [[[7] * 64] * 32]}).encode()
    rebound = exchange(studio, post_head("/v1/models/crn:predict", len(body), host="attacker.example:8080"), [body])
    assert rebound[0] == 400 and b"--allowed_hosts" in rebound[1], rebound
    form = exchange(studio, post_head("/v1/models/crn:predict", len(body), content_type="text/plain"), [body])
    assert form[0] == 415 and b"application/json" in form[1], form
    served = exchange(studio, post_head("/v1/models/crn:predict", len(body), host="localhost:1"), [body])
    assert served[0] == 200 and b"predictions" in served[1], served[0]


@pytest.mark.unit
def test_render_slots_queue_a_bounded_number_and_refuse_the_rest():
    from tfsynth.studio.serving import ServingError
    from tfsynth.studio.server import RenderSlots

    started, release = threading.Event(), threading.Event()
    running = []

    def render(index):
        running.append(index)
        started.set()
        release.wait(10)
        return index

    async def scenario():
        slots = RenderSlots(slots=1, waiting=1)
        first = asyncio.ensure_future(slots.run(render, 1))
        assert await asyncio.to_thread(started.wait, 10)  # the first render holds the slot
        second = asyncio.ensure_future(slots.run(render, 2))
        while not slots.waiting:  # yield to the event loop until the second waits for the slot
            await asyncio.sleep(0)
        with pytest.raises(ServingError) as refused:
            await slots.run(render, 3)
        release.set()
        return await first, await second, refused.value

    first, second, refused = asyncio.run(scenario())
    assert (first, second) == (1, 2) and running == [1, 2]
    assert refused.status == 503 and "busy" in refused.message


@pytest.mark.unit
def test_host_names_are_read_without_their_port():
    from tfsynth.studio.server import Limits, host_name

    assert [host_name(h) for h in ("localhost:8080", "[::1]:8080", "127.0.0.1", "Example.COM")] == \
        ["localhost", "::1", "127.0.0.1", "example.com"]
    assert Limits().answers_host("[::1]:80") and not Limits().answers_host("studio.lan:8080")
    assert Limits(allowed_hosts=("studio.lan",)).answers_host("studio.lan:8080")
    assert Limits(allowed_hosts=("*",)).answers_host("anything")
