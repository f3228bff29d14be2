"""What the SDK's fixed receive window costs a stream that is read, over a link with delay.

Starts ``translate-svc serve`` (the test checkpoint) as a separate process and a TCP proxy on
loopback that holds every byte ``--rtt-ms``/2 in each direction. One SDK stream per run sends
silero_test.wav at real time (100 ms chunks, LINEAR16) through the proxy and is read as it comes,
once with the SDK's default window (``receive_window_bytes``, 64 KiB, BDP probing off) and once
with gRPC's own (BDP probing), alternating ``--rounds`` times. Latency of a segment = arrival of its
result - the scheduled moment the stream had sent its audio up to the segment's ``end_ms`` (as in
``benchmarks/tools/report.py``). Results larger than the window are reported apart: they are the ones a
fixed window can hold back a round trip.

    python -m benchmarks.studies.window_cost --rtt-ms 50 --rounds 2 --json out/window_cost.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import soundfile as sf

from tests.support.json_result import print_and_save
from tests.support.paths import SHARED_AUDIO, TEST_MODEL
from translate_svc.cli import ready_file as ready
from translate_svc.client import AsyncTranslateClient, Segment
from translate_svc.client.aio import DEFAULT_RECEIVE_WINDOW_BYTES

CHUNK_S = 0.1


async def delay_proxy(target_port: int, one_way_s: float) -> asyncio.Server:
    """A TCP proxy that delivers each byte ``one_way_s`` after it came, in order, both ways."""

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                await asyncio.sleep(max(0.0, due - loop.time()))
                dst.write(data)
                await dst.drain()
            dst.close()

        sender = asyncio.create_task(deliver())
        try:
            while data := await src.read(65536):
                queue.put_nowait((loop.time() + one_way_s, data))
        except ConnectionError:
            pass
        finally:
            queue.put_nowait((0.0, b""))
            await asyncio.gather(sender, return_exceptions=True)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def one_stream(port: int, pcm: bytes, window: int | None) -> list[dict[str, Any]]:
    """One paced stream through the proxy; each segment's latency and result size."""
    chunk = int(32000 * CHUNK_S)
    out: list[dict[str, Any]] = []
    async with (
        AsyncTranslateClient(f"127.0.0.1:{port}", receive_window_bytes=window, connections=1) as client,
        client.stream(targets=["spa"]) as s,
    ):
        start = time.monotonic()

        async def send() -> None:
            for k, at in enumerate(range(0, len(pcm), chunk)):
                await asyncio.sleep(max(0.0, start + (k + 1) * CHUNK_S - time.monotonic()))
                await s.send(pcm[at : at + chunk])
            await s.close()

        sender = asyncio.create_task(send())
        async for ev in s:
            if isinstance(ev, Segment):
                arrived = time.monotonic()
                sent_at = start + (int(ev.end_ms / 1000 / CHUNK_S) + 1) * CHUNK_S
                size = sum(2 * t.audio.size for t in ev.translations if t.audio is not None)  # LINEAR16 bytes
                out.append({"end_ms": ev.end_ms, "latency_ms": (arrived - sent_at) * 1000, "speech_bytes": size})
        await sender
    return out


def summary(rows: list[dict[str, Any]], window: int) -> dict[str, Any]:
    def stats(xs: list[float]) -> dict[str, float]:
        return {"n": len(xs), "median_ms": round(statistics.median(xs), 1), "mean_ms": round(statistics.mean(xs), 1)}

    big = [r["latency_ms"] for r in rows if r["speech_bytes"] > window]
    small = [r["latency_ms"] for r in rows if r["speech_bytes"] <= window]
    return {"all": stats([r["latency_ms"] for r in rows]), "larger_than_window": stats(big) if big else None,
            "within_window": stats(small) if small else None}  # fmt: skip


async def main(opts: argparse.Namespace) -> dict[str, Any]:
    pcm, rate = sf.read(SHARED_AUDIO / "silero_test.wav", dtype="int16")
    assert rate == 16000
    audio = pcm.astype("<i2").tobytes()
    tmp = Path(tempfile.mkdtemp(prefix="window-cost-"))
    cmd = [sys.executable, "-m", "translate_svc.cli", "serve", "--model", opts.model, "--host", "127.0.0.1"]
    server = subprocess.Popen(  # noqa: ASYNC220 (started once, before any stream)
        [*cmd, "--port", "0", "--ready-file", str(tmp / "ready.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ),
    )
    try:
        port = (await asyncio.to_thread(ready.wait, tmp / "ready.json", server, 300)).port
        proxy = await delay_proxy(port, opts.rtt_ms / 2000)
        proxy_port = proxy.sockets[0].getsockname()[1]
        await one_stream(port, audio[: 32000 * 10], None)  # warm the model, directly
        runs: dict[str, list[dict[str, Any]]] = {"sdk_window_64k": [], "grpc_bdp": []}
        for _ in range(opts.rounds):
            runs["sdk_window_64k"] += await one_stream(proxy_port, audio, DEFAULT_RECEIVE_WINDOW_BYTES)
            runs["grpc_bdp"] += await one_stream(proxy_port, audio, None)
        proxy.close()
        return {
            "rtt_ms": opts.rtt_ms,
            "rounds": opts.rounds,
            "window_bytes": DEFAULT_RECEIVE_WINDOW_BYTES,
            "latency": {k: summary(v, DEFAULT_RECEIVE_WINDOW_BYTES) for k, v in runs.items()},
            "date": time.strftime("%Y-%m-%d"),
        }
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(TEST_MODEL))
    ap.add_argument("--rtt-ms", type=float, default=50.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    print_and_save(asyncio.run(main(args)), args.json)
