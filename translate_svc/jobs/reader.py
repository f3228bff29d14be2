"""A job's audio read from its file in bounded blocks, decoded as a whole clip is
(``audio.codec.decode_audio``: a container through libsndfile, raw samples by ``decode_raw``;
samples clipped to [-1, 1], channels averaged), so a job's samples are a clip's, a block at a time.
A video file (MP4, MOV, WebM, MKV) is known by its first bytes and its first audio stream
is read through PyAV instead (``audio.media``: only audio decoders, the video never decoded); a
WebM or MKV of audio alone too.
A file libsndfile cannot read through (a FLAC header that states no length over frames it cannot
seek, a frame broken mid-file) is ``InvalidInput`` saying so, never an internal error (security
finding J9). Synchronous: it runs in a sandbox process (``jobs/untrusted.py``, called from
``jobs/media.py``), never in the server's: every open of an upload does."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf

from translate_svc.audio.codec import CONTAINER_FORMATS, SAMPLE_WIDTH, WAV_SUBTYPES, decode_raw
from translate_svc.audio.limits import MAX_CONTAINER_CHANNELS, check_container_rate
from translate_svc.audio.media import MediaAudio, MediaInfo, inspect_media, media_kind
from translate_svc.errors import InvalidInput
from translate_svc.types import AudioEncoding, AudioFormat


class AudioBlocks:
    """The audio of one job from ``start_frame`` on; ``read`` gives the next block (empty: the end).
    ``keep_channels``: each block is (frames x ``channels``), not mixed to mono (a job of
    separate channels). ``close`` when done."""

    def __init__(self, path: Path, fmt: AudioFormat, start_frame: int = 0, *, keep_channels: bool = False) -> None:
        self._fmt = fmt
        self._raw = fmt.encoding is not AudioEncoding.CONTAINER
        self._keep = keep_channels
        self._file: sf.SoundFile | None = None
        self._media: MediaAudio | None = None
        self.frames: int | None = None
        kind = None if self._raw else media_kind(path)
        if kind is not None:
            self._media = MediaAudio(path, kind, start_frame=start_frame)
            self.rate, self.channels = self._media.rate, self._media.channels
            self.frames = self._media.frames
            return
        if self._raw:
            self.channels = fmt.channels
            self.rate = fmt.sample_rate_hz
            self._frame_bytes = SAMPLE_WIDTH[AudioEncoding(fmt.encoding)] * fmt.channels
            size = path.stat().st_size
            if size % self._frame_bytes:
                raise InvalidInput(
                    f"the upload's {size} bytes are not a whole number of {fmt.encoding.value} frames of "
                    f"{fmt.channels} channel(s): upload complete frames"
                )
            self.frames = size // self._frame_bytes
            self._fh = open(path, "rb")
            self._fh.seek(start_frame * self._frame_bytes)
            return
        try:
            f = sf.SoundFile(path)
        except (sf.LibsndfileError, RuntimeError):
            raise InvalidInput(
                "the upload is not an audio file this server reads: send WAV, FLAC, OGG (Vorbis or Opus) or "
                "MP3, a video (MP4, MOV, WebM, MKV), or raw samples with their encoding and sample_rate_hz"
            ) from None
        self._file = f
        if f.format not in CONTAINER_FORMATS or (f.format in ("WAV", "WAVEX") and f.subtype not in WAV_SUBTYPES):
            f.close()
            raise InvalidInput(f"audio container {str(f.format)[:16]} {str(f.subtype)[:16]} is not accepted")
        self.rate, self.channels = int(f.samplerate), int(f.channels)
        check_container_rate(self.rate)
        if not 1 <= f.channels <= MAX_CONTAINER_CHANNELS:
            f.close()
            raise InvalidInput(f"the audio has {f.channels} channels: send mono or stereo")
        self.frames = int(f.frames) if 0 < f.frames < 2**62 else None
        if start_frame:
            try:
                f.seek(start_frame)
            except (sf.LibsndfileError, RuntimeError):
                f.close()
                raise _unreadable() from None

    def read(self, frames: int) -> np.ndarray:
        """The next ``frames`` frames (fewer at the end), float32 in [-1, 1]: mono, or (frames x
        channels) when the channels are kept."""
        if self._raw:
            data = self._fh.read(frames * self._frame_bytes)
            if self._keep:
                return np.stack(
                    [decode_raw(data, self._fmt, allow_empty=True, channel=c) for c in range(self.channels)], axis=1
                )
            return decode_raw(data, self._fmt, allow_empty=True)
        if self._media is not None:
            return self._media.read_frames(frames) if self._keep else self._media.read(frames)
        assert self._file is not None
        try:
            got = self._file.read(frames, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError):
            raise _unreadable() from None
        if not np.isfinite(got).all():
            raise InvalidInput("the audio holds a non-finite value: send finite samples in [-1, 1]")
        np.clip(got, -1.0, 1.0, out=got)
        if self._keep:
            kept: np.ndarray = got
            return kept
        if got.shape[1] == 1:
            return np.ascontiguousarray(got[:, 0], dtype=np.float32)
        mono: np.ndarray = got.mean(axis=1, dtype=np.float32)
        return mono

    def count(self, most: int) -> int:
        """The frames left (read through, a block at a time, for a stream that states no length);
        past ``most``, ``most + 1``."""
        if self._media is not None:
            return self._media.count(most)
        n = 0
        while got := len(self.read(self.rate * 30)):
            n += got
            if n > most:
                return most + 1
        return n

    def close(self) -> None:
        if self._raw:
            self._fh.close()
        elif self._media is not None:
            self._media.close()
        elif self._file is not None:
            self._file.close()


def _unreadable() -> InvalidInput:
    return InvalidInput(
        "the audio file could not be read through (libsndfile stopped in it: a header that states no length, "
        "or a broken frame): send it again as WAV, or as FLAC written with its length"
    )


def probe_media(path: Path, fmt: AudioFormat, max_seconds: float) -> MediaInfo | None:
    """A video file's streams, checked (``audio.media.inspect_media``); None for any other upload."""
    kind = None if fmt.encoding is not AudioEncoding.CONTAINER else media_kind(path)
    return None if kind is None else inspect_media(path, kind, max_seconds=max_seconds)


def probe_length(
    path: Path, fmt: AudioFormat, max_seconds: float, at_most_s: float | None = None
) -> tuple[int, bool, int]:
    """The audio's length in ms, checked readable and within ``max_seconds`` (from its header, or
    its size for raw samples; a container without a length is read through once, a block at a
    time, to ``at_most_s`` at most: the tenant's job hours left), whether it was read to
    ``at_most_s`` without its end (it is longer: the length given is ``at_most_s``), and its
    channels."""
    blocks = AudioBlocks(path, fmt)
    try:
        frames = blocks.frames
        longer = False
        if frames is None:
            most = max_seconds if at_most_s is None else min(max_seconds, at_most_s)
            frames = blocks.count(math.floor(most * blocks.rate))
            longer = frames > most * blocks.rate and most < max_seconds
        seconds = frames / blocks.rate
        if seconds > max_seconds:
            over = "over " if frames > max_seconds * blocks.rate else ""
            raise InvalidInput(
                f"the audio is {over}{seconds:.0f} s long; a job takes at most {max_seconds:.0f} s "
                "(jobs.max_audio_s): split it into several jobs"
            )
        if frames == 0:
            raise InvalidInput("the upload holds no audio frames: upload the audio, then complete the job")
        return math.floor(seconds * 1000), longer, blocks.channels
    finally:
        blocks.close()
