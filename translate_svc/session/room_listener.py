"""A room listener's side (``rooms.py``): its events and its bounded queue.

A listener gets ``ListenStarted``, then the backlog (``RoomOutput(backlog=True)``), then live
``RoomOutput``; when it falls behind its bound (``rooms.listener_queue`` events) its oldest events
are dropped and it is told how many (``OutputDropped``) before its next one; a drain's notice
(``Draining``) comes in line. Event loop only.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from translate_svc.errors import ServiceError
from translate_svc.observability import metrics
from translate_svc.session.events import Draining
from translate_svc.types import InterimResult, SegmentResult

# -- what a listener gets -------------------------------------------------------------------------


@dataclass(frozen=True)
class ListenStarted:
    """First event of a listener: ``backlog`` ``RoomOutput(backlog=True)`` follow at once. ``speakers``:
    each speaker present as (its id, the first segment id of its live output sure to carry this
    language; earlier ones already under way may not)."""

    room: str
    language: str
    participant: str
    backlog: int
    speakers: tuple[tuple[str, int], ...]


@dataclass(frozen=True, eq=False)
class RoomOutput:
    """One speaker's final result (``SegmentResult``) or live caption (``InterimResult``), its
    translations cut down to the listener's language (the transcript kept). ``wire``: each door's
    encoding of it (key: the door's name), made once and shared by every listener of the language.
    Never mutate ``event``."""

    speaker: str
    event: SegmentResult | InterimResult
    backlog: bool = False
    wire: dict[str, bytes] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class OutputDropped:
    """The listener fell behind: its ``count`` oldest events were dropped since the last notice
    (``total``: over the call). A notice, not an error: the listen goes on."""

    count: int
    total: int


ListenEvent = ListenStarted | RoomOutput | OutputDropped | Draining


# -- listeners ------------------------------------------------------------------------------------


class Listener:
    """One listener's bounded queue. Iterate ``events`` (one reader); ``close`` when the call ends."""

    def __init__(
        self,
        leave: Callable[[Listener], None],
        bound: int,
        room: object,
        language: str,
        participant: str,
        held: list[str],
    ) -> None:
        self._leave = leave
        self.room = room  # the registry's Room, opaque here (rooms.py imports this module, not back)
        self.language = language
        self.participant = participant
        self._held = held
        self._bound = bound
        #: ListenStarted and the backlog: given before anything queued, outside the bound
        self._first: deque[ListenEvent] = deque()
        self._queue: deque[ListenEvent] = deque()
        self._wake = asyncio.Event()
        self._error: ServiceError | None = None
        self._closed = False
        #: events dropped over the call, and not yet told
        self.dropped = 0
        self._untold = 0
        #: events given to the reader (tests, benchmarks)
        self.delivered = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def push(self, ev: ListenEvent) -> None:
        if self._closed:
            return
        if len(self._queue) >= self._bound:
            self._queue.popleft()
            self.dropped += 1
            self._untold += 1
            metrics.room_dropped(self.language)
        self._queue.append(ev)
        self._wake.set()

    def end(self, error: ServiceError) -> None:
        """End the listen: ``events`` raises ``error`` once the queue is read (a drain)."""
        self._error = self._error or error
        self._wake.set()

    async def events(self) -> AsyncIterator[ListenEvent]:
        while True:
            while not (self._first or self._queue or self._untold):
                if self._error is not None:
                    raise self._error
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
            if self._first:
                ev = self._first.popleft()
            elif self._untold:
                ev, self._untold = OutputDropped(self._untold, self.dropped), 0
            else:
                ev = self._queue.popleft()
            self.delivered += 1
            yield ev

    def close(self) -> None:
        """Leave the room (idempotent): its speakers are retargeted, its slots given back."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._wake.set()
        self._leave(self)
