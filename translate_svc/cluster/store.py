"""The seam for what crosses streams: the primitives every cross-stream job is built on.

State that more than one stream reads (a room, the two legs of a call, a tenant's caps and audio
budget) lives behind ``ClusterStore``, so that a stream on one worker or pod meets a stream on
another. ``session/`` holds a ``ClusterStore`` and never knows which implementation runs;
``cluster/choose.py`` picks one from the settings (import-linter checks both):

- ``MemoryStore`` (``memory.py``): one process, exactly the single-process behaviour, no thread;
- ``HubStore`` (``hub_client.py``): the workers of one node (``serve --workers N``), each a client
  of the one ``HubServer`` (``hub_server.py``) that the supervisor runs over a Unix socket;
- ``RedisStore`` (``redis_store.py``): several pods sharing one Redis 7.

The primitives, and the job that uses each (keep it to what the jobs need):

========================  ==============================================================================
primitive                 jobs
========================  ==============================================================================
``publish``/``subscribe`` live captions (interim results) to a room's listeners on any worker: droppable,
                          a slow subscriber loses its oldest messages and ``Inbox.dropped`` counts them
``append``/``read``       a room's final results per language: an append-only stream with a time-trimmed
                          backlog (a joining listener reads ``within_s`` of it, then blocks for new
                          entries); a two-party leg's translated speech (Opus bytes) to the other leg
``join``/``leave``/       presence with expiry: who listens to a room in which language (the room's
``members``/``watch``     language demand drives its speaker's retarget), a room's speakers, a call's leg
                          waiting for its partner, the processes holding a party of a room (its first
                          ``join`` and last ``leave`` tell ``room.started``/``room.ended`` once);
                          ``watch`` tells of every change (joins, leaves, expiry)
``acquire``/``release``   counted leases against caps, all or none: the node's ``max_streams``, rooms and
(``renew``, ``count``)    listeners, and each tenant's caps; a holder's leases live while it renews them
                          (its store does every ``lease_s / 3``) and free themselves ``lease_s`` after it
                          stops (``session/tenants/leases.py``: which are the node's and which the tenants')
``spend``                 a tenant's audio seconds per minute: a token bucket (may go below zero)
``state``/``on_state``    the store's health (up, or down: every operation raises ``StoreUnavailable``),
                          for health, ``/metrics`` and ``cluster.on_redis_loss``
========================  ==============================================================================

A holder is one client of the store: a process (``MemoryStore``: the process itself, whose leases
and memberships never expire; ``HubStore``: a worker's connection, whose leases also go at once when
it closes; ``RedisStore``: a process). Names of channels, streams, groups and caps are the caller's
(``room/<tenant>/<name>/...``); implementations prefix them as they need.

Every method is for the event loop only. Every call is bounded in time: a store that cannot answer
raises ``StoreUnavailable`` (UNAVAILABLE), never hangs.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final, Protocol

from translate_svc.errors import NotReady

__all__ = [
    "FIRST",
    "ClusterStore",
    "Entry",
    "Full",
    "Inbox",
    "Lease",
    "StoreState",
    "StoreUnavailable",
    "entry_ms",
]

#: ``read``'s ``after`` for a stream's first entry (every id is greater)
FIRST: Final = "0-0"


class StoreState(str, Enum):
    UP = "up"
    #: unreachable (Redis lost, the node's hub gone): operations raise ``StoreUnavailable``
    DOWN = "down"


class StateReport:
    """A store's ``state`` and its ``on_state`` listeners (what the implementations that can go
    down share). Event loop only."""

    def __init__(self) -> None:
        self.state = StoreState.DOWN
        self._listeners: list[Callable[[StoreState], None]] = []

    def on_state(self, listener: Callable[[StoreState], None]) -> None:
        self._listeners.append(listener)

    def set(self, state: StoreState) -> None:
        """The new state; every listener hears a change (nothing if it is the same)."""
        if state is not self.state:
            self.state = state
            for listener in list(self._listeners):
                listener(state)


class StoreUnavailable(NotReady):
    """The cluster store cannot answer now (UNAVAILABLE): its message names the store (never a
    password) and says what to do."""

    def __init__(self, message: str, *, retry_after_ms: int | None = 1000) -> None:
        super().__init__(message, retry_after_ms=retry_after_ms)


@dataclass(frozen=True)
class Entry:
    """One entry of a stream: its id (``<milliseconds>-<sequence>``, increasing; the milliseconds are
    the store's clock when it was appended) and its bytes."""

    id: str
    data: bytes


def entry_ms(entry_id: str) -> int:
    """The milliseconds of a stream entry's id (when it was appended, by the store's clock)."""
    return int(entry_id.partition("-")[0])


def id_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id as a sortable pair (a bare ``<ms>`` counts as ``<ms>-0``)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class Lease:
    """What ``acquire`` took: one count on each cap of ``names``, until ``release`` (or until its
    holder stops renewing it for ``lease_s``)."""

    id: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class Full:
    """``acquire`` took nothing: cap ``name`` is at ``limit``."""

    name: str
    limit: int


class Inbox:
    """A subscription's messages (or a watch's notices) as they arrive, at most ``limit`` waiting:
    beyond, the oldest is dropped and counted (``dropped``), so a subscriber that does not keep up
    never holds the publisher or the store. ``close`` unsubscribes. If the store fails under it
    (``fail``), the next read raises that error. Event loop only."""

    def __init__(self, limit: int, on_close: Callable[[Inbox], None] | None = None) -> None:
        if limit < 1:
            raise ValueError("an inbox holds at least one message")
        self.limit = limit
        self.dropped = 0
        self._items: deque[bytes] = deque()
        self._ready = asyncio.Event()
        self._on_close = on_close
        self._error: BaseException | None = None
        self.closed = False

    def put(self, data: bytes) -> None:
        if self.closed:
            return
        if len(self._items) >= self.limit:
            self._items.popleft()
            self.dropped += 1
        self._items.append(data)
        self._ready.set()

    def fail(self, error: BaseException) -> None:
        """The store failed under this inbox: what waits is still read, then ``error`` is raised."""
        if self._error is None and not self.closed:
            self._error = error
            self._ready.set()

    def get_nowait(self) -> bytes | None:
        return self._items.popleft() if self._items else None

    async def get(self) -> bytes:
        """The next message (``StopAsyncIteration`` once closed; the store's error once failed)."""
        while not self._items:
            if self.closed:
                raise StopAsyncIteration
            if self._error is not None:
                raise self._error
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def __aiter__(self) -> Inbox:
        return self

    async def __anext__(self) -> bytes:
        return await self.get()

    def __len__(self) -> int:
        return len(self._items)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._items.clear()
        self._ready.set()
        if self._on_close is not None:
            self._on_close(self)


class ClusterStore(Protocol):
    """What crosses streams (see the module's docstring for the job of each primitive)."""

    @property
    def state(self) -> StoreState:
        """Up, or down (every operation raises ``StoreUnavailable`` until it is up again)."""
        ...

    def on_state(self, listener: Callable[[StoreState], None]) -> None:
        """Call ``listener`` (on the loop) at every change of ``state``."""
        ...

    async def start(self) -> None:
        """Connect; ``StoreUnavailable`` naming the store if it cannot be reached."""
        ...

    async def close(self) -> None:
        """Release what this holder holds (best effort) and disconnect."""
        ...

    # -- pub/sub: droppable

    async def publish(self, channel: str, data: bytes) -> None:
        """Send ``data`` to every subscriber of ``channel`` now (none: it is gone)."""
        ...

    async def subscribe(self, channel: str, *, limit: int) -> Inbox:
        """Messages published on ``channel`` from now on (once this returns), ``limit`` waiting at most."""
        ...

    # -- streams: append-only, time-trimmed

    async def append(self, key: str, data: bytes, *, keep_s: float, max_len: int) -> str:
        """Append ``data`` to stream ``key``; return its id. Entries older than ``keep_s`` go, and
        the oldest beyond ``max_len``; a stream with no entry for ``keep_s`` goes whole."""
        ...

    async def read(
        self, key: str, after: str = FIRST, *, within_s: float | None = None, count: int = 256, block_s: float = 0.0
    ) -> list[Entry]:
        """Up to ``count`` entries of ``key`` after id ``after``, oldest first; ``within_s``: only
        those appended in the last that many seconds. None there and ``block_s`` > 0: wait that long
        for the next one (an empty list if none came)."""
        ...

    # -- presence: expiring members, watched

    async def join(self, group: str, member: str, value: bytes = b"") -> dict[str, bytes]:
        """Add (or update) ``member`` of ``group`` with ``value``; held like a lease: it goes on
        ``leave``, or ``lease_s`` after its holder stops renewing. Returns the group's other live
        members and their values as they were just before, atomically (of two joining at once, one
        sees the other): none, and ``member`` is the group's first."""
        ...

    async def leave(self, group: str, member: str) -> int | None:
        """Remove ``member``; return how many live members are left, atomically (of two leaving at
        once, one sees the other still there). Never raises for a store that is down: None (what it
        could not remove expires ``lease_s`` later, never renewed)."""
        ...

    async def members(self, group: str) -> dict[str, bytes]:
        """The live members of ``group`` and their values."""
        ...

    async def watch(self, group: str) -> Inbox:
        """A notice (the group's name) after every change of ``group`` (a join, a leave, an
        expiry); notices that pile up are one (the inbox holds one): read ``members`` then."""
        ...

    # -- leases: counted, against caps

    async def acquire(self, wants: Sequence[tuple[str, int]]) -> Lease | Full:
        """One count on every cap of ``wants`` (name, limit), all or none: ``Full`` names the first
        cap at its limit (counting live leases only), and nothing is taken."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give the lease's counts back (a lease already gone: nothing). Never raises for a store
        that is down: what it could not give back expires ``lease_s`` later, never renewed."""
        ...

    async def renew(self) -> None:
        """Renew every lease and membership this holder has, now (the store also does it on its own
        every ``lease_s / 3``)."""
        ...

    async def count(self, name: str) -> int:
        """Live leases on cap ``name``, over every holder."""
        ...

    # -- budgets

    async def spend(self, name: str, amount: float, per_minute: float) -> float:
        """Draw ``amount`` from budget ``name`` (a token bucket: ``per_minute`` a minute, at most a
        minute's worth banked, full when first used; it may go below zero) and return what is left."""
        ...


def refill(level: float, elapsed_s: float, per_minute: float) -> float:
    """A budget ``elapsed_s`` later: ``per_minute / 60`` a second, at most ``per_minute`` banked (the
    token bucket of ``spend``; ``redis_scripts.SPEND`` is the same rule in Lua)."""
    return min(per_minute, level + max(0.0, elapsed_s) * per_minute / 60.0)


def check_wants(wants: Sequence[tuple[str, int]]) -> None:
    """What every implementation refuses alike: no cap, or one cap named twice."""
    names = [name for name, _ in wants]
    if not names:
        raise ValueError("acquire needs at least one cap")
    if len(set(names)) != len(names):
        raise ValueError(f"a cap named twice in one acquire: {names}")
