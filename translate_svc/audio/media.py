"""Video files in: MP4, MOV, WebM and MKV files whose first audio stream a job
translates, read through PyAV as narrowly as ``opus.decode_webm`` reads a browser's WebM.

What a video file may make the server do is bounded the same way (docs/security.md, "Untrusted
media"): the container is known by its first bytes (``sniff_media``: an ISO BMFF ``ftyp`` box or an
old QuickTime atom, or the EBML header's DocType) and opened with that demuxer only, never probed
for another; FFmpeg may open only the audio decoders in ``AUDIO_DECODERS`` (``codec_whitelist``,
so no video, subtitle or data decoder is ever opened, not even while FFmpeg probes), reads at most
256 KiB to probe, and reads only the local file (``protocol_whitelist``; QuickTime's external data
references stay off, FFmpeg's default). Video is never decoded: ``audio/remux.py`` copies its
packets as they are. A file whose video stream states no frame size without its decoder (MPEG-4
Part 2 in MP4: FFmpeg takes it from the bitstream) cannot be copied without decoding and is refused.

``inspect_media`` checks a file (its audio stream: there is one, its codec accepted, its rate and
channels, its stated length within the limit; its video streams copyable) before anything is
decoded; ``MediaAudio`` decodes its audio forward, a block at a time, downmixed to mono for a job
(``read``) or kept in its channels for the voice-over mix (``read_frames``), at most the stated
length (an MP4's AAC decodes its last frame's padding too) and never past the limit.

Thread safety: ``inspect_media`` is pure; a ``MediaAudio`` is one reader, used by one thread at a
time (a job's reads are on a thread of its own).
"""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
from av.audio.frame import AudioFrame
from av.stream import Discard

from translate_svc.audio.limits import check_container_rate
from translate_svc.audio.mp4_tables import check_sample_tables
from translate_svc.errors import InvalidInput
from translate_svc.wire.pcm import pcm16_to_float


class MediaKind(str, Enum):
    """A video container this server reads and writes back (the output is the input's kind)."""

    MP4 = "mp4"
    MOV = "mov"
    WEBM = "webm"
    MATROSKA = "matroska"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def demuxer(self) -> str:
        """FFmpeg's demuxer (opened by name: the file is never probed for another)."""
        return "mov" if self in (MediaKind.MP4, MediaKind.MOV) else "matroska"

    @property
    def muxer(self) -> str:
        return self.value

    @property
    def audio_codec(self) -> str:
        """The encoder of a dubbed track: AAC in MP4 and MOV, Opus in WebM and MKV."""
        return "aac" if self in (MediaKind.MP4, MediaKind.MOV) else "libopus"

    @property
    def subtitle_codec(self) -> str:
        """``mov_text`` in MP4 and MOV, WebVTT in WebM and MKV."""
        return "mov_text" if self in (MediaKind.MP4, MediaKind.MOV) else "webvtt"

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self]

    @property
    def suffix(self) -> str:
        return {MediaKind.MATROSKA: "mkv"}.get(self, self.value)


