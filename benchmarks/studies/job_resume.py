"""A resumed job (issue 91, point 6): why a short lead-in moved segments, and what the replay costs.

Run from the repository root::

    python -m benchmarks.studies.job_resume memory          # silero's memory after a lead-in
    python -m benchmarks.studies.job_resume resume --minutes 30

``memory``: jfk.flac (44.1 kHz, resampled the session's way) and silero_test.wav (16 kHz), each
tiled to ``--minutes``, scored by silero from the start and again from a point ``--at`` seconds
in (on the lead-in grid) with a fresh state; for each ``--leads`` (seconds of lead-in before a
resume point), the largest difference of the probabilities after that point, the share equal to
the bit, and the windows that cross the threshold (0.5) or the hysteresis' lower one (0.35)
differently. Also: the resampler started at the grid point against the whole run's, one second in
(within 4e-7 at 44.1 kHz, nothing at 16 kHz where none runs): silero's state is what differs.

``resume``: a real server in this process on loopback (the real VAD, a fake model: only the
pipeline's own cost shows) runs a job on jfk.flac tiled to ``--minutes`` (44.1 kHz mono WAV) to its
end; then the job is put back as a process killed three segments from its end leaves it (its later
rows deleted, ``running`` under a lapsed lease, its audio in place) and a new server resumes it:
the resumed run's wall time and this process's CPU, and whether its segments equal the
uninterrupted run's. Run it in each tree to compare (the committed one heard a 10 s lead-in).
``--no-checkpoints`` deletes the job's checkpoints (issue 101) first: the whole audio before the point
is replayed, as before them; with them (the default) the replay before the point is printed too.
"""

from __future__ import annotations

import asyncio
import resource
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import numpy as np
import soundfile as sf
import typer

from tests.support.fake_runner import FakeRunner
from tests.support.jobs import JobsOverHttp
from tests.support.live_server import make_settings, serving
from tests.support.paths import SHARED_AUDIO
from tests.support.stepped_call import NO_MODEL
from translate_svc.audio.resample import StreamResampler
from translate_svc.jobs import checkpoints as ckpt
from translate_svc.jobs.translation import LEAD_GRID_MS, JobTranslation
from translate_svc.vad.silero import SileroVad

app = typer.Typer(add_completion=False)


