"""Rooms across servers (issue 59): what a room costs when its speaker and listeners are on two
servers sharing a real ``redis-server``, against the same room on one server, in one run.

Two ``serve --test-translator stable`` processes (A and B, ``cluster.redis_url`` on both; words
and speech for every segment at a CPU cost close to nothing, so what is measured is the fan-out and
the store) and Debian's ``redis-server`` on loopback; the listeners in a separate client process
(``rooms.py --child``, 16 connections per server); the speaker in this process, on A, sending
silero_test.wav at ``--speed`` times real time. Rounds, each in a room of its own:

1. ``baseline``: one listener per language on A (the servers' CPU without listeners' work);
2. ``one_server``: ``--listeners`` on A, the speaker's own server (delivered inside the process);
3. ``two_servers``: as many on B (each final result crosses Redis: A appends, B reads);
4. ``spread`` (unless ``--spread 0``): ``--spread`` listeners, half on A and half on B: each server's RSS growth per
   listener once they joined, its CPU over the talk beyond the baseline's per listener and per
   second of talk, deliveries and drops.

Lag: the time a listener received a segment minus the time the speaker's own stream received it
(one machine, one clock); the room's cost across servers is ``two_servers`` less ``one_server``.

    PYTHONPATH=.:clients/python/src python -m benchmarks.tools.rooms_across --listeners 100 --spread 2000 --speed 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

from benchmarks.tools import rooms
from tests.support.paths import SHARED_AUDIO, TEST_MODEL
from tests.support.proc import cpu_s, rss_mb
from tests.support.redis_server import redis_server
from translate_svc.cli import ready_file as ready


def serve(model: str, env: dict[str, str], tmp: Path, name: str) -> tuple[subprocess.Popen[bytes], int]:
    """One server, ready (its ready file): its process and gRPC port."""
    ready_file = tmp / f"{name}.ready.json"
    cmd = [sys.executable, "-m", "translate_svc.cli", "serve", "--model", model, "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(
        [*cmd, "--test-translator", "stable", "--ready-file", str(ready_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    return proc, ready.wait(ready_file, proc, 300).port


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile in ms (None: no value)."""
    if not values:
        return None
    s = sorted(values)
    return round(1000 * s[max(0, math.ceil(q * len(s)) - 1)], 1)


async def one_round(
    speaker_port: int, ports: list[int], pids: list[int], pcm: bytes, opts: argparse.Namespace, count: int, room: str
) -> dict:
    """``count`` listeners spread over ``ports`` (listener i on ports[i % n]), the speaker on
    ``speaker_port``; RSS and CPU of each server of ``pids`` (A, B)."""
    rss_before = [rss_mb(p) for p in pids]
    proc = await rooms.listening(ports, count, rooms.LANGS[: opts.languages], room)
    rss_joined = [rss_mb(p) for p in pids]
    cpu0, wall0 = [cpu_s(p) for p in pids], time.monotonic()
    spoken = await rooms.speak(speaker_port, room, pcm, opts.speed, speech=not opts.text_only)
    result = await rooms.heard(proc)
    cpu1, wall1 = [cpu_s(p) for p in pids], time.monotonic()
    await proc.wait()
    lags = [
        t - spoken[int(seg)] for per_lang in result["got"].values() for seg, times in per_lang.items() for t in times
    ]
    return {
        "listeners": count,
        "segments": len(spoken),
        "deliveries": len(lags),
        "deliveries_expected": len(spoken) * count,
        "dropped": result["dropped"],
        "server_rss_before_mb": [round(x, 1) for x in rss_before],
        "server_rss_joined_mb": [round(x, 1) for x in rss_joined],
        "server_cpu_s": [round(b - a, 2) for a, b in zip(cpu0, cpu1, strict=True)],
        "talk_wall_s": round(wall1 - wall0, 1),
        "lag_ms_p50": round(1000 * statistics.median(lags), 1) if lags else None,
        "lag_ms_p95": pct(lags, 0.95),
        "lag_ms_max": round(1000 * max(lags), 1) if lags else None,
    }


async def main(opts: argparse.Namespace) -> dict:
    pcm, rate = sf.read(SHARED_AUDIO / "silero_test.wav", dtype="int16")
    assert rate == 16000
    audio = pcm.astype("<i2").tobytes()
    talk_s = len(audio) / 32000
    tmp = Path(tempfile.mkdtemp(prefix="rooms-across-"))
    with redis_server() as redis:
        env = {
            **os.environ,
            "TRANSLATE_SVC_CLUSTER__REDIS_URL": redis.url,
            "TRANSLATE_SVC_LIMITS__MAX_TARGET_LANGUAGES": str(max(4, opts.languages)),
            "TRANSLATE_SVC_ROOMS__MAX_LISTENERS": str(opts.spread + opts.listeners + 100),
            "TRANSLATE_SVC_ROOMS__MAX_LISTENERS_PER_TENANT": str(opts.spread + opts.listeners + 100),
            "TRANSLATE_SVC_LOG_LEVEL": "WARNING",
        }
        servers = [serve(opts.model, env, tmp, name) for name in ("a", "b")]
        try:
            (a, port_a), (b, port_b) = servers
            pids = [a.pid, b.pid]
            load_before = os.getloadavg()
            base = await one_round(port_a, [port_a], pids, audio, opts, opts.languages, "base")
            one = await one_round(port_a, [port_a], pids, audio, opts, opts.listeners, "one")
            two = await one_round(port_a, [port_b], pids, audio, opts, opts.listeners, "two")
            result = {
                "date": time.strftime("%Y-%m-%d %H:%M"),
                "machine": f"{os.cpu_count()} cores",
                "load_avg_before": [round(x, 2) for x in load_before],
                "speed": opts.speed,
                "languages": opts.languages,
                "speech": not opts.text_only,
                "baseline": base,
                "one_server": one,
                "two_servers": two,
            }
            if opts.spread <= 0:
                return {**result, "load_avg_after": [round(x, 2) for x in os.getloadavg()]}
            spread = await one_round(port_a, [port_a, port_b], pids, audio, opts, opts.spread, "spread")
            half = opts.spread / 2
            per_listener = {
                name: {
                    "rss_kb": round(
                        (spread["server_rss_joined_mb"][i] - spread["server_rss_before_mb"][i]) * 1024 / half, 1
                    ),
                    "cpu_ms_per_talk_s": round(
                        1000 * (spread["server_cpu_s"][i] - base["server_cpu_s"][i]) / half / talk_s, 4
                    ),
                }
                for i, name in enumerate(("a_speakers_server", "b"))
            }
            return {
                **result,
                "load_avg_after": [round(x, 2) for x in os.getloadavg()],
                "spread": spread,
                "spread_per_listener": per_listener,
            }
        finally:
            for proc, _ in servers:
                proc.terminate()
            for proc, _ in servers:
                proc.wait(30)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(TEST_MODEL))
    ap.add_argument("--listeners", type=int, default=100, help="listeners of the one_server and two_servers rounds")
    ap.add_argument("--spread", type=int, default=2000, help="listeners of the spread round, half on each server")
    ap.add_argument("--languages", type=int, default=5)
    ap.add_argument("--speed", type=float, default=4.0, help="times real time the speaker sends")
    ap.add_argument("--text-only", action="store_true", help="the speaker's output without speech (no Opus)")
    print(json.dumps(asyncio.run(main(ap.parse_args())), indent=2))