_LABELS = {MediaKind.MP4: "MP4", MediaKind.MOV: "MOV", MediaKind.WEBM: "WebM", MediaKind.MATROSKA: "MKV"}
_CONTENT_TYPES = {
    MediaKind.MP4: "video/mp4",
    MediaKind.MOV: "video/quicktime",
    MediaKind.WEBM: "video/webm",
    MediaKind.MATROSKA: "video/x-matroska",
}
#: the decoders FFmpeg may open in a video file: its audio's (what cameras, phones, browsers and
#: editors write: AAC, Opus, Vorbis, PCM); nothing else, ever
AUDIO_DECODERS: tuple[str, ...] = (
    "aac",
    "aac_fixed",
    "opus",
    "libopus",
    "vorbis",
    "libvorbis",
    "pcm_s16le",
    "pcm_s16be",
    "pcm_s24le",
    "pcm_s24be",
    "pcm_f32le",
    "pcm_f32be",
)
#: the audio codecs accepted (FFmpeg's codec names: the stream's, whichever decoder then opens it)
AUDIO_CODECS = frozenset({"aac", "opus", "vorbis", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_f32le"})
#: a video's audio may have more channels than an audio file's two (5.1 is common): a job
#: downmixes them to mono as it decodes, the mix to stereo at most
MAX_MEDIA_CHANNELS = 8
PROBE_BYTES = 256 * 1024
_OPEN = {
    "codec_whitelist": ",".join(AUDIO_DECODERS),
    "protocol_whitelist": "file",
    "probesize": str(PROBE_BYTES),
    "fpsprobesize": "0",
}
#: QuickTime files older than ``ftyp`` start with one of these atoms
_QT_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip")
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_DOCTYPE = b"\x42\x82"
#: a stated length counts whole packets (an Opus stream's pre-skip too): the refusal before
#: decoding allows the longest packet on top, the decoded length is then checked exactly
_SLACK_S = 0.12
HINT = "send an MP4, MOV, WebM or MKV video with AAC, Opus, Vorbis or PCM audio"


def sniff_media(head: bytes) -> MediaKind | None:
    """The video container ``head`` (a file's first 64 bytes or more) starts like, or None: an ISO
    BMFF ``ftyp`` box (brand ``qt  ``: MOV; any other: MP4), an old QuickTime file's first atom
    (MOV), or an EBML header whose DocType is ``webm`` or ``matroska``."""
    if head[4:8] == b"ftyp":
        return MediaKind.MOV if head[8:12] == b"qt  " else MediaKind.MP4
    if head[4:8] in _QT_ATOMS:
        return MediaKind.MOV
    if head[:4] == _EBML_MAGIC:
        at = head.find(_DOCTYPE, 4, 64)
        if at < 0 or at + 3 > len(head) or not head[at + 2] & 0x80:
            return None
        size = head[at + 2] & 0x7F
        doctype = head[at + 3 : at + 3 + size]
        return {b"webm": MediaKind.WEBM, b"matroska": MediaKind.MATROSKA}.get(doctype)
    return None


def media_kind(path: Path) -> MediaKind | None:
    """``sniff_media`` of a file."""
    with open(path, "rb") as f:
        return sniff_media(f.read(64))


@dataclass(frozen=True)
class VideoTrack:
    """A video stream as its container states it (never decoded)."""

    index: int
    codec: str
    width: int
    height: int


@dataclass(frozen=True)
class MediaInfo:
    """A video file as ``inspect_media`` found it: its kind, its first audio stream (codec, rate,
    channels, its stated length in frames when it states one) and its video streams."""

    kind: MediaKind
    audio_codec: str
    rate: int
    channels: int
    frames: int | None
    video: tuple[VideoTrack, ...]
    #: where its audio starts on the video's timeline (``audio_start``, in ms): a video whose sound
    #: starts after its picture is dubbed, and its subtitles timed, from there
    audio_start_ms: int = 0

    @property
    def seconds(self) -> float | None:
        return None if self.frames is None else self.frames / self.rate


def open_media(path: Path, kind: MediaKind) -> av.container.InputContainer:
    """The file opened with ``kind``'s demuxer and the narrow options (see the module); an MP4's or
    MOV's sample tables checked first against the file's size (``mp4_tables``: the demuxer
    indexes every sample they state at open)."""
    if kind.demuxer == "mov":
        with open(path, "rb") as f:
            check_sample_tables(f, os.fstat(f.fileno()).st_size, kind.label)
    try:
        return av.open(str(path), "r", format=kind.demuxer, options=_OPEN, metadata_errors="ignore")
    except (av.error.FFmpegError, ValueError, OSError, UnicodeDecodeError) as e:
        raise unreadable(kind, e) from None


def unreadable(kind: MediaKind, e: BaseException) -> InvalidInput:
    """FFmpeg's refusal in a caller's words; one for want of memory is ``MemoryError`` (its process
    is bounded: the sandbox says so)."""
    if getattr(e, "errno", None) == errno.ENOMEM:
        raise MemoryError(f"FFmpeg ran out of memory reading the {kind.label} file") from None
    reason = str(getattr(e, "strerror", None) or "FFmpeg could not read it")[:120]
    return InvalidInput(f"could not read the {kind.label} file: {reason}; {HINT}")


def inspect_media(path: Path, kind: MediaKind, *, max_seconds: float | None = None) -> MediaInfo:
    """The file's audio and video streams, checked before a sample is decoded (``InvalidInput``
    naming why: no audio stream, its codec, rate or channels, its stated length over
    ``max_seconds``, a video stream that cannot be copied without decoding)."""
    with open_media(path, kind) as container:
        stream = _audio_stream(container, kind)
        ctx = stream.codec_context
        rate, channels = int(ctx.sample_rate), int(ctx.channels)
        check_container_rate(rate)
        if not 1 <= channels <= MAX_MEDIA_CHANNELS:
            raise InvalidInput(
                f"the {kind.label} file's audio has {channels} channels: at most {MAX_MEDIA_CHANNELS} are accepted"
            )
        frames = stated_frames(container, stream, rate)
        if max_seconds is not None and frames is not None and frames / rate > max_seconds + _SLACK_S:
            raise InvalidInput(
                f"the {kind.label} file's audio is {frames / rate:.0f} s long; a job takes at most {max_seconds:.0f} s "
                "(jobs.max_audio_s): split it into several jobs"
            )
        video = []
        for v in container.streams.video:
            if v.disposition & av.stream.Disposition.attached_pic:
                continue  # a cover picture, not the video
            vctx = v.codec_context
            if vctx is None:  # a codec FFmpeg does not know: nothing could copy it
                raise InvalidInput(
                    f"the {kind.label} file's video stream is in a codec this server does not know: "
                    "send H.264, H.265, VP8, VP9 or AV1 video"
                )
            if not vctx.width or not vctx.height:
                raise InvalidInput(
                    f"the {kind.label} file's video stream ({vctx.name[:16]}) states no frame size in its container, "
                    "and this server never decodes video to find it: send H.264, H.265, VP8, VP9 or AV1 video"
                )
            video.append(VideoTrack(v.index, vctx.name, int(vctx.width), int(vctx.height)))
        start_ms = round(audio_start(stream) * 1000)
        return MediaInfo(kind, str(ctx.name), rate, channels, frames, tuple(video), start_ms)


def audio_start(audio: av.audio.stream.AudioStream) -> Fraction:
    """Where an audio stream starts on its file's timeline (seconds; its stated start time, 0
    where it states none or one before 0): the video's sound may start after its picture."""
    start, base = audio.start_time, audio.time_base
    if start is None or base is None or start <= 0:
        return Fraction(0)
    return Fraction(start) * base


def _audio_stream(container: av.container.InputContainer, kind: MediaKind) -> av.audio.stream.AudioStream:
    streams = container.streams.audio
    if not streams:
        raise InvalidInput(f"the {kind.label} file holds no audio stream: there is nothing to translate; {HINT}")
    stream = streams[0]
    only_audio(container, stream)
    ctx = stream.codec_context
    # the codec's own name (mp3), not the FFmpeg decoder's that reads it (mp3float)
    codec = "unknown" if ctx is None else str(ctx.codec.canonical_name)
    if codec not in AUDIO_CODECS:
        named = "" if ctx is None else f" ({str(ctx.codec.long_name)[:48]})"
        raise InvalidInput(f"the {kind.label} file's audio codec {codec[:24]}{named} is not accepted: {HINT}")
    return stream


def only_audio(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> None:
    """Every other stream discarded by the demuxer: an MP4's other samples are skipped, never read
    (Matroska reads a block before it knows its track, then drops it)."""
    for other in container.streams:
        if other.index != stream.index:
            other.discard = Discard.all


def stated_frames(container: av.container.InputContainer, stream: av.audio.stream.AudioStream, rate: int) -> int | None:
    """The audio stream's length in frames as the file states it (its own duration, an MP4's from
    its edit list; else the container's), or None."""
    if stream.duration and stream.time_base is not None:
        return math.floor(stream.duration * stream.time_base * rate)
    if container.duration and container.duration > 0:
        return math.floor(Fraction(container.duration, 1_000_000) * rate)
    return None


class MediaAudio:
    """A video file's first audio stream, decoded forward from ``start_frame`` (earlier frames are
    decoded and dropped: exact, whatever the codec's seeking). ``read`` gives mono float32 in
    [-1, 1] (channels averaged, as ``codec`` does for audio files), ``read_frames`` each channel
    (frames x channels); fewer than asked at the end, nothing after it. The audio ends at its
    stated length when the stream states one (an MP4's AAC decodes padding past it, and a length
    that lies never yields more); a stream that states none (Matroska's) is as long as it decodes,
    which the job's ``probe`` reads through once, within ``jobs.max_audio_s``. ``close`` when done.
    One thread at a time."""

    def __init__(self, path: Path, kind: MediaKind, *, start_frame: int = 0) -> None:
        self.kind = kind
        self._container = open_media(path, kind)
        try:
            stream = _audio_stream(self._container, kind)
            ctx = stream.codec_context
            self.rate, self.channels = int(ctx.sample_rate), int(ctx.channels)
            check_container_rate(self.rate)
            if not 1 <= self.channels <= MAX_MEDIA_CHANNELS:
                raise InvalidInput(f"the {kind.label} file's audio has {self.channels} channels")
            own = stream.duration and stream.time_base is not None
            #: the stream's own stated length: where its audio ends
            self.frames: int | None = stated_frames(self._container, stream, self.rate) if own else None
            self._stream = stream
            self._frames = self._decoded(stream)
        except BaseException:
            self._container.close()
            raise
        self._held: list[np.ndarray] = []
        self._have = 0
        self._given = 0
        self._done = False
        if start_frame:
            while start_frame > 0 and len(skipped := self.read_frames(min(start_frame, 1 << 16))):
                start_frame -= len(skipped)

    def _decoded(self, stream: av.audio.stream.AudioStream) -> Iterator[np.ndarray]:
        try:
            for frame in self._container.decode(stream):
                yield _planes(frame)
        except (av.error.FFmpegError, ValueError, OSError) as e:
            raise self._broken(e) from None

    def _broken(self, e: BaseException) -> InvalidInput:
        if getattr(e, "errno", None) == errno.ENOMEM:
            raise MemoryError(f"FFmpeg ran out of memory decoding the {self.kind.label} file") from None
        reason = str(e)[:80]
        return InvalidInput(f"the {self.kind.label} file's audio could not be decoded through: {reason}")

    def count(self, most: int) -> int:
        """The frames left, decoded and counted, not converted (a stream that states no length is
        measured so: half the CPU of ``read``); past ``most``, ``most + 1``. Ends the reading."""
        n = 0
        try:
            for frame in self._container.decode(self._stream):
                n += frame.samples
                if n > most:
                    return most + 1
        except (av.error.FFmpegError, ValueError, OSError) as e:
            raise self._broken(e) from None
        self._done = True
        return n

    def read(self, frames: int) -> np.ndarray:
        """The next ``frames`` frames as mono float32."""
        got = self.read_frames(frames)
        if got.shape[1] == 1:
            return np.ascontiguousarray(got[:, 0])
        mono: np.ndarray = got.mean(axis=1, dtype=np.float32)
        return mono

    def read_frames(self, frames: int) -> np.ndarray:
        """The next ``frames`` frames, float32 (frames x channels)."""
        while self._have < frames and not self._done:
            piece = next(self._frames, None)
            if piece is None:
                self._done = True
                break
            self._held.append(piece)
            self._have += len(piece)
        joined = np.concatenate(self._held) if self._held else np.zeros((0, self.channels), np.float32)
        out, rest = joined[:frames], joined[frames:]
        self._held, self._have = ([rest] if len(rest) else []), len(rest)
        if self.frames is not None:
            out = out[: max(0, self.frames - self._given)]
        self._given += len(out)
        return out

    def close(self) -> None:
        self._container.close()


def _planes(frame: AudioFrame) -> np.ndarray:
    """A decoded frame as float32 (frames x channels), finite, clipped to [-1, 1]."""
    raw: np.ndarray = frame.to_ndarray()
    if raw.dtype == np.int16:
        raw = pcm16_to_float(raw)
    elif raw.dtype == np.int32:
        raw = (raw / 2147483648.0).astype(np.float32)
    channels = frame.layout.nb_channels
    out = raw.T if frame.format.is_planar else raw.reshape(frame.samples, channels)
    out = np.ascontiguousarray(out, dtype=np.float32)
    if not np.isfinite(out).all():
        raise InvalidInput("the video's audio decodes to non-finite samples: the stream is corrupt; send valid audio")
    np.clip(out, -1.0, 1.0, out=out)
    return out
