"""What a job does with its upload, as it runs in a sandbox process (``jobs/media.py`` calls these
there; ``translate_svc/sandbox/``): never in the server's process, nor on a pool it shares.

- ``probe``: the upload checked (readable, its streams, its length within ``jobs.max_audio_s``, a
  stream that states no length read through to the tenant's job hours left at most);
- ``open_reader``, ``seek_reader``, ``read`` and ``close_reader``: the job's audio a block at a
  time, for its run, in a process the run holds (the reader lives in the process between calls);
- ``make_video``: a done video job's dubbed video (``audio/remux.py``), written to a file the
  server then sends;
- ``make_dubbed_wav``: a done job's dubbed track as a WAV file brought to a loudness (the track
  made again for each measuring pass: ``audio/loudness.py``).

Every argument and answer is a plain value (paths, numbers, frozen dataclasses, float32 arrays):
the server loads answers with ``sandbox.answers``. One call at a time per process.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from translate_svc.audio.loudness import LoudnessTarget, normalised, plan_loudness
from translate_svc.audio.media import MediaInfo, MediaKind, inspect_media
from translate_svc.audio.remux import DubInput, Remux, SubtitleInput, remux
from translate_svc.audio.wav import pcm16_header
from translate_svc.jobs.dub import ChannelTrackReader, Place, TrackReader, speaking
from translate_svc.jobs.reader import AudioBlocks, probe_length, probe_media
from translate_svc.settings.jobs import DubOverflow
from translate_svc.types import AudioFormat


@dataclass(frozen=True)
class Probed:
    """An upload as its probe found it: its audio's length, a video's streams (None for any other
    upload), and whether a stream that states no length was read to the hours left without its
    end (``longer``: ``duration_ms`` is where the reading stopped)."""

    duration_ms: int
    media: MediaInfo | None
    longer: bool = False
    #: the upload's SHA-256 (hex): the source its files' content credentials name
    sha256: str | None = None
    #: its audio's channels
    channels: int = 1


def probe(path: Path, fmt: AudioFormat, max_seconds: float, at_most_s: float | None = None) -> Probed:
    media = probe_media(path, fmt, max_seconds)
    duration_ms, longer, channels = probe_length(path, fmt, max_seconds, at_most_s)
    return Probed(duration_ms, media, longer, _sha256(path), channels)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


#: the job's reader in this process, between calls (``open_reader`` to ``close_reader``), and the
#: file and format it reads (``seek_reader`` opens them again)
_reader: AudioBlocks | None = None
_opened: tuple[Path, AudioFormat, bool] | None = None


def open_reader(
    path: Path, fmt: AudioFormat, start_ms: int, keep_channels: bool = False
) -> tuple[int, int | None, int]:
    """The job's audio opened at ``start_ms``: its rate, its stated length in frames (None: none)
    and its channels (each block frames x channels when ``keep_channels``)."""
    global _reader, _opened
    close_reader()
    blocks = AudioBlocks(path, fmt, keep_channels=keep_channels)
    if start_ms:
        rate = blocks.rate
        blocks.close()
        blocks = AudioBlocks(path, fmt, start_frame=start_ms * rate // 1000, keep_channels=keep_channels)
    _reader, _opened = blocks, (path, fmt, keep_channels)
    return blocks.rate, blocks.frames, blocks.channels


def seek_reader(frame: int) -> None:
    """The job's audio opened again at input frame ``frame`` (a resume's start, known only once
    its rate is: ``open_reader`` told it)."""
    global _reader
    if _opened is None:
        raise RuntimeError("seek before open_reader")
    path, fmt, keep = _opened
    close_reader()
    _reader = AudioBlocks(path, fmt, start_frame=frame, keep_channels=keep)


def read(frames: int) -> np.ndarray:
    """The next ``frames`` frames, mono float32, or frames x channels where the reader keeps them
    (fewer at the end, none after it)."""
    if _reader is None:
        raise RuntimeError("read before open_reader")
    return _reader.read(frames)


def close_reader() -> None:
    global _reader
    if _reader is not None:
        _reader.close()
        _reader = None


@dataclass(frozen=True)
class DubOrder:
    """One target's dubbed track: its speech file (None: no speech), where each segment's speech
    goes (``dub.placements``), its ISO 639-2/T code and title."""

    language: str
    speech: Path | None
    places: tuple[Place, ...]
    title: str


@dataclass(frozen=True)
class VideoOrder:
    """A dubbed video as ``jobs/video.py`` asks it: the upload ``src`` (a ``kind`` file) remuxed to
    ``out`` with the tracks and subtitles given; ``source`` the audio's (frames, rate) when kept
    (None: found from the upload and ``duration_ms``)."""

    src: Path
    out: Path
    kind: MediaKind
    source: tuple[int, int] | None
    duration_ms: int
    track_rate: int
    overflow: DubOverflow
    dubs: tuple[DubOrder, ...]
    subtitles: tuple[SubtitleInput, ...]
    original: str | None
    duck_db: float | None
    #: each dubbed track brought to this loudness (``audio/loudness.py``); None: as made
    loudness: LoudnessTarget | None = None


def make_video(order: VideoOrder) -> int:
    """The dubbed video written to ``order.out``; its size in bytes."""
    source = order.source
    if source is None:  # read to its end before its length was kept: the length it was probed at
        info = inspect_media(order.src, order.kind)
        source = (order.duration_ms * info.rate // 1000, info.rate)
    frames, rate = source
    length = round(frames * order.track_rate / rate)  # the dubbed WAV's length (transport/jobs/render.py)
    readers: list[TrackReader] = []
    try:
        dubs = []
        for dub in order.dubs:
            places = list(dub.places)
            reader = TrackReader(dub.speech, places, length, order.overflow)
            readers.append(reader)
            spans = speaking(places, length, order.overflow)
            again = functools.partial(TrackReader, dub.speech, places, length, order.overflow)
            dubs.append(DubInput(dub.language, order.track_rate, reader.read, spans, dub.title, again))
        plan = Remux(
            frames, rate, dubs, order.subtitles, original=order.original, duck_db=order.duck_db, loudness=order.loudness
        )
        remux(order.src, order.out, order.kind, plan)
    finally:
        for reader in readers:
            reader.close()
    return order.out.stat().st_size


@dataclass(frozen=True)
class WavOrder:
    """A done job's dubbed track as ``jobs/video.py`` asks it: the target's speech file (``speech``)
    placed as ``places`` says on a track of ``length`` samples at ``rate``, brought to ``loudness``,
    written to ``out`` as a PCM16 WAV: mono, or a channel per party where ``segment_channels``
    gives each place's channel (a job of separate channels: ``channels`` of them)."""

    speech: Path
    places: tuple[Place, ...]
    length: int
    rate: int
    overflow: DubOverflow
    loudness: LoudnessTarget
    out: Path
    segment_channels: tuple[int, ...] = ()
    channels: int = 1


#: the track's samples made (and measured) at once
_WAV_PIECE = 16_000


def make_dubbed_wav(order: WavOrder) -> int:
    """The dubbed track written to ``order.out`` at its loudness (the gain found by passes over the
    track as it plays, then written through the same gain and limiter); its size in bytes."""

    channels = order.channels

    def pieces() -> Iterator[np.ndarray]:
        places = list(order.places)
        reader: TrackReader | ChannelTrackReader
        if channels > 1:
            reader = ChannelTrackReader(
                order.speech, places, order.segment_channels, channels, order.length, order.overflow
            )
        else:
            reader = TrackReader(order.speech, places, order.length, order.overflow)
        try:
            while len(x := reader.read(_WAV_PIECE)):
                yield x.astype(np.float32) / 32768.0
        finally:
            reader.close()

    target = order.loudness
    plan = plan_loudness(pieces, order.rate, channels, target)
    with open(order.out, "wb") as f:
        f.write(pcm16_header(2 * channels * order.length, order.rate, channels))
        for y in normalised(pieces(), order.rate, channels, plan.gain_db, target.true_peak_dbtp):
            f.write(np.round(np.clip(y, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes())
    return order.out.stat().st_size
