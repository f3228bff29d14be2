"""Where jobs are kept: the ``JobKeeper`` seam the worker and the doors use, and its two
implementations, chosen by ``open_job_store`` from the settings (as ``glossaries/choose.py`` picks
the glossaries' store):

- ``JobStore`` (``store.py``): one node, SQLite in ``jobs.dir`` (every worker of the node);
- ``RedisJobs`` (``redis_store.py``): several pods sharing ``cluster.redis_url``: each job's state,
  lease and finished segments in Redis, its audio and dubbed tracks still files under ``jobs.dir``,
  which is then a volume every pod mounts (docs/deploy.md), so that any pod resumes a dead pod's job.

Event loop only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from translate_svc.cluster.choose import redis_location
from translate_svc.jobs.listing import JobCursor
from translate_svc.jobs.model import JobSpec, JobState, JobStatus
from translate_svc.jobs.store import JobStore, ResumePoint
from translate_svc.settings import Settings


class JobKeeper(Protocol):
    root: Path

    def folder(self, job_id: str) -> Path: ...

    def audio_path(self, job_id: str) -> Path: ...

    def track_path(self, job_id: str, language: str) -> Path: ...

    def overwrite_speech(self, job_id: str, language: str, at: int, samples: np.ndarray) -> None: ...

    def write_source_length(self, job_id: str, frames: int, rate: int) -> None: ...

    def source_length(self, job_id: str) -> tuple[int, int] | None: ...

    def video_path(self, job_id: str) -> Path: ...

    def write_media(self, job_id: str, kind: str, audio_start_ms: int = 0) -> None: ...

    def media_start_ms(self, job_id: str) -> int: ...

    def write_digest(self, job_id: str, sha256: str) -> None: ...

    def digest_of(self, job_id: str) -> str | None: ...

    def media_of(self, job_id: str) -> str | None: ...

    def keep_video(self, job_id: str) -> bool: ...

    def unkeep_video(self, job_id: str) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def part_path(self, job_id: str) -> Path: ...

    async def create(
        self,
        tenant: str,
        spec: JobSpec,
        state: JobState,
        *,
        max_jobs: int | None = None,
        max_bytes: int | None = None,
    ) -> JobStatus: ...

    async def kept_bytes(self, tenant: str) -> int: ...

    async def get(self, job_id: str, tenant: str | None = None) -> JobStatus: ...

    async def list_jobs(self, tenant: str, limit: int, after: JobCursor | None = None) -> list[JobStatus]: ...

    async def claim(self, owner: str, now: float, lease_s: float, limit: int, *, fetch: bool = False) -> list[str]: ...

    async def others_waiting(self, tenant: str, now: float) -> bool: ...

    async def renew(self, owner: str, job_ids: list[str], until: float) -> dict[str, JobState]: ...

    async def release(self, owner: str, job_id: str, until: float = 0.0) -> None: ...

    async def tenant_load(self, tenant: str) -> tuple[int, float]: ...

    async def set_state(
        self,
        job_id: str,
        state: JobState,
        *,
        error: str = "",
        expires: float = 0.0,
        only_from: tuple[JobState, ...] = (),
    ) -> bool: ...

    async def set_duration(self, job_id: str, duration_ms: int, *, max_hours: float | None = None) -> None: ...

    async def append_part(
        self,
        job: JobStatus,
        offset: int,
        part: Path,
        limit: int,
        expires: float = 0.0,
        *,
        max_bytes: int | None = None,
    ) -> int: ...

    async def set_received(self, job_id: str, received: int) -> None: ...

    async def drop_audio(self, job_id: str) -> None: ...

    async def resume_point(self, job_id: str) -> ResumePoint: ...

    async def add_segment(
        self,
        job_id: str,
        seq: int,
        result: dict[str, Any],
        speech: dict[str, np.ndarray],
        rate: int,
        owner: str = "",
    ) -> dict[str, int]: ...

    async def set_speakers(self, job_id: str, labels: dict[int, int], voices: dict[int, int] | None = None) -> None: ...

    async def segments(self, job_id: str, after: int = -1, limit: int = 256) -> list[dict[str, Any]]: ...

    async def hold(self, owner: str, job_id: str, now: float, lease_s: float) -> bool: ...

    async def edit_segments(self, owner: str, job_id: str, results: dict[int, dict[str, Any]], grown: int) -> None: ...

    def append_edited(self, job_id: str, language: str, samples: np.ndarray) -> int: ...

    async def expired(self, now: float) -> list[str]: ...

    async def delete(self, job_id: str) -> None: ...


def open_job_store(settings: Settings) -> JobKeeper | None:
    """The store these settings ask for, not started yet; None without ``jobs.dir``. The Redis
    URL is checked and its password read as ``cluster/choose.py`` does (``ClusterConfigError``)."""
    jobs = settings.jobs
    if jobs.dir is None:
        return None
    redis_url, password = redis_location(settings.cluster)
    if redis_url is not None:
        # redis-py only where Redis is used (as cluster/choose.py)
        from translate_svc.jobs.redis_store import RedisJobs

        return RedisJobs(jobs.dir, redis_url, password, timeout_s=jobs.redis_timeout_s)
    return JobStore(jobs.dir)
