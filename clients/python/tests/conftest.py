"""The client distribution's own tests: the SDK, its stubs and the client commands, run from an
environment that has the client only (``make client-matrix``: one fresh virtualenv per protobuf
major) against a real server of this checkout, started from the server's environment.

Where the server comes from: ``TRANSLATE_SVC_SERVER_PYTHON`` (a Python with the server installed,
e.g. the repository's ``.venv/bin/python``) and ``TRANSLATE_SVC_REPO`` (the checkout: its
``model_cache/test-model`` and sources). Both default to this checkout and this interpreter, so the
suite also runs from the development environment.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(os.environ.get("TRANSLATE_SVC_REPO", Path(__file__).resolve().parents[3]))
SERVER_PYTHON = os.environ.get("TRANSLATE_SVC_SERVER_PYTHON", sys.executable)
READY_TIMEOUT_S = 180.0


@dataclass
class Server:
    address: str
    proc: subprocess.Popen[bytes]
    log: Path
    ready: Path
    #: the ready file's object once ready: "port", "pid", and "http_port", "metrics_port" where served
    info: dict[str, Any] = field(default_factory=dict)


def _wait_ready(ready: Path, proc: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    """The server's one deliberate ready signal: the JSON object ``serve --ready-file`` writes
    atomically once it serves (translate_svc/cli/ready_file.py); never a log line."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready.exists():
            doc: dict[str, Any] = json.loads(ready.read_text())
            return doc
        if proc.poll() is not None:
            pytest.fail(f"the server exited ({proc.returncode}) before it was ready:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)  # the file system has no portable change notification
    pytest.fail(f"the server was not ready in {READY_TIMEOUT_S:.0f} s:\n{log.read_text()[-3000:]}")


def launch(settings: dict[str, str] | None = None, *, stable: bool = False) -> Server:
    """Start ``translate-svc serve`` of this checkout on loopback port 0 with the test checkpoint
    (``stable``: the made-up stable translator of model/testing/stable.py over it, which loads in
    milliseconds), ``settings`` as ``TRANSLATE_SVC_`` environment variables (e.g.
    ``{"LIMITS__IDLE_TIMEOUT_S": "1"}``). Returns at once: ``ready`` waits for it, so that a module
    starts its servers side by side."""
    tmp = Path(tempfile.mkdtemp(prefix="client-suite-"))
    ready, log = tmp / "ready.json", tmp / "server.log"
    # the server's environment, not ours: its sources first (a worktree run), and none of our venv
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")},
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "clients/python/src")]),
        "TRANSLATE_SVC_SERVER__GRACE_S": "2",
        "TRANSLATE_SVC_SERVER__DRAIN_S": "1",
        **{f"TRANSLATE_SVC_{k}": v for k, v in (settings or {}).items()},
    }
    args = ["--model", str(REPO / "model_cache/test-model"), "--host", "127.0.0.1", "--port", "0"]
    if stable:
        args += ["--test-translator", "stable"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [SERVER_PYTHON, "-m", "translate_svc.cli", "serve", *args, "--ready-file", str(ready)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    return Server("", proc, log, ready)


def ready(server: Server) -> Server:
    """Wait for ``server``'s ready file; its address from then on."""
    if not server.address:
        server.info = _wait_ready(server.ready, server.proc, server.log)
        server.address = f"127.0.0.1:{server.info['port']}"
    return server


def stop(server: Server) -> None:
    """SIGTERM (the server drains its streams and stops), then wait for the process; its folder
    (ready file and log) goes with it (a start that fails shows the log's end: ``_wait_ready``)."""
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
    shutil.rmtree(server.log.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """``translate-svc serve`` of this checkout on loopback port 0, with the test checkpoint."""
    srv = launch()
    try:
        yield ready(srv)
    finally:
        stop(srv)


@pytest.fixture(scope="session")
def jfk_path() -> Path:
    path = REPO.parent / "shared" / "audio" / "jfk.flac"
    if not path.is_file():
        pytest.fail(f"the shared test audio is missing: expected {path} (../shared/audio beside the repo)")
    return path
