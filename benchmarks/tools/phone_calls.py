"""50 concurrent phone calls against one ``translate-svc serve`` process on the stable test
translator (issue 44): CPU per call, AudioSocket frame jitter, ear-voice lag.

    PYTHONPATH=. python -m benchmarks.tools.phone_calls --calls 50 --audiosocket 5 --seconds 8

The calls are fake carriers from the carriers' published formats (tests/support/
phone_carriers.py): ``calls - audiosocket`` Twilio Media Streams (µ-law 8 kHz) and ``audiosocket``
AudioSocket calls (slin 8 kHz), each streaming jfk.flac at real time. Reported: the server
process's CPU seconds per call-second (from /proc), the AudioSocket frames' spacing as the
peers received them (|gap - 20 ms|: p50/p99/max) and the server's own lateness per frame, the
ear-voice lag (p50/p95 from the server's histogram, interpolated within its buckets) and the calls'
codes from their access lines. One process, in-process fakes: the fakes share this machine's
cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import numpy as np

from tests.support.paths import SHARED_AUDIO, TEST_MODEL
from tests.support.phone_carriers import FakeAudioSocket, FakeTwilio, ulaw_bytes
from tests.support.proc import cpu_s, free_port
from tests.support.server_process import ServerProcess
from tests.support.speech import speech_pcm16


def histogram_quantiles(text: str, name: str, qs: tuple[float, ...]) -> dict[float, float]:
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    out = {}
    for q in qs:
        want, lo, below = q * total, 0.0, 0.0
        for le, count in buckets:
            if count >= want:
                hi = le if le != float("inf") else lo
                out[q] = lo + (hi - lo) * ((want - below) / max(count - below, 1e-9))
                break
            lo, below = le, count
    return out


async def run(calls: int, audiosocket: int, seconds: float, http: int, aport: int) -> dict[str, Any]:
    pcm = speech_pcm16(SHARED_AUDIO / "jfk.flac", seconds, 8000)
    ulaw = ulaw_bytes(pcm)
    url = f"ws://127.0.0.1:{http}/v1/phone/twilio"
    twilios = [FakeTwilio(url, custom={"source": "eng", "target": "spa"}) for _ in range(calls - audiosocket)]
    sockets = [FakeAudioSocket("127.0.0.1", aport) for _ in range(audiosocket)]

    async def staggered(i: int, coro: Any) -> Any:
        await asyncio.sleep(i * 0.02)
        return await coro

    jobs = [staggered(i, t.call(ulaw, linger_s=10)) for i, t in enumerate(twilios)]
    jobs += [staggered(i, s.call(pcm.tobytes(), tail_s=6)) for i, s in enumerate(sockets)]
    await asyncio.gather(*jobs)
    gaps: list[float] = []
    for s in sockets:
        times = [t for t, _ in s.log.audio()]
        gaps += list(np.abs(np.diff(times) - 0.02) * 1000)
    return {
        "marks_echoed": sum(len(t.log.echoed) for t in twilios),
        "jitter_ms": {k: round(float(np.percentile(gaps, p)), 2) for k, p in (("p50", 50), ("p99", 99))}
        | {"max": round(float(max(gaps)), 2)}
        if gaps
        else {},
    }


def served_figures(
    srv: ServerProcess, metrics_port: int
) -> tuple[dict[float, float], dict[float, float], list[dict[str, Any]], dict[str, int]]:
    """What the server says of its phone calls: the ear-voice lag (p50, p95) and frame lateness
    (p50, p99) from its histograms, its access lines, and their codes counted."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read().decode()
    lags = histogram_quantiles(text, "translate_svc_phone_ear_voice_lag_seconds", (0.5, 0.95))
    late = histogram_quantiles(text, "translate_svc_phone_frame_lateness_seconds", (0.5, 0.99))
    lines = [json.loads(x) for x in srv.lines if x.startswith("{") and '"translate_svc.access"' in x]
    codes: dict[str, int] = {}
    for line in lines:
        codes[line["code"]] = codes.get(line["code"], 0) + 1
    return lags, late, lines, codes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--audiosocket", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()
    http, aport, metrics_port = free_port(), free_port(), free_port()
    model = TEST_MODEL
    env = {
        "TRANSLATE_SVC_SERVER__METRICS_PORT": str(metrics_port),
        "TRANSLATE_SVC_LOG_FORMAT": "json",
        "TRANSLATE_SVC_LIMITS__MAX_STREAMS": str(args.calls + 8),
    }
    srv = ServerProcess(
        [
            *("--model", str(model), "--port", "0", "--http-port", str(http), "--phone"),
            *("--audiosocket-port", str(aport), "--test-translator", "stable"),
        ],
        env=env,
    )
    try:
        cpu0, t0 = cpu_s(srv.proc.pid), time.monotonic()
        out = asyncio.run(run(args.calls, args.audiosocket, args.seconds, http, aport))
        wall = time.monotonic() - t0
        cpu = cpu_s(srv.proc.pid) - cpu0
        time.sleep(1.0)
        lags, late, lines, codes = served_figures(srv, metrics_port)
        report = {
            "calls": args.calls,
            "audiosocket_calls": args.audiosocket,
            "call_seconds": args.seconds,
            "wall_s": round(wall, 1),
            "server_cpu_s": round(cpu, 2),
            "cpu_per_call_pct_of_a_core": round(100 * cpu / wall / args.calls, 2),
            "codes": codes,
            "ear_voice_lag_s": {f"p{int(q * 100)}": round(v, 2) for q, v in lags.items()},
            "server_frame_lateness_ms": {f"p{int(q * 100)}": round(1000 * v, 2) for q, v in late.items()},
            "frame_late_max_ms": max((x.get("frame_late_max_ms", 0) for x in lines), default=0),
            "frames_skipped": sum(x.get("frames_skipped", 0) for x in lines),
            **out,
            "cpus": os.cpu_count(),
        }
        print(json.dumps(report, indent=2))
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
