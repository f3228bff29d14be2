"""The audio a stream may have to send again: everything after its last final result.

A resumed stream (another server, after a drain or a crash) must hear again the audio the lost
call had not yet turned into final results, and nothing before it (that would be translated
twice). So every chunk the caller sends is kept with its place on the stream's timeline until a
final result covers it (``trim``), and ``replay_from`` cuts the kept audio at the resume offset:

- raw encodings (LINEAR16, FLOAT32, MULAW, ALAW) exactly at the sample: frame
  ``round(offset_ms * rate / 1000)``, the server's own formula for where a resumed call starts;
- Opus at the packet that contains the offset (a packet cannot be cut): the resume then starts at
  that packet's first millisecond, so the new server's timeline and the packet timestamps agree.

A lead-in goes with it: the ``lead_in_ms`` before the resume offset are kept too and sent first
(``ResumeFrom.lead_in_ms``), only for the new server's VAD to enter the resume point in the state
the lost call's had (a fresh one misses speech in progress for about half a second); the server
translates nothing before the offset.

Positions are frames at the stream's rate (Opus: 48 kHz, RTP's clock). Timestamped packets may come
out of order (an SFU's network): each is kept in its place on the timeline, as the server's reorder
window puts it, so a replay sends them in order. An Opus packet's length is
read from its TOC byte (RFC 6716 section 3.1); the caller's ``timestamp`` wins when given, and
``packet_ms`` is the fallback for a packet whose TOC cannot be read.

Pure and synchronous; one stream's, not thread-safe.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace

from translate_svc.wire.opus_toc import packet_samples as opus_packet_samples

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chunk:
    """One sent message: audio ``[start, end)`` on the timeline (frames), or a FLUSH (``data`` None)."""

    seq: int
    start: int
    end: int
    data: bytes | None
    #: the caller gave ``start`` (a timestamp); else it follows the previous chunk
    timestamped: bool = False

    @property
    def is_flush(self) -> bool:
        return self.data is None


class ReplayBuffer:
    """Chunks sent and not yet covered by a final result, in order.

    ``frame_bytes``: bytes per frame (all channels) of a raw encoding; ``None`` for Opus (one packet
    per chunk). ``max_seconds`` bounds the span kept: past it the oldest chunks are dropped (logged),
    and a resume can then no longer replay them. ``lead_in_ms``: how much audio before the resume
    offset a resume sends again as its lead-in (0..10000, the server's range).
    """

    def __init__(
        self,
        *,
        rate: int,
        frame_bytes: int | None,
        packet_ms: float = 20.0,
        max_seconds: float | None = 300.0,
        lead_in_ms: int = 1000,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if not 0 <= lead_in_ms <= 10_000:
            raise ValueError("lead_in_ms must be in 0..10000")
        self.lead_in_ms = lead_in_ms
        if frame_bytes is not None and frame_bytes <= 0:
            raise ValueError("frame_bytes must be positive")
        self.rate = rate
        self.frame_bytes = frame_bytes
        self._packet_frames = max(1, round(packet_ms * rate / 1000))
        self._max_frames = None if max_seconds is None else round(max_seconds * rate)
        self._chunks: collections.deque[Chunk] = collections.deque()
        self._next_seq = 0
        self._end = 0  # the timeline's end so far (frames)
        self._bytes = 0
        #: frames dropped by ``max_seconds`` before any final covered them (a resume cannot replay them)
        self.dropped_to = 0

    # -- what is kept ----------------------------------------------------------------------

    @property
    def end(self) -> int:
        """The timeline's end so far, in frames."""
        return self._end

    @property
    def last_seq(self) -> int:
        """The seq of the last chunk appended (-1 before any)."""
        return self._next_seq - 1

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._chunks)

    def __iter__(self) -> Iterator[Chunk]:
        return iter(self._chunks)

    def frame_at(self, ms: int) -> int:
        """The frame where ``ms`` lies (the server's ``round(offset_ms * rate / 1000)``)."""
        return round(ms * self.rate / 1000)

    # -- changes ---------------------------------------------------------------------------

    def append(self, data: bytes, timestamp: int | None = None) -> Chunk:
        """Keep one message; ``timestamp``: where its first frame lies (frames since the stream's start)."""
        if not data:
            raise ValueError("an audio chunk must not be empty")
        if self.frame_bytes is None:
            n = opus_packet_samples(data)
            if n is None:
                n = self._packet_frames
        else:
            if len(data) % self.frame_bytes:
                raise ValueError(
                    f"an audio chunk of {len(data)} bytes is not a whole number of frames of {self.frame_bytes} bytes"
                )
            n = len(data) // self.frame_bytes
        start = self._end if timestamp is None else timestamp
        chunk = Chunk(self._next_seq, start, start + n, bytes(data), timestamp is not None)
        if timestamp is not None and timestamp < self._end:
            return self._insert(chunk)
        return self._add(chunk)

    def _insert(self, chunk: Chunk) -> Chunk:
        """A packet that arrived out of order (the server's reorder window puts it back): kept in
        its place on the timeline, unless it repeats a kept packet or lies before what is kept
        (a final result covers it). Either way it is sent, and the server counts it."""
        self._next_seq += 1
        i = len(self._chunks)
        while i > 0 and self._chunks[i - 1].start > chunk.start:
            i -= 1
        before = self._chunks[i - 1] if i > 0 else None
        if i == 0 or (before is not None and before.start == chunk.start and not before.is_flush):
            return chunk
        self._chunks.insert(i, chunk)
        self._bytes += len(chunk.data or b"")
        return chunk

    def append_flush(self) -> Chunk:
        return self._add(Chunk(self._next_seq, self._end, self._end, None))

    def _add(self, chunk: Chunk) -> Chunk:
        self._next_seq += 1
        self._chunks.append(chunk)
        self._end = chunk.end
        self._bytes += len(chunk.data or b"")
        if self._max_frames is not None:
            while self._chunks and self._end - self._chunks[0].end >= self._max_frames:
                old = self._chunks.popleft()
                self._bytes -= len(old.data or b"")
                if old.end > self.dropped_to:
                    if self.dropped_to == 0:
                        logger.warning(
                            "the replay buffer holds more than %.0f s without a final result: older audio is "
                            "dropped, and a resumed stream cannot send it again",
                            self._max_frames / self.rate,
                        )
                    self.dropped_to = old.end
        return chunk

    def trim(self, before_ms: int) -> None:
        """A final result (or a drain) covered the audio before ``before_ms``: it is not needed again
        (but for the lead-in before it)."""
        cut = self.frame_at(max(0, before_ms - self.lead_in_ms))
        while self._chunks and self._chunks[0].end <= cut:
            old = self._chunks.popleft()
            self._bytes -= len(old.data or b"")

    def replay_from(self, offset_ms: int) -> tuple[int, int, list[Chunk]]:
        """What a call resuming at ``offset_ms`` sends first: ``(ResumeFrom.offset_ms,
        ResumeFrom.lead_in_ms, chunks)``.

        The chunks start up to ``lead_in_ms`` before the offset (as much of it as is kept). Raw
        audio is cut at the exact frame; Opus starts with the packet containing the lead-in's start
        and the start moves back to that packet's first millisecond (floor). FLUSH markers after
        the resume offset are kept in place (those before it were acted on).
        """
        at = self.frame_at(offset_ms)
        first = next((c.start for c in self._chunks if not c.is_flush), at)
        start_ms = max(offset_ms - self.lead_in_ms, 0, -(-min(first, at) * 1000 // self.rate))
        start_ms = min(start_ms, offset_ms)
        cut = self.frame_at(start_ms)
        out: list[Chunk] = []
        for c in self._chunks:
            if c.is_flush:
                if c.start > at:
                    out.append(c)
                continue
            if c.end <= cut:
                continue
            if c.start >= cut:
                out.append(c)
                continue
            # c holds the cut
            assert c.data is not None
            if self.frame_bytes is None:
                start_ms = c.start * 1000 // self.rate
                out.append(c)
            else:
                k = (cut - c.start) * self.frame_bytes
                out.append(replace(c, start=cut, data=c.data[k:], timestamped=True))
        return start_ms, offset_ms - start_ms, out
