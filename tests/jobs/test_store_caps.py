"""Issue 87: both job stores (SQLite on one node, two processes over one file; Redis across pods,
a real ``redis-server``) check a tenant's caps with the change they count, and claim fairly.

- ``jobs=``: 20 creates at once over two processes make one job under ``max_jobs=1``;
- ``job_hours=``: a length over the tenant's hours is refused, the others' counted;
- bytes: a part over what the tenant's jobs may keep is refused; what is kept goes down as a job's
  audio and the job are deleted; a part sent again at an old offset is refused, nothing written;
- claims: the tenant served least recently first, then the oldest job; a job given back ``until``
  a time waits for it; a URL job not yet fetched goes to the fetch stage only; ``others_waiting``
  sees another tenant's job waiting for a worker.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.redis_server import RedisServer, redis_server
from translate_svc.errors import Conflict
from translate_svc.jobs.keeper import JobKeeper
from translate_svc.jobs.model import JobSpec, JobState
from translate_svc.jobs.redis_store import RedisJobs
from translate_svc.jobs.store import JobStore, TenantFull

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

SPEC = JobSpec(target_languages=("spa",))
URL_SPEC = JobSpec(target_languages=("spa",), url="https://media.example.org/a.flac")
LEASE = 1000.0  # no lease lapses within a test


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest_asyncio.fixture(params=["sqlite", "redis"])
async def stores(request: pytest.FixtureRequest, redis: RedisServer, tmp_path: Path) -> AsyncIterator[list[JobKeeper]]:
    """Two processes' stores over one node's file, or two pods' over one Redis (and one shared dir)."""
    made: list[JobKeeper]
    if request.param == "sqlite":
        made = [JobStore(tmp_path), JobStore(tmp_path)]
    else:
        prefix = f"test-{secrets.token_hex(4)}:"
        made = [RedisJobs(tmp_path, redis.url, None, prefix=prefix) for _ in range(2)]
    for s in made:
        await s.start()
    yield made
    for s in made:
        await s.close()


async def part(store: JobKeeper, job_id: str, data: bytes) -> Path:
    path = store.part_path(job_id)
    await asyncio.to_thread(path.write_bytes, data)
    return path


async def test_simultaneous_creates_over_two_processes_make_one_job_under_max_jobs_1(stores: list[JobKeeper]) -> None:
    a, b = stores
    got = await asyncio.gather(
        *(s.create("t", SPEC, JobState.UPLOADING, max_jobs=1) for _ in range(10) for s in (a, b)),
        return_exceptions=True,
    )
    made = [g for g in got if not isinstance(g, BaseException)]
    refused = [g for g in got if isinstance(g, TenantFull)]
    assert len(made) == 1 and len(refused) == 19, got
    assert {r.what for r in refused} == {"jobs"} and {r.have for r in refused} == {1}
    assert await b.create("other", SPEC, JobState.UPLOADING, max_jobs=1)  # another tenant's count


async def test_hours_are_checked_with_the_length(stores: list[JobKeeper]) -> None:
    a, b = stores
    first = await a.create("t", SPEC, JobState.UPLOADING)
    second = await b.create("t", SPEC, JobState.UPLOADING)
    await a.set_duration(first.job_id, 1_800_000, max_hours=1.0)  # half an hour
    with pytest.raises(TenantFull) as full:
        await b.set_duration(second.job_id, 2_400_000, max_hours=1.0)  # 40 minutes more: over an hour
    assert full.value.what == "hours" and full.value.have == pytest.approx(0.5)
    await b.set_duration(second.job_id, 1_800_000, max_hours=1.0)  # another half hour: just within


async def test_parts_are_checked_against_the_bytes_kept_and_deleting_frees_them(stores: list[JobKeeper]) -> None:
    a, b = stores
    job = await a.create("t", SPEC, JobState.UPLOADING)
    first = await part(a, job.job_id, b"\1" * 1000)
    assert await a.append_part(job, 0, first, 10_000, max_bytes=1500) == 1000
    with pytest.raises(Conflict):  # sent again at its offset: nothing written twice
        await b.append_part(job, 0, first, 10_000, max_bytes=1500)
    with pytest.raises(TenantFull) as full:
        await b.append_part(job, 1000, await part(b, job.job_id, b"\2" * 1000), 10_000, max_bytes=1500)
    assert full.value.what == "bytes" and full.value.have == 1000
    assert a.audio_path(job.job_id).read_bytes() == b"\1" * 1000
    assert await b.kept_bytes("t") == 1000
    with pytest.raises(TenantFull):
        await b.create("t", SPEC, JobState.UPLOADING, max_bytes=1000)
    await b.set_state(job.job_id, JobState.CANCELLED)
    with pytest.raises(Conflict):  # a part to a job no longer uploading
        await a.append_part(await a.get(job.job_id), 1000, first, 10_000)
    await a.drop_audio(job.job_id)
    assert not a.audio_path(job.job_id).exists() and await b.kept_bytes("t") == 0
    await b.create("t", SPEC, JobState.UPLOADING, max_bytes=1000)


async def test_claims_are_fair_across_tenants_and_by_stage(stores: list[JobKeeper]) -> None:
    a, b = stores
    a1 = await a.create("a", SPEC, JobState.QUEUED)
    a2 = await a.create("a", SPEC, JobState.QUEUED)
    fetching = await a.create("a", URL_SPEC, JobState.QUEUED)
    b1 = await b.create("b", SPEC, JobState.QUEUED)
    assert await a.claim("A", 100.0, LEASE, 1) == [a1.job_id]  # nobody served yet: the oldest
    assert await b.others_waiting("a", 100.5)  # b's job waits for a worker
    assert await b.claim("B", 101.0, LEASE, 1) == [b1.job_id]  # b served less recently than a
    assert not await b.others_waiting("a", 101.5)
    await b.release("B", b1.job_id, until=150.0)  # given back until 150
    assert await b.claim("B", 102.0, LEASE, 4) == [a2.job_id]  # not b1 (nor the URL job: not fetched)
    assert await b.claim("B", 149.0, LEASE, 4) == []
    assert await b.claim("B", 150.5, LEASE, 4) == [b1.job_id]
    assert await a.claim("A", 151.0, LEASE, 4, fetch=True) == [fetching.job_id]
    await a.set_duration(fetching.job_id, 11_000)
    await a.release("A", fetching.job_id)
    assert await b.claim("B", 152.0, LEASE, 4) == [fetching.job_id]  # fetched: the translators'
