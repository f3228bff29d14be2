"""The job store's leases and resume point (issue 73), on a real SQLite file: two processes of one
node (two stores over one ``jobs.dir``) never run one job at once; a lease not renewed (its process
killed) is taken over; given back, at once; a segment's track bytes past its row are cut on resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from translate_svc.errors import NotFound
from translate_svc.jobs.model import JobSpec, JobState
from translate_svc.jobs.store import JobStore

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]

LEASE = 10.0


async def test_one_job_is_leased_to_one_process_until_its_lease_lapses(tmp_path: Path) -> None:
    a, b = JobStore(tmp_path), JobStore(tmp_path)
    await a.start()
    await b.start()
    try:
        job = await a.create("t", JobSpec(target_languages=("spa",)), JobState.QUEUED)
        assert await a.claim("A", 100.0, LEASE, 4) == [job.job_id]
        assert await b.claim("B", 105.0, LEASE, 4) == []  # A's lease holds
        assert await a.renew("A", [job.job_id], 115.0) == {job.job_id: JobState.QUEUED}
        assert await b.claim("B", 112.0, LEASE, 4) == []  # renewed
        assert await b.claim("B", 115.5, LEASE, 4) == [job.job_id]  # A stopped renewing: B takes over
        assert await a.renew("A", [job.job_id], 130.0) == {}  # and A learns it lost it
        await b.release("B", job.job_id)
        assert await a.claim("A", 116.0, LEASE, 4) == [job.job_id]  # given back: taken at once
        await a.set_state(job.job_id, JobState.DONE)
        assert await b.claim("B", 200.0, LEASE, 4) == []  # a finished job is nobody's
    finally:
        await a.close()
        await b.close()


async def test_resume_cuts_track_bytes_written_after_the_last_finished_segment(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    await store.start()
    try:
        job = await store.create("t", JobSpec(target_languages=("spa",)), JobState.RUNNING)
        seg = {"segment_id": 0, "start_ms": 1000, "end_ms": 2000, "translations": []}
        tracks = await store.add_segment(job.job_id, 0, seg, {"spa": np.zeros(800, np.float32)}, 16000)
        # the speech alone, after the speech before it (issue 91: placed when the track is fetched)
        assert tracks == {"spa": 800 * 2}
        track = store.track_path(job.job_id, "spa")
        track.write_bytes(track.read_bytes() + b"\x01" * 999)  # a process killed mid-write
        point = await store.resume_point(job.job_id)
        assert (point.segments, point.end_ms, point.last_segment_id) == (1, 2000, 0)
        assert store.track_path(job.job_id, "spa").stat().st_size == tracks["spa"]
    finally:
        await store.close()


async def test_a_job_past_its_retention_is_found_and_deleted_with_its_files(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    await store.start()
    try:
        kept = await store.create("t", JobSpec(target_languages=("spa",)), JobState.DONE)
        gone = await store.create("t", JobSpec(target_languages=("spa",)), JobState.DONE)
        await store.set_state(kept.job_id, JobState.DONE, expires=200.0)
        await store.set_state(gone.job_id, JobState.DONE, expires=100.0)
        assert await store.expired(150.0) == [gone.job_id]
        await store.delete(gone.job_id)
        assert not store.folder(gone.job_id).exists() and store.folder(kept.job_id).exists()
        with pytest.raises(NotFound):
            await store.get(gone.job_id)
        assert await store.expired(150.0) == []
    finally:
        await store.close()


async def test_another_tenants_job_is_not_found(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    await store.start()
    try:
        job = await store.create("acme", JobSpec(target_languages=("spa",)), JobState.QUEUED)
        assert (await store.get(job.job_id, "acme")).tenant == "acme"
        with pytest.raises(NotFound):
            await store.get(job.job_id, "other")
        assert await store.tenant_load("acme") == (1, 0.0)
    finally:
        await store.close()
