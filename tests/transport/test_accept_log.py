"""asyncio's failed accepts, logged at a bounded rate (issue 68, H2: one port out of descriptors
wrote 74.8 MB in about 40 s). A child process listens with asyncio, lowers its own RLIMIT_NOFILE to
a few descriptors more than it holds, and 60 clients connect: with ``AcceptErrorLog`` installed it
writes one line for the window; without it (asyncio's own handler, the control) one ERROR with a
traceback for every failed accept of its backlog loop."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from tests.support.paths import REPO

pytestmark = pytest.mark.integration

CHILD = r"""
import asyncio, logging, os, resource, sys
from translate_svc.transport.accept_log import AcceptErrorLog

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")

async def main() -> None:
    async def handle(reader, writer):
        await asyncio.sleep(60)  # each connection keeps its descriptor until the end

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=128)
    if sys.argv[1] == "bounded":
        AcceptErrorLog().install(asyncio.get_running_loop())
    open_now = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 4, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(float(sys.argv[2]))
    sys.stderr.flush()
    os._exit(0)  # (no shutdown: what it logged is only what the failed accepts made it log)

asyncio.run(main())
"""


def run_child(mode: str, seconds: float = 3.0) -> str:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, str(seconds)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    port = int(child.stdout.readline())
    clients = []
    try:
        for _ in range(60):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(1.0)
    finally:
        _, err = child.communicate(timeout=seconds + 30)
        for c in clients:
            c.close()
    return err


def test_failed_accepts_are_one_line_a_window_not_one_each() -> None:
    control = run_child("asyncio")
    bounded = run_child("bounded")
    failed = control.count("socket.accept() out of system resource")
    assert failed >= 20 and control.count("Traceback") >= 20, control[-2000:]  # the descriptors did run out
    lines = [ln for ln in bounded.splitlines() if "out of system resource" in ln]
    assert len(lines) == 1 and "Traceback" not in bounded, bounded[-2000:]
    assert lines[0].startswith("WARNING translate_svc.transport.accept_log") and "Too many open files" in lines[0]
    assert len(bounded) < len(control) / 10


async def test_installing_again_on_one_loop_does_not_stack() -> None:
    import asyncio

    from translate_svc.transport.accept_log import AcceptErrorLog

    loop = asyncio.get_running_loop()
    before = loop.get_exception_handler()
    try:
        loop.set_exception_handler(None)  # (a server of an earlier test on this loop may have installed one)
        first = AcceptErrorLog()
        first.install(loop)
        AcceptErrorLog().install(loop)  # a second server on the same loop
        assert loop.get_exception_handler() == first.handle
    finally:
        loop.set_exception_handler(before)
