"""The jobs' Redis store (issue 73, ``cluster.redis_url``), on a real ``redis-server``: two pods'
stores over one Redis and one shared ``jobs.dir`` never run one job at once; a lease not renewed
(its pod killed) is taken over, and the pod that lost it (or whose job was cancelled from another
pod) has its next segment refused; given back, at once; a segment's track bytes past what Redis
recorded are cut on resume; retention, tenants and caps as on one node (``test_store.py``)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.redis_server import RedisServer, redis_server
from translate_svc.errors import NotFound
from translate_svc.jobs.model import JobSpec, JobState
from translate_svc.jobs.redis_store import RedisJobs
from translate_svc.jobs.store import LeaseLost

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

LEASE = 10.0
SPEC = JobSpec(target_languages=("spa",))


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def pods(redis: RedisServer, root: Path, n: int = 2) -> list[RedisJobs]:
    """``n`` pods' stores: one Redis (keys of this test alone), one shared dir."""
    prefix = f"test-{secrets.token_hex(4)}:"
    return [RedisJobs(root, redis.url, None, prefix=prefix) for _ in range(n)]


async def test_one_job_is_leased_to_one_pod_until_its_lease_lapses(redis: RedisServer, tmp_path: Path) -> None:
    a, b = pods(redis, tmp_path)
    await a.start()
    await b.start()
    try:
        job = await a.create("t", SPEC, JobState.QUEUED)
        assert await b.claim("B", 100.0, LEASE, 4) == [job.job_id]  # any pod takes a job made on another
        await b.release("B", job.job_id)
        assert await a.claim("A", 100.0, LEASE, 4) == [job.job_id]  # given back: taken at once
        assert await b.claim("B", 105.0, LEASE, 4) == []  # A's lease holds
        assert await a.renew("A", [job.job_id], 115.0) == {job.job_id: JobState.QUEUED}
        assert await b.claim("B", 112.0, LEASE, 4) == []  # renewed
        assert await b.claim("B", 115.5, LEASE, 4) == [job.job_id]  # A stopped renewing: B takes over
        assert await a.renew("A", [job.job_id], 130.0) == {}  # and A learns it lost it
        await a.release("A", job.job_id)  # not A's: nothing happens
        assert await a.claim("A", 120.0, LEASE, 4) == []
        await b.set_state(job.job_id, JobState.DONE)
        assert await a.claim("A", 200.0, LEASE, 4) == []  # a finished job is nobody's
    finally:
        await a.close()
        await b.close()


async def test_a_segment_is_stored_once_and_only_by_the_lease_holder(redis: RedisServer, tmp_path: Path) -> None:
    a, b = pods(redis, tmp_path)
    await a.start()
    await b.start()
    try:
        job = await a.create("t", SPEC, JobState.RUNNING)
        assert await a.claim("A", 100.0, LEASE, 1) == [job.job_id]
        seg = {"segment_id": 0, "start_ms": 0, "end_ms": 1000, "translations": []}
        await a.add_segment(job.job_id, 0, seg, {"spa": np.zeros(160, np.float32)}, 16000, owner="A")
        with pytest.raises(LeaseLost):  # stored already
            await a.add_segment(job.job_id, 0, seg, {}, 16000, owner="A")
        assert await b.claim("B", 111.0, LEASE, 1) == [job.job_id]  # A's lease lapsed
        seg1 = {"segment_id": 1, "start_ms": 1000, "end_ms": 2000, "translations": []}
        with pytest.raises(LeaseLost):  # A, still running it, is refused
            await a.add_segment(job.job_id, 1, seg1, {}, 16000, owner="A")
        point = await b.resume_point(job.job_id)
        assert (point.segments, point.end_ms, point.last_segment_id) == (1, 1000, 0)
        await b.add_segment(job.job_id, 1, seg1, {}, 16000, owner="B")
        assert [s["segment_id"] for s in await a.segments(job.job_id)] == [0, 1]
        assert (await a.get(job.job_id)).segments == 2
        assert await a.set_state(job.job_id, JobState.CANCELLED)  # cancelled from another pod
        seg2 = {"segment_id": 2, "start_ms": 2000, "end_ms": 3000, "translations": []}
        with pytest.raises(LeaseLost):  # B, still running it, stores nothing more
            await b.add_segment(job.job_id, 2, seg2, {}, 16000, owner="B")
        assert (await a.get(job.job_id)).segments == 2
    finally:
        await a.close()
        await b.close()


async def test_resume_on_another_pod_cuts_track_bytes_past_the_last_segment(redis: RedisServer, tmp_path: Path) -> None:
    a, b = pods(redis, tmp_path)
    await a.start()
    await b.start()
    try:
        job = await a.create("t", SPEC, JobState.RUNNING)
        seg = {"segment_id": 0, "start_ms": 1000, "end_ms": 2000, "translations": []}
        tracks = await a.add_segment(job.job_id, 0, seg, {"spa": np.zeros(800, np.float32)}, 16000)
        # the speech alone, after the speech before it (issue 91: placed when the track is fetched)
        assert tracks == {"spa": 800 * 2}
        track = a.track_path(job.job_id, "spa")
        track.write_bytes(track.read_bytes() + b"\x01" * 999)  # a pod killed mid-write
        point = await b.resume_point(job.job_id)
        assert (point.segments, point.end_ms, point.last_segment_id, point.tracks) == (1, 2000, 0, tracks)
        assert track.stat().st_size == tracks["spa"]
    finally:
        await a.close()
        await b.close()


async def test_retention_tenants_and_caps_across_pods(redis: RedisServer, tmp_path: Path) -> None:
    a, b = pods(redis, tmp_path)
    await a.start()
    await b.start()
    try:
        kept = await a.create("acme", SPEC, JobState.QUEUED)
        gone = await a.create("acme", SPEC, JobState.UPLOADING)
        await a.set_duration(kept.job_id, 1_800_000)
        assert await b.tenant_load("acme") == (2, 0.5)
        assert await b.tenant_load("other") == (0, 0.0)
        with pytest.raises(NotFound):
            await b.get(kept.job_id, "other")
        assert not await b.set_state(kept.job_id, JobState.QUEUED, only_from=(JobState.UPLOADING,))
        assert await b.set_state(kept.job_id, JobState.CANCELLED, expires=200.0)
        assert (await a.get(kept.job_id)).state is JobState.CANCELLED  # seen from the other pod
        assert await a.set_state(gone.job_id, JobState.FAILED, expires=100.0)
        assert await b.tenant_load("acme") == (0, 0.0)
        assert await b.expired(150.0) == [gone.job_id]
        await b.delete(gone.job_id)
        assert not a.folder(gone.job_id).exists() and a.folder(kept.job_id).exists()
        with pytest.raises(NotFound):
            await a.get(gone.job_id)
        assert await a.expired(150.0) == []
    finally:
        await a.close()
        await b.close()
