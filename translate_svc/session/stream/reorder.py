"""A stream's reorder window: timestamped packets back in order, as an SFU's network delivers them.

Packets (``AudioPacket``) carry where they belong on the timeline. Over RTP they arrive late, twice
or not at all. ``Reorder`` holds a packet that arrives ahead of a missing one until the missing one
comes or the window (``limits.reorder_window_ms`` of timeline) has passed it; packets in order pass
straight through, so a clean stream waits for nothing. A duplicate (a timestamp already taken) and
a packet that comes after the window gave up on it (late) are dropped and counted, never an error.
What stays missing is a gap the session fills (``StreamSession.feed``).

Like aiortc's ``JitterBuffer`` (a fixed capacity of packets, released in sequence order), but
keyed by timestamps in samples, with the window in time, and with nothing released on a timer of
its own: the next packet releases what the window has passed; half-close, or a sender that stalls
(the session's stall close), releases the rest. Pure; event loop only.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

#: timestamps of released packets remembered to tell a duplicate from a late packet
_RECENT = 256
#: the most packets held at once, whatever their timestamps (memory: each may be max_chunk_bytes)
MAX_HELD = 64


@dataclass
class ReorderCounts:
    #: packets that arrived after a packet with a later timestamp, and were put back in order
    reordered: int = 0
    #: packets whose timestamp was already taken (dropped)
    duplicate: int = 0
    #: packets that came after the window had given up on them (dropped; their time was filled)
    late: int = 0


class Reorder:
    def __init__(self, window: int, length: Callable[[bytes], int | None], start: int = 0) -> None:
        """``window``: how far (timeline samples) a packet may arrive behind the newest one;
        ``length``: the samples a packet holds (None: unknown); ``start``: where the timeline
        starts (a first packet later than it waits for the window like any other)."""
        self.window = window
        self._length = length
        self._held: list[tuple[int, bytes]] = []  # a heap by timestamp
        self._held_at: set[int] = set()
        self._recent: deque[int] = deque(maxlen=_RECENT)
        self._recent_set: set[int] = set()
        self._next = start  # where the next packet in order starts
        self._newest = -1
        self.counts = ReorderCounts()

    def push(self, data: bytes, timestamp: int, end: int = 0) -> list[tuple[bytes, int]]:
        """One packet in; the packets now ready, in timeline order. ``end``: where the timeline
        ends now (audio sent without timestamps moves it too)."""
        self._next = max(self._next, end)
        if timestamp in self._held_at or timestamp in self._recent_set:
            self.counts.duplicate += 1
            return []
        if timestamp < self._next:
            self.counts.late += 1
            return []
        if timestamp < self._newest:
            self.counts.reordered += 1
        self._newest = max(self._newest, timestamp)
        heapq.heappush(self._held, (timestamp, data))
        self._held_at.add(timestamp)
        ready = []
        while self._held:
            ts, _ = self._held[0]
            in_order = ts == self._next
            if not in_order and self._newest - ts < self.window and len(self._held) <= MAX_HELD:
                break  # a packet before it may still come
            ready.append(self._release())
        return ready

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def flush(self) -> list[tuple[bytes, int]]:
        """Everything held, in order (the stream's audio is over, or its sender stalled: a packet
        still missing then is lost, and late if it comes)."""
        return [self._release() for _ in range(len(self._held))]

    def _release(self) -> tuple[bytes, int]:
        ts, data = heapq.heappop(self._held)
        self._held_at.discard(ts)
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(ts)
        self._recent_set.add(ts)
        self._next = ts + (self._length(data) or 1)
        return data, ts
