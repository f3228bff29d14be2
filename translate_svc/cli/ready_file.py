"""``serve --ready-file PATH``: the server's one deliberate ready signal (docs/design.md, pitfall 20).

Once the server serves (every port bound, the model loaded and warm, health ``SERVING``), ``serve``
writes one JSON object to PATH: where it listens and which process it is. A script or a test waits
for that file, never for a log line: log lines go to stderr and the ``serving on port`` line to
stdout, and one stream says nothing about what the other has written yet.

The file is written atomically (a temporary file in the same directory, then ``os.replace``): a
reader sees no file or the whole file, never a part of it. ``serve`` removes a file left at PATH
before it does anything else, and removes its own file again when it exits (not after SIGKILL):
the ``pid`` in it tells a reader whose file it is.

Plain functions over the file system; no shared state (safe from any thread).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: how often ``wait`` looks at the file (it has no change notification that every platform has)
POLL_S = 0.05


@dataclass(frozen=True)
class ReadyInfo:
    """What the ready file says: the JSON object's keys, the optional ones only when served."""

    port: int  # the gRPC port (``--port 0``: the one picked)
    pid: int  # the ``serve`` process: the one to signal (under ``--workers N`` the supervisor)
    host: str = ""  # the listen address
    health_port: int | None = None  # ``--health-port``: plaintext grpc.health.v1 only
    http_port: int | None = None  # ``--http-port``: the HTTP port (OpenAI door, rooms, demo page, phone)
    metrics_port: int | None = None  # /metrics, when served (port 0: the one picked)
    sip_port: int | None = None  # ``--sip-port``: SIP over UDP and TCP (the same port)
    sip_tls_port: int | None = None  # ``sip.tls_port``: SIP over TLS
    audiosocket_port: int | None = None  # ``--audiosocket-port``: Asterisk AudioSocket (on phone.audiosocket_host)
    workers: tuple[int, ...] = field(default=())  # ``--workers N``: the front-end workers' pids, w0 first
    engine_pid: int | None = None  # ``--workers N``: the engine process
    #: ``--workers N``: the node's cluster hub (its Unix socket; the node's caps, and without
    #: ``cluster.redis_url`` all that crosses streams)
    cluster_hub: str | None = None

    def to_json(self) -> str:
        doc = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if v not in (None, ())}
        return json.dumps(doc, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ReadyInfo:
        doc: dict[str, Any] = json.loads(text)

        def port(key: str) -> int | None:
            return None if doc.get(key) is None else int(doc[key])

        return cls(
            port=int(doc["port"]),
            pid=int(doc["pid"]),
            host=str(doc.get("host", "")),
            health_port=port("health_port"),
            http_port=port("http_port"),
            metrics_port=port("metrics_port"),
            sip_port=port("sip_port"),
            sip_tls_port=port("sip_tls_port"),
            audiosocket_port=port("audiosocket_port"),
            workers=tuple(int(p) for p in doc.get("workers", ())),
            engine_pid=port("engine_pid"),
            cluster_hub=None if doc.get("cluster_hub") is None else str(doc["cluster_hub"]),
        )


class NotReady(RuntimeError):
    """``wait`` gave up: the server exited or did not become ready in time."""


def check_writable(path: Path) -> str | None:
    """Why ``serve`` could not write ``path`` later (checked at start); None when it can."""
    parent = path.parent
    if not parent.is_dir():
        return f"--ready-file {path}: the directory {parent} does not exist"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"--ready-file {path}: cannot write in {parent}"
    if path.is_dir():
        return f"--ready-file {path} is a directory"
    return None


def remove(path: Path, *, pid: int | None = None) -> None:
    """Remove the file at ``path`` (any, or only the one ``pid`` wrote); no file is fine."""
    if pid is not None:
        info = read(path)
        if info is None or info.pid != pid:
            return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def write(path: Path, info: ReadyInfo) -> None:
    """Replace ``path`` with ``info`` at once: a temporary file beside it, then ``os.replace``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(info.to_json())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from a reader running as another user
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read(path: Path) -> ReadyInfo | None:
    """The ready file's contents; None while there is none (or what is there is not one)."""
    try:
        return ReadyInfo.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not a ready file (a stale file of garbage that serve has not removed yet)


def wait(path: Path, proc: subprocess.Popen[Any], timeout_s: float) -> ReadyInfo:
    """Wait until ``proc`` (a ``translate-svc serve`` child) has written its ready file at ``path``.

    Only a file with ``proc``'s pid counts, so a file left by an earlier run is never taken for this
    one's. Raises ``NotReady`` when ``proc`` exits first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = read(path)
        if info is not None and info.pid == proc.pid:
            return info
        if proc.poll() is not None:
            raise NotReady(f"the server exited with status {proc.returncode} before it was ready")
        if time.monotonic() >= deadline:
            raise NotReady(f"the server did not write its ready file {path} in {timeout_s:g} s")
        time.sleep(POLL_S)
