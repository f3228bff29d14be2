"""A job's dubbed track, made from its segments' speech (issue 91): each segment's speech starts at
its segment's start on the audio's timeline, whatever the speech before it did, and the track is
exactly as long as the audio (silence after the last speech, or that speech cut at the audio's
end). Speech longer than its segment's span and the gap after it (a translation takes longer to
say than its source) runs past the next segment's start: ``jobs.dub_overflow`` says what then
happens, ``overlap`` (mixed with the next speech: nothing is lost) or ``cut`` (stopped where the
next segment starts). Before, each segment's speech was appended after the last one's end, so
long speech pushed every later segment later (drift) and the track ended wherever the speech did
(212.5 s for a 216 s source). Speeding speech up to fit is not done: it needs a speaking rate the
model does not take yet.

Pure and bounded: ``DubTrack`` takes the segments in order, each with its speech as PCM16, and
gives the track's samples as they become final (everything before the segment just added starts),
in pieces of at most ``CHUNK_SAMPLES``; it holds only the speech still running past that point.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from translate_svc.settings.jobs import DubOverflow

#: the largest piece of the track handed out at once (1 MiB of PCM16)
CHUNK_SAMPLES = 512 * 1024


class DubTrack:
    """One target's dubbed track of ``length`` samples, made a segment at a time: ``add`` each
    segment's speech in segment order, then ``finish``. Each returns the track's PCM16 bytes that
    are final by then, in order; together exactly ``2 * length`` bytes. Not thread-safe."""

    def __init__(self, length: int, overflow: DubOverflow) -> None:
        if length < 0:
            raise ValueError("a track's length is not negative")
        self.length = length
        self._overflow = overflow
        #: samples handed out so far; ``_held`` holds the track's samples from there on (int32: mixed)
        self._pos = 0
        self._held = np.zeros(0, np.int32)

    def add(self, start: int, speech: np.ndarray) -> Iterator[bytes]:
        """A segment's speech (int16) placed at sample ``start`` (clipped to the track): what comes
        before it is final now and given out. Segments come in order (``start`` never decreases)."""
        start = min(max(start, self._pos), self.length)
        if self._overflow is DubOverflow.CUT:
            self._held = self._held[: start - self._pos]  # the speech before stops where this starts
        yield from self._give(start)
        speech = np.asarray(speech, np.int16)[: self.length - start]
        if len(speech) > len(self._held):
            self._held = np.concatenate([self._held, np.zeros(len(speech) - len(self._held), np.int32)])
        self._held[: len(speech)] += speech

    def finish(self) -> Iterator[bytes]:
        """The rest of the track: the speech still running, cut at its end, then silence to it."""
        yield from self._give(self.length)

    def _give(self, end: int) -> Iterator[bytes]:
        """The track's samples from the last given up to ``end`` (held speech, then silence)."""
        while self._pos < end:
            n = min(end - self._pos, CHUNK_SAMPLES)
            piece = np.zeros(n, np.int32)
            held = self._held[:n]
            piece[: len(held)] = held
            self._held = self._held[n:]
            self._pos += n
            yield np.clip(piece, -32768, 32767).astype("<i2").tobytes()
