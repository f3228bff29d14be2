"""What a call's admission costs, and how soon a killed server's streams are free (issue 59: tenant
caps as leases in the cluster store).

Run from the repository root::

    python -m benchmarks.studies.tenant_caps compare --before /tmp/base --rounds 4 --n 20000
    python -m benchmarks.studies.tenant_caps freed --runs 5 --lease-s 3

``admission`` (one tree, the one on ``PYTHONPATH``): ``SessionManager`` of one process as ``serve``
builds it (no Redis: ``LocalCounters``), a tenant with a streams cap and an audio budget; per call:
``admit_stream`` then ``release`` (a stream's admission), and ``admit_unary`` entered and left (a
unary call's). Written for both shapes of the API (before issue 59 it was synchronous).
``compare``: ``admission`` in a child process per tree, interleaved (before, after, after, before,
...), so both run on the same machine in the same minutes.

``freed``: two real servers sharing a real ``redis-server`` (tests/support), a tenant with
``streams=3``: 2 streams held on the second server, 1 on the first; the second is SIGKILLed; the
seconds until the first admits the tenant's streams again, polled every 50 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(add_completion=False)


async def _admission(n: int) -> dict[str, float]:
    from tests.support.fake_engine import FakeEngineClient
    from translate_svc.session.manager import SessionManager
    from translate_svc.session.tenants.tenant import Tenant, TenantCaps
    from translate_svc.settings import LimitsSettings
    from translate_svc.vad.segmenter import SegmenterConfig

    m = SessionManager(FakeEngineClient(), None, SegmenterConfig(), LimitsSettings())  # type: ignore[arg-type]
    tenant = Tenant("acme", TenantCaps(streams=8, audio_seconds_per_minute=600.0))
    stream_async = inspect.iscoroutinefunction(m.admit_stream)
    unary_async = hasattr(m.admit_unary(tenant, b"t"), "__aenter__")

    async def stream() -> None:
        admission = await m.admit_stream(tenant) if stream_async else m.admit_stream(tenant)  # type: ignore[misc]
        admission.release()

    async def unary() -> None:
        if unary_async:
            async with m.admit_unary(tenant, b"t"):
                pass
        else:
            with m.admit_unary(tenant, b"t"):  # type: ignore[attr-defined]
                pass

    out: dict[str, float] = {}
    for name, call in (("stream_us", stream), ("unary_us", unary)):
        for _ in range(1000):  # warm
            await call()
        samples = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(n):
                await call()
            samples.append((time.perf_counter() - t) / n * 1e6)
        out[name] = round(min(samples), 3)  # the least disturbed of 5 batches
    return out


@app.command()
def admission(n: Annotated[int, typer.Option(help="calls per batch (5 batches)")] = 20000) -> None:
    print(json.dumps(asyncio.run(_admission(n))))


@app.command()
def compare(
    before: Annotated[Path, typer.Option(help="a worktree of the commit before")],
    after: Annotated[Path, typer.Option(help="the tree after")] = Path("."),
    rounds: Annotated[int, typer.Option(help="before/after pairs, interleaved")] = 4,
    n: int = 20000,
) -> None:
    results: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    order = [("before", before), ("after", after)]
    for r in range(rounds):
        for label, tree in order if r % 2 == 0 else order[::-1]:
            env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
            line = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "admission", "--n", str(n)],  # its tree's package
                env=env,
                cwd=tree,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            results[label].append(json.loads(line.splitlines()[-1]))
            print(label, results[label][-1], flush=True)
    for label, runs in results.items():
        summary = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
        print(f"{label}: median over {len(runs)} runs (µs per call): {summary}")


async def _freed(runs: int, lease_s: float) -> list[float]:
    import grpc

    from tests.support.calls import own_channel
    from tests.support.redis_server import redis_server
    from tests.support.server_process import ServerProcess
    from tests.support.tokens import bearer
    from translate_svc.api.v1 import translate_pb2 as pb
    from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

    token = "acme-token-0123456789abcdef"
    fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)
    folder = Path(tempfile.mkdtemp(prefix="tenant-caps-"))
    tokens = folder / "tokens"
    tokens.write_text(f"{token} stream tenant=acme streams=3\n")
    model = Path(os.environ.get("TRANSLATE_SVC_TEST_MODEL", "model_cache/test-model"))
    stop = asyncio.Event()

    async def silent() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=fmt, target_languages=["spa"]))
        await stop.wait()

    async def hold(server: ServerProcess, channels: list[grpc.aio.Channel]) -> Any:
        channel = own_channel(server.address)
        channels.append(channel)
        call = pb_grpc.TranslatorStub(channel).StreamingTranslate(silent(), metadata=bearer(token))
        await asyncio.wait_for(call.read(), 30)
        return call

    async def admitted(server: ServerProcess, channels: list[grpc.aio.Channel]) -> bool:
        """A probe stream (its config, then closed): admitted or not, it ends at once."""

        async def config() -> AsyncIterator[pb.StreamingTranslateRequest]:
            yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=fmt, target_languages=["spa"]))

        channel = own_channel(server.address)
        channels.append(channel)
        try:
            async for _ in pb_grpc.TranslatorStub(channel).StreamingTranslate(config(), metadata=bearer(token)):
                pass
        except grpc.aio.AioRpcError:
            return False
        return True

    def serve(url: str) -> ServerProcess:
        args = ["--model", str(model), "--host", "127.0.0.1", "--port", "0", "--tokens-file", str(tokens)]
        env = {"TRANSLATE_SVC_CLUSTER__REDIS_URL": url, "TRANSLATE_SVC_CLUSTER__LEASE_S": str(lease_s)}
        env["TRANSLATE_SVC_LIMITS__CONFIG_TIMEOUT_MS"] = "600000"
        env["TRANSLATE_SVC_LIMITS__IDLE_TIMEOUT_S"] = "600"
        return ServerProcess(args, env=env)

    freed: list[float] = []
    with redis_server() as redis:
        for run in range(runs):
            stop.clear()
            a, b = serve(redis.url), serve(redis.url)
            channels: list[grpc.aio.Channel] = []
            try:
                calls = [await hold(a, channels), await hold(b, channels), await hold(b, channels)]
                b.proc.send_signal(signal.SIGKILL)
                b.proc.wait()
                killed = time.monotonic()
                while True:  # a refusal answers at once: the probe has closed
                    if await admitted(a, channels):
                        break
                    await asyncio.sleep(0.05)
                freed.append(round(time.monotonic() - killed, 3))
                print(f"run {run + 1}: freed {freed[-1]} s after the kill (lease_s {lease_s})", flush=True)
            finally:
                stop.set()
                for call in calls:
                    call.cancel()
                for channel in channels:
                    with contextlib.suppress(Exception):
                        await channel.close()
                a.stop()
                b.stop()
    return freed


@app.command()
def freed(
    runs: Annotated[int, typer.Option(help="kills")] = 5,
    lease_s: Annotated[float, typer.Option(help="cluster.lease_s of the servers")] = 3.0,
) -> None:
    got = asyncio.run(_freed(runs, lease_s))
    print(f"freed after the kill: min {min(got)} / median {statistics.median(got)} / max {max(got)} s, runs {got}")


if __name__ == "__main__":
    app()
