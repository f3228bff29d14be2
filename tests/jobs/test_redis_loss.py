"""Jobs with ``cluster.redis_url`` when Redis is lost for a while (issue 73): a server on loopback
with the test checkpoint whose Redis is killed (SIGKILL) and started again (its writes kept: an
append-only file) goes on claiming jobs once it is back: the claims' loop logs the failed tries and
keeps going (before, the first failed renewal ended the loop, and no job was claimed again)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.jobs import ended, submit
from tests.support.live_server import make_settings, serving
from tests.support.redis_server import redis_server
from tests.support.waiting import eventually
from translate_svc.jobs.model import JobSpec, JobState

pytestmark = [pytest.mark.integration, pytest.mark.slow(40)]


async def test_jobs_are_claimed_again_once_a_lost_redis_is_back(
    test_model_dir: Path, tmp_path: Path, shared_audio: Path
) -> None:
    with redis_server(persist=True) as redis:
        settings = make_settings(test_model_dir)
        settings.jobs.dir = tmp_path / "jobs"
        settings.jobs.lease_s = 0.6
        settings.jobs.redis_timeout_s = 0.5
        settings.cluster.redis_url = redis.url
        async with serving(settings) as live:
            runner = live.server.app.jobs
            assert runner is not None
            failed: list[BaseException] = []
            claim: Callable[..., Awaitable[Any]] = runner.store.claim

            async def counted(*args: Any, **kw: Any) -> Any:
                try:
                    return await claim(*args, **kw)
                except Exception as e:
                    failed.append(e)
                    raise

            runner.store.claim = counted  # type: ignore[method-assign]
            redis.kill()

            async def tried() -> bool:
                return len(failed) >= 2

            await eventually(
                tried, "the claims' loop tried Redis again while it was down (it ends at a failure)", deadline_s=30
            )
            redis.start()
            audio = (shared_audio / "jfk.flac").read_bytes()
            job_id = await submit(runner, audio, JobSpec(source_language="eng", target_languages=("spa",)))
            async with asyncio.timeout(180):  # never claimed: the loop ended
                job = await ended(runner, job_id)
            assert job.state is JobState.DONE, job.error
            assert job.segments > 0
