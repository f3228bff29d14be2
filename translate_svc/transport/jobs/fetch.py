"""A job's audio fetched from an ``https`` URL by the MCP door's rules (``transport/mcp/fetch.py``:
https only, hosts the operator listed, public addresses only, each redirect re-checked, the whole
fetch within a time and the body within a size), its body written to the job's file as it comes,
so hours of audio never sit in memory. Event loop only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from translate_svc.settings.jobs import JobSettings
from translate_svc.transport.mcp.fetch import ClipRefused, Fetcher

_CHUNK = 256 * 1024


class ToFile(Fetcher):
    """``Fetcher`` whose body goes to ``path`` (its messages name ``audio_url``: a job's ``url``)."""

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
    """A refusal of the MCP door's fetch in a job's words (its field ``url``, its settings)."""
    message = e.message
    for theirs, ours in _WORDS:
        message = message.replace(theirs, ours)
    return ClipRefused(message, e.reason or "fetch_failed")
