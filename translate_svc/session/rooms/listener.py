"""A room listener's side (``registry.py``): its events and its bounded queue.

A listener gets ``ListenStarted``, then the backlog (``RoomOutput(backlog=True)``), then live
``RoomOutput``; when it falls behind its bound (``rooms.listener_queue`` events) its oldest events
are dropped and it is told how many (``OutputDropped``) before its next one; a drain's notice
(``Draining``) comes in line. A listen ended from outside at once (its deadline, its token
revoked: ``Listener.end``) hears nothing more, and a door whose sending is stuck on a client that
does not read ends it anyway (``until_ended``). Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from translate_svc.errors import ServiceError
from translate_svc.observability import metrics
from translate_svc.session.events import Draining
from translate_svc.session.tenants.counters import Held
from translate_svc.types import InterimResult, SegmentResult, Transcript, Translation

#: a listener's speaking rate is a step of this grid (0.5, 0.75, ... 2.0: what a player's rate
#: menu offers): every rate asked is snapped to the nearest step, so listeners who ask nearly the
#: same rate share one rendition (each distinct rate is a vocoder row in every speaker's segment)
RATE_STEP = 0.25


def snap_rate(speed: float) -> float:
    """``speed`` (already in range) on the ``RATE_STEP`` grid: the nearest step, a tie to the
    faster one (0.625 -> 0.75); a float32 from the wire (1.2500000x) is the step its client wrote."""
    return math.floor(speed / RATE_STEP + 0.5) * RATE_STEP


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
    translations cut down to the listener's language (the transcript kept). One object is pushed
    to every listener of the language: a door encodes it once, in an encoding cache of its own
    keyed by this object (compared and hashed by identity: ``eq=False``; a weak key, gone with the
    output), and sends every listener the same bytes. Never mutate ``event``."""

    speaker: str
    event: SegmentResult | InterimResult
    backlog: bool = False
    #: its translation is the speaker's own words in its own voice: a conversation's turn heard in
    #: this language (``Room.publish``), for the listeners who asked for the original; the others
    #: get ``as_said``
    original: bool = False

    def as_said(self) -> RoomOutput:
        """An ``original`` output as a listener who did not ask for the original hears it: the words
        as said, without their audio (``said``)."""
        return RoomOutput(self.speaker, dataclasses.replace(self.event, translations=()), self.backlog)

    @property
    def said(self) -> Transcript | None:
        """A conversation's turn heard in its listeners' language (``Room.publish``: no translation
        into it, no error): its transcript, the words as said, shown as its text (not re-spoken);
        None for any other output."""
        ev = self.event
        failed = isinstance(ev, SegmentResult) and ev.error is not None
        return ev.transcript if not ev.translations and not failed else None

    def at(self, speed: float | None) -> RoomOutput:
        """This output as a listener at ``speed`` hears it (None: as the speaker speaks): the
        translation's speech at that rate where the speaker made it
        (``SegmentResult.renditions``), else as made (its ``speech_rate`` says at what rate: a
        segment under way when the rate was asked for); never with the renditions. Itself when
        it has none; else a new object (``Room.deliver`` makes one per rate, shared by its
        listeners: a door's encoding cache)."""
        ev = self.event
        if not isinstance(ev, SegmentResult) or not ev.renditions:
            return self
        chosen = next(
            (
                t
                for t in ev.renditions
                if speed is not None and t.speech_rate is not None and abs(t.speech_rate - speed) < 1e-6
            ),
            None,
        )
        cut = dataclasses.replace(ev, renditions=())
        if chosen is not None:
            cut = dataclasses.replace(cut, translations=(chosen,))
        return RoomOutput(self.speaker, cut, self.backlog, self.original)


@dataclass(frozen=True, eq=False)
class Rendering:
    """A speaker's final result's speech being made again at its listeners' rates (optional engine
    work after the result is out: ``session/calls/renditions.py``): the (language, rate) pairs asked, and
    ``made``, which always resolves (never an exception, never cancelled) with the translations
    made, each at its ``speech_rate``: all asked, some, or none (the engine was busy past
    ``rooms.rendition_wait_s``, the tenant's budget could not pay them)."""

    asked: frozenset[tuple[str, float]]
    made: asyncio.Future[tuple[Translation, ...]]


@dataclass(frozen=True, eq=False)
class LaterOutput:
    """A final result a listener at a rate gets once its speech at that rate is made (``Rendering``):
    it holds its place in the listener's queue, so results still come in order; ``ready`` resolves
    with the ``RoomOutput`` to send (at the speaker's rate where the rendition was not made: its
    ``speech_rate`` says so). One object is pushed to every listener of a (language, rate)."""

    ready: asyncio.Future[RoomOutput]

    @classmethod
    def of(cls, out: RoomOutput, language: str, speed: float, rendering: Rendering) -> LaterOutput:
        """``out`` (``language``'s cut, without renditions) as a listener at ``speed`` will hear it."""
        ready: asyncio.Future[RoomOutput] = asyncio.get_running_loop().create_future()

        def made(fut: asyncio.Future[tuple[Translation, ...]]) -> None:
            got = fut.result() if not fut.cancelled() and fut.exception() is None else ()
            again = tuple(t for t in got if t.target_language == language)
            assert isinstance(out.event, SegmentResult)
            full = RoomOutput(out.speaker, dataclasses.replace(out.event, renditions=again), out.backlog, out.original)
            if not ready.done():
                ready.set_result(full.at(speed))

        rendering.made.add_done_callback(made)
        return cls(ready)


