"""A background job beside live streams: does a running job take anything from real-time streams
(issue 73: "live streams' p95 with a job running is within 10 % of without")?

Run from the repository root::

    python -m benchmarks.studies.jobs_beside_streams --streams 4 --rounds 3 --json out/jobs.json

It starts one ``translate-svc serve`` (``--model``, ``jobs.dir`` in a temporary folder, the HTTP
port, ``jobs.quiet_wait_s`` from ``--quiet-wait-s``), then runs ``python -m benchmarks.tools.loadgen
--target`` as a separate process, ``--streams`` real-time streams each time, alone or while a job
runs (``--job-minutes`` of ``--clip-file`` repeated, uploaded in parts over ``/v1/jobs`` before the
streams start, into ``--targets``; a new job is submitted whenever one ends, so one is always
running; cancelled when the streams end, so none runs beside the next "alone"). ``--rounds N``
runs N rounds in ABBA order (alone, beside, beside, alone), so a drift of the machine's load over
the runs weighs on both sides alike. Reported: the streams' p50 and p95 segment latency of each
side, pooled over its runs, their p95 ratio, each run's own figures, and the job segments finished
during the "beside" runs (the job makes progress beside the streams, or it only waits).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import numpy as np
import soundfile as sf
import typer

from benchmarks.tools.frontend import SERVE, Server
from benchmarks.tools.machine import git_state
from tests.support.paths import REPO, SHARED_AUDIO, TEST_MODEL

PART = 4 * 1024 * 1024

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)


def long_clip(path: Path, minutes: float) -> bytes:
    """``path`` repeated to ``minutes``, as a WAV (its own rate and channels)."""
    samples, rate = sf.read(path, dtype="int16", always_2d=True)
    reps = max(1, int(minutes * 60 * rate / len(samples)))
    buf = io.BytesIO()
    sf.write(buf, np.tile(samples, (reps, 1)), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


async def submit(http: aiohttp.ClientSession, base: str, clip: bytes, targets: list[str]) -> str:
    async with http.post(base, json={"source_language": "eng", "target_languages": targets}) as r:
        job = await r.json()
    for at in range(0, len(clip), PART):
        async with http.put(f"{base}/{job['id']}/audio?offset={at}", data=clip[at : at + PART]) as r:
            r.raise_for_status()
    async with http.post(f"{base}/{job['id']}/complete") as r:
        r.raise_for_status()
    return str(job["id"])


async def keep_a_job_running(
    base: str, clip: bytes, targets: list[str], stop: asyncio.Event, tally: dict[str, Any]
) -> None:
    """One job running for as long as the streams run: the next submitted when one ends; the one
    running cancelled at the end."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
        job_id = await submit(http, base, clip, targets)
        tally["ready"].set()
        while True:
            async with http.get(f"{base}/{job_id}?wait=5") as r:
                job = await r.json()
            tally["segments"][job_id] = job["segments"]
            if job["state"] not in ("queued", "running"):
                tally["ended"].append(job["state"])
                if stop.is_set():
                    break
                job_id = await submit(http, base, clip, targets)
            elif stop.is_set():
                async with http.post(f"{base}/{job_id}/cancel") as r:
                    if r.status == 200:  # else it ended meanwhile: its last count stands
                        tally["segments"][job_id] = (await r.json())["segments"]
                break


async def run_streams(cmd: list[str], base: str, clip: bytes | None, targets: list[str]) -> dict[str, Any]:
    stop = asyncio.Event()
    tally: dict[str, Any] = {"segments": {}, "ended": [], "ready": asyncio.Event()}
    task = None
    if clip is not None:
        task = asyncio.create_task(keep_a_job_running(base, clip, targets, stop, tally))
        await tally["ready"].wait()
    try:
        proc = await asyncio.create_subprocess_exec(*cmd, cwd=REPO)
        await proc.wait()
    finally:
        stop.set()
        if task is not None:
            await asyncio.gather(task)
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen exited with {proc.returncode}")
    return {"job_segments": sum(tally["segments"].values()), "jobs_ended": tally["ended"]}


def abba(rounds: int) -> list[bool]:
    """Whether each run has a job beside the streams: alone, beside, beside, alone, per round."""
    return [False, True, True, False] * rounds


