"""Background jobs through the ``Jobs`` gRPC service (issue 73): the SDK submits
a clip in parts, follows its progress, fetches results equal to ``TranslateChunked``'s, subtitles
and a dubbed track; the CLI's ``job submit --wait``, ``status`` and ``fetch``; precise refusals.
A real server on loopback with the test checkpoint."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import soundfile as sf

from tests.support.cli import run_cli
from tests.support.jobs import TARGETS, chunked_segments, job_segments
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import clip_chunks
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client import AsyncTranslateClient, Job, JobState, TranslateError

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.jobs.dir = tmp_path_factory.mktemp("jobs-grpc")
    async with serving(settings) as live:
        yield live


async def reference(live: LiveServer, clip: bytes) -> pb.TranslateResponse:
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=clip, format=pb.AudioFormat(encoding=pb.CONTAINER)),
        source_language="eng",
        target_languages=list(TARGETS),
        output=pb.OutputOptions(text=True, speech=True, transcript=True, word_timings=True),
    )
    return await live.stub.TranslateChunked(clip_chunks(request, 64 * 1024), timeout=300)


async def test_the_sdk_submits_follows_and_fetches_a_job(live: LiveServer, shared_audio: Path, tmp_path: Path) -> None:
    jfk = shared_audio / "jfk.flac"
    sent: list[int] = []
    seen: list[Job] = []
    async with AsyncTranslateClient(f"127.0.0.1:{live.port}") as client:
        job = await client.submit_job(jfk, targets=TARGETS, source="eng", on_sent=sent.append)
        assert job.state in (JobState.QUEUED, JobState.RUNNING, JobState.DONE) and job.duration_ms == 11_000
        assert sent[-1] == jfk.stat().st_size
        done = await client.wait_job(job.id, on_progress=seen.append)
        assert done.state is JobState.DONE and done.progress == 1.0 and seen[-1] == done
        doc = json.loads(await client.job_results(job.id))
        assert job_segments(doc["segments"]) == chunked_segments(await reference(live, jfk.read_bytes()))
        vtt = (await client.job_results(job.id, "vtt", "spa")).decode()
        assert vtt.startswith("WEBVTT")
        size = await client.save_job_results(job.id, tmp_path / "spa.wav", "wav", "spa")
        samples, rate = sf.read(tmp_path / "spa.wav", dtype="int16")
        assert rate == 16000 and size == 44 + 2 * len(samples) and len(samples) > 0
        with pytest.raises(TranslateError) as e:
            await client.job_results(job.id, "srt", "deu")
        assert e.value.code.name == "INVALID_ARGUMENT" and "job's targets" in e.value.message
        with pytest.raises(TranslateError) as e:
            await client.get_job("job_nope")
        assert e.value.code.name == "NOT_FOUND"
        with pytest.raises(TranslateError) as e:
            await client.submit_job(url="http://example.org/a.flac", targets=["spa"], source="eng")
        assert e.value.code.name == "INVALID_ARGUMENT" and "jobs.fetch_hosts is empty" in e.value.message


async def test_a_job_cancelled_through_the_sdk_says_so(live: LiveServer, shared_audio: Path) -> None:
    async with AsyncTranslateClient(f"127.0.0.1:{live.port}") as client:
        job = await client.submit_job(shared_audio / "jfk.flac", targets=["spa"], source="eng")
        job = await client.cancel_job(job.id)
        assert job.state in (JobState.CANCELLED, JobState.DONE)
        if job.state is JobState.CANCELLED:
            assert job.error == "cancelled by its owner"


async def test_the_cli_submits_with_a_progress_bar_then_fetches(
    live: LiveServer, shared_audio: Path, tmp_path: Path
) -> None:
    server = f"127.0.0.1:{live.port}"
    jfk = shared_audio / "jfk.flac"
    run = await asyncio.to_thread(
        run_cli, "job", "submit", jfk, "--to", "spa", "--from", "eng", "--wait", "--json", "--server", server,
        process=True, timeout=300,
    )  # fmt: skip
    assert run.code == 0, run.err
    job = json.loads(run.out)
    assert job["state"] == "done" and job["progress"] == 1.0
    status = await asyncio.to_thread(run_cli, "job", "status", job["id"], "--server", server, process=True)
    assert status.code == 0 and "done" in status.out
    srt = tmp_path / "out.srt"
    got = await asyncio.to_thread(
        run_cli, "job", "fetch", job["id"], "--format", "srt", "--language", "spa", "-o", srt, "--server", server,
        process=True,
    )  # fmt: skip
    assert got.code == 0, got.err
    assert srt.read_text().count(" --> ") == job["segments"] or job["segments"] > 0
    wav = await asyncio.to_thread(
        run_cli, "job", "fetch", job["id"], "--format", "wav", "--server", server, process=True
    )
    assert wav.code == 2 and "--language" in wav.err
