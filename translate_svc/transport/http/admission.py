"""A request on the HTTP port that does work for a tenant, admitted as its token's and tenant's
unary call (as the MCP endpoint's requests and the gRPC port's unary calls are), and
bounded from its first byte: one door beside admission is the hole every other door's caps leave
open (DESIGN.md, pitfall 38).

- ``RequestAdmission.admitted``: the request holds one of its tenant's unary call slots
  (``limits.max_unary_calls_per_tenant``, or the tenant's ``unary_calls``) and one of its token's
  (``limits.max_unary_calls_per_token``, per process) while it is served; one that holds its
  connection past its head (a long poll, an upload's part, a download: ``held=True``) also one of
  its tenant's ``limits.http_max_held_requests_per_tenant``, node-wide. Full: a ``ServiceError``
  (429 with ``Retry-After`` through ``responses.refused``), before anything of the request is read.
- ``MinRate``: what such a request must move, at least: ``limits.http_min_transfer_bytes_per_s``
  on average, counted from the handler's start once ``limits.http_header_timeout_s`` has passed,
  and never a pause longer than ``limits.http_header_timeout_s`` (a sender that sends fast, then
  stops, holds no longer than one that never started).
- ``receive_to_file``: a body written to a file as it comes (never whole in memory), at most so
  many bytes (413), within a time (408) and at the ``MinRate`` (408); its writes on the process's
  part-write pool as its tenant's calls (``session/work.py``: never the loop's default executor),
  a full disk 507 (``StorageFull``).
- ``send_chunks``: a streamed answer, each write at the ``MinRate`` (else the connection is closed).

Route sets use it as::

    admission = RequestAdmission(ctx.sessions, ctx.settings.limits)
    async with admission.admitted(caller, held=True):   # ServiceError when full
        got = await receive_to_file(request, path, limit=..., timeout_s=..., rate=admission.rate(), ...)

Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aiohttp import web

from translate_svc.errors import storage_full
from translate_svc.session.manager import SessionManager
from translate_svc.session.work import Offload, OnPool
from translate_svc.settings import LimitsSettings
from translate_svc.transport.http.caller import Caller
from translate_svc.transport.http.responses import http_error

logger = logging.getLogger(__name__)

#: what a body's bytes are gathered into before each write to its file (on a thread)
WRITE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class MinRate:
    """The least a transfer must have moved by each moment: ``bytes_per_s`` on average from
    ``started`` (the event loop's clock), after a ``grace_s`` (a request's head, a slow start), and
    something at least every ``grace_s``."""

    bytes_per_s: int
    grace_s: float
    started: float

    def deadline(self, moved: int, now: float | None = None) -> float:
        """When a transfer that has moved ``moved`` bytes (the last of them at ``now``) is too slow
        unless it moves more."""
        average = self.started + self.grace_s + moved / self.bytes_per_s
        return average if now is None else min(average, now + self.grace_s)

    def words(self) -> str:
        return (
            f"slower than {self.bytes_per_s} bytes a second on average after its first {self.grace_s:g} s, or "
            f"paused longer than {self.grace_s:g} s (limits.http_min_transfer_bytes_per_s, "
            "limits.http_header_timeout_s)"
        )


class RequestAdmission:
    """One route set's admission of its requests (see the module). Event loop only."""

    def __init__(self, sessions: SessionManager, limits: LimitsSettings) -> None:
        self._m = sessions
        self._limits = limits

    @contextlib.asynccontextmanager
    async def admitted(self, caller: Caller, *, held: bool = False) -> AsyncIterator[None]:
        """The request of ``caller`` in the block, counted as above (``ServiceError`` when full)."""
        token = caller.token.sha256 if caller.token is not None else None
        async with self._m.admit_unary(caller.tenant, token):
            if not held:
                yield
                return
            async with self._m.holding_request(caller.tenant):
                yield

    def part_writes(self, caller: Caller) -> OnPool:
        """Where ``caller``'s upload is written: the process's part-write pool, as its tenant's calls
        (``limits.part_write_threads``, ``limits.part_writes_per_tenant``)."""
        return OnPool(self._m.work.part_writes, caller.tenant.name)

    def file_reads(self, caller: Caller) -> OnPool:
        """Where what ``caller`` downloads is read: the process's file-read pool, as its tenant's
        calls (``limits.file_read_threads``, ``limits.file_reads_per_tenant``)."""
        return OnPool(self._m.work.file_reads, caller.tenant.name)

    def rate(self) -> MinRate:
        """The minimum rate of a transfer starting now."""
        loop = asyncio.get_running_loop()
        limits = self._limits
        return MinRate(limits.http_min_transfer_bytes_per_s, limits.http_header_timeout_s, loop.time())


