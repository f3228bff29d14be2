"""A job's speaker labels over all of its runs (issue 91): each stored segment's voice is kept in
the job's folder, so the run that reaches the file's end labels every segment of every run at once
(a job resumed after a restart, or after giving its worker back, numbers its speakers as one
file would), in the store and on the transcript's words, in either store (SQLite, and Redis on a
real ``redis-server``); a record torn by a killed process is left out."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from tests.support.redis_server import RedisServer, redis_server
from tests.support.waiting import until
from translate_svc.jobs.keeper import JobKeeper
from translate_svc.jobs.model import JobSpec, JobState, segment_json
from translate_svc.jobs.redis_store import RedisJobs
from translate_svc.jobs.store import JobStore
from translate_svc.jobs.voices import FILE, JobVoices
from translate_svc.session.stream.speakers import SpeakerLabels
from translate_svc.speakers.encoder import Embedding
from translate_svc.types import Segment, SegmentResult, Transcript, WordTiming

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="function")]

POOL = ThreadPoolExecutor(1, thread_name_prefix="test-job-voices")


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest_asyncio.fixture(params=["sqlite", "redis"], loop_scope="function")
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobKeeper]:
    if request.param == "sqlite":
        kept: JobKeeper = JobStore(tmp_path)
    else:
        redis = request.getfixturevalue("redis")
        kept = RedisJobs(tmp_path, redis.url, None, prefix=f"test-{secrets.token_hex(4)}:")
    await kept.start()
    try:
        yield kept
    finally:
        await kept.close()


class AxisEncoder:
    """A segment's voice is the axis its first sample names."""

    def embed(self, samples: np.ndarray) -> Embedding:
        v = np.zeros(256, np.float32)
        v[int(samples[0])] = 1.0
        return Embedding(v, v[None, :])


async def run(store: JobKeeper, job_id: str, voices: list[int], first_seq: int) -> list[int]:
    """One run of the job: its session's segments 0.. (voices on those axes), labelled as a stream
    labels them and stored as the job's ``first_seq``...; the labels as stored."""
    labels = SpeakerLabels(2, lambda: None, POOL, AxisEncoder())  # type: ignore[arg-type]
    kept = JobVoices(store.folder(job_id) / FILE, labels)
    told = []
    for n, axis in enumerate(voices):
        samples = np.zeros(32000, np.float32)
        samples[0] = axis
        seg = Segment(n, n * 3000, n * 3000 + 2000, samples)
        labels.segment_closed(seg)
        await until(lambda n=n: labels.ready(n))  # type: ignore[misc]
        words = (WordTiming("hello", seg.start_ms, seg.end_ms),)
        result = labels.label(SegmentResult(n, seg.start_ms, seg.end_ms, Transcript("eng", "hello", words)))
        seq = first_seq + n
        await store.add_segment(job_id, seq, segment_json(result, segment_id=seq), {}, 16000)
        kept.stored(n, seq)
        told.append(result.speaker)
    if first_seq + len(voices) == 8:
        await kept.relabel(store, job_id, POOL)
    return told


async def test_every_runs_segments_are_labelled_as_one_file(store: JobKeeper) -> None:
    job = await store.create("t", JobSpec(target_languages=("spa",)), JobState.RUNNING)
    # the second run starts with the other voice: on its own it would call that one speaker 1
    assert await run(store, job.job_id, [5, 9, 5, 9], 0) == [1, 2, 1, 2]
    assert await run(store, job.job_id, [9, 5, 9, 5], 4) == [1, 2, 1, 2]
    stored = await store.segments(job.job_id)
    assert [s["speaker"] for s in stored] == [1, 2, 1, 2, 2, 1, 2, 1]
    assert all(w["speaker"] == s["speaker"] for s in stored for w in s["transcript"]["words"])
    assert not (store.folder(job.job_id) / FILE).exists()  # written: the voices are gone


async def test_a_torn_record_is_left_out(store: JobKeeper) -> None:
    job = await store.create("t", JobSpec(target_languages=("spa",)), JobState.RUNNING)
    await run(store, job.job_id, [5, 9, 5, 9], 0)
    path = store.folder(job.job_id) / FILE
    path.write_bytes(path.read_bytes() + b"\x07" * 100)  # a process killed mid-write
    await run(store, job.job_id, [9, 5, 9, 5], 4)
    assert [s["speaker"] for s in await store.segments(job.job_id)] == [1, 2, 1, 2, 2, 1, 2, 1]
