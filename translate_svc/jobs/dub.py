"""A job's dubbed track, made from its segments' speech: each segment's speech starts at
its segment's start on the audio's timeline, whatever the speech before it did, and the track is
exactly as long as the audio (silence after the last speech, or that speech cut at the audio's
end). Speech longer than its segment's span and the gap after it (a translation takes longer to
say than its source) runs past the next segment's start: ``jobs.dub_overflow`` says what then
happens, ``overlap`` (mixed with the next speech: nothing is lost) or ``cut`` (stopped where the
next segment starts). Before, each segment's speech was appended after the last one's end, so
long speech pushed every later segment later (drift) and the track ended wherever the speech did
(212.5 s for a 216 s source). A job submitted with ``fit`` (dubbing to the source's
clock) has each segment's speech made at the rate that ends it by the next segment's start
(session/stream/segments.py holds each segment for that start), so only speech past the bound's fastest
rate runs over, and its segment's ``overlap_ms`` says by how much.

Pure and bounded: ``DubTrack`` takes the segments in order, each with its speech as PCM16, and
gives the track's samples as they become final (everything before the segment just added starts),
in pieces of at most ``CHUNK_SAMPLES``; it holds only the speech still running past that point.
``TrackReader`` reads a track so made from a target's speech file and the segments' places
(``placements``, read from the store a page at a time), for the WAV download and for the dubbed
video: one track, whoever asks for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from translate_svc.jobs.keeper import JobKeeper
from translate_svc.settings.jobs import DubOverflow

#: segments read from the store per page
PAGE = 256

#: the largest piece of the track handed out at once (1 MiB of PCM16)
CHUNK_SAMPLES = 512 * 1024

#: a segment's speech on the track: (its start on the track, its length, where it is in the target's
#: speech file), in samples at the track's rate
Place = tuple[int, int, int]


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


async def placements(store: JobKeeper, job_id: str, language: str, rate: int) -> list[Place]:
    """Each finished segment's speech in ``language`` (``Place``: its start at ``rate``, its length,
    where it is in the speech file), in segment order (a segment without speech in it: length 0).
    The file holds the speech in segment order, each after the one before, until a segment is
    edited (``edits.py``): then every translation says where its speech is (``audio_offset``)."""
    out: list[Place] = []
    after, file_at = -1, 0
    while page := await store.segments(job_id, after, PAGE):
        after += len(page)
        for seg in page:
            said = next((t for t in seg["translations"] if t["target_language"] == language), None)
            n = 0 if said is None else int(said["audio_samples"])
            at = file_at if said is None else int(said.get("audio_offset", file_at))
            out.append((int(seg["start_ms"]) * rate // 1000, n, at))
            file_at = at + n
    return out


async def segment_channels(store: JobKeeper, job_id: str) -> list[int]:
    """Each finished segment's channel (1, 2: a job of separate channels; 0: the channels mixed),
    in segment order, as ``placements`` lists them."""
    out: list[int] = []
    after = -1
    while page := await store.segments(job_id, after, PAGE):
        after += len(page)
        out.extend(int(seg.get("channel", 0)) for seg in page)
    return out


def done_track_length(source: tuple[int, int] | None, duration_ms: int, rate: int) -> int:
    """A done job's dubbed track's length in samples at ``rate``: its audio's, exactly where the job
    read it to its end and kept its (frames, rate) (``source``), else as long as it was probed."""
    return round(source[0] * rate / source[1]) if source else duration_ms * rate // 1000


def speaking(places: Sequence[Place], length: int, overflow: DubOverflow) -> list[tuple[int, int]]:
    """Where the track's speech is ([start, end) in samples), as ``DubTrack`` places it."""
    spans = []
    for i, (start, n, _) in enumerate(places):
        end = min(start + n, length)
        if overflow is DubOverflow.CUT and i + 1 < len(places):
            end = min(end, places[i + 1][0])
        if n and end > start:
            spans.append((start, end))
    return spans


class TrackReader:
    """A target's dubbed track of ``length`` samples, made as it is read (``DubTrack``) from its
    speech file (None: no segment had speech in it) and the segments' ``placements``; ``keep``:
    which segments it places (one per place; the others' speech is passed over: a channel's track
    of a job of separate channels), None: all. Synchronous (a worker thread's): ``read`` the next
    samples, then ``close``."""

    def __init__(
        self,
        speech: Path | None,
        places: Sequence[Place],
        length: int,
        overflow: DubOverflow,
        keep: Sequence[bool] | None = None,
    ) -> None:
        self._file: BinaryIO | None = None
        if speech is not None:
            with contextlib.suppress(FileNotFoundError):
                self._file = open(speech, "rb")  # closed by close()
        self._pieces = self._made(places, DubTrack(length, overflow), keep)
        self._piece, self._at = b"", 0

    def _made(self, places: Sequence[Place], track: DubTrack, keep: Sequence[bool] | None) -> Iterator[bytes]:
        for i, (start, n, at) in enumerate(places):
            speech = np.zeros(0, np.int16)
            if n and self._file is not None and (keep is None or keep[i]):
                if self._file.tell() != at * 2:  # an edited segment's speech is at the file's end
                    self._file.seek(at * 2)
                data = self._file.read(n * 2)
                speech = np.frombuffer(data[: len(data) - len(data) % 2], "<i2")
            if keep is None or keep[i]:
                yield from track.add(start, speech)
        yield from track.finish()

    def read_bytes(self, size: int) -> bytes:
        """The track's next ``size`` bytes of PCM16 (fewer at its end, b"" after it)."""
        parts = []
        while size > 0:
            if self._at >= len(self._piece):
                piece = next(self._pieces, None)
                if piece is None:
                    break
                self._piece, self._at = piece, 0
                continue
            part = self._piece[self._at : self._at + size]
            self._at += len(part)
            size -= len(part)
            parts.append(part)
        return b"".join(parts)

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` samples (int16)."""
        return np.frombuffer(self.read_bytes(2 * n), "<i2")

    def close(self, *_: Any) -> None:
        if self._file is not None:
            self._file.close()


class ChannelTrackReader:
    """The dubbed track of a job of separate channels: a channel per party (``channels`` of them),
    each that channel's segments' speech placed as a track of its own (``TrackReader``), the
    channels interleaved. ``segment_channels``: each place's channel (1..). Synchronous, as
    ``TrackReader``."""

    def __init__(
        self,
        speech: Path | None,
        places: Sequence[Place],
        segment_channels: Sequence[int],
        channels: int,
        length: int,
        overflow: DubOverflow,
    ) -> None:
        self.channels = channels
        self._readers: list[TrackReader] = []
        try:
            for channel in range(1, channels + 1):
                keep = [c == channel for c in segment_channels]
                self._readers.append(TrackReader(speech, places, length, overflow, keep))
        except BaseException:
            self.close()
            raise

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` frames (int16, frames x channels)."""
        return np.stack([r.read(n) for r in self._readers], axis=1)

    def read_bytes(self, size: int) -> bytes:
        """The track's next ``size`` bytes of interleaved PCM16 (whole frames: fewer when ``size``
        is not a multiple of a frame's bytes; b"" after its end)."""
        return self.read(size // (2 * self.channels)).astype("<i2").tobytes()

    def close(self, *_: Any) -> None:
        for reader in self._readers:
            reader.close()