def _mono(name: str, minutes: float) -> tuple[np.ndarray, int]:
    x, rate = sf.read(SHARED_AUDIO / name, dtype="float32", always_2d=True)
    one = x.mean(axis=1).astype(np.float32)
    return np.tile(one, int(minutes * 60 * rate // len(one)) + 1), rate


def _to16k(x: np.ndarray, rate: int) -> np.ndarray:
    if rate == 16000:
        return x
    r = StreamResampler(rate)
    out = [r.process(x[at : at + rate]) for at in range(0, len(x), rate)]
    return np.concatenate([*out, r.process(np.zeros(0, np.float32), last=True)])


def _probs(vad: SileroVad, x16: np.ndarray) -> np.ndarray:
    state = vad.new_state()
    return np.concatenate([vad.probabilities(state, x16[at : at + 16000]) for at in range(0, len(x16), 16000)])


@app.command()
def memory(
    minutes: Annotated[float, typer.Option(help="each file tiled to this long")] = 12.0,
    at: Annotated[float, typer.Option(help="the resume point, seconds in")] = 600.0,
    leads: Annotated[str, typer.Option(help="lead-ins to try, seconds")] = "10,30,60,120,240,480",
) -> None:
    vad = SileroVad()
    for name in ("jfk.flac", "silero_test.wav"):
        x, rate = _mono(name, minutes)
        whole16 = _to16k(x, rate)
        whole = _probs(vad, whole16)
        for lead_s in (float(v) for v in leads.split(",")):
            start_ms = int((at - lead_s) * 1000) // LEAD_GRID_MS * LEAD_GRID_MS
            part16 = _to16k(x[start_ms * rate // 1000 :], rate)
            n16 = min(len(part16), len(whole16) - start_ms * 16)
            resampled = np.abs(part16[16000:n16] - whole16[start_ms * 16 + 16000 : start_ms * 16 + n16]).max()
            part = _probs(vad, part16)
            first = start_ms * 16 // 512
            n = min(len(part), len(whole) - first)
            after = int((at * 1000 - start_ms) * 16 // 512) + 1
            a, b = whole[first + after : first + n], part[after:n]
            flips = int(((a >= 0.5) != (b >= 0.5)).sum() + ((a < 0.35) != (b < 0.35)).sum())
            print(
                f"{name}: lead-in {lead_s:g} s: after the point, largest difference {np.abs(a - b).max():.2e}, "
                f"equal {(a == b).mean():.1%}, windows deciding otherwise {flips}; resampler 1 s in: {resampled:.1e}"
            )


def _cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def _settings(jobs_dir: Path) -> Any:
    s = make_settings(NO_MODEL)
    s.server.http_port = 0
    s.jobs.dir = jobs_dir
    s.jobs.quiet_wait_s = 0
    s.jobs.max_part_bytes = 256 * 1024**2
    return s


@app.command()
def resume(
    minutes: Annotated[float, typer.Option(help="the job's audio, jfk.flac tiled")] = 30.0,
    checkpoints: Annotated[
        bool, typer.Option(help="resume from the job's checkpoints (issue 101); --no-checkpoints: replay it all")
    ] = True,
) -> None:
    work = Path(tempfile.mkdtemp(prefix="job-resume-"))
    x, rate = sf.read(SHARED_AUDIO / "jfk.flac", dtype="int16")
    clip = work / "clip.wav"
    sf.write(clip, np.tile(x[:, 0], int(minutes * 60 // 11) + 1), rate, format="WAV", subtype="PCM_16")
    audio = clip.read_bytes()
    # the first run ends the job, which deletes its checkpoints: kept, as a killed process leaves them
    setattr(ckpt, "remove", lambda folder: None)  # noqa: B010 (this process only)
    plans: list[Any] = []
    real = JobTranslation._plan

    def spied(self: JobTranslation, job: Any, point: Any) -> Any:
        plans.append(plan := real(self, job, point))
        return plan

    setattr(JobTranslation, "_plan", spied)  # noqa: B010 (this process only)
    asyncio.run(_resume(work / "jobs", audio, checkpoints, plans))


async def _resume(jobs_dir: Path, audio: bytes, checkpoints: bool = True, plans: list[Any] | None = None) -> None:
    body = {"source_language": "eng", "target_languages": ["spa"], "speech": False}
    t0, c0 = time.monotonic(), _cpu()
    async with serving(_settings(jobs_dir), warmup=False, runner_factory=FakeRunner) as live:
        async with aiohttp.ClientSession() as http:
            jobs = JobsOverHttp(http, live.server.ports()["http_port"], "")
            done = await jobs.run(body, audio)
            whole = await jobs.segments(done["id"])
    print(f"uninterrupted: {len(whole)} segments, {time.monotonic() - t0:.1f} s wall, {_cpu() - c0:.1f} s CPU")
    k = len(whole) - 3
    db = sqlite3.connect(jobs_dir / "jobs.sqlite3")
    db.execute("DELETE FROM segments WHERE job_id = ? AND seq >= ?", (done["id"], k))
    db.execute(
        "UPDATE jobs SET state = 'running', segments = ?, done_ms = ?, owner = 'dead', lease = 0, expires = 0 "
        "WHERE id = ?",
        (k, whole[k - 1]["end_ms"], done["id"]),
    )
    db.commit()
    db.close()
    (jobs_dir / "jobs" / done["id"] / "audio").write_bytes(audio)
    if not checkpoints:
        (jobs_dir / "jobs" / done["id"] / ckpt.FILE).unlink(missing_ok=True)
    t0, c0 = time.monotonic(), _cpu()
    async with serving(_settings(jobs_dir), warmup=False, runner_factory=FakeRunner) as live:
        async with aiohttp.ClientSession() as http:
            jobs = JobsOverHttp(http, live.server.ports()["http_port"], "")
            await jobs.finished(done["id"])
            again = await jobs.segments(done["id"])
    wall, cpu = time.monotonic() - t0, _cpu() - c0
    equal = [(s["start_ms"], s["end_ms"]) for s in again] == [(s["start_ms"], s["end_ms"]) for s in whole]
    print(f"resumed at {whole[k - 1]['end_ms'] / 1000:.0f} s: {wall:.1f} s wall, {cpu:.1f} s CPU; equal: {equal}")
    if plans:
        plan = plans[-1]
        rate = plan.blocks.rate
        print(
            f"replayed before the point: {plan.lead_ms / 1000:.2f} s heard by the VAD, "
            f"{plan.skip / rate:.2f} s of pre-roll resampled only (from a checkpoint: {plan.checkpoint is not None})"
        )


if __name__ == "__main__":
    app()
