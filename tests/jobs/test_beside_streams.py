"""A live stream beside a long background job (issue 73) in a real server on loopback with the test
checkpoint: the stream's finals all arrive while the job runs (the job neither ends nor stops them),
every one of the job's segments reaches the engine's scheduler in its background class and none of
the stream's does. Structure, not timing: nothing here depends on how fast the machine is."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf

from tests.support.jobs import upload
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import stream_pcm, translate_file
from translate_svc.client_cli.decode import load_pcm16k
from translate_svc.engine.scheduler import BatchScheduler
from translate_svc.jobs.model import JobSpec, JobState
from translate_svc.jobs.worker import JobWorker

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

JOB_MINUTES = 10  # far longer than the stream: the job is still running when the stream ends


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.jobs.dir = tmp_path_factory.mktemp("jobs")
    async with serving(settings) as live:
        yield live


def long_wav(path: Path, minutes: float) -> tuple[bytes, int]:
    """``path`` repeated to ``minutes``, as a WAV; and its length in ms."""
    samples, rate = sf.read(path, dtype="int16", always_2d=True)
    reps = max(1, int(minutes * 60 * rate / len(samples)))
    buf = io.BytesIO()
    sf.write(buf, np.tile(samples, (reps, 1)), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue(), reps * len(samples) * 1000 // rate


async def test_a_live_streams_finals_all_arrive_while_a_long_job_runs(
    live: LiveServer, shared_audio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    classes: dict[str, set[bool]] = {}  # owner -> the classes its segments entered the scheduler in
    add = BatchScheduler.add

    def seen(self: BatchScheduler, job_id: int, owner: str, *args, **kw) -> None:  # type: ignore[no-untyped-def]
        if not kw.get("droppable"):
            classes.setdefault(owner, set()).add(bool(kw.get("background")))
        add(self, job_id, owner, *args, **kw)

    monkeypatch.setattr(BatchScheduler, "add", seen)
    runner = live.server.app.jobs
    assert isinstance(runner, JobWorker)
    audio, duration_ms = long_wav(shared_audio / "jfk.flac", JOB_MINUTES)
    job = await runner.store.create(
        "default", JobSpec(source_language="eng", target_languages=("spa",)), JobState.UPLOADING
    )
    await upload(runner, job, audio)
    await runner.store.set_duration(job.job_id, duration_ms)
    await runner.store.set_state(job.job_id, JobState.QUEUED)
    runner.enqueue(job.job_id)
    while (status := await runner.wait(job.job_id, 300)).segments < 1:  # the job is under way
        assert not status.state.finished, status.error
    job_owners = set(classes)

    pcm = load_pcm16k(shared_audio / "jfk.flac")
    trace = await stream_pcm(live.stub, pcm, ["spa"], source="eng", realtime=True, speech=False)

    during = await runner.store.get(job.job_id)
    assert during.state is JobState.RUNNING, during.error  # the job ran all along the stream
    await runner.cancel(during)
    # every final of the stream came, with its translation: as many as the same audio as one clip
    reply = await translate_file(live.stub, shared_audio / "jfk.flac", ["spa"], source="eng", speech=False)
    assert len(trace.segments) == len(reply.segments) > 0
    assert all(len(s.translations) == 1 for s in trace.segments)  # its translation (words: random weights)
    # the job's segments in the background class only, the stream's and the clip's never
    assert job_owners and all(classes[o] == {True} for o in job_owners)
    live_owners = set(classes) - job_owners
    assert live_owners and all(classes[o] == {False} for o in live_owners)
