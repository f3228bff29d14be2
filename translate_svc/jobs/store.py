"""The jobs' durable store on one node's disk (``jobs.dir``): SQLite (``jobs.sqlite3``) for each
job's state and its finished segments, and a folder per job for its audio (``audio``, written part
by part) and its dubbed tracks (``<target>.pcm``: PCM16 mono at the model's rate, each segment's
speech at its place on the audio's timeline).

A finished segment is kept in one transaction with the tracks' lengths after it: a process killed
between a track's write and its row leaves bytes past the recorded length, cut off on resume
(``resume_point``), so a resumed job appends after its last finished segment and redoes none.
Nothing of a job is held in memory: results are read back a row at a time.

A tenant's caps are checked in the transaction that changes what they count: a job's
slot (``jobs=``) with its insert, its hours (``job_hours=``) with its length, and the bytes its
jobs keep (``kept``: audio not yet deleted, results and dubbed tracks) with each part and segment;
so simultaneous requests of one tenant never pass a cap together (``TenantFull``). Claims are fair
across tenants: the tenant served least recently first (``served``), then the oldest job; a URL
job's fetch is a stage of its own (``claim(fetch=True)``). A job's audio is deleted once it ends
(``drop_audio``).

Every call runs on one thread of its own (SQLite's connection stays on it); the async methods
never block the loop. Event loop only (the methods), the thread owns the connection.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from translate_svc.errors import Conflict, InvalidInput, NotFound, NotReady
from translate_svc.jobs.listing import SQL_PAGE, JobCursor
from translate_svc.jobs.model import JobSpec, JobState, JobStatus
from translate_svc.jobs.tracks import TRACK_WIDTH, JobFiles
from translate_svc.jobs.voices import with_speaker

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, state TEXT NOT NULL, spec TEXT NOT NULL,
  created REAL NOT NULL, updated REAL NOT NULL, received INTEGER NOT NULL DEFAULT 0,
  duration_ms INTEGER NOT NULL DEFAULT 0, done_ms INTEGER NOT NULL DEFAULT 0,
  segments INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '', expires REAL NOT NULL DEFAULT 0,
  audio_s REAL NOT NULL DEFAULT 0, owner TEXT NOT NULL DEFAULT '', lease REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_tenant ON jobs (tenant, state);
CREATE INDEX IF NOT EXISTS jobs_by_age ON jobs (tenant, created, id);
CREATE TABLE IF NOT EXISTS segments (
  job_id TEXT NOT NULL, seq INTEGER NOT NULL, end_ms INTEGER NOT NULL, result TEXT NOT NULL,
  tracks TEXT NOT NULL, PRIMARY KEY (job_id, seq)
);
CREATE TABLE IF NOT EXISTS served (
  tenant TEXT NOT NULL, stage TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (tenant, stage)
);
"""
#: columns added since a store was first made: added to an older file as it opens
_ADDED = {"kept": "INTEGER NOT NULL DEFAULT 0"}
_OPEN = "('uploading', 'queued', 'running')"
#: in the owner of a done job's lease while it is edited (``hold``)
EDITING = ":edit:"
#: a URL job whose audio is not fetched yet (the fetch stage's), and one ready to translate
_URL = "COALESCE(json_extract(j.spec, '$.url'), '')"
_NEEDS_FETCH = f"{_URL} != '' AND j.duration_ms = 0"
_READY = f"({_URL} = '' OR j.duration_ms > 0)"
_COLUMNS = "id, tenant, state, spec, created, updated, received, duration_ms, done_ms, segments, error, expires"
__all__ = ["TRACK_WIDTH", "JobStore", "LeaseLost", "ResumePoint", "StoreLost", "TenantFull"]


@dataclass(frozen=True)
class ResumePoint:
    """Where a job goes on: after its last finished segment (0 of each: from the start)."""

    segments: int
    end_ms: int
    last_segment_id: int
    #: each track's length in bytes after the last finished segment
    tracks: dict[str, int]


