"""``AsyncListener``: one listen to a room (``Listen``, docs/rooms.md), continued across servers.

How a listen survives its server going away: when its call ends after a ``Draining`` notice (the
server shut down: UNAVAILABLE), is lost (UNAVAILABLE, CANCELLED, ABORTED: a dropped connection), or
reaches the server's longest listen (``rooms.max_listen_s``: OUT_OF_RANGE, whose message says
"listen again"), the SDK listens again on the next address (retrying refusals there as a stream's
open does). The new call starts with its own ``ListenStarted`` (``resumes`` counts them) and the
room's backlog: the backlog segments the caller already had are dropped (``repeats_dropped``),
those it missed while the listen moved come marked ``backlog``. What cannot come back: live
captions and speech of the gap (a backlog is text only).

The next server finds the same room only where it shares the room's state with the last one
(docs/rooms.md says where a room lives); elsewhere the listen goes on in that server's room of
the name.

How a listen ends: the caller's ``aclose()`` (or leaving ``async with``) stops it, and the
iteration stops quietly. Any other end (a revoked token; with ``resume=False`` also a drain, a lost
connection, the longest listen) is told: the iteration yields a ``ListenEnd`` (reason, status, the
server's message) and then raises ``ListenEndedError``.

Event loop only, like the client that makes it. A pump task reads the current call into a queue
of ``max_buffered_events``: a caller who stops reading stops the SDK's reading, and the server then
drops the listener's oldest events and says how many (``ListenDropped``); a cancelled step of the
iteration (a timeout around ``__anext__``) leaves the call alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from types import TracebackType
from typing import Any, Final

import grpc

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client import _convert as convert
from translate_svc.client._retry import retry_delay_from_metadata
from translate_svc.client.aio._opening import StreamOwner, open_started
from translate_svc.client.errors import ListenEndedError, TranslateError
from translate_svc.client.room_types import ListenEnd, ListenEndReason, ListenEvent, ListenStarted, RoomSegment
from translate_svc.client.types import Draining

logger = logging.getLogger(__name__)

#: a call that stayed up this long counts as progress (max_resumes counts moves in a row without)
_HEALTHY_CALL_S: Final = 30.0
#: statuses after which a listen is continued elsewhere: a drain's end, a lost connection
_LOST: Final = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED})
#: segments remembered to drop a resumed call's repeats of (the server's backlog keeps 256 a room)
_REMEMBERED: Final = 4096


class _Delivered:
    """The last ``_REMEMBERED`` segments delivered, by (speaker, id, start, end): a speaker's ids
    restart with each of its streams, so the id alone could match a segment never delivered."""

    def __init__(self) -> None:
        self._keys: set[tuple[str, int, int, int]] = set()
        self._order: deque[tuple[str, int, int, int]] = deque()

    @staticmethod
    def key(ev: RoomSegment) -> tuple[str, int, int, int]:
        return (ev.speaker, ev.segment_id, ev.start_ms, ev.end_ms)

    def __contains__(self, ev: RoomSegment) -> bool:
        return self.key(ev) in self._keys

    def add(self, ev: RoomSegment) -> None:
        k = self.key(ev)
        if k in self._keys:
            return
        self._keys.add(k)
        self._order.append(k)
        if len(self._order) > _REMEMBERED:
            self._keys.discard(self._order.popleft())


class AsyncListener:
    """One listen to a room in one language; use as ``async with client.listen(...) as room:``
    then ``async for ev in room``. Yields ``ListenStarted`` first (and again after each move to
    another server), then ``RoomSegment`` (the backlog first, ``backlog=True``), ``RoomCaption``,
    ``ListenDropped``, ``Draining`` as they come; a listen the server ended yields ``ListenEnd``
    last and raises ``ListenEndedError``. ``aclose()`` stops it.
    """

    def __init__(
        self,
        client: StreamOwner,
        request: pb.ListenRequest,
        *,
        resume: bool = True,
        max_buffered_events: int,
    ) -> None:
        self._client = client
        self._request = request
        self._resume = resume
        self._events: asyncio.Queue[ListenEvent] | None = None  # made on the loop, by start()
        self._max_buffered = max_buffered_events
        self._wake: asyncio.Event | None = None
        self._call: Any = None
        self._pump: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._closed = False
        self._iter_done = False
        self._delivered = _Delivered()
        self._call_started = 0.0
        self._call_events = 0
        self._drained = False
        #: this listen's ``x-request-id``, sent with each of its calls
        self.request_id = uuid.uuid4().hex
        #: what the server said when the current call started
        self.info: ListenStarted | None = None
        #: how many times the listen moved to another call
        self.resumes = 0
        #: backlog segments a resumed call repeated and the SDK dropped
        self.repeats_dropped = 0
        #: how the server ended the listen (None while it lives, and after the caller's aclose())
        self.ended: ListenEnd | None = None

    # -- lifetime ----------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncListener:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Open the listen (its first call, until ``started``), retrying RESOURCE_EXHAUSTED /
        UNAVAILABLE elsewhere; a refusal (PERMISSION_DENIED, INVALID_ARGUMENT...) raises
        ``TranslateError`` with the server's message."""
        if self._pump is not None or self._closed:
            return
        self._events = asyncio.Queue(self._max_buffered)
        self._wake = asyncio.Event()
        call, started = await self._open(avoid=None, resumes=0)
        self._install(call, started)
        self._events.put_nowait(started)
        self._pump = asyncio.create_task(self._run(), name=f"listen-{self._request.room}")
        self._pump.add_done_callback(lambda _: self._wake.set() if self._wake is not None else None)

    async def aclose(self) -> None:
        """Stop listening now (events not yet taken are dropped); the iteration then stops."""
        self._closed = True
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
        if self._call is not None:
            self._call.cancel()
        if self._wake is not None:
            self._wake.set()

    # -- the caller's side -------------------------------------------------------------------

    def __aiter__(self) -> AsyncListener:
        return self

    async def __anext__(self) -> ListenEvent:
        if self._pump is None and not self._closed:
            await self.start()  # ``async for ev in client.listen(...)`` without ``async with``
        ev = await self._next(wait=True)
        if ev is None:
            raise StopAsyncIteration
        return ev

    def ready(self) -> list[ListenEvent]:
        """The events read and not taken yet, without waiting (what the blocking ``poll`` gives).
        Raises what the iteration raises once they are taken and the listen is over."""
        out: list[ListenEvent] = []
        try:
            while (ev := self._take()) is not None:
                out.append(ev)
        except Exception:
            if not out:
                raise
            self._iter_done = False  # the error again on the next step, after these events
        return out

    async def _next(self, *, wait: bool) -> ListenEvent | None:
        while wait and self._waiting():
            assert self._wake is not None
            self._wake.clear()
            await self._wake.wait()
        return self._take()

    def _waiting(self) -> bool:
        return (
            not self._iter_done
            and not self._closed
            and self._events is not None
            and self._events.empty()
            and self._pump is not None
            and not self._pump.done()
        )

    def _take(self) -> ListenEvent | None:
        """The next event queued; None when none is (or the listen is over); raises the failure
        once everything before it was taken."""
        if self._iter_done or self._events is None:
            return None
        if not self._events.empty() and not self._closed:
            return self._events.get_nowait()
        if self._closed or (self._pump is not None and self._pump.done()):
            self._iter_done = True
            if self._failure is not None and not self._closed:
                raise self._failure
        return None

    # -- the calls ---------------------------------------------------------------------------

    async def _open(self, avoid: str | None, resumes: int) -> tuple[Any, ListenStarted]:
        """A new call the server accepted (``started`` read), on the next address (``resumes``: the
        listen's moves with this one)."""
        client = self._client

        async def make_call(address: str) -> Any:
            return client._stub(address).Listen(self._request, metadata=client._metadata_for(self.request_id))

        call, first, address = await open_started(
            client,
            what="the listen",
            request_id=self.request_id,
            avoid=avoid,
            make_call=make_call,
            is_started=lambda msg: msg.WhichOneof("event") == "started",
        )
        return call, convert.listen_started(first.started, address, resumes)

    def _install(self, call: Any, started: ListenStarted) -> None:
        self._call = call
        self.info = started
        self._call_started = time.monotonic()
        self._call_events = 0
        self._drained = False

    async def _put(self, ev: ListenEvent) -> None:
        assert self._events is not None and self._wake is not None
        await self._events.put(ev)  # waits while the caller is max_buffered_events behind
        self._wake.set()

    async def _run(self) -> None:
        try:
            in_a_row = 0
            while True:
                code, message, retry_delay_s = await self._read_call(self._call)
                address = self.info.address if self.info is not None else None
                longest = code is grpc.StatusCode.OUT_OF_RANGE
                if not self._resume or not (code in _LOST or longest):
                    end = ListenEnd(_reason(code, self._drained), code, message, self.request_id, address)
                    self.ended = end
                    await self._put(end)
                    raise ListenEndedError(end, retry_delay_s=retry_delay_s)
                healthy = time.monotonic() - self._call_started >= _HEALTHY_CALL_S
                in_a_row = 1 if (self._call_events or healthy or longest) else in_a_row + 1
                if in_a_row > self._client.max_resumes:
                    raise TranslateError(
                        code,
                        f"the listen was lost {in_a_row} times in a row without an event "
                        f"(max_resumes={self._client.max_resumes}); last: {message}",
                        address=address,
                        attempts=in_a_row,
                        request_id=self.request_id,
                    )
                why = "its server drained" if self._drained else "it reached its longest" if longest else "it was lost"
                logger.info("listening to room %r again after %s (%s: %s)", self._request.room, why, code.name, message)
                self._call.cancel()
                try:
                    call, started = await self._open(avoid=None if longest else address, resumes=self.resumes + 1)
                except TranslateError as e:
                    raise TranslateError(
                        e.code,
                        f"the listen could not be resumed on any server: {e.message}",
                        retry_delay_s=e.retry_delay_s,
                        address=e.address,
                        attempts=e.attempts,
                        request_id=self.request_id,
                    ) from e
                self.resumes += 1
                self._install(call, started)
                await self._put(started)
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            self._failure = e
            logger.warning("%s", e)
        finally:
            if self._call is not None:
                self._call.cancel()

    async def _read_call(self, call: Any) -> tuple[grpc.StatusCode, str, float | None]:
        """Deliver one call's events until it ends; its status, message and RetryInfo delay."""
        try:
            while True:
                msg = await call.read()
                if msg is grpc.aio.EOF:
                    code = await call.code()
                    if code is grpc.StatusCode.OK:  # a server never ends a listen OK: treat as lost
                        return grpc.StatusCode.UNAVAILABLE, "the listen ended without a status", None
                    return code, await call.details() or "", retry_delay_from_metadata(await call.trailing_metadata())
                ev = convert.room_event(msg)
                if ev is None:
                    continue
                if isinstance(ev, RoomSegment):
                    if ev.backlog and self.resumes and ev in self._delivered:
                        self.repeats_dropped += 1
                        continue
                    self._delivered.add(ev)
                elif isinstance(ev, Draining):
                    self._drained = True
                    logger.info("%s is shutting down: the listen moves in %d ms", self._address(), ev.remaining_ms)
                self._call_events += 1
                await self._put(ev)
        except grpc.aio.AioRpcError as e:
            return e.code(), e.details() or "", retry_delay_from_metadata(e.trailing_metadata())

    def _address(self) -> str | None:
        return self.info.address if self.info is not None else None


def _reason(code: grpc.StatusCode, drained: bool) -> ListenEndReason:
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return ListenEndReason.REVOKED
    if code is grpc.StatusCode.OUT_OF_RANGE:
        return ListenEndReason.MAX_LISTEN_DURATION
    if code in _LOST:
        return ListenEndReason.DRAINING if drained else ListenEndReason.LOST
    return ListenEndReason.ERROR
