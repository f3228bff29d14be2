"""Dubbing to the source's clock (issue 90 item 2): how far a job's dubbed speech runs past the next
segment's start, with and without ``fit``, and what fitting costs in the job's time.

Run from the repository root::

    nice python -m benchmarks.studies.dub_fit --repeat 4 --json out/dub_fit.json

1. The source: ``silero_test.wav`` (``../shared/audio``: 60 s of speech with many pauses) repeated
   ``--repeat`` times into one WAV (4: 240 s, about the issue's 216 s source).
2. A server in this process (``tests/support/live_server.py``: the real application on loopback)
   with ``--model`` (the test checkpoint by default, on the CPU) and jobs on.
3. The same job twice over REST, into ``--to`` (spa,fra), plain and with ``"fit": true`` (the
   server's bound, 0.85..1.35), one after the other; each run timed from ``complete`` to ``done``
   (wall and the process's CPU, and the engine's model time over its batches).
4. From each job's stored segments, per target: each speech's end (its segment's start plus its
   length: where the dubbed track places it) against the next segment's start (the audio's end,
   for the last): the gap when it ends before (mean, max), the overlap when it runs past (how
   many, mean, max, total), and the rates the fitted job chose (min, median, max, at the bound's
   ends). A random-weight model's speech is as long as it happens to be: these figures measure the
   mechanism (how much of the overrun a bound of rates removes), not a real model's translations.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import numpy as np
import soundfile as sf
import typer

from benchmarks.tools.machine import cpu_model, git_state
from tests.support.live_server import make_settings, serving
from tests.support.paths import SHARED_AUDIO, TEST_MODEL


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def source_wav(repeat: int) -> bytes:
    samples, rate = sf.read(SHARED_AUDIO / "silero_test.wav", dtype="int16")
    out = io.BytesIO()
    sf.write(out, np.tile(samples, repeat), rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def drift(segments: list[dict[str, Any]], duration_ms: int, language: str) -> dict[str, Any]:
    """Where each segment's speech in ``language`` ends against the next segment's start."""
    gaps, overs, rates = [], [], []
    for n, seg in enumerate(segments):
        t = next(t for t in seg["translations"] if t["target_language"] == language)
        if not t["audio_samples"]:
            continue
        next_start = segments[n + 1]["start_ms"] if n + 1 < len(segments) else duration_ms
        left = next_start - (seg["start_ms"] + t["audio_ms"])
        (gaps if left >= 0 else overs).append(abs(left))
        if t.get("speech_rate") is not None:
            rates.append(t["speech_rate"])
    out: dict[str, Any] = {
        "spoken": len(gaps) + len(overs),
        "gap_ms": {"mean": round(statistics.fmean(gaps)) if gaps else 0, "max": max(gaps, default=0)},
        "overlaps": len(overs),
        "overlap_ms": {
            "mean": round(statistics.fmean(overs)) if overs else 0,
            "max": max(overs, default=0),
            "total": sum(overs),
        },
    }
    if rates:
        out["rates"] = {
            "min": round(min(rates), 3),
            "median": round(statistics.median(rates), 3),
            "max": round(max(rates), 3),
            "at_slowest": sum(r <= 0.85 + 1e-5 for r in rates),
            "at_fastest": sum(r >= 1.35 - 1e-5 for r in rates),
        }
    return out


async def _job(http: aiohttp.ClientSession, base: str, live: Any, body: dict[str, Any], audio: bytes) -> dict[str, Any]:
    async with http.post(base, json=body) as r:
        job = await r.json()
        assert r.status == 201, job
    async with http.put(f"{base}/{job['id']}/audio", data=audio) as r:
        assert r.status == 200, await r.text()
    t, cpu, batches = time.perf_counter(), _cpu_s(), len(live.batches)
    async with http.post(f"{base}/{job['id']}/complete") as r:
        assert r.status == 202, await r.text()
    while True:
        async with http.get(f"{base}/{job['id']}?wait=60") as r:
            state = await r.json()
        if state["state"] in ("done", "failed", "cancelled"):
            break
    assert state["state"] == "done", state
    out: dict[str, Any] = {
        "wall_s": round(time.perf_counter() - t, 1),
        "cpu_s": round(_cpu_s() - cpu, 1),
        "model_s": round(sum(b.model_ms for b in live.batches[batches:]) / 1000, 1),
        "segments": state["segments"],
        "duration_ms": state["duration_ms"],
    }
    async with http.get(f"{base}/{job['id']}/results") as r:
        segments = (await r.json())["segments"]
    out["drift"] = {lang: drift(segments, state["duration_ms"], lang) for lang in body["target_languages"]}
    return out


async def _study(repeat: int, model: Path, targets: list[str], work: Path) -> dict[str, Any]:
    audio = source_wav(repeat)
    settings = make_settings(model)
    settings.server.http_port = 0
    settings.jobs.dir = work / "jobs"
    settings.jobs.quiet_wait_s = 0
    body: dict[str, Any] = {"source_language": "eng", "target_languages": targets, "transcript": False}
    out: dict[str, Any] = {}
    async with serving(settings) as live, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{live.server.ports()['http_port']}/v1/jobs"
        out["plain"] = await _job(http, base, live, body, audio)
        out["fitted"] = await _job(http, base, live, body | {"fit": True}, audio)
    return out


def main(
    repeat: Annotated[int, typer.Option(help="silero_test.wav (60 s) this many times")] = 4,
    model: Annotated[Path, typer.Option(help="the checkpoint (default: the test checkpoint)")] = TEST_MODEL,
    to: Annotated[str, typer.Option(help="the target languages")] = "spa,fra",
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    with tempfile.TemporaryDirectory(prefix="dub-fit-") as tmp:
        result = asyncio.run(_study(repeat, model, to.split(","), Path(tmp)))
    result |= {
        "source_s": 60 * repeat,
        "model": str(model),
        "machine": f"{platform.node()} {cpu_model()} ({os.cpu_count()} CPUs)",
        "git": git_state(),
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_1min": os.getloadavg()[0],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text)


if __name__ == "__main__":
    typer.run(main)
