"""A URL job's audio, taken in by the worker that claimed the job: the job is stored
``queued`` with its ``url`` in its spec at once, and whichever process claims it under its lease
(``worker.py``: this node's, or with ``cluster.redis_url`` any pod's) fetches the audio
first, by the shared fetch rules (``translate_svc/fetch.py``: https only, the hosts in
``jobs.fetch_hosts``, public addresses only, each redirect re-checked, the whole fetch within
``jobs.fetch_timeout_s``, the body within ``jobs.max_upload_bytes`` and what the tenant's jobs may
still keep), at ``jobs.fetch_min_bytes_per_s`` at least on average after ``jobs.fetch_grace_s``
(a slow host is dropped, not waited for), to a file of its own beside the job's audio,
moved into place once whole; then records the size, checks the audio (readable, within
``jobs.max_audio_s``, the tenant's hours: ``job_caps``; in a media process of its own,
``jobs/media.py``, that waits for a free one however long: the fetch stage's slots bound how many
of a process's URL jobs are probed at once) and records its length. A process stopped
or killed mid-fetch leaves the job ``running`` with no length: the next claim fetches it again from
the start, the partial file replaced. A fetch refused or failed is a ``ServiceError`` saying why
(the worker fails the job with it).

``job_caps``: a tenant's caps on its jobs (its tokens-file line's ``jobs=`` and ``job_hours=``,
else the ``jobs.max_*_per_tenant`` defaults, and ``jobs.max_bytes_per_tenant``), and
``over_cap`` the 429 of a cap met (``store.TenantFull``). Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from translate_svc.errors import InvalidInput, Overloaded
from translate_svc.fetch import ClipRefused, Fetcher
from translate_svc.jobs.keeper import JobKeeper
from translate_svc.jobs.media import JobMedia, Probed
from translate_svc.jobs.model import JobStatus
from translate_svc.jobs.store import TenantFull
from translate_svc.session.tenants.tenant import Tenant
from translate_svc.settings.jobs import JobSettings

_CHUNK = 256 * 1024


@dataclass(frozen=True)
class JobCaps:
    """A tenant's caps on its jobs, and where each is set (for the refusal's words)."""

    jobs: int
    hours: float
    bytes: int
    jobs_from: str
    hours_from: str


def job_caps(settings: JobSettings, tenant: Tenant) -> JobCaps:
    """Its tokens-file line's ``jobs=`` and ``job_hours=``, else the server's defaults (no tenant
    is uncapped), and the bytes its jobs may keep."""
    jobs, hours = tenant.caps.jobs, tenant.caps.job_hours
    return JobCaps(
        jobs if jobs is not None else settings.max_jobs_per_tenant,
        hours if hours is not None else settings.max_hours_per_tenant,
        settings.max_bytes_per_tenant,
        f"jobs={jobs} in the tokens file"
        if jobs is not None
        else f"jobs.max_jobs_per_tenant={settings.max_jobs_per_tenant}",
        f"job_hours={hours:g} in the tokens file"
        if hours is not None
        else f"jobs.max_hours_per_tenant={settings.max_hours_per_tenant:g}",
    )


def over_cap(full: TenantFull, caps: JobCaps, duration_ms: int = 0, *, at_least: bool = False) -> Overloaded:
    """The RESOURCE_EXHAUSTED (429) of a cap met, naming it and what to do (``at_least``: the
    job's audio states no length and was read to ``duration_ms`` without its end)."""
    if full.what == "jobs":
        message = (
            f"this tenant has {full.have:.0f} jobs not finished, its cap ({caps.jobs_from}): wait for one to "
            "finish, or cancel one"
        )
    elif full.what == "hours" and not duration_ms:
        message = (
            f"this tenant's {full.have:.2f} h of jobs not finished fill its cap ({caps.hours_from}): complete this "
            "job once one has finished"
        )
    elif full.what == "hours" and at_least:
        message = (
            f"this job's audio, more than {duration_ms / 3_600_000:.2f} h (it states no length and was read that "
            f"far), with the tenant's {full.have:.2f} h of jobs not finished is over its cap ({caps.hours_from}): "
            "submit it again once a job has finished, or split it"
        )
    elif full.what == "hours":
        message = (
            f"this job's {duration_ms / 3_600_000:.2f} h with the tenant's {full.have:.2f} h of jobs not finished "
            f"is over its cap ({caps.hours_from}): submit it again once a job has finished"
        )
    else:
        message = (
            f"this tenant's jobs keep {full.have:.0f} bytes on this server (audio, results, dubbed tracks), its "
            f"budget is {caps.bytes} (jobs.max_bytes_per_tenant): delete finished jobs (DELETE /v1/jobs/<id>) "
            "or let their results expire"
        )
    e = Overloaded(message, retry_after_ms=1000)
    e.reason = "over_cap"
    return e


def fetched(job: JobStatus) -> bool:
    """Whether the job's audio is in place: uploaded, or fetched whole and checked (its length known)."""
    return not job.spec.url or job.duration_ms > 0


def check_url(settings: JobSettings, url: str, checks: dict[str, object]) -> None:
    """Whether the fetch rules take ``url`` at all (before any lookup): a job is made only then."""
    ToFile(settings, Path(os.devnull), None, **checks).check(url)


async def hours_left_s(store: JobKeeper, caps: JobCaps, tenant: Tenant) -> float:
    """The seconds of audio the tenant's jobs may still hold (its ``job_hours`` less its jobs not
    finished): how far a stream that states no length is read at most; 429 when none are left."""
    _, hours = await store.tenant_load(tenant.name)
    left_s = (caps.hours - hours) * 3600
    if left_s <= 0:
        raise over_cap(TenantFull("hours", hours), caps)
    return left_s


async def note_probed(store: JobKeeper, job_id: str, probed: Probed) -> None:
    """What the probe found that the job's later files need: the upload's SHA-256, and a video's
    kind (its upload is kept once the job is done, to dub the video from)."""
    if probed.sha256 is not None:
        await asyncio.to_thread(store.write_digest, job_id, probed.sha256)
    if probed.media is not None and probed.media.video:
        await asyncio.to_thread(store.write_media, job_id, probed.media.kind.value, probed.media.audio_start_ms)


async def check_probed(
    store: JobKeeper, job: JobStatus, probed: Probed, caps: JobCaps, left_s: float, *, tracks: int | None = None
) -> None:
    """A probed upload within the tenant's caps: the bytes its jobs keep with ``tracks`` more (its
    dubbed tracks; None: not checked), and its hours (its length recorded under them); 429 naming
    the cap. A job of separate channels needs an upload of 2 (400 saying so)."""
    if job.spec.separate_channels and probed.channels != 2:
        raise InvalidInput(
            f"channel_mode separate needs audio of 2 channels, one a party; the upload has {probed.channels}: send a "
            "stereo file, or submit the job with channel_mode mixed"
        )
    if probed.longer:
        raise over_cap(TenantFull("hours", caps.hours - left_s / 3600), caps, probed.duration_ms, at_least=True)
    if tracks is not None:
        kept = await store.kept_bytes(job.tenant)
        if kept + tracks > caps.bytes:
            raise over_cap(TenantFull("bytes", kept + tracks), caps)
    try:
        await store.set_duration(job.job_id, probed.duration_ms, max_hours=caps.hours)
    except TenantFull as e:
        raise over_cap(e, caps, probed.duration_ms) from None


async def take_in(
    store: JobKeeper,
    settings: JobSettings,
    job: JobStatus,
    tenant: Tenant,
    checks: dict[str, object],
    media: JobMedia,
) -> JobStatus:
    """Fetch the job's audio to its audio path, record its size, check it (in a media process) and
    record its length; the job as it then stands. ``checks``: a test's ``allowed=`` and
    ``ssl_context=``."""
    path = store.audio_path(job.job_id)
    caps = job_caps(settings, tenant)
    # what the tenant's jobs may still keep, this job's earlier fetch (replaced) aside
    left = caps.bytes - await store.kept_bytes(tenant.name) + job.received_bytes
    if left <= 0:
        raise over_cap(TenantFull("bytes", caps.bytes - left), caps)
    # a file of this fetch's own: a fetch that ends early leaves the job's audio as it was, and
    # two processes never write one file (a lease that lapsed while its process still fetched)
    part = path.with_name(f"audio.{secrets.token_hex(6)}.part")
    fetch = ToFile(settings, part, left, **checks)
    try:
        await fetch.fetch(job.spec.url)
        await asyncio.to_thread(os.replace, part, path)
    finally:
        await asyncio.to_thread(_unlink, part)
    await store.set_received(job.job_id, fetch.size)
    left_s = await hours_left_s(store, caps, tenant)
    # of no tenant's share, waiting as long as it takes: the fetch stage bounds these (and a
    # refusal here would fail the job, or fetch it again)
    probed = await media.probe(None, path, job.spec.fmt, fetch.size, settings.max_audio_s, left_s, wait=True)
    await note_probed(store, job.job_id, probed)
    await check_probed(store, job, probed, caps, left_s)
    return await store.get(job.job_id)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class ToFile(Fetcher):
    """``Fetcher`` whose body goes to ``path`` as it comes, so hours of audio never sit in memory
    (its messages name a job's ``url`` and ``jobs.*`` settings where the MCP door's name its own),
    at most ``left`` bytes (what the tenant's jobs may still keep, when under
    ``jobs.max_upload_bytes``), and at ``jobs.fetch_min_bytes_per_s`` at least: from the fetch's
    start (its connection, redirects and head too), the first ``jobs.fetch_grace_s`` free."""

    def __init__(self, settings: JobSettings, path: Path, left: int | None = None, **checks: object) -> None:
        limit = settings.max_upload_bytes if left is None else min(left, settings.max_upload_bytes)
        super().__init__(
            settings.fetch_hosts,
            max_bytes=limit,
            timeout_s=settings.fetch_timeout_s,
            max_redirects=settings.fetch_max_redirects,
            **checks,  # type: ignore[arg-type]  # a test's allowed= and ssl_context=
        )
        self.path = path
        self.over_budget = limit < settings.max_upload_bytes
        self.min_rate = settings.fetch_min_bytes_per_s
        self.grace_s = settings.fetch_grace_s
        self._started = 0.0
        self._clock: asyncio.Timeout | None = None
        #: bytes written
        self.size = 0

    def _deadline(self, size: int) -> float:
        return self._started + self.grace_s + size / self.min_rate

    def check(self, url: str) -> str:
        try:
            return super().check(url)
        except ClipRefused as e:
            raise _reworded(e) from None

    async def fetch(self, url: str) -> bytes:
        self._started = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout_at(self._deadline(0)) as clock:
                self._clock = clock
                return await super().fetch(url)
        except TimeoutError:
            raise ClipRefused(
                f"the audio at url came slower than {self.min_rate} bytes a second on average after its first "
                f"{self.grace_s:g} s (jobs.fetch_min_bytes_per_s): use a faster host",
                "fetch_failed",
            ) from None
        except ClipRefused as e:
            raise _reworded(e) from None

    async def _body(self, response: aiohttp.ClientResponse) -> bytes:
        length = response.content_length
        if length is not None and length > self.max_bytes:
            raise self._too_large()
        size = 0
        loop = asyncio.get_running_loop()
        f = await loop.run_in_executor(None, open, self.path, "wb")
        try:
            async for chunk in response.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > self.max_bytes:
                    raise self._too_large()
                await loop.run_in_executor(None, f.write, chunk)
                if self._clock is not None:
                    self._clock.reschedule(self._deadline(size))
        finally:
            await loop.run_in_executor(None, f.close)
        if not size:
            raise ClipRefused("the url's body is empty: send a URL that serves the audio", "fetch_failed")
        self.size = size
        return b""

    def _too_large(self) -> ClipRefused:
        if self.over_budget:
            return ClipRefused(
                f"the audio at url is over the {self.max_bytes} bytes this tenant's jobs may still keep "
                "(jobs.max_bytes_per_tenant): delete finished jobs, or let their results expire",
                "clip_too_large",
            )
        return ClipRefused(
            f"the audio at url is over this server's {self.max_bytes}-byte limit for a job (jobs.max_upload_bytes)",
            "clip_too_large",
        )


#: the MCP door's words for what a job calls otherwise
_WORDS = (
    ("mcp.fetch_hosts", "jobs.fetch_hosts"),
    ("mcp.fetch_timeout_s", "jobs.fetch_timeout_s"),
    ("mcp.fetch_max_redirects", "jobs.fetch_max_redirects"),
    ("send the clip inline as audio_base64", "upload the audio in parts"),
    ("send it inline as audio_base64", "upload it in parts"),
    ("audio_url", "url"),
)


def _reworded(e: ClipRefused) -> ClipRefused:
    """A refusal of the shared fetch in a job's words (its field ``url``, its settings)."""
    message = e.message
    for theirs, ours in _WORDS:
        message = message.replace(theirs, ours)
    return ClipRefused(message, e.reason or "fetch_failed")
