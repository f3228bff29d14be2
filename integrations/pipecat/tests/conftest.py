"""Fixtures: real translate_svc servers (subprocesses on loopback) and the shared test audio.

The servers run in the project's own virtualenv (``<repo>/.venv``, where translate_svc and torch
are installed), started as ``benchmarks/tools/slow_readers.py`` starts its server: ``python -m
translate_svc.cli serve ... --port 0 --ready-file F``; the tests wait for that ready file (its
JSON names the port and the server's pid), never for a log line. These tests run in the pipecat
virtualenv (integrations/pipecat/.venv: pipecat-ai and the SDK, no torch).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from loguru import logger

REPO = Path(__file__).resolve().parents[3]
SHARED_AUDIO = Path(os.environ.get("TRANSLATE_SVC_SHARED_AUDIO", REPO.parent / "shared" / "audio"))
#: the Python of the project's own virtualenv (the server needs torch and the model code)
SERVER_PYTHON = Path(os.environ.get("TRANSLATE_SVC_SERVER_PYTHON", REPO / ".venv" / "bin" / "python"))
TEST_MODEL = Path(os.environ.get("TRANSLATE_SVC_TEST_MODEL", REPO / "model_cache" / "test-model"))
READY_TIMEOUT_S = 300.0

# pipecat logs every frame processor's life at DEBUG; the tests want its warnings and errors
logger.remove()
logger.add(sys.stderr, level=os.environ.get("PIPECAT_LOG_LEVEL", "WARNING"))


def _ready_doc(path: Path, proc: subprocess.Popen[bytes], log: Path) -> dict[str, int]:
    """The server's ready file (its ports), once the file with this server's pid is there."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
            doc = json.loads(path.read_text())
            if int(doc["pid"]) == proc.pid:
                return {k: int(v) for k, v in doc.items() if k.endswith("port") and v is not None}
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:]
            why = f"exited with status {proc.returncode}" if proc.poll() is not None else "was not ready in time"
            pytest.fail(f"the translate_svc server {why}; its log ends:\n{tail}")
        time.sleep(0.05)


@dataclass(frozen=True)
class LiveServer:
    address: str  # host:port
    process: subprocess.Popen[bytes]
    #: the HTTP port (``--http-port``), None: not served
    http_port: int | None = None
    #: the /metrics port (``metrics=True``), None: not served
    metrics_port: int | None = None

    def metric(self, name: str) -> float:
        """The sum of every series of ``name`` on the server's /metrics (its own counts)."""
        assert self.metrics_port is not None, "start the server with metrics=True"
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        return sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", text, re.M))


def free_port() -> int:
    """A loopback port free now (the server's ready file does not name a /metrics port 0 picked)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def translate_server(*extra: str, env: dict[str, str] | None = None, metrics: bool = False) -> Iterator[LiveServer]:
    """A real ``translate-svc serve`` on the test checkpoint (stopped at the end if still up);
    ``metrics``: with /metrics on a free port."""
    if not SERVER_PYTHON.is_file():
        pytest.fail(
            f"no project virtualenv at {SERVER_PYTHON}: run `make install` (or set TRANSLATE_SVC_SERVER_PYTHON)"
        )
    if not (TEST_MODEL / "config.json").is_file():
        pytest.fail(f"no test checkpoint at {TEST_MODEL}: run `make model_cache/test-model/config.json` at the root")
    metrics_port = free_port() if metrics else None
    if metrics_port is not None:
        env = {**(env or {}), "TRANSLATE_SVC_SERVER__METRICS_PORT": str(metrics_port)}
    with tempfile.TemporaryDirectory(prefix="pipecat-translate-svc-") as tmp:
        ready, log = Path(tmp) / "ready.json", Path(tmp) / "server.log"
        cmd = [str(SERVER_PYTHON), "-m", "translate_svc.cli", "serve", "--model", str(TEST_MODEL)]
        cmd += ["--host", "127.0.0.1", "--port", "0", "--ready-file", str(ready), *extra]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, **(env or {})}
            )
        try:
            ports = _ready_doc(ready, proc, log)
            yield LiveServer(f"127.0.0.1:{ports['port']}", proc, ports.get("http_port"), metrics_port)
        finally:
            if proc.poll() is None:
                proc.kill()  # nothing to drain: the tests are over with it
            proc.wait()


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    """The server on the random-weight test checkpoint: real segmentation, noise for words."""
    with translate_server() as live:
        yield live.address


@pytest.fixture(scope="session")
def stable_server() -> Iterator[str]:
    """The server on its stable test translator (``--test-translator stable``): exact commit
    points for simultaneous mode. Open speech is never closed for a pause in sending
    (``stall_close_ms`` 0), so a test can stop sending while it waits for a result."""
    with translate_server("--test-translator", "stable", env={"TRANSLATE_SVC_LIMITS__STALL_CLOSE_MS": "0"}) as live:
        yield live.address


#: the longest stream of ``limited_server`` (s of audio)
LIMITED_S = 4


@pytest.fixture(scope="session")
def limited_server() -> Iterator[LiveServer]:
    """The stable test translator with one stream at a time (the next is refused:
    RESOURCE_EXHAUSTED with a RetryInfo of 1 s) and streams of at most ``LIMITED_S`` s of audio;
    /metrics on."""
    env = {"TRANSLATE_SVC_LIMITS__MAX_STREAMS": "1", "TRANSLATE_SVC_LIMITS__MAX_STREAM_SECONDS": str(LIMITED_S)}
    with translate_server("--test-translator", "stable", env=env, metrics=True) as live:
        yield live


#: the one token of ``token_server``
TOKEN = "pipecat-test-7c3f0d9e8b6a4f21a0c5e7d9b1f3a5c7"


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server that takes only ``TOKEN`` (``--tokens-file``)."""
    tokens = tmp_path_factory.mktemp("tokens") / "tokens.txt"
    tokens.write_text(f"{TOKEN}\n")
    with translate_server("--tokens-file", str(tokens)) as live:
        yield live.address


@pytest.fixture(scope="session")
def speech16k() -> np.ndarray:
    """silero_test.wav (60 s of speech with pauses, 16 kHz mono) as int16 samples, read in place."""
    path = SHARED_AUDIO / "silero_test.wav"
    if not path.is_file():
        pytest.fail(f"the shared test audio is missing: expected {path} (../shared/audio beside the repo)")
    pcm, rate = sf.read(path, dtype="int16")
    assert rate == 16000 and pcm.ndim == 1
    return pcm
