"""Damaged videos are refused (4xx) or translated, never a 500 (docs/security.md, "Hardening 7:
untrusted media", K5): an MP4 and a WebM written by PyAV (jfk.flac's speech under small frames),
each damaged from a fixed seed (``hostile_media.mutations``: a truncation, or up to eight bytes set
at random within the part of the file that states its streams), uploaded as jobs: each
``complete`` is 202 or 400, each job taken ends ``done`` or ``failed`` saying why in the file's
words (never "internal error"), and no traceback is logged. Before, two of these MP4s and one of
these WebMs were 500 with a traceback (a byte set in the video's codec: ``codec_context`` None,
``AttributeError`` in the probe); the seeds and counts are the ones that found them.

A real server on loopback with a fake model (its words do not matter here), the jobs API over
aiohttp."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support import hostile_media, videos
from tests.support.fake_runner import FakeRunner
from tests.support.jobs import JobsOverHttp, fresh_connections
from tests.support.live_server import make_settings, serving
from tests.support.stepped_call import NO_MODEL

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

#: (container, seed, how many damaged copies)
CASES = [("mp4", 2, 12), ("webm", 0, 18)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def jobs(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[JobsOverHttp]:
    settings = make_settings(NO_MODEL)
    settings.server.http_port = 0
    settings.jobs.dir = tmp_path_factory.mktemp("damaged") / "jobs"
    settings.jobs.quiet_wait_s = 0
    settings.jobs.max_jobs_per_tenant = 1000
    async with serving(settings, warmup=False, runner_factory=FakeRunner) as live, fresh_connections() as http:
        yield JobsOverHttp(http, live.server.ports()["http_port"], "")


@pytest.mark.parametrize(("kind", "seed", "count"), CASES)
async def test_a_damaged_video_is_refused_or_translated_never_a_500(
    jobs: JobsOverHttp, shared_audio: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str, seed: int,
    count: int,
) -> None:  # fmt: skip
    source = await asyncio.to_thread(
        videos.write_video, tmp_path / f"clip.{kind}", shared_audio / "jfk.flac", seconds=2
    )
    data = source.read_bytes()
    caplog.set_level(logging.ERROR)
    seen: list[tuple[str, int, str]] = []
    for what, damaged in hostile_media.mutations(data, count, seed, hostile_media.header_span(data)):
        status, job = await jobs.call("POST", json={"source_language": "eng", "target_languages": ["spa"]})
        assert status == 201, job
        status, got = await jobs.call("PUT", f"/{job['id']}/audio", data=damaged)
        assert status == 200, got
        status, got = await jobs.call("POST", f"/{job['id']}/complete")
        said = got["error"]["message"] if isinstance(got, dict) and status >= 400 else str(got)[:100]
        if status == 202:
            ended = await jobs.finished(job["id"])
            said = f"{ended['state']}: {ended['error']}"
            assert ended["state"] in ("done", "failed") and "internal error" not in ended["error"], (what, ended)
        seen.append((what, status, said[:100]))
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]
    print(f"\n{kind} seed {seed}: " + "; ".join(f"{status} {said}" for _, status, said in seen))
    assert all(status in (202, 400) for _, status, _ in seen), seen
    assert not tracebacks, tracebacks
