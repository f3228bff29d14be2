"""The cluster store's state in one process: what ``MemoryStore`` holds for its own process and what
the node's ``HubServer`` holds for every worker (``store.py`` says what each primitive is for).

Holders: every lease and membership belongs to a holder (``MemoryStore``: the process; the hub: one
worker's connection). A holder is live until its expiry (``renew`` moves it ``ttl_s`` on; None:
never expires); a holder past it, or dropped (its connection closed), loses every lease and
membership at once, and the groups it was in are told. Expiry is checked on every operation that
counts or lists, so a count never includes a dead holder; ``sweep`` (the hub's timer) also tells
watchers of memberships that expired while nobody looked.

Event loop only (no locks); nothing here awaits but a blocking ``read``.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from translate_svc.cluster.store import Entry, Full, Lease, check_wants, id_key, refill

Sink = Callable[[bytes], None]


@dataclass(eq=False)
class _Holder:
    name: str
    ttl_s: float | None
    expires: float
    leases: dict[str, Lease] = field(default_factory=dict)
    memberships: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class _Member:
    holder: _Holder
    value: bytes


@dataclass(eq=False)
class _Stream:
    keep_ms: int
    max_len: int
    entries: deque[tuple[tuple[int, int], Entry]] = field(default_factory=deque)
    last: tuple[int, int] = (0, 0)
    waiters: set[asyncio.Future[None]] = field(default_factory=set)


class ClusterState:
    """Every primitive's state (see the module's docstring). ``clock``: monotonic seconds (expiry,
    budgets); ``wall_ms``: milliseconds for stream ids (when an entry was appended)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._clock = clock
        self._wall_ms = wall_ms
        self._holders: dict[str, _Holder] = {}
        self._channels: dict[str, set[Sink]] = {}
        self._streams: dict[str, _Stream] = {}
        self._groups: dict[str, dict[str, _Member]] = {}
        self._watchers: dict[str, set[Sink]] = {}
        self._counts: dict[str, int] = {}
        self._budgets: dict[str, tuple[float, float, float]] = {}  # name -> (level, when, per minute)
        self._ids = itertools.count()

    # -- holders

    def holder(self, name: str, ttl_s: float | None) -> None:
        """Register holder ``name`` (its leases expire ``ttl_s`` after its last renewal; None: never)."""
        if name in self._holders:
            raise ValueError(f"holder {name!r} is registered already")
        self._holders[name] = _Holder(name, ttl_s, self._expiry(ttl_s))

    def renew(self, name: str) -> None:
        holder = self._live(name)
        holder.expires = self._expiry(holder.ttl_s)

    def drop(self, name: str) -> None:
        """Holder ``name`` is gone: its leases and memberships with it (watchers are told)."""
        holder = self._holders.pop(name, None)
        if holder is None:
            return
        for lease in list(holder.leases.values()):
            self._uncount(lease)
        holder.leases.clear()
        changed = set()
        for group, member in holder.memberships:
            members = self._groups.get(group)
            if members is not None and (m := members.get(member)) is not None and m.holder is holder:
                del members[member]
                if not members:
                    del self._groups[group]
                changed.add(group)
        holder.memberships.clear()
        for group in changed:
            self._changed(group)

    def holds(self, name: str) -> bool:
        return name in self._holders

    def sweep(self) -> None:
        """Drop every holder past its expiry (and budgets back to full: a full one is as none)."""
        now = self._clock()
        for holder in [h for h in self._holders.values() if h.expires <= now]:
            self.drop(holder.name)
        for name, (level, when, per_minute) in list(self._budgets.items()):
            if refill(level, now - when, per_minute) >= per_minute:
                del self._budgets[name]
        for key, stream in list(self._streams.items()):
            self._trim(key, stream)

    def _expiry(self, ttl_s: float | None) -> float:
        return math.inf if ttl_s is None else self._clock() + ttl_s

    def _live(self, name: str) -> _Holder:
        self._expire()
        holder = self._holders.get(name)
        if holder is None:
            raise KeyError(f"holder {name!r} is not registered (or expired)")
        return holder

    def _expire(self) -> None:
        now = self._clock()
        if any(h.expires <= now for h in self._holders.values()):
            for holder in [h for h in self._holders.values() if h.expires <= now]:
                self.drop(holder.name)

    # -- pub/sub

    def subscribe(self, channel: str, sink: Sink) -> None:
        self._channels.setdefault(channel, set()).add(sink)

    def unsubscribe(self, channel: str, sink: Sink) -> None:
        sinks = self._channels.get(channel)
        if sinks is not None:
            sinks.discard(sink)
            if not sinks:
                del self._channels[channel]

    def publish(self, channel: str, data: bytes) -> int:
        sinks = self._channels.get(channel, ())
        for sink in list(sinks):
            sink(data)
        return len(sinks)

    # -- streams

    def append(self, key: str, data: bytes, *, keep_s: float, max_len: int) -> str:
        if max_len < 1 or keep_s <= 0:
            raise ValueError("a stream keeps at least one entry for a while: max_len >= 1, keep_s > 0")
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(round(keep_s * 1000), max_len)
        stream.keep_ms, stream.max_len = round(keep_s * 1000), max_len
        ms = self._wall_ms()
        last_ms, last_seq = stream.last
        at = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        entry = Entry(f"{at[0]}-{at[1]}", data)
        stream.entries.append((at, entry))
        stream.last = at
        self._trim(key, stream)
        for waiter in stream.waiters:
            if not waiter.done():
                waiter.set_result(None)
        stream.waiters.clear()
        return entry.id

    def range(self, key: str, after: str, *, within_s: float | None, count: int) -> list[Entry]:
        stream = self._streams.get(key)
        if stream is None:
            return []
        self._trim(key, stream)
        start = id_key(after)
        if within_s is not None:
            start = max(start, (self._wall_ms() - round(within_s * 1000), -1))
        out = []
        for at, entry in stream.entries:
            if at > start:
                out.append(entry)
                if len(out) >= count:
                    break
        return out

    async def read(self, key: str, after: str, *, within_s: float | None, count: int, block_s: float) -> list[Entry]:
        got = self.range(key, after, within_s=within_s, count=count)
        if got or block_s <= 0:
            return got
        stream = self._streams.get(key)
        if stream is None:  # waits on a stream that has no entry yet: it is made empty
            stream = self._streams[key] = _Stream(60_000, 1)
        start = max(id_key(after), stream.last)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stream.waiters.add(waiter)
        try:
            async with asyncio.timeout(block_s):
                await waiter
        except TimeoutError:
            return []
        finally:
            stream.waiters.discard(waiter)
            if not stream.entries and not stream.waiters:
                self._streams.pop(key, None)
        return self.range(key, f"{start[0]}-{start[1]}", within_s=None, count=count)

    def _trim(self, key: str, stream: _Stream) -> None:
        oldest = self._wall_ms() - stream.keep_ms
        entries = stream.entries
        while entries and (len(entries) > stream.max_len or entries[0][0][0] < oldest):
            entries.popleft()
        if not entries and not stream.waiters:
            self._streams.pop(key, None)

    def stream_len(self, key: str) -> int:
        stream = self._streams.get(key)
        return 0 if stream is None else len(stream.entries)

    # -- presence

    def join(self, holder_name: str, group: str, member: str, value: bytes) -> dict[str, bytes]:
        """Returns the group's other live members, as they were just before."""
        self._expire()
        holder = self._live(holder_name)
        members = self._groups.setdefault(group, {})
        others = {name: m.value for name, m in members.items() if name != member}
        old = members.get(member)
        if old is not None and old.holder is not holder:
            old.holder.memberships.discard((group, member))
        members[member] = _Member(holder, value)
        holder.memberships.add((group, member))
        if old is None or old.value != value or old.holder is not holder:
            self._changed(group)
        return others

    def leave(self, holder_name: str, group: str, member: str) -> int:
        """Returns how many live members are left."""
        self._expire()
        members = self._groups.get(group)
        if members is None or member not in members:
            return 0 if members is None else len(members)
        holder = members.pop(member).holder
        holder.memberships.discard((group, member))
        left = len(members)
        if not members:
            del self._groups[group]
        self._changed(group)
        return left

    def members(self, group: str) -> dict[str, bytes]:
        self._expire()
        return {member: m.value for member, m in self._groups.get(group, {}).items()}

    def watch(self, group: str, sink: Sink) -> None:
        self._watchers.setdefault(group, set()).add(sink)

    def unwatch(self, group: str, sink: Sink) -> None:
        sinks = self._watchers.get(group)
        if sinks is not None:
            sinks.discard(sink)
            if not sinks:
                del self._watchers[group]

    def _changed(self, group: str) -> None:
        notice = group.encode()
        for sink in list(self._watchers.get(group, ())):
            sink(notice)

    # -- leases

    def acquire(self, holder_name: str, wants: Sequence[tuple[str, int]]) -> Lease | Full:
        check_wants(wants)
        holder = self._live(holder_name)
        for name, limit in wants:
            if self._counts.get(name, 0) >= limit:
                return Full(name, limit)
        lease = Lease(f"{holder_name}:{next(self._ids)}", tuple(name for name, _ in wants))
        for name in lease.names:
            self._counts[name] = self._counts.get(name, 0) + 1
        holder.leases[lease.id] = lease
        return lease

    def restore(self, holder_name: str, lease: Lease) -> None:
        """Hold ``lease`` again whatever the caps (a holder that rejoins keeps what it admitted)."""
        holder = self._live(holder_name)
        if lease.id not in holder.leases:
            holder.leases[lease.id] = lease
            for name in lease.names:
                self._counts[name] = self._counts.get(name, 0) + 1

    def release(self, holder_name: str, lease_id: str) -> None:
        holder = self._holders.get(holder_name)
        lease = None if holder is None else holder.leases.pop(lease_id, None)
        if lease is not None:
            self._uncount(lease)

    def count(self, name: str) -> int:
        self._expire()
        return self._counts.get(name, 0)

    def _uncount(self, lease: Lease) -> None:
        for name in lease.names:
            left = self._counts[name] - 1
            if left:
                self._counts[name] = left
            else:
                del self._counts[name]

    # -- budgets

    def spend(self, name: str, amount: float, per_minute: float) -> float:
        now = self._clock()
        level, when, _ = self._budgets.get(name, (per_minute, now, per_minute))
        level = refill(level, now - when, per_minute) - amount
        self._budgets[name] = (level, now, per_minute)
        return level
