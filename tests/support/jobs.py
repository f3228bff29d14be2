"""What the jobs' tests share (issue 73): the targets they ask for, a ``TranslateChunked`` answer
and a job's stored segments in one comparable shape (times, texts, speech lengths), a long clip of
real speech, a server's jobs address and metric, a job submitted to a runner and awaited, and a job
made and followed by a client over either port (issue 91)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import soundfile as sf

from tests.support.server_process import ServerProcess
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.jobs.model import JobSpec, JobState, JobStatus
from translate_svc.jobs.store import StoreLost
from translate_svc.jobs.worker import JobWorker

TARGETS = ("spa", "fra")


def chunked_segments(response: pb.TranslateResponse) -> list[dict[str, Any]]:
    return [
        {
            "start_ms": s.start_ms,
            "end_ms": s.end_ms,
            "transcript": s.transcript.text,
            "translations": [(t.target_language, t.text, len(t.audio.content) // 2) for t in s.translations],
        }
        for s in response.segments
    ]


def job_segments(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "start_ms": r["start_ms"],
            "end_ms": r["end_ms"],
            "transcript": r["transcript"]["text"],
            "translations": [(t["target_language"], t["text"], t["audio_ms"] * 16) for t in r["translations"]],
        }
        for r in results
    ]


REPEATS = 16  # 176 s of audio: many segments, so the kill lands mid-job


def long_clip(shared_audio: Path, out: Path, repeats: int = REPEATS) -> Path:
    """jfk.flac ``repeats`` times (11 s each) as one WAV."""
    samples, rate = sf.read(shared_audio / "jfk.flac", dtype="int16")
    sf.write(out, np.tile(samples, (repeats, 1)), rate, format="WAV", subtype="PCM_16")
    return out


def killed_after(jobs_dir: Path, job_id: str, k: int, done_ms: int, audio: bytes) -> None:
    """The job as a process killed after storing its k-th segment leaves it, its lease lapsed."""
    db = sqlite3.connect(jobs_dir / "jobs.sqlite3")
    try:
        db.execute("DELETE FROM segments WHERE job_id = ? AND seq >= ?", (job_id, k))
        db.execute(
            "UPDATE jobs SET state = 'running', segments = ?, done_ms = ?, owner = 'dead', lease = 0, expires = 0 "
            "WHERE id = ?",
            (k, done_ms, job_id),
        )
        db.commit()
    finally:
        db.close()
    (jobs_dir / "jobs" / job_id / "audio").write_bytes(audio)  # deleted when the job ended


def base(server: ServerProcess) -> str:
    return f"http://127.0.0.1:{server.info.http_port}/v1/jobs"


async def job_segments_metric(http: aiohttp.ClientSession, server: ServerProcess) -> float:
    async with http.get(f"http://127.0.0.1:{server.info.metrics_port}/metrics") as r:
        text = await r.text()
    line = next(line for line in text.splitlines() if line.startswith("translate_svc_job_segments_total "))
    return float(line.split()[1])


async def upload(runner: JobWorker, job: JobStatus, audio: bytes) -> None:
    """``audio`` as the job's one part, received whole (as the doors write a part to a file)."""
    part = runner.store.part_path(job.job_id)
    part.write_bytes(audio)
    try:
        await runner.store.append_part(job, 0, part, 1 << 30)
    finally:
        part.unlink()


async def submit(runner: JobWorker, audio: bytes, spec: JobSpec) -> str:
    job = await runner.store.create("default", spec, JobState.UPLOADING)
    await upload(runner, job, audio)
    await runner.store.set_duration(job.job_id, 11_000)
    await runner.store.set_state(job.job_id, JobState.QUEUED)
    runner.enqueue(job.job_id)
    return job.job_id


async def ended(runner: JobWorker, job_id: str) -> JobStatus:
    """The job once it has ended (``wait`` returns at each change). A store that did not answer in
    time (``StoreLost``: Redis slow or just back) is asked again after the wait it names, as the
    jobs API's clients do with its 503 and Retry-After."""
    while True:
        try:
            job = await runner.wait(job_id, 300)
        except StoreLost as e:
            await asyncio.sleep((e.retry_after_ms or 1000) / 1000)
            continue
        if job.state.finished:
            return job


def fresh_connections() -> aiohttp.ClientSession:
    """A client session that opens a connection per request. The server closes an idle keep-alive
    connection after ``limits.http_header_timeout_s`` (5 s: its keep-alive timer is the header
    timeout), aiohttp's client pools one for 15 s: a request sent on a pooled connection as the
    server closes it fails with ServerDisconnectedError (a POST is not retried). Seen in CI between
    two tests of a module that share a session, the second writing a video first (about 5 s under
    load). A module whose requests come seconds apart uses this."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


class JobsOverHttp:
    """The jobs API on a server's HTTP port as a client sees it (aiohttp), with ``token``."""

    def __init__(self, http: aiohttp.ClientSession, port: int, token: str) -> None:
        self.http, self.token = http, token
        self.base = f"http://127.0.0.1:{port}/v1/jobs"

    async def call(self, method: str, path: str = "", token: str | None = None, **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token or self.token}", **kw.pop("headers", {})}
        async with self.http.request(method, self.base + path, headers=headers, **kw) as r:
            if r.content_type == "application/json":
                return r.status, await r.json()
            return r.status, await r.read()

    async def run(self, body: dict[str, Any], audio: bytes) -> dict[str, Any]:
        """A job of ``body`` on ``audio`` (one part), once it ended."""
        status, job = await self.call("POST", json=body)
        assert status == 201, job
        status, got = await self.call("PUT", f"/{job['id']}/audio", data=audio)
        assert status == 200, got
        status, got = await self.call("POST", f"/{job['id']}/complete")
        assert status == 202, got
        return await self.finished(job["id"])

    async def finished(self, job_id: str) -> dict[str, Any]:
        while True:
            status, job = await self.call("GET", f"/{job_id}?wait=60")
            assert status == 200, job
            if job["state"] in ("done", "failed", "cancelled"):
                return dict(job)

    async def segments(self, job_id: str) -> list[dict[str, Any]]:
        status, doc = await self.call("GET", f"/{job_id}/results")
        assert status == 200, doc
        return list(doc["segments"])


async def grpc_job(stub: Any, request: pb.CreateJobRequest, audio: bytes, metadata: Any = ()) -> tuple[pb.Job, bytes]:
    """A job made with the ``Jobs`` gRPC service (``stub``: a ``JobsStub``), its audio uploaded in one
    message, followed until it ends: (the job, its results' JSON)."""
    job = await stub.CreateJob(request, metadata=metadata, timeout=30)

    async def parts() -> Any:
        yield pb.UploadJobAudioRequest(job_id=job.job_id, offset=0, data=audio, complete=True)

    await stub.UploadJobAudio(parts(), metadata=metadata, timeout=60)
    while job.state not in (pb.JOB_DONE, pb.JOB_FAILED, pb.JOB_CANCELLED):
        job = await stub.GetJob(pb.GetJobRequest(job_id=job.job_id, wait_ms=30_000), metadata=metadata, timeout=60)
    got = stub.GetJobResults(pb.GetJobResultsRequest(job_id=job.job_id), metadata=metadata, timeout=60)
    return job, b"".join([c.data async for c in got])
