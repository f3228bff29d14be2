"""``translate-svc serve --workers 2`` as one node on loopback, for the tests of the node and of
what crosses its processes: the supervisor's process, its log, port and metrics port, the workers'
and the engine process's pids, its ``/metrics`` read back, and which worker serves a connection."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from tests.support.calls import own_channel
from tests.support.server_process import CLI
from tests.support.signals import default_signals
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.cli import ready_file as ready


@dataclass
class Node:
    """A node started by ``node``: the supervisor's process and what its ready file said."""

    proc: subprocess.Popen[bytes]
    log: Path
    port: int
    workers: tuple[int, int]
    engine: int
    metrics_port: int
    #: the node's cluster hub's Unix socket (the ready file's ``cluster_hub``)
    cluster_hub: str | None = None
    #: the HTTP port (``TRANSLATE_SVC_SERVER__HTTP_PORT=0``: the one picked), when served
    http_port: int | None = None
    #: the whole ready file (every door's port)
    info: ready.ReadyInfo | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def metric(self, name: str) -> dict[str, float]:
        """Every series of ``name`` on the node's /metrics: {labels: value}."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).read().decode()
        return {
            m.group(1) or "": float(m.group(2))
            for m in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE)
        }

    def started(self) -> dict[str, float]:
        """Streams admitted so far, per worker (``{process="w0"}`` -> count)."""
        return self.metric("translate_svc_streams_started_total")


async def worker_of(two: Node, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> str:
    """Which worker serves ``channel``'s connection: a stream opened on it (with ``metadata``) and
    closed at once counts in that worker's ``translate_svc_streams_started_total``."""
    before = two.started()

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)
        yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=fmt, source_language="eng"))

    async for _ in pb_grpc.TranslatorStub(channel).StreamingTranslate(requests(), metadata=metadata):
        pass
    for _ in range(100):
        after = two.started()
        grown = [k for k in after if after[k] > before.get(k, 0)]
        if grown:
            (worker,) = grown
            return worker
        await asyncio.sleep(0.05)
    raise AssertionError(f"no worker counted the stream: {before} -> {two.started()}")


async def spread(two: Node, n: int) -> list[tuple[grpc.aio.Channel, str]]:
    """``n`` connections of their own, at least one on each worker (more are opened, and the extra
    closed, until both are hit: the kernel hashes each connection)."""
    got: list[tuple[grpc.aio.Channel, str]] = []
    for _ in range(40):
        ch = own_channel(two.address)
        got.append((ch, await worker_of(two, ch)))
        workers = {w for _, w in got}
        if len(got) >= n and len(workers) == 2:
            break
    keep: list[tuple[grpc.aio.Channel, str]] = []
    for w in sorted({w for _, w in got}):
        keep.append(next(c for c in got if c[1] == w))
    for c in got:
        if len(keep) < n and c not in keep:
            keep.append(c)
    for ch, _ in got:
        if all(ch is not k for k, _ in keep):
            await ch.close()
    assert len(keep) == n and {w for _, w in keep} == {'{process="w0"}', '{process="w1"}'}, got
    return keep


@contextlib.contextmanager
def node(model: Path, log: Path, **env: str) -> Iterator[Node]:
    """A node on ``model``, its output in ``log``, ``env`` added to its environment; killed at the
    end if a test left it running (its children follow)."""
    environ = {
        **os.environ,
        "TRANSLATE_SVC_SERVER__DRAIN_S": "1",
        "TRANSLATE_SVC_SERVER__GRACE_S": "10",
        "TRANSLATE_SVC_SERVER__METRICS_PORT": "0",
        **env,
    }
    ready_file = log.with_suffix(".ready.json")
    argv = [*CLI, "serve", "--model", str(model), "--host", "127.0.0.1", "--port", "0", "--workers", "2"]
    argv += ["--ready-file", str(ready_file)]
    with log.open("wb") as out:
        proc = subprocess.Popen(default_signals(argv), stdout=out, stderr=subprocess.STDOUT, env=environ)
        try:
            try:
                info = ready.wait(ready_file, proc, 300)
            except ready.NotReady as e:
                raise AssertionError(f"{e}:\n{log.read_text()}") from None
            w0, w1 = info.workers
            assert info.engine_pid is not None and info.metrics_port is not None, info
            # the line for people, flushed before the file was written, says the same
            said = f"translate-svc 2 front-end workers (pids {w0}, {w1}) on port {info.port}, engine process pid"
            assert said in log.read_text(), log.read_text()
            yield Node(
                proc,
                log,
                info.port,
                (w0, w1),
                info.engine_pid,
                info.metrics_port,
                info.cluster_hub,
                info.http_port,
                info,
            )
        finally:
            if proc.poll() is None:
                proc.kill()  # a test that left it running failed already; its children follow (PDEATHSIG)
            proc.wait(30)
