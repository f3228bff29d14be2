"""The cost of a dubbed video (issue 90's "done when"): a 10-minute video dubbed into two languages
as a job, the model's time (the job's run) against the remux's (``GET /v1/jobs/<id>/video``).

Run from the repository root::

    nice python -m benchmarks.studies.video_dub --minutes 10 --json out/video_dub.json

1. The video: ``tests/support/videos.py`` writes an MP4 (H.264 at ``--size`` and ``--fps``, the
   x264 preset ultrafast; AAC stereo at 44.1 kHz) of ``jfk.flac`` (``../shared/audio``) repeated
   to ``--minutes``; the time it took is not counted.
2. A server in this process (``tests/support/live_server.py``: the real application on loopback)
   with ``--model`` (the test checkpoint by default, on the CPU) and jobs on.
3. The job: the video uploaded over REST in 16 MiB parts, then completed; the upload, the check
   at ``complete`` (the probe) and the run (``complete`` to ``done``: the VAD, the model, the
   dubbed tracks' speech stored) timed apart, with the process's CPU over each and the engine's
   model time over the job's batches.
4. Its dubbed video fetched twice: the dub alone (two dubbed tracks, two subtitle tracks) and the
   voice-over mix with the original kept (``mix=duck&original=true``: the source's AAC decoded,
   resampled and mixed under each dub); each request's wall time and the process's CPU over it,
   and the video's size. The video stream is checked byte for byte against the source's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import typer

from benchmarks.tools.machine import cpu_model, git_state
from tests.support import videos
from tests.support.live_server import make_settings, serving
from tests.support.paths import SHARED_AUDIO, TEST_MODEL

PART = 16 * 1024 * 1024
TARGETS = ["spa", "fra"]


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _study(minutes: float, model: Path, size: tuple[int, int], fps: int, work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    source = videos.write_video(work / "talk.mp4", SHARED_AUDIO / "jfk.flac", seconds=minutes * 60, fps=fps, size=size)
    made_s = time.perf_counter() - started
    settings = make_settings(model)
    settings.server.http_port = 0
    settings.jobs.dir = work / "jobs"
    settings.jobs.quiet_wait_s = 0
    out: dict[str, Any] = {"video_bytes": source.stat().st_size, "video_written_s": round(made_s, 1)}
    async with serving(settings) as live, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{live.server.ports()['http_port']}/v1/jobs"
        async with http.post(base, json={"source_language": "eng", "target_languages": TARGETS}) as r:
            job = await r.json()
            assert r.status == 201, job
        t, cpu = time.perf_counter(), _cpu_s()
        with open(source, "rb") as f:  # noqa: ASYNC230 (a study: one part at a time)
            while part := f.read(PART):
                async with http.put(f"{base}/{job['id']}/audio", data=part) as r:
                    assert r.status == 200, await r.text()
        out["upload"] = {"wall_s": round(time.perf_counter() - t, 2), "cpu_s": round(_cpu_s() - cpu, 2)}
        t, cpu, batches = time.perf_counter(), _cpu_s(), len(live.batches)
        async with http.post(f"{base}/{job['id']}/complete") as r:
            assert r.status == 202, await r.text()
        out["complete"] = {"wall_s": round(time.perf_counter() - t, 2), "cpu_s": round(_cpu_s() - cpu, 2)}
        t, cpu = time.perf_counter(), _cpu_s()
        while True:
            async with http.get(f"{base}/{job['id']}?wait=60") as r:
                state = await r.json()
            if state["state"] in ("done", "failed", "cancelled"):
                break
        assert state["state"] == "done", state
        out["job"] = {
            "wall_s": round(time.perf_counter() - t, 1),
            "cpu_s": round(_cpu_s() - cpu, 1),
            "segments": state["segments"],
            "duration_ms": state["duration_ms"],
            # the engine's own time on the job's segments (every batch since complete)
            "model_s": round(sum(b.model_ms for b in live.batches[batches:]) / 1000, 1),
        }
        for name, query in (("dub_alone", ""), ("duck_and_original", "?mix=duck&original=true")):
            t, cpu = time.perf_counter(), _cpu_s()
            got = work / f"{name}.mp4"
            async with http.get(f"{base}/{job['id']}/video{query}") as r:
                assert r.status == 200, await r.text()
                with open(got, "wb") as f:  # noqa: ASYNC230 (a study: the download's own time counts)
                    async for chunk in r.content.iter_chunked(1 << 20):
                        f.write(chunk)
            out[name] = {
                "wall_s": round(time.perf_counter() - t, 2),
                "cpu_s": round(_cpu_s() - cpu, 2),
                "bytes": got.stat().st_size,
                "video_packets_equal": videos.video_packets(got) == videos.video_packets(source),
                "audio_tracks": [s.language for s in videos.streams(got) if s.type == "audio"],
            }
    out["remux_share_of_job"] = {
        "wall": round(out["dub_alone"]["wall_s"] / out["job"]["wall_s"], 4),
        "cpu": round(out["dub_alone"]["cpu_s"] / out["job"]["cpu_s"], 4),
    }
    return out


def main(
    minutes: Annotated[float, typer.Option(help="the video's length")] = 10.0,
    model: Annotated[Path, typer.Option(help="the checkpoint (default: the test checkpoint)")] = TEST_MODEL,
    width: int = 320,
    height: int = 240,
    fps: int = 25,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    with tempfile.TemporaryDirectory(prefix="video-dub-") as tmp:
        result = asyncio.run(_study(minutes, model, (width, height), fps, Path(tmp)))
    result |= {
        "minutes": minutes,
        "model": str(model),
        "size": f"{width}x{height}@{fps}",
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
