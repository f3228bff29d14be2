"""A URL job's fetch survives its server's death (issue 73): the job is queued at once with its URL,
and the runner that claims it fetches it under the job's lease, so a ``translate-svc serve`` killed
(SIGKILL) mid-fetch leaves the job ``running``, never ``uploading``: the server started again on the
same ``jobs.dir`` claims it, fetches it again from the start and finishes it. A fetch that fails
(HTTP 404, a body over ``jobs.max_upload_bytes``) fails its job with the fetch's reason; an ended
job keeps none of its audio (issue 87). Real
processes (their fetches allowed to a media server on loopback: ``tests/support/loopback_fetch.py``),
the test checkpoint, jfk.flac."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.support.loopback_fetch import Media, serve_prefix
from tests.support.server_process import ServerProcess
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow(90)]


@pytest_asyncio.fixture
async def media(shared_audio: Path, tmp_path: Path) -> AsyncIterator[Media]:
    m = Media((shared_audio / "jfk.flac").read_bytes(), tmp_path / "ca.pem")
    await m.start()
    yield m
    await m.close()


def start(
    model: Path, jobs_dir: Path, ca_pem: Path, started: list[ServerProcess], **jobs: str
) -> tuple[ServerProcess, str]:
    """A server whose jobs fetch from ``localhost`` (loopback and the test CA allowed); its jobs' URL."""
    prefix, env = serve_prefix(ca_pem)
    env |= {
        "TRANSLATE_SVC_JOBS__DIR": str(jobs_dir),
        "TRANSLATE_SVC_JOBS__FETCH_HOSTS": '["localhost"]',
        "TRANSLATE_SVC_JOBS__LEASE_S": "2",  # a killed process's job is claimed again 2 s on
        "TRANSLATE_SVC_SERVER__METRICS_PORT": "0",
    }
    env |= {f"TRANSLATE_SVC_JOBS__{k.upper()}": v for k, v in jobs.items()}
    args = ["--model", str(model), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"]
    server = ServerProcess(args, env=env, prefix=prefix)
    started.append(server)
    return server, f"http://127.0.0.1:{server.info.http_port}/v1/jobs"


def stored_state(jobs_dir: Path, job_id: str) -> str:
    db = sqlite3.connect(jobs_dir / "jobs.sqlite3")
    try:
        (state,) = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
    finally:
        db.close()
    return str(state)


async def finished(http: aiohttp.ClientSession, base: str, job_id: str, seen: list[str]) -> dict[str, Any]:
    while True:
        async with http.get(f"{base}/{job_id}?wait=60") as r:
            assert r.status == 200, await r.text()
            job = await r.json()
        seen.append(job["state"])
        if job["state"] in ("done", "failed", "cancelled"):
            return dict(job)


async def test_a_server_killed_mid_fetch_leaves_its_job_to_the_next_which_fetches_it_again_and_finishes(
    test_model_dir: Path, tmp_path: Path, media: Media, servers: list[ServerProcess]
) -> None:
    jobs_dir, ca_pem = tmp_path / "jobs", tmp_path / "ca.pem"
    # started on a thread: the media server answers on this loop meanwhile
    first, base = await asyncio.to_thread(start, test_model_dir, jobs_dir, ca_pem, servers)
    seen: list[str] = []  # every state the job's status showed
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        body = {"source_language": "eng", "target_languages": ["spa"], "url": media.url("held.flac")}
        async with http.post(base, json=body) as r:
            assert r.status == 202, await r.text()
            job = await r.json()
        seen.append(job["state"])
        job_id = job["id"]

        async def fetching() -> bool:  # the first half came, the rest is held
            async with http.get(f"{base}/{job_id}") as r:
                seen.append((await r.json())["state"])
            return media.halves_sent >= 1

        await eventually(fetching, "the first server fetching the job's audio", deadline_s=60)
        assert media.held_requests == 1
        first.proc.kill()  # SIGKILL mid-fetch: no drain, no goodbye
        first.proc.wait()
        # the job as the killed process left it: its claimant's, to be claimed again
        left = stored_state(jobs_dir, job_id)
        assert left == "running", f"the killed server left the job {left!r}"

        second, base = await asyncio.to_thread(start, test_model_dir, jobs_dir, ca_pem, servers)

        async def fetched_again() -> bool:  # from the start: a new request for the whole file
            async with http.get(f"{base}/{job_id}") as r:
                seen.append((await r.json())["state"])
            return media.halves_sent >= 2

        await eventually(fetched_again, "the second server fetching the job again", deadline_s=60)
        media.release.set()
        done = await finished(http, base, job_id, seen)
        assert done["state"] == "done", done["error"]
        assert done["received_bytes"] == len(media.clip) and done["duration_ms"] == 11_000
        async with http.get(f"{base}/{job_id}/results") as r:
            segments = (await r.json())["segments"]
        assert len(segments) == done["segments"] > 0
        assert media.held_requests == 2
    assert "uploading" not in seen, seen
    assert set(seen) <= {"queued", "running", "done"}, seen
    # the whole audio was received (above: received_bytes); done, it is deleted and nothing of
    # either fetch is left, only the results (issue 87): its speech, the audio's length (issue 91)
    # and the fetched file's SHA-256 (its files' content credentials name it: issue 103)
    kept = sorted(p.name for p in (jobs_dir / "jobs" / job_id).iterdir())
    assert kept == ["digest.json", "source.json", "spa.pcm"], kept
    second.stop()


async def test_a_fetch_that_fails_fails_its_job_with_the_fetchs_reason(
    test_model_dir: Path, tmp_path: Path, media: Media, servers: list[ServerProcess]
) -> None:
    jobs_dir, ca_pem = tmp_path / "jobs", tmp_path / "ca.pem"
    limit = len(media.clip) // 2
    server, base = await asyncio.to_thread(
        start, test_model_dir, jobs_dir, ca_pem, servers, max_upload_bytes=str(limit)
    )
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        says = {
            "missing.flac": "fetching url answered HTTP 404: check that the URL works",
            # chunked, no Content-Length: counted as it comes, refused past the limit
            "clip.flac": f"the audio at url is over this server's {limit}-byte limit for a job (jobs.max_upload_bytes)",
        }
        ids = {}
        for path in says:
            body = {"source_language": "eng", "target_languages": ["spa"], "url": media.url(path)}
            async with http.post(base, json=body) as r:
                assert r.status == 202, await r.text()
                job = await r.json()
            assert job["state"] == "queued"
            ids[path] = job["id"]
        for path, reason in says.items():
            seen: list[str] = []
            done = await finished(http, base, ids[path], seen)
            assert done["state"] == "failed" and done["error"] == reason, done
            assert done["received_bytes"] == 0 and done["duration_ms"] == 0
            # nothing of the fetch is left, nor the job's (empty) audio: it ended (issue 87)
            assert sorted(p.name for p in (jobs_dir / "jobs" / ids[path]).iterdir()) == []
    await asyncio.to_thread(server.stop)
