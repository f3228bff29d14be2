"""What a call's carrier has been sent and has played, sans I/O, the clock passed in.

- ``Arrivals``: when the call's audio reached each point of its timeline, so that a segment's end
  (timeline ms) has a time on the clock: where the ear-voice lag starts.
- ``Marks``: the marks sent after each segment's speech, in order, until the carrier says it
  played them (Twilio ``mark``, Asterisk ``MEDIA_MARK_PROCESSED``) or the speech is cleared.
- ``Backlog``: how much sent speech a carrier that plays it in real time still holds.
- ``SpeechQueue`` and ``FramePacer``: for AudioSocket, where we are the player: one 20 ms frame
  per 20 ms slot, silence when there is nothing to say, never ahead of time.
- ``LagStats``: the call's ear-voice lags, for its access line.

Event loop only (no locks); no I/O.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

#: arrival records kept per call: a segment ends at most ``limits`` seconds before its result
MAX_ARRIVALS = 4096


class Arrivals:
    """(timeline ms reached, clock time) of the call's audio as it came, oldest dropped first."""

    def __init__(self) -> None:
        self._at: deque[tuple[int, float]] = deque(maxlen=MAX_ARRIVALS)

    def record(self, reached_ms: int, now: float) -> None:
        self._at.append((reached_ms, now))

    def time_of(self, ms: int) -> float | None:
        """When the audio reached ``ms`` (the first record at or past it); None: not yet, or no audio."""
        for reached, at in self._at:  # a few thousand at most; a result looks up one point
            if reached >= ms:
                return at
        return None


@dataclass(frozen=True)
class PendingMark:
    name: str
    segment_id: int
    #: when the segment's source speech ended (clock time); None: not known
    speech_end_at: float | None
    #: whose lag it is (a single leg's own)
    owner: LagStats | None = None
    #: a two-party partner's mark: its token, sent back to the partner once played (its lag is
    #: the partner's, on the partner's clock)
    token: int | None = None


class Marks:
    """Marks sent and not yet played, in the order they were sent."""

    def __init__(self) -> None:
        self._pending: deque[PendingMark] = deque()
        self._n = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(
        self, segment_id: int, speech_end_at: float | None, owner: LagStats | None = None, token: int | None = None
    ) -> PendingMark:
        self._n += 1
        mark = PendingMark(f"seg{segment_id}.{self._n}", segment_id, speech_end_at, owner, token)
        self._pending.append(mark)
        return mark

    def played(self, name: str) -> PendingMark | None:
        """The carrier played up to ``name``: it, and any mark before it, are done. None: a name
        we are not waiting for (already cleared, or not ours)."""
        if not any(m.name == name for m in self._pending):
            return None
        while True:
            mark = self._pending.popleft()
            if mark.name == name:
                return mark

    def drop_all(self) -> int:
        """The speech before them was cleared: none of them will be heard."""
        n = len(self._pending)
        self._pending.clear()
        return n


class Backlog:
    """Sent speech a carrier still holds. Two bounds, the larger wins: the speech a carrier playing
    in real time would still hold (each send plays after what was sent before, starting no
    earlier than it was sent), and the speech sent after the oldest mark the carrier has not said
    it played (a carrier plays in order: none of that has been heard, however slow it is)."""

    def __init__(self) -> None:
        self._ends_at = 0.0
        self._total = 0.0
        #: (mark, speech seconds sent before it), oldest first, until the carrier played it
        self._marks: deque[tuple[str, float]] = deque()

    def sent(self, seconds: float, now: float) -> None:
        self._ends_at = max(self._ends_at, now) + seconds
        self._total += seconds

    def mark(self, name: str) -> None:
        self._marks.append((name, self._total))

    def played(self, name: str) -> None:
        """The carrier played up to the mark ``name`` (and every mark before it)."""
        if any(m == name for m, _ in self._marks):
            while self._marks.popleft()[0] != name:
                pass

    def unplayed(self, now: float) -> float:
        real_time = max(0.0, self._ends_at - now)
        return max(real_time, self._total - self._marks[0][1]) if self._marks else real_time

    def cleared(self, now: float) -> None:
        self._ends_at = now
        self._marks.clear()


