"""What the cluster store costs a call (issue 59): publish -> receive, and a lease acquired, on each
implementation; and how long a stopped holder's leases outlive it.

Run from the repository root::

    python -m benchmarks.studies.cluster_store_latency run --n 2000 --json out/cluster_store.json

- ``memory``: ``MemoryStore`` in this process (two holders of one state);
- ``hub``: ``HubServer`` in a child process (as the supervisor runs it), two ``HubStore``
  connections from this one;
- ``redis``: a real ``redis-server`` (tests/support/redis_server.py), two ``RedisStore``s here.

``publish``: one subscriber, one message in flight at a time (``--payload`` bytes), from the
``publish`` call to the subscriber's ``get`` returning. ``acquire``: ``acquire`` against a node cap
and a tenant cap (then ``release``, not timed). ``expiry`` (``--expiry``, hub and redis): a holder
in a child process takes 3 leases and is SIGSTOPped after 1.5 lease times; the seconds until
another holder sees them gone (``--lease-s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import typer

from tests.support.cluster_holder import CAP
from tests.support.paths import REPO
from tests.support.redis_server import RedisServer
from translate_svc.cluster.hub_client import HubStore
from translate_svc.cluster.hub_server import HubServer
from translate_svc.cluster.memory import MemoryStore
from translate_svc.cluster.redis_store import RedisStore
from translate_svc.cluster.state import ClusterState
from translate_svc.cluster.store import ClusterStore, Lease

app = typer.Typer(add_completion=False)


def quantiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "p50_ms": round(statistics.median(ms), 4),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 4),
        "max_ms": round(ms[-1], 3),
        "n": len(ms),
    }


@contextlib.asynccontextmanager
async def holders(kind: str, lease_s: float) -> AsyncIterator[tuple[ClusterStore, ClusterStore, str | None]]:
    """Two holders of one backend of ``kind`` and where another process reaches it."""
    if kind == "memory":
        state = ClusterState()
        yield MemoryStore(state, holder="a"), MemoryStore(state, holder="b"), None
        return
    if kind == "hub":
        folder = Path(tempfile.mkdtemp(prefix="hub-"))
        socket = folder / "cluster.sock"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.studies.cluster_store_latency",
            "hub",
            str(socket),
            str(lease_s),
            stdout=asyncio.subprocess.PIPE,
            cwd=REPO,
        )
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.readline(), 30)  # its ready line
        a, b = HubStore(socket, "a"), HubStore(socket, "b")
        try:
            await a.start()
            await b.start()
            yield a, b, str(socket)
        finally:
            await a.close()
            await b.close()
            proc.terminate()
            await proc.wait()
        return
    server = RedisServer()
    server.start()
    ra, rb = RedisStore(server.url, lease_s=lease_s), RedisStore(server.url, lease_s=lease_s)
    try:
        await ra.start()
        await rb.start()
        yield ra, rb, server.url
    finally:
        await ra.close()
        await rb.close()
        server.remove()


async def publish_receive(a: ClusterStore, b: ClusterStore, n: int, payload: int) -> list[float]:
    inbox = await b.subscribe("bench", limit=16)
    data = b"x" * payload
    out = []
    for _ in range(n):
        started = time.perf_counter()
        await a.publish("bench", data)
        await inbox.get()
        out.append(time.perf_counter() - started)
    inbox.close()
    return out


async def acquire_times(a: ClusterStore, n: int) -> list[float]:
    out = []
    for i in range(n):
        started = time.perf_counter()
        lease = await a.acquire([("bench/streams", 1_000_000), (f"tenant-{i % 50}/streams", 1_000_000)])
        out.append(time.perf_counter() - started)
        assert isinstance(lease, Lease)
        await a.release(lease)
    return out


async def expiry(kind: str, here: ClusterStore, address: str, lease_s: float) -> float:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.cluster_holder",
        kind,
        address,
        str(lease_s),
        "3",
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None
    await asyncio.wait_for(proc.stdout.readline(), 60)
    try:
        await asyncio.sleep(1.5 * lease_s)
        assert await here.count(CAP) == 3
        os.kill(proc.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        while await here.count(CAP):  # noqa: ASYNC110 -- what another holder sees, polled, is the measure
            await asyncio.sleep(0.01)
        return time.monotonic() - stopped
    finally:
        proc.kill()
        os.kill(proc.pid, signal.SIGCONT)
        await proc.wait()


async def measure(kinds: list[str], n: int, payload: int, lease_s: float, with_expiry: bool) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for kind in kinds:
        async with holders(kind, lease_s) as (a, b, address):
            await publish_receive(a, b, min(200, n), payload)  # warm
            row: dict[str, Any] = {
                "publish_receive": quantiles(await publish_receive(a, b, n, payload)),
                "acquire": quantiles(await acquire_times(a, n)),
            }
            if with_expiry and address is not None:
                row["expiry_s"] = round(await expiry(kind, b, address, lease_s), 3)
                row["lease_s"] = lease_s
            report[kind] = row
        print(kind, json.dumps(report[kind]), flush=True)
    return report


@app.command()
def run(
    n: Annotated[int, typer.Option(help="samples of each")] = 2000,
    payload: Annotated[int, typer.Option(help="bytes a message carries")] = 200,
    kinds: Annotated[str, typer.Option(help="comma-separated: memory, hub, redis")] = "memory,hub,redis",
    lease_s: Annotated[float, typer.Option(help="lease time of the expiry measure")] = 3.0,
    with_expiry: Annotated[bool, typer.Option("--expiry/--no-expiry")] = True,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    report = asyncio.run(measure(kinds.split(","), n, payload, lease_s, with_expiry))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n")


@app.command()
def hub(socket: Path, lease_s: float) -> None:
    """A node's hub in a process of its own (as the supervisor runs it), until SIGTERM."""

    async def serve() -> None:
        server = HubServer(lease_s=lease_s)
        await server.start(socket)
        print("ready", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop()

    asyncio.run(serve())


if __name__ == "__main__":
    app()
