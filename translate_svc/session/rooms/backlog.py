"""A room's backlog (``room.py``, ``registry.py``): the final results a joining listener gets first, text only, bounded.

A listener who joins is sent the room's final results in its language of the last
``BacklogConfig.seconds`` first; they are read, not played again (docs/rooms.md), so only their
text is kept: each final result is copied as it is published without its speech (audio, Opus, and
the translated words' timings in that speech). What is kept is bounded by entries and bytes **per
room** and **per tenant** (in this process): when a bound is met the oldest entries go (the room's
oldest, or the tenant's oldest whatever its room), whatever the time bound would keep. An entry's
bytes are an estimate of what it holds: its texts in UTF-8, ``WORD_BYTES`` for a word timing of the
transcript, ``ENTRY_BYTES`` for the rest.

Event loop only (no locks).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import OrderedDict, deque
from dataclasses import dataclass

from translate_svc.session.rooms.listener import RoomOutput
from translate_svc.types import SegmentResult

#: what an entry holds beside its texts (its objects), and one word timing of its transcript
ENTRY_BYTES = 256
WORD_BYTES = 64


@dataclass(frozen=True)
class BacklogConfig:
    #: a joining listener gets the final results of the last this many seconds (0: no backlog)
    seconds: float = 30.0
    room_entries: int = 256
    room_bytes: int = 512 * 1024
    tenant_entries: int = 2048
    tenant_bytes: int = 4 * 1024 * 1024


def text_only(ev: SegmentResult) -> SegmentResult:
    """A final result as the backlog keeps it: its texts, transcript and spans, no speech."""
    translations = tuple(dataclasses.replace(t, audio=None, opus=None, words=()) for t in ev.translations)
    return dataclasses.replace(ev, translations=translations, batch_trace=None, renditions=())


def entry_bytes(ev: SegmentResult) -> int:
    """What a kept (text-only) result holds, estimated."""
    size = ENTRY_BYTES + sum(len(t.text.encode()) + len(t.target_language) for t in ev.translations)
    if ev.transcript is not None:
        size += len(ev.transcript.text.encode())
        size += sum(WORD_BYTES + len(w.word.encode()) for w in ev.transcript.words)
    if ev.error is not None:
        size += len(ev.error.message.encode())
    return size


@dataclass(eq=False)
class _Entry:
    key: int
    at: float
    language: str
    speaker: str
    event: SegmentResult
    size: int
    room: RoomBacklog
    #: another process's speaker's (``link.py``: forgotten when this process stops reading it)
    remote: bool = False


class _TenantKept:
    """One tenant's entries over its rooms, oldest first."""

    def __init__(self) -> None:
        self.entries: OrderedDict[int, _Entry] = OrderedDict()
        self.bytes = 0


class Backlogs:
    """Every room's backlog of this process, and the per-tenant bounds over them."""

    def __init__(self, config: BacklogConfig) -> None:
        self.config = config
        self._tenants: dict[str, _TenantKept] = {}
        self._keys = itertools.count()

    def room(self, tenant: str) -> RoomBacklog:
        """A new room's backlog (``RoomBacklog.clear`` when the room goes)."""
        return RoomBacklog(self, tenant)

    def tenant_bytes(self, tenant: str) -> int:
        kept = self._tenants.get(tenant)
        return kept.bytes if kept is not None else 0

    def tenant_entries(self, tenant: str) -> int:
        kept = self._tenants.get(tenant)
        return len(kept.entries) if kept is not None else 0

    def _kept(self, tenant: str) -> _TenantKept:
        kept = self._tenants.get(tenant)
        if kept is None:
            kept = self._tenants[tenant] = _TenantKept()
        return kept

    def _added(self, entry: _Entry) -> None:
        kept = self._kept(entry.room.tenant)
        kept.entries[entry.key] = entry
        kept.bytes += entry.size

    def _bound(self, tenant: str) -> None:
        """The tenant's oldest entries go while it is over a bound."""
        kept = self._tenants.get(tenant)
        config = self.config
        while kept is not None and (len(kept.entries) > config.tenant_entries or kept.bytes > config.tenant_bytes):
            oldest = next(iter(kept.entries.values()))
            oldest.room._drop(oldest)
            kept = self._tenants.get(tenant)

    def _removed(self, entry: _Entry) -> None:
        kept = self._tenants[entry.room.tenant]
        del kept.entries[entry.key]
        kept.bytes -= entry.size
        if not kept.entries:
            del self._tenants[entry.room.tenant]


class RoomBacklog:
    """One room's kept final results, by language, oldest first."""

    def __init__(self, owner: Backlogs, tenant: str) -> None:
        self._owner = owner
        self.tenant = tenant
        self._rings: dict[str, deque[_Entry]] = {}
        self.entries = 0
        self.bytes = 0

    def keep(self, language: str, now: float, out: RoomOutput, *, remote: bool = False) -> None:
        """Keep a final result published in ``language`` (``out.event``: a ``SegmentResult``) at
        ``now``; ``remote``: another process's speaker's (it may be older than what is kept: it
        goes in its place by time)."""
        config = self._owner.config
        if config.seconds <= 0 or not isinstance(out.event, SegmentResult):
            return
        self.expire(max(now, self._newest()))
        event = text_only(out.event)
        entry = _Entry(next(self._owner._keys), now, language, out.speaker, event, entry_bytes(event), self, remote)
        ring = self._rings.setdefault(language, deque())
        ring.append(entry)
        if len(ring) > 1 and ring[-2].at > now:
            self._rings[language] = deque(sorted(ring, key=lambda e: e.at))
        self.entries += 1
        self.bytes += entry.size
        self._owner._added(entry)
        while self.entries > config.room_entries or self.bytes > config.room_bytes:
            self._drop(self._oldest())
        self._owner._bound(self.tenant)

    def replay(self, language: str, participant: str, now: float) -> list[RoomOutput]:
        """What a listener joining in ``language`` now gets first (not ``participant``'s own speech)."""
        since = now - self._owner.config.seconds
        return [
            RoomOutput(e.speaker, e.event, backlog=True)
            for e in self._rings.get(language, ())
            if e.at >= since and not (participant and e.speaker == participant)
        ]

    def expire(self, now: float) -> None:
        """Drop what is older than the time bound."""
        since = now - self._owner.config.seconds
        for ring in list(self._rings.values()):
            while ring and ring[0].at < since:
                self._drop(ring[0])

    def forget_remote(self, language: str) -> None:
        """Drop other processes' entries in ``language`` (this process no longer reads them: the
        store's stream has them, read again from there when a listener of it joins)."""
        for entry in [e for e in self._rings.get(language, ()) if e.remote]:
            self._drop(entry)

    def _newest(self) -> float:
        return max((ring[-1].at for ring in self._rings.values() if ring), default=float("-inf"))

    def clear(self) -> None:
        for ring in list(self._rings.values()):
            while ring:
                self._drop(ring[0])

    def _oldest(self) -> _Entry:
        return min((ring[0] for ring in self._rings.values()), key=lambda e: e.key)

    def _drop(self, entry: _Entry) -> None:
        ring = self._rings[entry.language]
        if ring[0] is entry:
            ring.popleft()
        else:  # not reached: every bound drops a ring's oldest (kept for safety)
            ring.remove(entry)
        if not ring:
            del self._rings[entry.language]
        self.entries -= 1
        self.bytes -= entry.size
        self._owner._removed(entry)