async def receive_to_file(
    request: web.Request,
    path: Path,
    *,
    limit: int,
    timeout_s: float,
    rate: MinRate,
    too_large: str,
    timeout_words: str,
    what: str,
    write: Offload,
) -> int | web.Response:
    """Write the request's body to ``path`` as it comes (each write through ``write``: a pool of its
    own, ``RequestAdmission.part_writes``); its size, or the answer that refuses it: 413
    (``too_large`` says what to send) once it is over ``limit`` bytes (its ``Content-Length``
    refused unread), 408 when it is not whole within ``timeout_s`` (``timeout_words`` names the
    setting) or is slower than ``rate``, 499 when the client left; ``StorageFull`` (507) when the
    disk refuses a write for space. What was written stays in ``path``: the caller removes it."""
    length = request.content_length
    if length is not None and length > limit:
        return http_error(413, too_large, "request_too_large")
    loop = asyncio.get_running_loop()
    end = rate.started + timeout_s
    size = 0
    try:
        f = await write(functools.partial(_open_to_write, path))
        try:
            async with asyncio.timeout_at(min(end, rate.deadline(0))) as clock:
                buffer = bytearray()
                while chunk := await request.content.readany():
                    size += len(chunk)
                    if size > limit:
                        return http_error(413, too_large, "request_too_large")
                    buffer += chunk
                    if len(buffer) >= WRITE_BYTES:
                        await write(functools.partial(f.write, bytes(buffer)))
                        buffer.clear()
                    clock.reschedule(min(end, rate.deadline(size, loop.time())))
                if buffer:
                    await write(functools.partial(f.write, bytes(buffer)))
        except TimeoutError:
            if loop.time() >= end:
                message = f"the request's body did not come within {timeout_s:g} s ({timeout_words})"
            else:
                message = f"the request's body came {rate.words()}: send it faster, or in smaller parts"
            return http_error(408, message, "request_timeout")
        except ConnectionError as e:
            logger.info("%s's client went away while it sent its body (%s)", what, type(e).__name__)
            return web.Response(status=499)
        finally:
            await write(f.close)
    except OSError as e:  # the disk refused a write for space: a refusal, not a server error
        full = storage_full(e, what)
        if full is None:
            raise
        logger.warning("%s was refused: the disk is full (%s)", what, e.strerror)
        raise full from None
    return size


async def send_chunks(
    request: web.Request,
    chunks: AsyncIterator[bytes],
    headers: Mapping[str, str],
    rate: MinRate,
    *,
    what: str,
) -> web.StreamResponse:
    """Stream ``chunks`` as the answer, each write at ``rate`` at least: a client that reads slower
    (or not at all) has its connection closed, so it holds no handler and no connection past that."""
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    sent = 0
    try:
        async for chunk in chunks:
            sent += len(chunk)
            async with asyncio.timeout_at(rate.deadline(sent, loop.time())):
                await response.write(chunk)
        await response.write_eof()
    except TimeoutError:
        logger.info("%s: its client read %s; its connection is closed", what, rate.words())
        if request.transport is not None:
            request.transport.close()
    return response


def _open_to_write(path: Path) -> BinaryIO:
    return open(path, "wb")
