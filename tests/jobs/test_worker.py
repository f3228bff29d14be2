"""Background jobs' runner (issue 73) in a real server on loopback with the test checkpoint: a job's
results equal ``TranslateChunked``'s on the same audio, its dubbed track holds each segment's speech
at its place, cancel ends it, and bad audio fails it with why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.jobs import TARGETS, chunked_segments, ended, job_segments, submit
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import clip_chunks
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.jobs.model import JobSpec, JobState
from translate_svc.jobs.store import TRACK_WIDTH
from translate_svc.jobs.worker import JobWorker
from translate_svc.types import AudioEncoding

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(40)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.jobs.dir = tmp_path_factory.mktemp("jobs")
    async with serving(settings) as live:
        yield live


def runner_of(live: LiveServer) -> JobWorker:
    runner = live.server.app.jobs
    assert runner is not None
    return runner


async def test_a_jobs_results_equal_translate_chunked_on_the_same_audio(live: LiveServer, shared_audio: Path) -> None:
    audio = (shared_audio / "jfk.flac").read_bytes()
    runner = runner_of(live)
    job_id = await submit(runner, audio, JobSpec(source_language="eng", target_languages=TARGETS))
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=audio, format=pb.AudioFormat(encoding=pb.CONTAINER)),
        source_language="eng",
        target_languages=list(TARGETS),
        output=pb.OutputOptions(text=True, speech=True, transcript=True, word_timings=True),
    )
    reply = await live.stub.TranslateChunked(clip_chunks(request, 64 * 1024), timeout=300)
    job = await ended(runner, job_id)
    assert job.state is JobState.DONE, job.error
    results = await runner.store.segments(job_id)
    assert len(results) == len(reply.segments) > 0
    assert job_segments(results) == chunked_segments(reply)
    assert [r["segment_id"] for r in results] == [s.segment_id for s in reply.segments]
    # the transcript's words, on the job's timeline as on the clip's
    assert [[w["start_ms"] for w in r["transcript"]["words"]] for r in results] == [
        [w.start_ms for w in s.transcript.words] for s in reply.segments
    ]
    assert job.segments == len(results) and job.done_ms == results[-1]["end_ms"]
    # each target's speech: every segment's, one after another (the dubbed track is made of it
    # when fetched: tests/jobs/test_dubbed_track.py), and the audio's exact length for it
    for lang in TARGETS:
        size = runner.store.track_path(job_id, lang).stat().st_size
        said = [t["audio_samples"] for r in results for t in r["translations"] if t["target_language"] == lang]
        assert size == sum(said) * TRACK_WIDTH and all(said)
    assert runner.store.source_length(job_id) == (11 * 44100, 44100)


async def test_audio_the_server_cannot_read_fails_the_job_saying_why(live: LiveServer) -> None:
    runner = runner_of(live)
    job_id = await submit(runner, b"not audio at all" * 64, JobSpec(source_language="eng", target_languages=("spa",)))
    job = await ended(runner, job_id)
    assert job.state is JobState.FAILED
    assert "not an audio file" in job.error


async def test_raw_samples_with_an_odd_byte_count_fail_saying_so(live: LiveServer) -> None:
    runner = runner_of(live)
    spec = JobSpec(AudioEncoding.LINEAR16, 16000, 1, "eng", ("spa",))
    job_id = await submit(runner, bytes(16001), spec)
    job = await ended(runner, job_id)
    assert job.state is JobState.FAILED and "whole number" in job.error


async def test_a_cancelled_job_stops_and_says_so(live: LiveServer, shared_audio: Path) -> None:
    runner = runner_of(live)
    audio = (shared_audio / "jfk.flac").read_bytes()
    job_id = await submit(runner, audio, JobSpec(source_language="eng", target_languages=TARGETS))
    job = await runner.cancel(await runner.store.get(job_id))
    assert job.state is JobState.CANCELLED and job.expires_at > job.updated_at
    assert (await runner.wait(job_id, 1)).state is JobState.CANCELLED
