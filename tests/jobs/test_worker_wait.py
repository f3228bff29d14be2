"""``JobWorker.wait`` (the long poll behind ``GET /v1/jobs/{id}?wait=``, gRPC ``GetJob``'s wait and
the SDK's ``wait_job``) must not miss a change that happens while it reads the store: the job ended
between the read and the wait, and the wait slept its whole timeout (tests/jobs/test_redis_loss.py
failed so under load: its job was done within 2 s and the wait went on for minutes)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from translate_svc.jobs.model import JobState
from translate_svc.jobs.worker import JobWorker
from translate_svc.settings import JobSettings

pytestmark = [pytest.mark.unit]

JOB = "job-1"


class EndsWhileRead:
    """A store whose first read answers what it held before the job ended, while the job ends
    (the runner signals it) during that read; later reads answer the end."""

    def __init__(self) -> None:
        self.runner: JobWorker | None = None
        self.reads = 0

    async def get(self, job_id: str, tenant: str | None = None) -> Any:
        self.reads += 1
        if self.reads == 1:
            assert self.runner is not None
            self.runner._signal(job_id)  # the job's last segment lands while this read is out
            await asyncio.sleep(0)
            return SimpleNamespace(state=JobState.RUNNING, segments=3)
        return SimpleNamespace(state=JobState.DONE, segments=4)


async def test_a_job_ending_while_its_status_is_read_wakes_the_wait() -> None:
    store = EndsWhileRead()
    runner = JobWorker(store, None, JobSettings())  # type: ignore[arg-type]
    store.runner = runner
    running = asyncio.get_running_loop().create_future()
    runner._running[JOB] = running  # type: ignore[assignment]  # this process runs it: no re-read every second
    try:
        job = await asyncio.wait_for(runner.wait(JOB, 60.0), 10.0)
    finally:
        running.cancel()
    assert job.state is JobState.DONE and job.segments == 4
    assert store.reads == 2
    assert JOB not in runner._changed  # nothing kept for a job that ended


class SwallowsCancel:
    """A store whose calls, cancelled mid-way, return as if answered: redis-py's asyncio client can
    swallow a cancel so (tests/jobs/test_redis_loss.py hung in the server's stop: a loop cancelled
    inside a store call went on, and ``stop`` waited for it)."""

    async def _swallow(self, answer: Any) -> Any:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass
        return answer

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def claim(self, owner: str, now: float, lease_s: float, limit: int) -> list[str]:
        return list(await self._swallow([]))

    async def renew(self, owner: str, job_ids: list[str], until: float) -> dict[str, JobState]:
        return {}

    async def release(self, owner: str, job_id: str) -> None:
        pass

    async def expired(self, now: float) -> list[str]:
        return list(await self._swallow([]))


async def test_stop_ends_loops_whose_cancel_a_store_call_swallowed() -> None:
    runner = JobWorker(SwallowsCancel(), None, JobSettings())  # type: ignore[arg-type]
    await runner.start()
    await asyncio.sleep(0.1)  # the claims and the sweep are inside their store calls
    await asyncio.wait_for(runner.stop(), 10.0)  # before: the sweep slept its 60 s, the claims went on
    assert runner._tasks == []