@dataclass(frozen=True)
class OutputDropped:
    """The listener fell behind: its ``count`` oldest events were dropped since the last notice
    (``total``: over the call). A notice, not an error: the listen goes on."""

    count: int
    total: int


ListenEvent = ListenStarted | RoomOutput | OutputDropped | Draining
#: what a listener's queue holds: its events, and results waiting for their speech at its rate
Queued = ListenEvent | LaterOutput


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
        held: Held,
        longest: tuple[float, ServiceError] | None = None,
        *,
        speed: float | None = None,
        original: bool = False,
    ) -> None:
        """``speed``: the speaking rate it chose (None: as each speaker speaks); ``original``: a
        conversation's turns heard in its language come with their own audio (else as text)."""
        self._leave = leave
        self.speed = speed
        self.original = original
        self.room = room  # the registry's Room, opaque here (room.py imports this module, not back)
        self.language = language
        self.participant = participant
        self._held = held
        self._bound = bound
        #: ListenStarted and the backlog: given before anything queued, outside the bound
        self._first: deque[ListenEvent] = deque()
        self._queue: deque[Queued] = deque()
        self._wake = asyncio.Event()
        self._error: ServiceError | None = None
        self._closed = False
        #: set when the listen was ended at once (``end``): what it was ended with is ``error``
        self.ended = asyncio.Event()
        #: its longest listen and what ends it then (``rooms.max_listen_s``), from its first event on
        self._longest = longest
        self.deadline: asyncio.TimerHandle | None = None
        #: events dropped over the call, and not yet told
        self.dropped = 0
        self._untold = 0
        #: events given to the reader (tests, benchmarks)
        self.delivered = 0
        #: its member id among the room's listeners on the cluster store ("": not there)
        self.member = ""

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def error(self) -> ServiceError | None:
        """What the listen was ended with (None: not ended)."""
        return self._error

    def push(self, ev: Queued) -> None:
        """Queue ``ev``: a ``LaterOutput`` keeps its place until its speech at this listener's rate
        is made (bounded: ``Rendering``), the events behind it wait for it."""
        if self._closed or self.ended.is_set():
            return
        if len(self._queue) >= self._bound:
            self._queue.popleft()
            self.dropped += 1
            self._untold += 1
            metrics.room_dropped(self.language)
        self._queue.append(ev)
        if isinstance(ev, LaterOutput) and not ev.ready.done():
            ev.ready.add_done_callback(self._made)
        self._wake.set()

    def _made(self, _: asyncio.Future[RoomOutput]) -> None:
        self._wake.set()

    def _ready(self) -> bool:
        """Whether the queue's first event can be given now (not a result still being spoken again)."""
        if not self._queue:
            return False
        head = self._queue[0]
        return not isinstance(head, LaterOutput) or head.ready.done()

    def end(self, error: ServiceError, *, at_once: bool = True) -> None:
        """End the listen with ``error``: at once (its deadline, its token revoked: nothing queued
        is sent, and ``ended`` is set), or once what is queued is read (``at_once=False``: a drain,
        whose notice is in the queue)."""
        if self._error is not None:
            return
        self._error = error
        if at_once:
            self._first.clear()
            self._queue.clear()
            self._untold = 0
            self.ended.set()
        self._wake.set()

    async def events(self) -> AsyncIterator[ListenEvent]:
        if self._longest is not None and self.deadline is None and not self._closed:
            seconds, error = self._longest
            self.deadline = asyncio.get_running_loop().call_later(seconds, self.end, error)
        while True:
            while not (self._first or self._untold or self._ready()):
                if not self._queue:  # (a result being spoken again at its rate is waited for first)
                    if self._error is not None:
                        raise self._error
                    if self._closed:
                        return
                self._wake.clear()
                await self._wake.wait()
            ev: ListenEvent
            if self._first:
                ev = self._first.popleft()
            elif self._untold:
                ev, self._untold = OutputDropped(self._untold, self.dropped), 0
            else:
                head = self._queue.popleft()
                ev = head.ready.result() if isinstance(head, LaterOutput) else head
            self.delivered += 1
            yield ev

    def close(self) -> None:
        """Leave the room (idempotent): its speakers are retargeted, its slots given back."""
        if self._closed:
            return
        self._closed = True
        if self.deadline is not None:
            self.deadline.cancel()
        self._queue.clear()
        self._wake.set()
        self._leave(self)


class ListenCut(ServiceError):
    """A listen ended from outside (``error``: its code and reason are this one's, for the access
    line) whose door was stuck sending to a client that does not read: its sending was cancelled.
    The door drops the call (the client would not read a status either), and the listen's slots
    are given back."""

    def __init__(self, error: ServiceError) -> None:
        super().__init__(error.message)
        self.code = error.code
        self.reason = error.reason
        self.error = error


async def until_ended(sending: Awaitable[None], listener: Listener, grace_s: float) -> None:
    """Run a door's ``sending`` (its loop over ``listener.events()``) to its end, which raises the
    listen's error when the server ended it. A listen ended at once from outside (``Listener.end``)
    whose sending has not finished ``grace_s`` later (stuck writing to a client that does not
    read) is cancelled: ``ListenCut``. So no client keeps a listen, and its slots, past its end by
    not reading."""
    task = asyncio.ensure_future(sending)
    ended = asyncio.ensure_future(listener.ended.wait())
    try:
        done, _ = await asyncio.wait({task, ended}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            done, _ = await asyncio.wait({task}, timeout=grace_s)
        if task not in done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert listener.error is not None
            raise ListenCut(listener.error)
        task.result()
    finally:
        ended.cancel()
        if not task.done():
            task.cancel()
