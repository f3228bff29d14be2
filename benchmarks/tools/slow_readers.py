"""Clients that send fast and never read: how much the server computes for them, and its memory.

Starts ``translate-svc serve`` (the test checkpoint) as a separate process, opens ``--streams``
streams that each send ``--repeat`` copies of silero_test.wav as fast as the server takes them and
never read a response, then cancels them. Reports, per round, the server's RSS
(``/proc/PID/status``) just before the round, its peak while the streams are held and after the
cancel, the segments the model computed (from ``/metrics``) and the audio each stream got to send.

By default a round ends once sending has stalled for ``--stall-s``; ``--seconds S`` holds the
streams for S seconds instead. ``--warm`` first runs the same streams once as clients that read
everything, so "before" is a server that has served this load (its model's working set grown),
and what a round leaves behind is what the slow readers left. ``--client-window BYTES`` gives the
clients a fixed HTTP/2 receive window (BDP probing off) instead of gRPC's default (4 MiB or more):
the results a client's transport takes in, unread by its application, are computed too.
``--sdk``: the clients are the SDK's (``AsyncTranslateClient``: a fixed 64 KiB window unless
``--client-window``, 4 events read ahead unless ``--buffered-events``), each stream sending with
``send`` and never iterated. ``--reading-control S`` first runs the streams on the file's first S
seconds as clients that read, on the fresh server: what a reading load of that size leaves behind
(``--rounds 0`` to run only that).

    python -m benchmarks.tools.slow_readers --streams 4 --seconds 120 --warm --json out/slow_readers.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import soundfile as sf

from tests.support.json_result import print_and_save
from tests.support.paths import SHARED_AUDIO, TEST_MODEL
from tests.support.proc import free_port, rss_mb
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.cli import ready_file as ready
from translate_svc.client import AsyncTranslateClient

CHUNK_BYTES = 3200  # 100 ms of 16 kHz LINEAR16
MB = 1024 * 1024


def scrape(metrics_port: int) -> str:
    return str(urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode())


def computed_segments(metrics_port: int) -> int:
    m = re.search(r"^translate_svc_batch_size_sum ([0-9.e+]+)$", scrape(metrics_port), re.M)
    return int(float(m.group(1))) if m else 0


def audio_read_s(metrics_port: int) -> float:
    """Audio the streams' sessions have read (all tenants; counted a second or more at a time)."""
    found = re.findall(r"^translate_svc_tenant_audio_seconds_total\{[^}]*\} ([0-9.e+]+)$", scrape(metrics_port), re.M)
    return sum(float(v) for v in found)


def client_channel(port: int, window: int | None) -> grpc.aio.Channel:
    options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", 64 * MB)]
    if window is not None:
        options += [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", window)]
    return grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options)


def requests(audio: bytes, sent: list[int], k: int) -> AsyncIterator[pb.StreamingTranslateRequest]:
    """Config, then ``audio`` in 100 ms chunks; ``sent[k]``: the bytes gRPC has taken so far."""

    async def gen() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(
            config=pb.StreamingConfig(
                format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1),
                target_languages=["spa"],
            )
        )
        for i in range(0, len(audio), CHUNK_BYTES):
            yield pb.StreamingTranslateRequest(audio=audio[i : i + CHUNK_BYTES])
            sent[k] = i + CHUNK_BYTES

    return gen()


@contextlib.asynccontextmanager
async def never_read(port: int, audio: bytes, sent: list[int], opts: argparse.Namespace) -> AsyncIterator[None]:
    """``opts.streams`` streams that send ``audio`` as fast as they may and are never read, open
    for the block; cancelled at its end."""
    if not opts.sdk:
        async with client_channel(port, opts.client_window) as ch:
            stub = pb_grpc.TranslatorStub(ch)
            calls = [stub.StreamingTranslate(requests(audio, sent, k)) for k in range(len(sent))]
            try:
                yield
            finally:
                for c in calls:
                    c.cancel()
        return
    window = {} if opts.client_window is None else {"receive_window_bytes": opts.client_window}
    ahead = {} if opts.buffered_events is None else {"max_buffered_events": opts.buffered_events}
    async with AsyncTranslateClient(f"127.0.0.1:{port}", **window) as client:
        streams = [client.stream(targets=["spa"], **ahead) for _ in sent]

        async def feed(k: int) -> None:
            await streams[k].start()
            for i in range(0, len(audio), CHUNK_BYTES):
                await streams[k].send(audio[i : i + CHUNK_BYTES])  # waits while the server holds it
                sent[k] = i + CHUNK_BYTES

        feeders = [asyncio.create_task(feed(k)) for k in range(len(sent))]
        try:
            yield
        finally:
            for t in feeders:
                t.cancel()
            await asyncio.gather(*feeders, return_exceptions=True)
            for st in streams:
                await st.aclose()


