"""The jobs of several pods in Redis (``cluster.redis_url``; ``keeper.py`` picks it): each job's
state and lease in a hash (``translate-svc:job:<tenant>:<id>``), its finished segments in a list
(``translate-svc:job-segments:<tenant>:<id>``, one JSON per segment, in order), a tenant's jobs not
finished in a set (``translate-svc:jobs-open:<tenant>``: its caps), all its jobs by creation
time (``translate-svc:jobs-made:<tenant>``: its listing, ``listing.py``), the bytes its jobs keep
(``translate-svc:jobs-kept:<tenant>``), the tenants by when a claim last served them
(``translate-svc:jobs:served:<stage>``), and three indexes:
``translate-svc:jobs:tenant`` (id -> tenant), ``translate-svc:jobs:live`` (the jobs queued or
running, scored by when they may be claimed) and ``translate-svc:jobs:expires`` (by retention).

A job's audio and dubbed tracks stay files under ``jobs.dir`` (``tracks.py``), which every pod
then mounts (a ReadWriteMany volume: docs/deploy.md): a pod that resumes a job reads its audio
there, cuts its tracks back to the lengths the last finished segment recorded, and appends.

Claims, renewals, state changes and finished segments are Lua scripts (``redis_lua.py``), atomic
in Redis: two pods never both take a job, and a finished segment is stored once, and only by its
job's lease holder (a pod whose lease lapsed and was taken over is refused: ``LeaseLost``). Leases
are on the callers' clocks, as the SQLite store's (pods keep theirs in sync: NTP). Every call is
bounded by ``timeout_s``: a Redis that does not answer raises UNAVAILABLE, naming it (never its
password). Event loop only.
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from translate_svc.errors import Conflict, NotFound
from translate_svc.jobs import redis_lua as lua
from translate_svc.jobs.listing import JobCursor
from translate_svc.jobs.model import JobSpec, JobState, JobStatus
from translate_svc.jobs.store import LeaseLost, ResumePoint, StoreLost, TenantFull, check_part, new_job_id
from translate_svc.jobs.tracks import JobFiles
from translate_svc.jobs.voices import with_speaker

T = TypeVar("T")

PREFIX = "translate-svc:"
_OPEN = ("uploading", "queued", "running")
#: job ids whose tenant this process remembers (a job's tenant never changes)
_TENANTS_KEPT = 4096
#: how long a part holds its upload while it is written to the shared dir (a pod that dies then
#: holds it no longer)
_PART_HOLD_S = 60.0
#: threads that write the jobs' files (as the SQLite store's one thread does, but a part held in
#: Redis is written outside any lock, so two pods' or two jobs' parts may be written at once)
_FILE_THREADS = 2


class RedisJobs(JobFiles):
    """``JobKeeper`` for several pods (see the module)."""

    def __init__(
        self,
        root: Path,
        url: str,
        password: str | None,
        *,
        timeout_s: float = 5.0,
        prefix: str = PREFIX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(root)
        parts = urlsplit(url)  # for messages: the URL without its password
        self.shown = f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"
        self.timeout_s = timeout_s
        self.prefix = prefix
        self._clock = clock
        self._client = aioredis.Redis.from_url(
            url,
            password=password,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            decode_responses=True,
        )
        self._lua = {name: self._client.register_script(getattr(lua, name)) for name in lua.SCRIPTS}
        self._tenants: dict[str, str] = {}
        #: the jobs' files (parts copied into the audio, tracks appended and cut, folders removed)
        #: are written on threads of their own, never the loop's default executor (where one
        #: tenant's parts would hold every tenant's result encoding: ``session/work.py``)
        self._file_pool = ThreadPoolExecutor(_FILE_THREADS, thread_name_prefix="job-files")

    async def _files(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn`` on the store's file threads."""
        return await asyncio.get_running_loop().run_in_executor(self._file_pool, functools.partial(fn, *args, **kwargs))

    async def _run(self, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await call
        except (TimeoutError, RedisError, OSError) as e:
            raise StoreLost(
                f"the jobs' store (Redis at {self.shown}) did not answer ({type(e).__name__}): retry shortly",
                retry_after_ms=1000,
            ) from None

    async def _script(self, name: str, *args: Any, keys: list[str] | None = None) -> Any:
        argv = [] if keys else [self.prefix]
        return await self._run(self._lua[name](keys=keys or [], args=[*argv, *args]))

    def _key(self, tenant: str, job_id: str) -> str:
        return f"{self.prefix}job:{tenant}:{job_id}"

    def _segments_key(self, tenant: str, job_id: str) -> str:
        return f"{self.prefix}job-segments:{tenant}:{job_id}"

    def _open_key(self, tenant: str) -> str:
        return f"{self.prefix}jobs-open:{tenant}"

    async def _tenant(self, job_id: str) -> str:
        tenant = self._tenants.get(job_id)
        if tenant is None:
            got = await self._run(self._client.hget(f"{self.prefix}jobs:tenant", job_id))
            if got is None:
                raise _missing(job_id)
            if len(self._tenants) >= _TENANTS_KEPT:
                self._tenants.clear()
            tenant = self._tenants[job_id] = str(got)
        return tenant

    async def start(self) -> None:
        await self._run(self._client.ping())
        await self._files(self.root.mkdir, parents=True, exist_ok=True)
        await self._index_made()

    async def _index_made(self) -> None:
        """Jobs made before their tenants' listings were kept (``jobs-made:<tenant>``) joined to
        them once, by the first pod that starts (each add is idempotent: two at once are harmless)."""
        if not await self._run(self._client.set(f"{self.prefix}jobs:made-indexed", "1", nx=True)):
            return
        cursor: Any = 0
        while True:
            got: Any = await self._run(self._client.hscan(f"{self.prefix}jobs:tenant", cursor, count=256))
            cursor, page = got[0], [(str(i), str(t)) for i, t in got[1].items()]
            pipe = self._client.pipeline(transaction=False)
            for job_id, tenant in page:
                pipe.hget(self._key(tenant, job_id), "created")
            made = await self._run(pipe.execute()) if page else []
            pipe = self._client.pipeline(transaction=False)
            for (job_id, tenant), created in zip(page, made, strict=True):
                if created is not None:
                    pipe.zadd(f"{self.prefix}jobs-made:{tenant}", {job_id: float(created)})
            await self._run(pipe.execute())
            if not int(cursor):
                return

    async def close(self) -> None:
        await self._client.aclose()
        self._file_pool.shutdown(wait=False)

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
        """As ``JobStore.create``: the caps checked in the insert's script (``CREATE``)."""
        job_id = new_job_id()
        await self._files(self.new_folder, job_id)
        now = self._clock()
        fields: dict[Any, Any] = {"tenant": tenant, "state": state.value, "spec": spec.to_json(), "created": repr(now)}
        fields |= {"updated": repr(now), "owner": "", "lease": "0", "tracks": "{}", "last_segment_id": "-1"}
        keys = ("received", "duration_ms", "done_ms", "segments", "error", "expires", "audio_s", "kept")
        fields |= dict.fromkeys(keys, "0")
        fields["error"] = ""
        live = repr(now - 1e11) if state in (JobState.QUEUED, JobState.RUNNING) else ""
        flat = [str(x) for pair in fields.items() for x in pair]
        try:
            got = await self._script("CREATE", tenant, job_id, _opt(max_jobs), _opt(max_bytes), live, *flat)
        except BaseException:
            await self._files(_remove, self.folder(job_id))
            raise
        if int(got[0]) != 0:
            await self._files(_remove, self.folder(job_id))
            raise TenantFull("jobs" if int(got[0]) == 1 else "bytes", float(got[1]))
        self._tenants[job_id] = tenant
        return await self.get(job_id, tenant)

    async def kept_bytes(self, tenant: str) -> int:
        """What the tenant's jobs keep on disk (``JobStore.kept_bytes``)."""
        return int(await self._run(self._client.get(f"{self.prefix}jobs-kept:{tenant}")) or 0)

    async def get(self, job_id: str, tenant: str | None = None) -> JobStatus:
        """The job (of ``tenant``, when given: another tenant's is NotFound, as one that never was)."""
        if tenant is None:
            tenant = await self._tenant(job_id)
        row: dict[Any, Any] = await self._run(self._client.hgetall(self._key(tenant, job_id)))
        if not row:
            raise _missing(job_id)
        return _status(job_id, row)

    async def list_jobs(self, tenant: str, limit: int, after: JobCursor | None = None) -> list[JobStatus]:
        """As ``JobStore.list_jobs``: the tenant's jobs by creation (``jobs-made:<tenant>``: ties in
        reverse id order, as SQLite's), newest first, after ``after``; a job deleted meanwhile is
        left out (and its entry dropped)."""
        key = f"{self.prefix}jobs-made:{tenant}"
        top = "+inf" if after is None else repr(after.created)
        out: list[JobStatus] = []
        offset = 0
        while len(out) < limit:
            want = limit - len(out) + 1
            got: Any = await self._run(
                self._client.zrevrangebyscore(key, top, "-inf", start=offset, num=want, withscores=True)
            )
            offset += len(got)
            ids = [str(m) for m, score in got if after is None or after.before(float(score), str(m))]
            pipe = self._client.pipeline(transaction=False)
            for job_id in ids:
                pipe.hgetall(self._key(tenant, job_id))
            rows = await self._run(pipe.execute()) if ids else []
            gone = [job_id for job_id, row in zip(ids, rows, strict=True) if not row]
            out += [_status(job_id, row) for job_id, row in zip(ids, rows, strict=True) if row]
            if gone:
                await self._run(self._client.zrem(key, *gone))
                offset -= len(gone)
            if len(got) < want:
                break
        return out[:limit]

    # -- leases -----------------------------------------------------------------------------------

    async def claim(self, owner: str, now: float, lease_s: float, limit: int, *, fetch: bool = False) -> list[str]:
        """As ``JobStore.claim``, across pods: one script, so two pods never take one job."""
        if limit <= 0:
            return []
        stage = "fetch" if fetch else "run"
        return [str(i) for i in await self._script("CLAIM", owner, repr(now), repr(lease_s), limit, stage)]

    async def others_waiting(self, tenant: str, now: float) -> bool:
        """As ``JobStore.others_waiting``."""
        return int(await self._script("WAITING", tenant, repr(now))) == 1

    async def renew(self, owner: str, job_ids: list[str], until: float) -> dict[str, JobState]:
        if not job_ids:
            return {}
        got = await self._script("RENEW", owner, repr(until), *job_ids)
        return {str(got[i]): JobState(got[i + 1]) for i in range(0, len(got), 2)}

    async def release(self, owner: str, job_id: str, until: float = 0.0) -> None:
        await self._script("RELEASE", owner, job_id, repr(float(until)))

    async def hold(self, owner: str, job_id: str, now: float, lease_s: float) -> bool:
        """As ``JobStore.hold``, across pods: one script."""
        return int(await self._script("HOLD", owner, job_id, repr(now), repr(now + lease_s))) == 1

    async def edit_segments(self, owner: str, job_id: str, results: dict[int, dict[str, Any]], grown: int) -> None:
        """As ``JobStore.edit_segments``: every result in one script, by the holder only."""
        rows = [str(x) for seq, result in results.items() for x in (seq, json.dumps(result))]
        got = int(await self._script("EDIT_SEGMENTS", owner, job_id, repr(self._clock()), grown, *rows))
        if got == -3:
            raise _missing(job_id)
        if got < 0:
            raise LeaseLost(f"job {job_id}: its edit is no longer held by this process")

    async def tenant_load(self, tenant: str) -> tuple[int, float]:
        """A tenant's jobs not finished (uploading, queued, running) and their audio in hours."""
        ids = sorted(str(i) for i in await self._run(self._client.smembers(self._open_key(tenant))))
        if not ids:
            return 0, 0.0
        pipe = self._client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(self._key(tenant, job_id), ["state", "audio_s"])
        rows = await self._run(pipe.execute())
        live = [float(audio or 0) for state, audio in rows if state in _OPEN]
        return len(live), sum(live) / 3600

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
        only = ",".join(s.value for s in only_from)
        args = [job_id, state.value, error, repr(float(expires)), repr(self._clock()), only]
        return int(await self._script("SET_STATE", *args)) == 1

    async def _set(self, job_id: str, **fields: Any) -> None:
        key = self._key(await self._tenant(job_id), job_id)
        flat = [str(x) for pair in fields.items() for x in pair]
        await self._script("SET_IF_THERE", *flat, keys=[key])

    async def set_duration(self, job_id: str, duration_ms: int, *, max_hours: float | None = None) -> None:
        """As ``JobStore.set_duration``: the hours checked in the same script."""
        now = repr(self._clock())
        got = await self._script("SET_DURATION", job_id, duration_ms, repr(duration_ms / 1000), now, _opt(max_hours))
        if int(got[0]) == -3:
            raise _missing(job_id)
        if int(got[0]) == 1:
            raise TenantFull("hours", float(got[1]))

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
        """As ``JobStore.append_part``, across pods: the upload held for this part (``PART_BEGIN``:
        its offset, the limit and the tenant's bytes checked), the part written to the shared dir,
        then counted (``PART_END``); a part written while another held the upload is refused."""
        size = (await self._files(part.stat)).st_size
        token = secrets.token_hex(8)
        now = self._clock()
        got = await self._script(
            "PART_BEGIN", job.job_id, offset, size, limit, _opt(max_bytes), repr(now), repr(now + _PART_HOLD_S), token
        )
        code = int(got[0])
        if code == -3:
            raise _missing(job.job_id)
        if code == 1:
            check_part(offset, size, int(got[1]), limit)
        if code == 2:
            check_part(offset, size, offset, limit)
        if code == 3:
            raise TenantFull("bytes", float(got[1]))
        if code == 4:
            raise Conflict("another part of this upload is being written: send the next part once it is answered")
        if code == 5:
            raise Conflict(f"the job is {str(got[1])[:16]}: parts go to a job still uploading")
        written = False
        try:
            await self._files(self.copy_part, job.job_id, offset, part)
            written = True
        finally:
            ended = await self._script(
                "PART_END", job.job_id, token, offset + size if written else 0, size, repr(self._clock()), repr(expires)
            )
        if not int(ended):
            raise Conflict("the upload's hold for this part lapsed before it was written: GET the job, send it again")
        return offset + size

    async def set_received(self, job_id: str, received: int) -> None:
        await self._script("SET_RECEIVED", job_id, received)

    async def drop_audio(self, job_id: str) -> None:
        """As ``JobStore.drop_audio``: the file in the shared dir, its bytes in Redis."""
        size = await self._files(self.remove_audio, job_id)
        await self._script("DROP_AUDIO", job_id, size)

    # -- results ----------------------------------------------------------------------------------

    async def resume_point(self, job_id: str) -> ResumePoint:
        """Where the job goes on (on whichever pod), its tracks in the shared dir cut back to their
        length after its last finished segment."""
        key = self._key(await self._tenant(job_id), job_id)
        got = await self._run(self._client.hmget(key, ["segments", "done_ms", "last_segment_id", "tracks"]))
        segments, done_ms, last, tracks_json = (str(x or "0") for x in got)
        tracks: dict[str, int] = json.loads(tracks_json) if tracks_json != "0" else {}
        await self._files(self.cut_tracks, job_id, tracks)
        if int(segments) == 0:
            return ResumePoint(0, 0, -1, {})
        return ResumePoint(int(segments), int(done_ms), int(last), tracks)

    async def add_segment(
        self,
        job_id: str,
        seq: int,
        result: dict[str, Any],
        speech: dict[str, np.ndarray],
        rate: int,
        owner: str = "",
    ) -> dict[str, int]:
        """A finished segment: its speech appended to the tracks in the shared dir, then its JSON,
        the job's progress and the tracks' lengths in one script, which refuses it (``LeaseLost``)
        unless it is the job's next segment, the job is running (not cancelled meanwhile, from any
        pod) and ``owner`` (when given) still holds it."""
        key = self._key(await self._tenant(job_id), job_id)
        tracks_json: Any = await self._run(self._client.hget(key, "tracks"))
        before = json.loads(tracks_json or "{}")
        tracks = await self._files(self.append_speech, job_id, before, result, speech, rate)
        row = json.dumps(result)
        grown = len(row) + sum(tracks.values()) - sum(before.values())
        args = [job_id, seq, row, json.dumps(tracks), result["end_ms"], result["segment_id"]]
        got = int(await self._script("ADD_SEGMENT", *args, repr(self._clock()), owner, grown))
        if got == -3:
            raise _missing(job_id)
        if got < 0:
            why = "stored already" if got == -1 else "not ours, or not running"
            raise LeaseLost(f"job {job_id}: segment {seq} refused ({why})")
        return dict(tracks)

    async def set_speakers(self, job_id: str, labels: dict[int, int], voices: dict[int, int] | None = None) -> None:
        """Stored segments' speaker labels, by their number (``seq``: their index in the list), given
        again over the whole file once the job reached its end (``voices.py``), and their voices
        with a voice per speaker; a page of segments read, then written back at once."""
        voices = voices or {}
        key = self._segments_key(await self._tenant(job_id), job_id)
        seqs = sorted(labels)
        for at in range(0, len(seqs), 256):
            page = seqs[at : at + 256]
            rows = await self._run(self._client.lrange(key, page[0], page[-1]))
            async with self._client.pipeline(transaction=False) as pipe:
                for seq in page:
                    if seq - page[0] < len(rows):
                        row = with_speaker(json.loads(rows[seq - page[0]]), labels[seq], voices.get(seq))
                        pipe.lset(key, seq, json.dumps(row))
                await self._run(pipe.execute())

    async def segments(self, job_id: str, after: int = -1, limit: int = 256) -> list[dict[str, Any]]:
        """Up to ``limit`` finished segments after ``after`` (a page)."""
        key = self._segments_key(await self._tenant(job_id), job_id)
        rows = await self._run(self._client.lrange(key, after + 1, after + limit))
        return [json.loads(r) for r in rows]

    async def expired(self, now: float) -> list[str]:
        """Jobs whose results are past their retention, and uploads abandoned (``expires`` set)."""
        got = await self._run(self._client.zrangebyscore(f"{self.prefix}jobs:expires", "(0", repr(now)))
        return [str(i) for i in got]

    async def delete(self, job_id: str) -> None:
        """The job's keys (any pod's sweep may do it: deleting twice is harmless), then its files."""
        await self._script("DELETE", job_id)
        self._tenants.pop(job_id, None)
        await self._files(_remove, self.folder(job_id))


def _opt(value: float | None) -> str:
    """An optional cap as a script's argument ('': none)."""
    return "" if value is None else repr(value)


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _missing(job_id: str) -> NotFound:
    return NotFound(f"no job {job_id[:40]!r} of this tenant: it never was, or its results expired")


def _status(job_id: str, row: dict[Any, Any]) -> JobStatus:
    return JobStatus(
        job_id=job_id,
        tenant=row["tenant"],
        state=JobState(row["state"]),
        spec=JobSpec.from_json(row["spec"]),
        created_at=float(row["created"]),
        updated_at=float(row["updated"]),
        received_bytes=int(row.get("received", 0)),
        duration_ms=int(row.get("duration_ms", 0)),
        done_ms=int(row.get("done_ms", 0)),
        segments=int(row.get("segments", 0)),
        error=row.get("error", ""),
        expires_at=float(row.get("expires", 0)),
    )
