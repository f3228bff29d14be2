"""A glossary's file as its doors receive it: ``ImportGlossary``'s messages (a header,
then the file in chunks) and a REST create's or replace's body, each read within the same bounds
before anything of the file is parsed:

- **size**: the file at most ``glossaries.max_import_bytes`` (``ServerLimits.glossary_import_bytes``),
  counted as each chunk comes, before it is kept; an ``ImportGlossary`` message at most
  ``IMPORT_MESSAGE_BYTES`` (checked before protobuf parses it);
- **time**: the whole file within ``glossaries.import_timeout_s`` of the call's start, and at
  ``limits.http_min_transfer_bytes_per_s`` on average after its first seconds (the port's
  request read timeout on gRPC, its header timeout on HTTP), with no pause longer than those
  (``http.admission.MinRate``): a sender that stops holds its import slot seconds, not a minute;
- **admission** is the door's: a unary call of its token and tenant, then one of the process's
  import slots (``glossaries.imports.ImportSlots``), both before the first byte is read.

Then the file is parsed in the glossaries' processes (``GlossaryBook.parse``). Event loop only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.errors import InvalidInput, TooSlow
from translate_svc.glossaries.imports import IMPORT_MESSAGE_BYTES
from translate_svc.glossaries.model import GlossaryLimits
from translate_svc.transport.http.admission import MinRate
from translate_svc.transport.rpc import parse_message

#: what a refused import is told to send instead of a larger file
SPLIT = "split it into several glossaries (a request names up to ServerLimits.max_glossaries_per_request)"


@dataclass(frozen=True)
class Clock:
    """When a file's next bytes are due: ``end`` (the call's start plus ``import_timeout_s``, the
    event loop's clock) and ``rate`` (``MinRate``); ``rate_words`` names the rate's settings."""

    end: float
    timeout_s: float
    rate: MinRate
    rate_words: str

    @staticmethod
    def starting(limits: GlossaryLimits, bytes_per_s: int, grace_s: float, rate_words: str) -> Clock:
        now = asyncio.get_running_loop().time()
        return Clock(
            now + limits.import_timeout_s, limits.import_timeout_s, MinRate(bytes_per_s, grace_s, now), rate_words
        )

    def due(self, moved: int, now: float | None = None) -> float:
        return min(self.end, self.rate.deadline(moved, now))

    def late(self) -> TooSlow:
        """The error for a file that did not come in time (whichever bound it missed)."""
        if asyncio.get_running_loop().time() >= self.end:
            return TooSlow(
                f"the glossary's file did not come within {self.timeout_s:g} s of the call's start "
                "(glossaries.import_timeout_s, ServerLimits.glossary_import_timeout_ms): send it at once, "
                f"or {SPLIT}"
            )
        return TooSlow(
            f"the glossary's file came slower than {self.rate.bytes_per_s} bytes a second on average after "
            f"its first {self.rate.grace_s:g} s, or paused longer than {self.rate.grace_s:g} s "
            f"({self.rate_words}): send it at once"
        )


def too_large(limits: GlossaryLimits) -> InvalidInput:
    return InvalidInput(
        f"the glossary's file is over {limits.max_import_bytes} bytes (glossaries.max_import_bytes, "
        f"ServerLimits.glossary_import_bytes): {SPLIT}"
    )


async def read_import(
    raw_requests: AsyncIterator[bytes], limits: GlossaryLimits, clock: Clock
) -> tuple[pb.GlossaryImportHeader, bytes]:
    """``ImportGlossary``'s header and file, read to the call's end (the client half-closes) within
    the bounds above: INVALID_ARGUMENT for a message over ``IMPORT_MESSAGE_BYTES``, a file over
    ``max_import_bytes``, no header first, a second header or an empty file; DEADLINE_EXCEEDED
    when the file is late."""
    loop = asyncio.get_running_loop()
    header: pb.GlossaryImportHeader | None = None
    chunks: list[bytes] = []
    size = moved = 0
    try:
        async with asyncio.timeout_at(clock.due(0)) as timer:
            async for raw in raw_requests:
                msg = parse_message(
                    pb.ImportGlossaryRequest,
                    raw,
                    IMPORT_MESSAGE_BYTES,
                    too_large="send the file in chunks of at most ServerLimits.glossary_import_message_bytes",
                    unparsable=": generate the client from this server's translate.proto",
                )
                moved += len(raw)
                part = msg.WhichOneof("part")
                if header is None:
                    if part != "header":
                        raise InvalidInput(
                            "ImportGlossary's first message is its header (glossary_id, format): send it first, "
                            "then the file's bytes in data messages"
                        )
                    header = msg.header
                elif part != "data":
                    raise InvalidInput("ImportGlossary takes one header, first: every later message is data")
                else:
                    size += len(msg.data)
                    if size > limits.max_import_bytes:
                        raise too_large(limits)
                    chunks.append(msg.data)
                timer.reschedule(clock.due(moved, loop.time()))
    except TimeoutError:
        raise clock.late() from None
    if header is None:
        raise InvalidInput("the call carried no ImportGlossary message: send its header, then the file's bytes")
    if not size:
        raise InvalidInput("the glossary's file is empty: send its bytes in data messages after the header")
    data = b"".join(chunks)
    chunks.clear()
    return header, data


async def drop_rest(raw_requests: AsyncIterator[bytes], seconds: float) -> None:
    """Read and drop what a refused import's client still sends, until it half-closes or
    ``seconds`` (``server.error_drain_s``) pass; nothing read is parsed or kept."""

    async def drop() -> None:
        try:
            async for _ in raw_requests:
                pass
        except Exception:  # the call ended: its iterator fails, or it is already closed
            return

    task = asyncio.create_task(drop())
    try:
        await asyncio.wait({task}, timeout=seconds)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def read_body(request: web.Request, limit: int, clock: Clock) -> bytes:
    """A REST create's or replace's body within ``clock`` (``TooSlow``: the route answers 408), at
    most ``limit`` bytes (``BodyTooLarge``, its ``Content-Length`` refused unread: 413); a client
    that leaves raises ``ConnectionError``."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge()
    loop = asyncio.get_running_loop()
    body = bytearray()
    try:
        async with asyncio.timeout_at(clock.due(0)) as timer:
            while chunk := await request.content.readany():
                body += chunk
                if len(body) > limit:
                    raise BodyTooLarge()
                timer.reschedule(clock.due(len(body), loop.time()))
    except TimeoutError:
        raise clock.late() from None
    return bytes(body)


class BodyTooLarge(Exception):
    """A REST body over its limit (413: read no further)."""
