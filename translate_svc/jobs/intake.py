"""A URL job's audio, taken in by the runner that claimed the job (issue 73): the job is stored
``queued`` with its ``url`` in its spec at once, and whichever process claims it under its lease
(``runner.py``: this node's worker, or with ``cluster.redis_url`` any pod's) fetches the audio
first, by the shared fetch rules (``translate_svc/fetch.py``: https only, the hosts in
``jobs.fetch_hosts``, public addresses only, each redirect re-checked, the whole fetch within
``jobs.fetch_timeout_s``, the body within ``jobs.max_upload_bytes``), to a file of its own beside
the job's audio, moved into place once whole; then records the size, checks the audio (readable,
within ``jobs.max_audio_s``, the tenant's ``job_hours=``) and records its length. A process stopped
or killed mid-fetch leaves the job ``running`` with no length: the next claim fetches it again from
the start, the partial file replaced. A fetch refused or failed is a ``ServiceError`` saying why
(the runner fails the job with it). Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from pathlib import Path

import aiohttp

from translate_svc.errors import Overloaded
from translate_svc.fetch import ClipRefused, Fetcher
from translate_svc.jobs.keeper import JobKeeper
from translate_svc.jobs.model import JobStatus
from translate_svc.jobs.reader import probe
from translate_svc.session.tenants.tenant import Tenant
from translate_svc.settings.jobs import JobSettings

_CHUNK = 256 * 1024


def fetched(job: JobStatus) -> bool:
    """Whether the job's audio is in place: uploaded, or fetched whole and checked (its length known)."""
    return not job.spec.url or job.duration_ms > 0


def check_url(settings: JobSettings, url: str, checks: dict[str, object]) -> None:
    """Whether the fetch rules take ``url`` at all (before any lookup): a job is made only then."""
    ToFile(settings, Path(os.devnull), **checks).check(url)


async def take_in(
    store: JobKeeper, settings: JobSettings, job: JobStatus, tenant: Tenant, checks: dict[str, object]
) -> JobStatus:
    """Fetch the job's audio to its audio path, record its size, check it and record its length;
    the job as it then stands. ``checks``: a test's ``allowed=`` and ``ssl_context=``."""
    path = store.audio_path(job.job_id)
    # a file of this fetch's own: a fetch that ends early leaves the job's audio as it was, and
    # two processes never write one file (a lease that lapsed while its process still fetched)
    part = path.with_name(f"audio.{secrets.token_hex(6)}.part")
    fetch = ToFile(settings, part, **checks)
    try:
        await fetch.fetch(job.spec.url)
        await asyncio.to_thread(os.replace, part, path)
    finally:
        await asyncio.to_thread(_unlink, part)
    await store.set_received(job.job_id, fetch.size)
    loop = asyncio.get_running_loop()
    duration_ms = await loop.run_in_executor(None, probe, path, job.spec.fmt, settings.max_audio_s)
    cap = tenant.caps.job_hours
    if cap is not None:
        _, hours = await store.tenant_load(tenant.name)
        if hours + duration_ms / 3_600_000 > cap:
            raise Overloaded(
                f"this job's {duration_ms / 3_600_000:.2f} h with the tenant's {hours:.2f} h of jobs not finished "
                f"is over its cap (job_hours={cap:g} in the tokens file): submit it again once a job has finished"
            )
    await store.set_duration(job.job_id, duration_ms)
    return await store.get(job.job_id)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class ToFile(Fetcher):
    """``Fetcher`` whose body goes to ``path`` as it comes, so hours of audio never sit in memory
    (its messages name a job's ``url`` and ``jobs.*`` settings where the MCP door's name its own)."""

    def __init__(self, settings: JobSettings, path: Path, **checks: object) -> None:
        super().__init__(
            settings.fetch_hosts,
            max_bytes=settings.max_upload_bytes,
            timeout_s=settings.fetch_timeout_s,
            max_redirects=settings.fetch_max_redirects,
            **checks,  # type: ignore[arg-type]  # a test's allowed= and ssl_context=
        )
        self.path = path
        #: bytes written
        self.size = 0

    def check(self, url: str) -> str:
        try:
            return super().check(url)
        except ClipRefused as e:
            raise _reworded(e) from None

    async def fetch(self, url: str) -> bytes:
        try:
            return await super().fetch(url)
        except ClipRefused as e:
            raise _reworded(e) from None

    async def _body(self, response: aiohttp.ClientResponse) -> bytes:
        length = response.content_length
        if length is not None and length > self.max_bytes:
            raise _too_large(self.max_bytes)
        size = 0
        loop = asyncio.get_running_loop()
        f = await loop.run_in_executor(None, open, self.path, "wb")
        try:
            async for chunk in response.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > self.max_bytes:
                    raise _too_large(self.max_bytes)
                await loop.run_in_executor(None, f.write, chunk)
        finally:
            await loop.run_in_executor(None, f.close)
        if not size:
            raise ClipRefused("the url's body is empty: send a URL that serves the audio", "fetch_failed")
        self.size = size
        return b""


def _too_large(limit: int) -> ClipRefused:
    return ClipRefused(
        f"the audio at url is over this server's {limit}-byte limit for a job (jobs.max_upload_bytes)",
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