class LeaseLost(Exception):
    """A finished segment refused: the job is no longer this process's (its lease lapsed and
    another took it over, or it is stored already). The worker drops the job without ending it."""


class TenantFull(Exception):
    """A tenant's cap met, checked with the change it counts: ``what`` (``jobs``, ``hours`` or
    ``bytes``) and what the tenant has (its jobs not finished, their hours, the bytes its jobs keep).
    The desk words it (``desk.py``)."""

    def __init__(self, what: str, have: float) -> None:
        super().__init__(what)
        self.what = what
        self.have = have


class StoreLost(NotReady):
    """The jobs' store did not answer (Redis lost): a job running stays so, its lease lapses, and
    it is resumed once the store is back; never failed for it."""


class JobStore(JobFiles):
    """The jobs of one node; create one per process (SQLite's own locking shares the file between
    a node's workers)."""

    def __init__(self, root: Path, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(root)
        self._clock = clock
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="job-store")
        self._db: sqlite3.Connection | None = None

    async def start(self) -> None:
        await self._run(self._open)

    async def close(self) -> None:
        await self._run(self._close)
        self._pool.shutdown(wait=True)

    def _open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.root / "jobs.sqlite3", timeout=10, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        have = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
        for column, kind in _ADDED.items():
            if column not in have:
                db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
        self._db = db

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the job store is not open")
        return self._db

    # -- jobs -------------------------------------------------------------------------------------

    async def create(
        self,
        tenant: str,
        spec: JobSpec,
        state: JobState,
        *,
        max_jobs: int | None = None,
        max_bytes: int | None = None,
    ) -> JobStatus:
        """A new job, unless the tenant has ``max_jobs`` not finished or keeps ``max_bytes``
        (``TenantFull``), checked in the insert's transaction."""
        return await self._run(self._create, tenant, spec, state, max_jobs, max_bytes)

    def _create(
        self, tenant: str, spec: JobSpec, state: JobState, max_jobs: int | None, max_bytes: int | None
    ) -> JobStatus:
        job_id = new_job_id()
        now = self._clock()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            if max_jobs is not None:
                (count,) = self.db.execute(
                    f"SELECT COUNT(*) FROM jobs WHERE tenant = ? AND state IN {_OPEN}", (tenant,)
                ).fetchone()
                if count >= max_jobs:
                    raise TenantFull("jobs", count)
            if max_bytes is not None and (kept := self._kept(tenant)) >= max_bytes:
                raise TenantFull("bytes", kept)
            self.new_folder(job_id)
            self.db.execute(
                "INSERT INTO jobs (id, tenant, state, spec, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, tenant, state.value, spec.to_json(), now, now),
            )
        return self._get(job_id, tenant)

    def _kept(self, tenant: str) -> int:
        (kept,) = self.db.execute("SELECT COALESCE(SUM(kept), 0) FROM jobs WHERE tenant = ?", (tenant,)).fetchone()
        return int(kept)

    async def kept_bytes(self, tenant: str) -> int:
        """What the tenant's jobs keep on disk: audio not yet deleted, results and dubbed tracks."""
        return await self._run(self._kept, tenant)

    async def get(self, job_id: str, tenant: str | None = None) -> JobStatus:
        """The job (of ``tenant``, when given: another tenant's is NotFound, as one that never was)."""
        return await self._run(self._get, job_id, tenant)

    def _get(self, job_id: str, tenant: str | None = None) -> JobStatus:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None or (tenant is not None and row[1] != tenant):
            raise NotFound(f"no job {job_id[:40]!r} of this tenant: it never was, or its results expired")
        return _status(row)

    async def list_jobs(self, tenant: str, limit: int, after: JobCursor | None = None) -> list[JobStatus]:
        """Up to ``limit`` of the tenant's jobs, newest first, older than ``after`` (``listing.py``)."""
        cursor = after or JobCursor(float("inf"), "")
        sql = SQL_PAGE.format(columns=_COLUMNS)
        args = (tenant, cursor.created, cursor.created, cursor.job_id, limit)
        return await self._run(lambda: [_status(row) for row in self.db.execute(sql, args).fetchall()])

    # -- leases: which process runs a job ---------------------------------------------------------

    async def claim(self, owner: str, now: float, lease_s: float, limit: int, *, fetch: bool = False) -> list[str]:
        """Up to ``limit`` jobs queued or running that no live lease holds (none, or one past its
        time: its process stopped or died; a job given back ``until`` a time waits for it), leased
        to ``owner`` until ``now + lease_s``: one at a time, of the tenant served least recently
        (then the oldest job), so one tenant's queue never keeps another's waiting.
        ``fetch``: URL jobs whose audio is still to fetch (the fetch stage); else jobs ready to
        translate."""
        return await self._run(self._claim, owner, now, lease_s, limit, fetch)

    def _claim(self, owner: str, now: float, lease_s: float, limit: int, fetch: bool) -> list[str]:
        if limit <= 0:
            return []
        stage = "fetch" if fetch else "run"
        ids = []
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for _ in range(limit):
                row = self.db.execute(
                    "SELECT j.id, j.tenant FROM jobs j LEFT JOIN served s ON s.tenant = j.tenant AND s.stage = ? "
                    f"WHERE j.state IN ('queued', 'running') AND j.lease < ? AND {_NEEDS_FETCH if fetch else _READY} "
                    "ORDER BY COALESCE(s.at, 0), j.created LIMIT 1",
                    (stage, now),
                ).fetchone()
                if row is None:
                    break
                self.db.execute("UPDATE jobs SET owner = ?, lease = ? WHERE id = ?", (owner, now + lease_s, row[0]))
                self.db.execute(
                    "INSERT INTO served (tenant, stage, at) VALUES (?, ?, ?) "
                    "ON CONFLICT (tenant, stage) DO UPDATE SET at = excluded.at",
                    (row[1], stage, now),
                )
                ids.append(row[0])
        return ids

    async def others_waiting(self, tenant: str, now: float) -> bool:
        """Whether a job of another tenant is ready to translate and waits for a worker (a running
        job then gives its worker back after ``jobs.slice_s``)."""
        return await self._run(
            lambda: (
                self.db.execute(
                    f"SELECT 1 FROM jobs j WHERE j.state IN ('queued', 'running') AND j.lease < ? AND j.tenant != ? "
                    f"AND {_READY} LIMIT 1",
                    (now, tenant),
                ).fetchone()
                is not None
            )
        )

    async def renew(self, owner: str, job_ids: list[str], until: float) -> dict[str, JobState]:
        """Renew ``owner``'s leases of ``job_ids``; returns the state of each it still holds (a job
        missing from the answer was taken over, or deleted)."""
        return await self._run(self._renew, owner, job_ids, until)

    def _renew(self, owner: str, job_ids: list[str], until: float) -> dict[str, JobState]:
        held: dict[str, JobState] = {}
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for job_id in job_ids:
                row = self.db.execute("SELECT state FROM jobs WHERE id = ? AND owner = ?", (job_id, owner)).fetchone()
                if row is not None:
                    self.db.execute("UPDATE jobs SET lease = ? WHERE id = ?", (until, job_id))
                    held[job_id] = JobState(row[0])
        return held

    async def release(self, owner: str, job_id: str, until: float = 0.0) -> None:
        """``owner`` gives the job up (it stops, or the job ended): the next claim takes it at once,
        or from ``until`` on (its tenant's budget or slot is full)."""
        await self._run(
            lambda: self.db.execute(
                "UPDATE jobs SET owner = '', lease = ? WHERE id = ? AND owner = ?", (until, job_id, owner)
            )
        )

    async def hold(self, owner: str, job_id: str, now: float, lease_s: float) -> bool:
        """A done job leased to ``owner`` until ``now + lease_s`` while its segments are edited
        (``edits.py``; ``renew`` and ``release`` as a claimed job's), unless another edit holds it
        (an edit's owner names it: ``EDITING``; a worker that ran the job gives it back just after
        its end, and runs it no more)."""
        return await self._run(self._hold, owner, job_id, now, lease_s)

    def _hold(self, owner: str, job_id: str, now: float, lease_s: float) -> bool:
        sql = (
            "UPDATE jobs SET owner = ?, lease = ? WHERE id = ? AND state = 'done' "
            "AND (instr(owner, ?) = 0 OR lease < ?)"
        )
        return self.db.execute(sql, (owner, now + lease_s, job_id, EDITING, now)).rowcount == 1

    async def edit_segments(self, owner: str, job_id: str, results: dict[int, dict[str, Any]], grown: int) -> None:
        """Edited segments' results (by ``seq``) in one transaction, by the holder of the done job
        only (``LeaseLost``), and the bytes it keeps ``grown`` by their speech and rows."""
        await self._run(self._edit_segments, owner, job_id, results, grown)

    def _edit_segments(self, owner: str, job_id: str, results: dict[int, dict[str, Any]], grown: int) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT owner, state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or tuple(row) != (owner, JobState.DONE.value):
                raise LeaseLost(f"job {job_id}: its edit is no longer held by this process")
            for seq, result in results.items():
                self.db.execute(
                    "UPDATE segments SET result = ? WHERE job_id = ? AND seq = ?", (json.dumps(result), job_id, seq)
                )
            self.db.execute(
                "UPDATE jobs SET kept = MAX(0, kept + ?), updated = ? WHERE id = ?", (grown, self._clock(), job_id)
            )

    async def tenant_load(self, tenant: str) -> tuple[int, float]:
        """A tenant's jobs not finished (uploading, queued, running) and their audio in hours."""
        return await self._run(self._tenant_load, tenant)

    def _tenant_load(self, tenant: str) -> tuple[int, float]:
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(audio_s), 0) FROM jobs WHERE tenant = ? "
            "AND state IN ('uploading', 'queued', 'running')",
            (tenant,),
        ).fetchone()
        return int(row[0]), float(row[1]) / 3600

    async def set_state(
        self,
        job_id: str,
        state: JobState,
        *,
        error: str = "",
        expires: float = 0.0,
        only_from: tuple[JobState, ...] = (),
    ) -> bool:
        """Move the job to ``state`` (from one of ``only_from``, when given); False if it was not in one."""
        return await self._run(self._set_state, job_id, state, error, expires, only_from)

    def _set_state(
        self, job_id: str, state: JobState, error: str, expires: float, only_from: tuple[JobState, ...]
    ) -> bool:
        sql = "UPDATE jobs SET state = ?, error = ?, expires = ?, updated = ? WHERE id = ?"
        args: list[Any] = [state.value, error, expires, self._clock(), job_id]
        if only_from:
            sql += f" AND state IN ({', '.join('?' for _ in only_from)})"
            args += [s.value for s in only_from]
        return self.db.execute(sql, args).rowcount == 1

    async def set_duration(self, job_id: str, duration_ms: int, *, max_hours: float | None = None) -> None:
        """The job's audio's length, unless with the tenant's other jobs not finished it is over
        ``max_hours`` (``TenantFull``), checked in the same transaction."""
        await self._run(self._set_duration, job_id, duration_ms, max_hours)

    def _set_duration(self, job_id: str, duration_ms: int, max_hours: float | None) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            if max_hours is not None:
                (others,) = self.db.execute(
                    "SELECT COALESCE(SUM(audio_s), 0) FROM jobs WHERE tenant = (SELECT tenant FROM jobs WHERE id = ?) "
                    f"AND id != ? AND state IN {_OPEN}",
                    (job_id, job_id),
                ).fetchone()
                if others / 3600 + duration_ms / 3_600_000 > max_hours:
                    raise TenantFull("hours", others / 3600)
            self.db.execute(
                "UPDATE jobs SET duration_ms = ?, audio_s = ?, updated = ? WHERE id = ?",
                (duration_ms, duration_ms / 1000, self._clock(), job_id),
            )

    # -- the audio --------------------------------------------------------------------------------

    async def append_part(
        self,
        job: JobStatus,
        offset: int,
        part: Path,
        limit: int,
        expires: float = 0.0,
        *,
        max_bytes: int | None = None,
    ) -> int:
        """Append an upload's part (the file ``part``, received whole) at ``offset`` (where the last
        one ended: a part sent again after a lost answer is taken only if it starts there), the
        upload at most ``limit`` bytes and the tenant's jobs keeping at most ``max_bytes``
        (``TenantFull``): checked and written in one transaction, so two parts never both land at
        one offset. An upload left without a part until ``expires`` is swept. Returns the bytes
        received so far."""
        return await self._run(self._append_part, job, offset, part, limit, expires, max_bytes)

    def _append_part(
        self, job: JobStatus, offset: int, part: Path, limit: int, expires: float, max_bytes: int | None
    ) -> int:
        size = part.stat().st_size
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT received, state FROM jobs WHERE id = ?", (job.job_id,)).fetchone()
            if row is None:
                raise NotFound(f"no job {job.job_id[:40]!r} of this tenant: it never was, or its results expired")
            received, state = row
            if state != JobState.UPLOADING.value:
                raise Conflict(f"the job is {state}: parts go to a job still uploading")
            check_part(offset, size, received, limit)
            if max_bytes is not None and (kept := self._kept(job.tenant)) + size > max_bytes:
                raise TenantFull("bytes", kept)
            self.copy_part(job.job_id, offset, part)
            self.db.execute(
                "UPDATE jobs SET received = ?, kept = kept + ?, updated = ?, "
                "expires = CASE WHEN ? > 0 THEN ? ELSE expires END WHERE id = ?",
                (offset + size, size, self._clock(), expires, expires, job.job_id),
            )
        return offset + size

    async def set_received(self, job_id: str, received: int) -> None:
        """A fetched audio's size (it replaced whatever an earlier fetch left)."""
        await self._run(
            lambda: self.db.execute(
                "UPDATE jobs SET kept = MAX(0, kept - received) + ?, received = ? WHERE id = ?",
                (received, received, job_id),
            )
        )

    async def drop_audio(self, job_id: str) -> None:
        """The job ended (done, failed, cancelled): its audio is deleted (its results are kept)."""
        await self._run(self._drop_audio, job_id)

    def _drop_audio(self, job_id: str) -> None:
        size = self.remove_audio(job_id)
        self.db.execute("UPDATE jobs SET kept = MAX(0, kept - ?) WHERE id = ?", (size, job_id))

    # -- results ----------------------------------------------------------------------------------

    async def resume_point(self, job_id: str) -> ResumePoint:
        """Where the job goes on, its tracks cut back to their length after its last finished segment."""
        return await self._run(self._resume_point, job_id)

    def _resume_point(self, job_id: str) -> ResumePoint:
        row = self.db.execute(
            "SELECT seq, end_ms, result, tracks FROM segments WHERE job_id = ? ORDER BY seq DESC LIMIT 1", (job_id,)
        ).fetchone()
        tracks: dict[str, int] = {} if row is None else json.loads(row[3])
        self.cut_tracks(job_id, tracks)
        if row is None:
            return ResumePoint(0, 0, -1, {})
        return ResumePoint(int(row[0]) + 1, int(row[1]), int(json.loads(row[2])["segment_id"]), tracks)

    async def add_segment(
        self,
        job_id: str,
        seq: int,
        result: dict[str, Any],
        speech: dict[str, np.ndarray],
        rate: int,
        owner: str = "",
    ) -> dict[str, int]:
        """A finished segment: its speech appended to each target's track at its place (silence
        before it, when the track is behind the segment's start), then its row and the tracks'
        lengths in one transaction. Returns those lengths. (``owner``: checked by the Redis store;
        a node's workers share one file, their leases in it.)"""
        return await self._run(self._add_segment, job_id, seq, result, speech, rate)

    def _add_segment(
        self, job_id: str, seq: int, result: dict[str, Any], speech: dict[str, np.ndarray], rate: int
    ) -> dict[str, int]:
        before = self._tracks_after(job_id)
        tracks = self.append_speech(job_id, before, result, speech, rate)
        row = json.dumps(result)
        grown = len(row) + sum(tracks.values()) - sum(before.values())
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT INTO segments (job_id, seq, end_ms, result, tracks) VALUES (?, ?, ?, ?, ?)",
                (job_id, seq, result["end_ms"], row, json.dumps(tracks)),
            )
            self.db.execute(
                "UPDATE jobs SET segments = ?, done_ms = ?, kept = kept + ?, updated = ? WHERE id = ?",
                (seq + 1, result["end_ms"], grown, self._clock(), job_id),
            )
        return tracks

    def _tracks_after(self, job_id: str) -> dict[str, int]:
        row = self.db.execute(
            "SELECT tracks FROM segments WHERE job_id = ? ORDER BY seq DESC LIMIT 1", (job_id,)
        ).fetchone()
        return {} if row is None else dict(json.loads(row[0]))

    async def segments(self, job_id: str, after: int = -1, limit: int = 256) -> list[dict[str, Any]]:
        """Up to ``limit`` finished segments after ``after`` (a page: results are read a page at a time)."""
        return await self._run(self._segments, job_id, after, limit)

    def _segments(self, job_id: str, after: int, limit: int) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT result FROM segments WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?", (job_id, after, limit)
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    async def set_speakers(self, job_id: str, labels: dict[int, int], voices: dict[int, int] | None = None) -> None:
        """Stored segments' speaker labels, by their number (``seq``), given again over the whole
        file once the job reached its end (``voices.py``), and their voices with a voice per speaker."""
        await self._run(self._set_speakers, job_id, labels, voices or {})

    def _set_speakers(self, job_id: str, labels: dict[int, int], voices: dict[int, int]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            for seq, speaker in labels.items():
                row = self.db.execute(
                    "SELECT result FROM segments WHERE job_id = ? AND seq = ?", (job_id, seq)
                ).fetchone()
                if row is not None:
                    result = json.dumps(with_speaker(json.loads(row[0]), speaker, voices.get(seq)))
                    self.db.execute(
                        "UPDATE segments SET result = ? WHERE job_id = ? AND seq = ?", (result, job_id, seq)
                    )

    async def expired(self, now: float) -> list[str]:
        """Jobs whose results are past their retention, and uploads abandoned (``expires`` set)."""
        return await self._run(
            lambda: [
                r[0]
                for r in self.db.execute("SELECT id FROM jobs WHERE expires > 0 AND expires <= ?", (now,)).fetchall()
            ]
        )

    async def delete(self, job_id: str) -> None:
        await self._run(self._delete, job_id)

    def _delete(self, job_id: str) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM segments WHERE job_id = ?", (job_id,))
            self.db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        shutil.rmtree(self.folder(job_id), ignore_errors=True)


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


def check_part(offset: int, size: int, received: int, limit: int) -> None:
    """A part of ``size`` bytes at ``offset`` of an upload that has ``received``: where the upload
    ends (else ``Conflict``, nothing written), and within ``limit`` (``jobs.max_upload_bytes``)."""
    if offset != received:
        raise Conflict(
            f"this part starts at byte {offset}, but the upload has {received} bytes: "
            f"send the part that starts at {received} (GET the job for received_bytes)"
        )
    if offset + size > limit:
        raise InvalidInput(f"the upload is over this server's {limit}-byte limit (jobs.max_upload_bytes)")


def _status(row: tuple[Any, ...]) -> JobStatus:
    return JobStatus(
        job_id=row[0],
        tenant=row[1],
        state=JobState(row[2]),
        spec=JobSpec.from_json(row[3]),
        created_at=row[4],
        updated_at=row[5],
        received_bytes=row[6],
        duration_ms=row[7],
        done_ms=row[8],
        segments=row[9],
        error=row[10],
        expires_at=row[11],
    )
