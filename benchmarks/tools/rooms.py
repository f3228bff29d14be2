"""Rooms (issue 47): 1 speaker, N listeners in L languages; server CPU and memory per listener, and
the delivery lag of each final result from the speaker's own stream to the listeners.

A real server process (``serve --test-translator stable``: words and speech for every segment, at
CPU cost close to nothing, so what is measured is the fan-out) on loopback; the listeners in a
separate client process (this script with ``--child``), over a pool of channels; the speaker in
this process, sending silero_test.wav at ``--speed`` times real time. Two rounds on one server: a
baseline with one listener per language, then ``--listeners``. Per listener: the server's RSS
growth once they joined and its CPU seconds over the talk beyond the baseline's, each divided by
the extra listeners. Lag: the time a listener received a segment minus the time the speaker's own
stream received it (both clocks of this machine); negative when a listener was first.

    PYTHONPATH=.:clients/python/src python -m benchmarks.tools.rooms --listeners 500 --languages 5 --speed 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import soundfile as sf

from tests.support.paths import REPO, SHARED_AUDIO, TEST_MODEL
from tests.support.proc import cpu_s, rss_mb
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.cli import ready_file as ready

CHUNK = 3200  # 100 ms of 16 kHz LINEAR16
LANGS = ("spa", "fra", "deu", "ita", "por")
JOIN_S = 120.0  # the listeners' joining, at most (else the child reports how many joined, and fails)


async def child(ports: list[int], count: int, langs: tuple[str, ...], room: str, channels: int, quiet_s: float) -> None:
    """The listeners (listener ``i`` on ``ports[i % len(ports)]``, one server each, over
    ``channels`` connections to each): prints one JSON line ``{"joined": n}`` once all started;
    then, once the parent wrote a line to its stdin (the speaker's stream ended) and ``quiet_s``
    passed without an event,
    ``{"got": {lang: {segment_id: [receive times]}}, "dropped": n}``. (A quiet period alone ends
    too early at real-time speed: the talk has pauses of several seconds.)"""
    # each channel its own connection: gRPC shares one between channels of equal arguments (its global
    # subchannel pool), and a connection carries at most limits.max_calls_per_connection (320) calls at
    # once; the client holds the others back, unstarted, until one ends (HTTP/2 MAX_CONCURRENT_STREAMS)
    pool = [
        grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
        for port in ports
        for _ in range(channels)
    ]
    stubs = [pb_grpc.TranslatorStub(c) for c in pool]
    n = len(ports)
    got: dict[str, dict[int, list[float]]] = {lang: {} for lang in langs}
    dropped = 0
    joined = 0
    last = [time.time()]
    all_joined = asyncio.Event()

    async def one(i: int) -> None:
        nonlocal dropped, joined
        lang = langs[i % len(langs)]
        server, k = i % n, (i // n) % channels  # listener i on server i % n, over that server's channels
        call = stubs[server * channels + k].Listen(pb.ListenRequest(room=room, language=lang))
        async for ev in call:
            kind = ev.WhichOneof("event")
            if kind == "started":
                joined += 1
                if joined == count:
                    all_joined.set()
            elif kind == "segment" and not ev.backlog:
                got[lang].setdefault(ev.segment.segment_id, []).append(time.time())
                last[0] = time.time()
            elif kind == "dropped":
                dropped += ev.dropped.count

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    try:
        await asyncio.wait_for(all_joined.wait(), JOIN_S)
    except TimeoutError:
        failed = [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception()]
        print(json.dumps({"joined": joined, "failed": [repr(e)[:200] for e in failed[:3]]}), flush=True)
        os._exit(1)
    print(json.dumps({"joined": joined}), flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # the speaker's stream ended
    while time.time() - last[0] < quiet_s:  # noqa: ASYNC110 (a quiet period)
        await asyncio.sleep(0.2)
    print(json.dumps({"got": got, "dropped": dropped}), flush=True)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in pool:
        await c.close()


async def speak(port: int, room: str, pcm: bytes, speed: float, *, speech: bool = True) -> dict[int, float]:
    """The speaker's stream, paced at ``speed`` times real time; when its own stream got each
    segment. ``speech=False``: its output is text only (its listeners get no speech either)."""
    got: dict[int, float] = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = pb_grpc.TranslatorStub(ch)
        config = pb.StreamingConfig(
            format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1),
            source_language="eng",
            room=pb.RoomSpeaking(name=room),
            output=None if speech else pb.OutputOptions(text=True, speech=False),
        )

        async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
            yield pb.StreamingTranslateRequest(config=config)
            start = time.monotonic()
            for n, k in enumerate(range(0, len(pcm), CHUNK)):
                await asyncio.sleep(max(0.0, start + n * 0.1 / speed - time.monotonic()))
                yield pb.StreamingTranslateRequest(audio=pcm[k : k + CHUNK])

        async for msg in stub.StreamingTranslate(requests()):
            if msg.WhichOneof("response") == "segment":
                got[msg.segment.segment_id] = time.time()
    return got


async def listening(ports: list[int], count: int, langs: tuple[str, ...], room: str) -> asyncio.subprocess.Process:
    """The listeners' process (``--child``: listener i on ``ports[i % n]``), once all joined."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", ",".join(map(str, ports)), str(count), ",".join(langs), room,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=256 * 2**20,  # one long JSON line
        env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO}/clients/python/src"},
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    joined = json.loads(await proc.stdout.readline())
    assert joined["joined"] == count, joined
    return proc