class LagStats:
    """One call's ear-voice lags (seconds), summed up for its access line."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.cleared_s = 0.0
        self.clears = 0

    def observe(self, lag_s: float) -> None:
        self.lags.append(lag_s)

    def fields(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {"marks_played": len(self.lags)}
        if self.lags:
            ordered = sorted(self.lags)
            out["ear_voice_lag_p50_ms"] = round(1000 * ordered[len(ordered) // 2])
            out["ear_voice_lag_max_ms"] = round(1000 * ordered[-1])
        if self.clears:
            out["backlog_clears"] = self.clears
            out["backlog_cleared_s"] = round(self.cleared_s, 3)
        return out


class SpeechQueue:
    """Speech waiting for its 20 ms slots (AudioSocket), with the marks between it: a mark is
    played once every byte before it has been taken."""

    def __init__(self) -> None:
        self._items: deque[bytes | str] = deque()
        self._bytes = 0

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def put(self, audio: bytes) -> None:
        if audio:
            self._items.append(audio)
            self._bytes += len(audio)

    def put_mark(self, name: str) -> None:
        self._items.append(name)

    def take(self, n: int) -> tuple[bytes, list[str]]:
        """Up to ``n`` bytes of speech (fewer when it runs out) and the marks now passed."""
        out = bytearray()
        passed: list[str] = []
        while self._items and (len(out) < n or isinstance(self._items[0], str)):
            head = self._items[0]
            if isinstance(head, str):
                passed.append(head)
                self._items.popleft()
                continue
            want = n - len(out)
            out += head[:want]
            if len(head) > want:
                self._items[0] = head[want:]
            else:
                self._items.popleft()
        self._bytes -= len(out)
        return bytes(out), passed

    def clear(self) -> int:
        """Drop every held byte and mark; the bytes dropped."""
        n = self._bytes
        self._items.clear()
        self._bytes = 0
        return n


#: a slot whose frame is this late is still sent (the far end's jitter buffer absorbs a burst of
#: up to three frames); later ones are skipped, not made up in a longer burst
CATCH_UP_S = 0.06
#: a slot due within this of the wake is due now (the loop may wake a hair before its timer)
EARLY_S = 0.0005


class FramePacer:
    """The slots of a paced call: slot ``k`` is due at ``start + k * frame_s`` (deadlines from the
    call's start, never from the last wake). Each due slot gets one frame; a wake late by less than
    ``catch_up_s`` still sends the slots it missed (a short burst, no frame ever ahead of its
    slot); a slot later than that is skipped (counted) rather than sent in a long burst."""

    def __init__(self, start: float, frame_s: float, catch_up_s: float = CATCH_UP_S) -> None:
        self.start = start
        self.frame_s = frame_s
        self.catch_up_s = catch_up_s
        self.k = 0
        self.sent = 0
        self.skipped = 0

    def due(self) -> float:
        return self.start + self.k * self.frame_s

    def slots(self, now: float) -> list[float]:
        """The slots due at ``now`` to send a frame for, each one's lateness (seconds), oldest
        first; the slots too late to send are skipped. The next slot is the first not yet due."""
        if now + EARLY_S < self.due():
            return []
        last = math.floor((now + EARLY_S - self.start) / self.frame_s)  # the newest slot due
        if last < self.k:
            return []
        # the oldest slot still late by less than catch_up_s (the newest always is, when
        # catch_up_s is at least a frame)
        first = min(last, max(self.k, math.floor((now - self.catch_up_s - self.start) / self.frame_s) + 1))
        self.skipped += first - self.k
        lates = [max(0.0, now - (self.start + k * self.frame_s)) for k in range(first, last + 1)]
        self.sent += len(lates)
        self.k = last + 1
        return lates