def pooled(latencies: list[float]) -> dict[str, float]:
    return {
        "count": len(latencies),
        "p50": float(np.percentile(latencies, 50)) if latencies else float("nan"),
        "p95": float(np.percentile(latencies, 95)) if latencies else float("nan"),
    }


@app.command()
def main(
    streams: Annotated[int, typer.Option(min=1, help="real-time streams")] = 4,
    stream_s: Annotated[float, typer.Option(help="each stream's audio (looped file)")] = 60.0,
    clip_file: Annotated[str, typer.Option(help="the job's audio, repeated")] = "jfk.flac",
    job_minutes: Annotated[float, typer.Option(help="the job's length")] = 20.0,
    targets: Annotated[str, typer.Option(help="the job's targets")] = "spa",
    quiet_wait_s: Annotated[
        float | None, typer.Option(min=0, help="the server's jobs.quiet_wait_s (default: the server's own)")
    ] = None,
    rounds: Annotated[int, typer.Option(min=1, help="rounds of alone, beside, beside, alone")] = 1,
    model: Annotated[Path, typer.Option(help="model directory")] = TEST_MODEL,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the results here")] = None,
) -> None:
    clip = long_clip(SHARED_AUDIO / clip_file, job_minutes)
    work = Path(tempfile.mkdtemp(prefix="jobs-beside-streams-"))
    env = {**os.environ, "TRANSLATE_SVC_MODEL__PATH": str(model), "TRANSLATE_SVC_JOBS__DIR": str(work / "jobs")}
    if quiet_wait_s is not None:
        env["TRANSLATE_SVC_JOBS__QUIET_WAIT_S"] = f"{quiet_wait_s:g}"
    cmd = [str(SERVE), "serve", "--host", "127.0.0.1", "--port", "0", "--http-port", "0"]
    server = Server(cmd, env, work / "server.log")
    runs: list[dict[str, Any]] = []
    sides: dict[str, list[float]] = {"streams_alone": [], "beside_a_job": []}
    try:
        port = server.wait_ready(300)
        http_port = json.loads(server.ready_file.read_text())["http_port"]
        base = f"http://127.0.0.1:{http_port}/v1/jobs"
        for n, with_job in enumerate(abba(rounds)):
            name = "beside_a_job" if with_job else "streams_alone"
            out = work / f"run{n}-{name}.json"
            load = [
                sys.executable, "-m", "benchmarks.tools.loadgen", "--target", f"127.0.0.1:{port}",
                "--server-pid", str(server.pid), "--streams", str(streams), "--stream-s", f"{stream_s:g}",
                "--stagger-s", "2", "--no-saturation", "--no-speech", "--json", str(out), "--log-level", "WARNING",
            ]  # fmt: skip
            tally = asyncio.run(run_streams(load, base, clip if with_job else None, targets.split(",")))
            target = json.loads(out.read_text())["results"]["target"]
            realtime = target["realtime"]
            latencies = [ms for s in target["streams"]["realtime"] for ms in s.get("latency_ms", [])]
            sides[name].extend(latencies)
            runs.append(
                {
                    "run": n,
                    "side": name,
                    "latency_ms": realtime["latency_ms"],
                    "failed_streams": realtime.get("streams_failed"),
                    **(tally if with_job else {}),
                }
            )
            lat = realtime["latency_ms"]
            print(f"run {n} {name}: p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms over {lat['count']} segments")
    finally:
        server.stop()
    alone, beside = pooled(sides["streams_alone"]), pooled(sides["beside_a_job"])
    done = sum(r["job_segments"] for r in runs if r["side"] == "beside_a_job")
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "git": git_state(),
        "streams": streams,
        "stream_s": stream_s,
        "job_minutes": job_minutes,
        "quiet_wait_s": quiet_wait_s,
        "rounds": rounds,
        "order": "ABBA (alone, beside, beside, alone) per round",
        "pooled_latency_ms": {"streams_alone": alone, "beside_a_job": beside},
        "p95_ratio": beside["p95"] / alone["p95"],
        "job_segments_beside": done,
        "runs": runs,
        "server_log": str(work / "server.log"),
    }
    for name, lat in (("streams_alone", alone), ("beside_a_job", beside)):
        print(f"{name} (pooled): p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms over {lat['count']} segments")
    print(f"p95 beside a job / alone: {result['p95_ratio']:.2f}; job segments in the beside runs: {done}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    app()