async def heard(proc: asyncio.subprocess.Process) -> dict:
    """Tell the listeners' process the speaker's stream ended: what they got, once quiet."""
    assert proc.stdout is not None and proc.stdin is not None
    proc.stdin.write(b"end\n")
    await proc.stdin.drain()
    return dict(json.loads(await proc.stdout.readline()))


async def one_round(port: int, pid: int, pcm: bytes, opts: argparse.Namespace, count: int, room: str) -> dict:
    rss_before = rss_mb(pid)
    proc = await listening([port], count, LANGS[: opts.languages], room)
    rss_joined = rss_mb(pid)
    cpu0, wall0 = cpu_s(pid), time.monotonic()
    spoken = await speak(port, room, pcm, opts.speed)
    result = await heard(proc)
    cpu1, wall1 = cpu_s(pid), time.monotonic()
    await proc.wait()
    lags = [
        t - spoken[int(seg)] for per_lang in result["got"].values() for seg, times in per_lang.items() for t in times
    ]
    expected = len(spoken) * count
    lags.sort()
    return {
        "listeners": count,
        "segments": len(spoken),
        "deliveries": len(lags),
        "deliveries_expected": expected,
        "dropped": result["dropped"],
        "server_rss_before_mb": round(rss_before, 1),
        "server_rss_joined_mb": round(rss_joined, 1),
        "server_cpu_s": round(cpu1 - cpu0, 2),
        "talk_wall_s": round(wall1 - wall0, 1),
        "lag_ms_p50": round(1000 * statistics.median(lags), 1) if lags else None,
        "lag_ms_p95": round(1000 * lags[int(0.95 * (len(lags) - 1))], 1) if lags else None,
        "lag_ms_max": round(1000 * lags[-1], 1) if lags else None,
    }


async def main(opts: argparse.Namespace) -> dict:
    pcm, rate = sf.read(SHARED_AUDIO / "silero_test.wav", dtype="int16")
    assert rate == 16000
    audio = pcm.astype("<i2").tobytes()
    env = {
        **os.environ,
        "TRANSLATE_SVC_LIMITS__MAX_TARGET_LANGUAGES": str(max(4, opts.languages)),
        "TRANSLATE_SVC_ROOMS__MAX_LISTENERS": str(opts.listeners + 100),
        "TRANSLATE_SVC_LOG_LEVEL": "WARNING",
    }
    ready_file = Path(tempfile.mkdtemp(prefix="rooms-")) / "ready.json"
    cmd = [sys.executable, "-m", "translate_svc.cli", "serve", "--model", opts.model, "--host", "127.0.0.1"]
    server = subprocess.Popen(  # noqa: ASYNC220 (started once, before any call)
        [*cmd, "--port", "0", "--test-translator", "stable", "--ready-file", str(ready_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        port = (await asyncio.to_thread(ready.wait, ready_file, server, 300)).port
        load_before = os.getloadavg()
        base = await one_round(port, server.pid, audio, opts, opts.languages, "base")
        full = await one_round(port, server.pid, audio, opts, opts.listeners, "full")
        extra = opts.listeners - opts.languages
        return {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{os.cpu_count()} cores",
            # the machine's load average (1, 5, 15 min) before and after: others' work shares the cores
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
            "speed": opts.speed,
            "languages": opts.languages,
            "baseline": base,
            "full": full,
            "per_listener": {
                "rss_kb": round(
                    (full["server_rss_joined_mb"] - full["server_rss_before_mb"]) * 1024 / opts.listeners, 1
                ),
                "cpu_ms_per_talk_s": round(
                    1000 * (full["server_cpu_s"] - base["server_cpu_s"]) / extra / (len(audio) / 32000), 3
                ),
            },
        }
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(ready_file.parent, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        port, count, langs, room = sys.argv[2:6]
        ports = [int(p) for p in port.split(",")]
        asyncio.run(child(ports, int(count), tuple(langs.split(",")), room, channels=16, quiet_s=2.0))
        sys.exit(0)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(TEST_MODEL))
    ap.add_argument("--listeners", type=int, default=500)
    ap.add_argument("--languages", type=int, default=5)
    ap.add_argument("--speed", type=float, default=1.0, help="times real time the speaker sends")
    print(json.dumps(asyncio.run(main(ap.parse_args())), indent=2))