async def main(opts: argparse.Namespace) -> dict[str, object]:
    pcm, rate = sf.read(SHARED_AUDIO / "silero_test.wav", dtype="int16")
    assert rate == 16000
    audio = pcm.astype("<i2").tobytes() * opts.repeat
    metrics_port = free_port()
    env = {**os.environ, "TRANSLATE_SVC_SERVER__METRICS_PORT": str(metrics_port)}
    cmd = [sys.executable, "-m", "translate_svc.cli", "serve", "--model", opts.model, "--host", "127.0.0.1"]
    ready_file = Path(tempfile.mkdtemp(prefix="slow-readers-")) / "ready.json"
    # a separate process, so the clients' CPU and memory are not the server's
    server = subprocess.Popen(  # noqa: ASYNC220 (started once, before any stream)
        [*cmd, "--port", "0", "--ready-file", str(ready_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        port = (await asyncio.to_thread(ready.wait, ready_file, server, 300)).port
        result: dict[str, object] = {
            "streams": opts.streams,
            "audio_per_stream_s": len(audio) / 32000,
            "segments_in_the_audio_per_round": 19 * opts.repeat * opts.streams,
            "client": "SDK" if opts.sdk else "grpc",
            "client_window": opts.client_window or ("SDK default" if opts.sdk else "gRPC default (BDP probing)"),
            "buffered_events": opts.buffered_events,
            "max_unread_results": os.environ.get("TRANSLATE_SVC_LIMITS__MAX_UNREAD_RESULTS", "default"),
            "hold": f"{opts.seconds} s" if opts.seconds else f"until sending stalled {opts.stall_s} s",
            "rss_idle_mb": round(rss_mb(server.pid), 1),
        }
        if opts.reading_control is not None:  # the same clients reading a short clip: a cold server's first load
            before_mb = round(rss_mb(server.pid), 1)
            clip = audio[: int(opts.reading_control * 32000)]
            result["reading_control"] = {
                "rss_before_mb": before_mb,
                **await warm_round(port, metrics_port, server.pid, clip, opts),
            }
        if opts.warm:
            result["warm_round"] = await warm_round(port, metrics_port, server.pid, audio, opts)
        result["rounds"] = [await one_round(port, metrics_port, server.pid, audio, opts) for _ in range(opts.rounds)]
        result["date"] = time.strftime("%Y-%m-%d")
        return result
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(ready_file.parent, ignore_errors=True)


async def warm_round(
    port: int, metrics_port: int, pid: int, audio: bytes, opts: argparse.Namespace
) -> dict[str, object]:
    """The same streams, read to the end: the server's working set for this load, grown once."""
    before = computed_segments(metrics_port)
    sent = [0] * opts.streams
    async with client_channel(port, None) as ch:
        stub = pb_grpc.TranslatorStub(ch)

        async def one(k: int) -> None:
            async for _ in stub.StreamingTranslate(requests(audio, sent, k)):
                pass

        await asyncio.gather(*(one(k) for k in range(opts.streams)))
    await asyncio.sleep(opts.settle_s)
    return {"segments_computed": computed_segments(metrics_port) - before, "rss_after_mb": round(rss_mb(pid), 1)}


async def one_round(
    port: int, metrics_port: int, pid: int, audio: bytes, opts: argparse.Namespace
) -> dict[str, object]:
    """Open the non-reading streams, hold them (``--seconds``, or until they stall), cancel them;
    RSS, segments computed and audio sent."""
    before, read_before = computed_segments(metrics_port), audio_read_s(metrics_port)
    sent = [0] * opts.streams
    rss = {"before": rss_mb(pid)}
    async with never_read(port, audio, sent, opts):
        peak, t0 = rss["before"], time.monotonic()
        last, still = sum(sent), 0.0
        while True:
            held = time.monotonic() - t0
            if opts.seconds is not None and held >= opts.seconds:
                break
            if opts.seconds is None and (held >= opts.max_s or still >= opts.stall_s):
                break
            await asyncio.sleep(0.25)
            peak = max(peak, rss_mb(pid))
            still = still + 0.25 if sum(sent) == last else 0.0
            last = sum(sent)
        rss["peak_while_held"] = peak
        computed = computed_segments(metrics_port) - before
        read = audio_read_s(metrics_port) - read_before
    await asyncio.sleep(opts.settle_s)
    rss["after_cancel"] = rss_mb(pid)
    return {
        "held_s": round(held, 1),
        "sent_per_stream_s": [round(s / 32000, 1) for s in sent],
        "sent_per_stream_mb": [round(s / MB, 2) for s in sent],
        # what the server's transport took in and the sessions had not read (within about a second)
        "unread_audio_per_stream_s": round((sum(sent) / 32000 - read) / opts.streams, 1),
        "segments_computed": computed,
        "segments_per_stream": round(computed / opts.streams, 1),
        "rss_mb": {k: round(v, 1) for k, v in rss.items()},
        "rss_after_minus_before_mb": round(rss["after_cancel"] - rss["before"], 1),
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(TEST_MODEL))
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=10, help="copies of the 60 s file per stream")
    ap.add_argument("--seconds", type=float, help="hold the streams this long (default: until they stall)")
    ap.add_argument("--stall-s", type=float, default=5.0, help="no progress for this long: stalled")
    ap.add_argument("--max-s", type=float, default=120.0, help="without --seconds: hold at most this long")
    ap.add_argument("--settle-s", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=2, help="open, hold and cancel the streams this many times")
    ap.add_argument("--warm", action="store_true", help="first serve the same streams once to clients that read")
    ap.add_argument("--client-window", type=int, help="the clients' fixed HTTP/2 receive window (bytes)")
    ap.add_argument("--sdk", action="store_true", help="SDK clients (never iterated) instead of raw gRPC ones")
    ap.add_argument("--buffered-events", type=int, help="--sdk: the streams' max_buffered_events")
    ap.add_argument(
        "--reading-control", type=float, metavar="S", help="first, streams of the file's first S s, read to the end"
    )
    ap.add_argument("--json")
    args = ap.parse_args()
    print_and_save(asyncio.run(main(args)), args.json)
