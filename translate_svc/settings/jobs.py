"""Background jobs' settings (``translate_svc/jobs/``, docs/api.md "Jobs"): ``Settings.jobs``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from pydantic import BaseModel, Field, model_validator


class DubOverflow(str, Enum):
    """What a job's dubbed track does with a segment's speech that runs past the next segment's
    start (its own span and the gap after it): ``overlap`` (mixed with the next
    segment's speech: nothing lost) or ``cut`` (stopped where the next segment starts)."""

    OVERLAP = "overlap"
    CUT = "cut"


class JobSettings(BaseModel):
    """Hours of audio translated as background jobs: submitted (uploaded in parts, or fetched from
    an https URL), run while live streams leave the engine idle, their results kept on disk."""

    #: where jobs are kept (``jobs.sqlite3``, each job's audio and results); None: no jobs (the
    #: endpoints answer saying how to turn them on). One node's disk: a restart resumes its jobs.
    #: With ``cluster.redis_url`` the jobs' state is in Redis and this holds their files only: a
    #: volume every pod mounts (ReadWriteMany), so another pod resumes a dead pod's job
    dir: Path | None = None
    #: a job's lease: renewed every third of it while its process runs it; a process killed
    #: mid-job holds its job at most this long, then another (this node's, or with
    #: ``cluster.redis_url`` any pod's) resumes it from its last finished segment
    lease_s: float = Field(10.0, ge=0.3, le=600.0)
    #: with ``cluster.redis_url``: the longest a call to Redis for the jobs' state may take
    redis_timeout_s: float = Field(5.0, gt=0, le=60.0)
    #: jobs run at once on this process (each feeds its session a second at a time, paced); taken
    #: from the queue fairly across tenants (the tenant served least recently first)
    max_running: int = Field(1, ge=1, le=64)
    #: a running job gives its worker back after this many seconds when another tenant's job is
    #: waiting, and is resumed from its last finished segment at its tenant's next turn
    slice_s: float = Field(60.0, ge=1.0, le=24 * 3600.0)
    #: URL jobs whose audio this process fetches at once: a stage of its own, beside the workers
    #: that translate, so a slow host holds a fetch slot, never a worker
    max_fetching: int = Field(2, ge=1, le=64)
    #: a fetch slower than this on average, counted from its start after its first
    #: ``fetch_grace_s``, is cut and fails its job (an upload's part:
    #: ``limits.http_min_body_bytes_per_s``)
    fetch_min_bytes_per_s: int = Field(32 * 1024, ge=1, le=1024**3)
    fetch_grace_s: float = Field(10.0, gt=0, le=600.0)
    #: the share of a tenant's ``audio_seconds_per_minute`` its jobs leave to its live calls: a job
    #: feeds its next second only while the tenant's budget holds more than this share of a minute's
    #: worth (a job is counted in the budget, and never spends it for the live calls)
    budget_reserve: float = Field(0.5, ge=0, lt=1)
    #: a tenant's jobs not finished (uploading, queued, running) and their audio in hours, when its
    #: tokens-file line sets no ``jobs=`` / ``job_hours=`` (conservative by default)
    max_jobs_per_tenant: int = Field(4, ge=1, le=100_000)
    max_hours_per_tenant: float = Field(12.0, gt=0, le=100_000.0)
    #: everything one tenant's jobs keep on disk (audio not yet translated, results, dubbed tracks,
    #: until their retention ends): beyond it a new job, a part or a fetch is refused
    max_bytes_per_tenant: int = Field(16 * 1024**3, ge=1024, le=1024**5)
    #: the share of the engine's time a job may take (``jobs/pace.py``): after each of its
    #: segments it pauses for the segment's model time x (1 / share - 1) before it feeds again,
    #: while other sessions are open on the node (alone, a job takes the whole engine)
    engine_share: float = Field(0.2, gt=0, le=1)
    #: the longest a job waits, before it feeds its next second, for the live streams' quiet: no
    #: live stream holding speech or waiting for a segment's result (``SessionManager.live_speech``),
    #: so its segments meet live finals in the model less often; past it the job feeds anyway (it
    #: always progresses). 0: no wait. Only this process's live streams are seen: with
    #: ``serve --workers N`` (or pods) a job does not wait for another worker's streams
    quiet_wait_s: float = Field(5.0, ge=0, le=600.0)
    #: the largest upload (or fetched file), in bytes
    max_upload_bytes: int = Field(4 * 1024**3, ge=1024, le=64 * 1024**3)
    #: one part of an upload, at most (``PUT /v1/jobs/{id}/audio``), and the time it may take to arrive
    max_part_bytes: int = Field(16 * 1024**2, ge=64 * 1024, le=256 * 1024**2)
    part_timeout_s: float = Field(120.0, gt=0, le=3600.0)
    #: the longest audio one job takes, in seconds
    max_audio_s: float = Field(6 * 3600.0, gt=0, le=48 * 3600.0)
    #: an upload not completed within this many seconds of its last part is dropped
    upload_timeout_s: float = Field(3600.0, gt=0)
    #: how long a finished job's results are kept (seconds) when its tenant's tokens-file line sets
    #: no ``retention_days=`` (days: the recordings' retention, which jobs share)
    retention_s: float = Field(7 * 86400.0, gt=0)
    #: the hosts a job's ``url`` may be fetched from (the MCP door's rules: https only, public
    #: addresses only, each redirect re-checked); empty: submit by upload only
    fetch_hosts: list[str] = []
    fetch_timeout_s: float = Field(600.0, gt=0, le=24 * 3600.0)
    fetch_max_redirects: int = Field(3, ge=0, le=10)
    #: a dubbed track's speech that runs past the next segment's start: ``overlap``
    #: (mixed with it) or ``cut`` (stopped there); either way every segment's speech starts at its
    #: segment's start (no drift) and the track is as long as its source
    dub_overflow: DubOverflow = DubOverflow.OVERLAP
    #: dubbing to the source's clock (a job's or a Translate clip's ``fit``): the bound of
    #: speaking rates a segment's speech is fitted with, where the request leaves it unset; the
    #: slowest rate in it at which the speech ends by the next segment's start is taken, past the
    #: fastest the speech runs over (``dub_overflow``). 0.5..2.0, slowest <= fastest
    fit_slowest: float = Field(0.85, ge=0.5, le=2.0)
    fit_fastest: float = Field(1.35, ge=0.5, le=2.0)
    #: dubbed videos made at once on this process (``GET /v1/jobs/{id}/video``), each on a
    #: thread of its own (decoding the source's audio for the mix, encoding each dubbed track); a
    #: request beyond is refused (429) until one is done
    max_remuxing: int = Field(2, ge=1, le=64)
    #: how much of a resumed job's audio before its resume point its VAD hears again (seconds):
    #: silero's recurrent state carries minutes of memory, so only a job that hears again
    #: its whole audio before the point (this covers it) segments after it as an uninterrupted run
    #: does, exactly; a resume further in hears this much (its probabilities then within about
    #: 1e-6 of the uninterrupted run's: docs/api.md "Restarts"). At least the streams' 10 s lead-in
    resume_replay_s: float = Field(6 * 3600.0, ge=10.0, le=48 * 3600.0)

    @model_validator(mode="after")
    def _check_fit(self) -> JobSettings:
        if self.fit_slowest > self.fit_fastest:
            raise ValueError(
                f"jobs.fit_slowest ({self.fit_slowest}) must not be above jobs.fit_fastest ({self.fit_fastest})"
            )
        return self
