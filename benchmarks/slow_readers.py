"""Clients that send fast and never read: how much the server computes for them, and its memory.

Starts ``translate-svc serve`` (the test checkpoint) as a separate process, opens ``--streams``
streams that each send ``--repeat`` copies of silero_test.wav as fast as the server takes them and
never read a response, then cancels them. Reports the server's RSS (``/proc/PID/status``) before,
while they stall, and after the cancel, and the segments the model computed (from ``/metrics``).

    python -m benchmarks.slow_readers --streams 4 --json out/slow_readers.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import soundfile as sf

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.cli import ready_file as ready
from translate_svc.client.raw import channel

REPO = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"VmRSS:\s+(\d+) kB", text)
    assert m is not None
    return int(m.group(1)) / 1024


def computed_segments(metrics_port: int) -> int:
    body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    m = re.search(r"^translate_svc_batch_size_sum ([0-9.e+]+)$", body, re.M)
    return int(float(m.group(1))) if m else 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main(opts: argparse.Namespace) -> dict[str, object]:
    pcm, rate = sf.read(REPO.parent / "shared" / "audio" / "silero_test.wav", dtype="int16")
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
        rss = {"idle": rss_mb(server.pid)}
        rounds = []
        for _ in range(opts.rounds):
            rounds.append(await one_round(port, metrics_port, server.pid, audio, opts))
        return {
            "streams": opts.streams,
            "audio_per_stream_s": len(audio) / 32000,
            "segments_in_the_audio_per_round": 19 * opts.repeat * opts.streams,
            "rss_idle_mb": round(rss["idle"], 1),
            "rounds": rounds,
            "date": time.strftime("%Y-%m-%d"),
        }
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(ready_file.parent, ignore_errors=True)


async def one_round(
    port: int, metrics_port: int, pid: int, audio: bytes, opts: argparse.Namespace
) -> dict[str, object]:
    """Open the non-reading streams, wait until they stall, cancel them; RSS and segments computed."""
    before = computed_segments(metrics_port)
    sent = [0] * opts.streams
    rss: dict[str, float] = {}
    async with channel(f"127.0.0.1:{port}") as ch:
        stub = pb_grpc.TranslatorStub(ch)

        def requests(k: int) -> AsyncIterator[pb.StreamingTranslateRequest]:
            async def gen() -> AsyncIterator[pb.StreamingTranslateRequest]:
                yield pb.StreamingTranslateRequest(
                    config=pb.StreamingConfig(
                        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1),
                        target_languages=["spa"],
                    )
                )
                for i in range(0, len(audio), 3200):
                    yield pb.StreamingTranslateRequest(audio=audio[i : i + 3200])
                    sent[k] = i + 3200

            return gen()

        calls = [stub.StreamingTranslate(requests(k)) for k in range(opts.streams)]
        peak, t0 = rss_mb(pid), time.monotonic()
        last, still = sum(sent), 0.0
        while time.monotonic() - t0 < opts.max_s and still < opts.stall_s:
            await asyncio.sleep(0.25)
            peak = max(peak, rss_mb(pid))
            still = still + 0.25 if sum(sent) == last else 0.0
            last = sum(sent)
        rss["while_stalled_peak"] = peak
        computed = computed_segments(metrics_port) - before
        for c in calls:
            c.cancel()
        await asyncio.sleep(opts.settle_s)
        rss["after_cancel"] = rss_mb(pid)
    return {
        "sent_per_stream_s": [round(s / 32000, 1) for s in sent],
        "segments_computed": computed,
        "rss_mb": {k: round(v, 1) for k, v in rss.items()},
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "model_cache" / "test-model"))
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=10, help="copies of the 60 s file per stream")
    ap.add_argument("--stall-s", type=float, default=5.0, help="no progress for this long: stalled")
    ap.add_argument("--max-s", type=float, default=120.0)
    ap.add_argument("--settle-s", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=2, help="open, stall and cancel the streams this many times")
    ap.add_argument("--json")
    args = ap.parse_args()
    result = asyncio.run(main(args))
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
