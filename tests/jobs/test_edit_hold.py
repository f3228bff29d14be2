"""A done job held while its segments are edited (jobs/edits.py), in both stores: the one node's SQLite
and the pods' Redis (a real ``redis-server``, two pods over one Redis): one edit holds it at a time
until its lease lapses; the worker that ran the job, which gives it back just after its end, never
keeps an edit out; the edited results are written by the holder only, all at once, and the bytes
the job keeps grow by what they add; a job not done is never held."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from tests.support.redis_server import RedisServer, redis_server
from translate_svc.jobs.keeper import JobKeeper
from translate_svc.jobs.model import JobSpec, JobState
from translate_svc.jobs.redis_store import RedisJobs
from translate_svc.jobs.store import EDITING, JobStore, LeaseLost

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

LEASE = 10.0
SPEC = JobSpec(target_languages=("spa",))
EDIT_A, EDIT_B = f"pod-a{EDITING}1", f"pod-b{EDITING}2"


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest_asyncio.fixture(params=["sqlite", "redis"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[JobKeeper, JobKeeper]]:
    """Two processes' stores of one job store: one node's file, or two pods over one Redis."""
    if request.param == "sqlite":
        made: list[Any] = [JobStore(tmp_path), JobStore(tmp_path)]
    else:
        server = request.getfixturevalue("redis")
        prefix = f"test-{secrets.token_hex(4)}:"
        made = [RedisJobs(tmp_path, server.url, None, prefix=prefix) for _ in range(2)]
    for s in made:
        await s.start()
    try:
        yield made[0], made[1]
    finally:
        for s in made:
            await s.close()


def segment(k: int, text: str) -> dict[str, Any]:
    said = {"target_language": "spa", "text": text, "audio_samples": 160}
    return {"segment_id": k, "start_ms": 1000 * k, "end_ms": 1000 * k + 900, "translations": [said]}


async def done_job(store: JobKeeper, worker: str = "worker-1") -> str:
    job = await store.create("t", SPEC, JobState.QUEUED)
    assert await store.claim(worker, 100.0, LEASE, 1) == [job.job_id]
    await store.set_state(job.job_id, JobState.RUNNING)
    for k in range(3):
        await store.add_segment(job.job_id, k, segment(k, f"s{k}"), {"spa": np.zeros(160, np.float32)}, 16000, worker)
    await store.set_state(job.job_id, JobState.DONE, only_from=(JobState.RUNNING,))
    return job.job_id


async def test_one_edit_holds_a_done_job_at_a_time(stores: tuple[JobKeeper, JobKeeper]) -> None:
    a, b = stores
    job_id = await done_job(a)  # its worker has not given it back yet: it runs it no more
    assert await a.hold(EDIT_A, job_id, 101.0, LEASE)
    assert not await b.hold(EDIT_B, job_id, 105.0, LEASE)  # A's edit holds it
    await a.release("worker-1", job_id)  # the worker's give-back after the end: not its job now
    assert not await b.hold(EDIT_B, job_id, 106.0, LEASE)
    assert await a.renew(EDIT_A, [job_id], 120.0) == {job_id: JobState.DONE}
    assert not await b.hold(EDIT_B, job_id, 115.0, LEASE)  # renewed
    assert await b.hold(EDIT_B, job_id, 120.5, LEASE)  # A's edit stopped renewing: B edits
    with pytest.raises(LeaseLost):  # A's edit, late, writes nothing
        await a.edit_segments(EDIT_A, job_id, {1: segment(1, "late")}, 99)
    await b.release(EDIT_B, job_id)
    assert await a.hold(EDIT_A, job_id, 121.0, LEASE)  # given back: held at once
    assert await a.claim("worker-2", 121.0, LEASE, 4) == []  # a done job held for an edit is no worker's


async def test_the_holder_writes_every_edited_result_at_once(stores: tuple[JobKeeper, JobKeeper]) -> None:
    a, b = stores
    job_id = await done_job(a)
    kept = await a.kept_bytes("t")
    assert await b.hold(EDIT_B, job_id, 101.0, LEASE)
    await b.edit_segments(EDIT_B, job_id, {0: segment(0, "uno"), 2: segment(2, "tres")}, 500)
    assert [s["translations"][0]["text"] for s in await a.segments(job_id)] == ["uno", "s1", "tres"]
    assert await a.kept_bytes("t") == kept + 500
    other = await a.create("t", SPEC, JobState.QUEUED)
    assert not await a.hold(EDIT_A, other.job_id, 101.0, LEASE)  # not done: never held for an edit
