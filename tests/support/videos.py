"""Videos for the dubbing tests and study (issue 90), written with PyAV: small frames that change
colour every frame (so no two packets are alike) and the shared speech as their sound (read from
``../shared/audio``, never copied into the repository), in each container the server takes: H.264
(libx264) in MP4, MOV and MKV, VP8 (libvpx) in WebM; AAC in MP4 and MOV, Opus in WebM and MKV.

And what a test reads back from a video, the ``ffprobe`` way but through PyAV: each stream's type,
codec, language tag, disposition and stated length; the video's packets (bytes and times); an audio
track decoded; a subtitle track's cues.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import soxr

#: the containers a dubbed video comes back in, by file suffix
KINDS = ("mp4", "mov", "webm", "mkv")
_MUXER = {"mp4": "mp4", "mov": "mov", "webm": "webm", "mkv": "matroska"}
_VIDEO = {"mp4": "libx264", "mov": "libx264", "webm": "libvpx", "mkv": "libx264"}
_AUDIO = {"mp4": "aac", "mov": "aac", "webm": "libopus", "mkv": "libopus"}


def write_video(
    out: Path,
    speech: Path,
    *,
    seconds: float | None = None,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    audio: bool = True,
    audio_codec: str | None = None,
    audio_offset_s: float = 0.0,
    second: Path | None = None,
) -> Path:
    """A video at ``out`` (its kind by its suffix) with ``speech`` as its stereo sound, repeated to
    ``seconds`` (default: the speech's length); ``audio=False``: a video with no audio stream;
    ``audio_codec``: another codec than the container's usual one (to be refused);
    ``audio_offset_s``: the sound starts this long after the picture (as ``ffmpeg -itsoffset``);
    ``second``: a second audio stream of that speech (as long, tagged ``fra``)."""
    kind = out.suffix[1:]
    x, rate = sf.read(speech, dtype="float32", always_2d=True)
    x = np.repeat(x, 2, axis=1) if x.shape[1] == 1 else x[:, :2]
    codec = audio_codec or _AUDIO[kind]
    arate = 48000 if codec == "libopus" else rate
    if arate != rate:
        x = soxr.resample(x, rate, arate).astype(np.float32)
    total = len(x) if seconds is None else round(seconds * arate)
    x = np.tile(x, (math.ceil(total / len(x)), 1))[:total]
    off = round(audio_offset_s * arate)
    y = None
    if second is not None:
        y, yrate = sf.read(second, dtype="float32", always_2d=True)
        y = np.repeat(y, 2, axis=1) if y.shape[1] == 1 else y[:, :2]
        y = soxr.resample(y, yrate, arate).astype(np.float32) if yrate != arate else y
        y = np.tile(y, (math.ceil(total / len(y)), 1))[:total]
    with av.open(str(out), "w", format=_MUXER[kind]) as container:
        video = container.add_stream(_VIDEO[kind], rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        sound = other = None
        if audio:
            sound = container.add_stream(codec, rate=arate, layout="stereo")
            sound.format = "fltp" if codec != "libopus" else "flt"  # aac, ac3: planar float
        if audio and y is not None:
            other = container.add_stream(codec, rate=arate, layout="stereo")
            other.format = sound.format.name if sound is not None else "fltp"
            other.metadata["language"] = "fra"
        step = 960 if codec == "libopus" else 1024
        at = 0
        frames = math.ceil((total + off) / arate * fps)
        for i in range(frames):
            img = np.full((size[1], size[0], 3), (i * 37) % 256, np.uint8)
            img[:, : (i % size[0])] = (i * 11) % 256
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
            while sound is not None and at < total and off + at <= (i + 1) * arate / fps:
                container.mux(sound.encode(_frame(x[at : at + step], sound.format.name, arate, off + at)))
                if other is not None and y is not None:
                    container.mux(other.encode(_frame(y[at : at + step], other.format.name, arate, off + at)))
                at += step
        while sound is not None and at < total:
            container.mux(sound.encode(_frame(x[at : at + step], sound.format.name, arate, off + at)))
            if other is not None and y is not None:
                container.mux(other.encode(_frame(y[at : at + step], other.format.name, arate, off + at)))
            at += step
        container.mux(video.encode(None))
        if sound is not None:
            container.mux(sound.encode(None))
        if other is not None:
            container.mux(other.encode(None))
    return out


def _frame(pcm: np.ndarray, fmt: str, rate: int, pts: int) -> av.AudioFrame:
    planes = pcm.T if fmt == "fltp" else pcm.reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes), format=fmt, layout="stereo")
    frame.sample_rate, frame.pts = rate, pts
    return frame


@dataclass(frozen=True)
class StreamInfo:
    index: int
    type: str
    codec: str
    language: str | None
    disposition: int
    #: the stream's stated length in seconds (None: it states none)
    seconds: float | None
    #: its title as players read it: Matroska's ``title``, an MP4's or MOV's handler name
    title: str | None = None


def audio_packets(path: Path, index: int) -> list[bytes]:
    """Stream ``index``'s packets' bytes."""
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams[index]) if p.size]


def first_seconds(path: Path) -> dict[int, float]:
    """Each stream's first packet's presentation time (seconds), by stream index, as read back."""
    first: dict[int, float] = {}
    with av.open(str(path)) as c:
        for packet in c.demux():
            if packet.pts is not None and packet.time_base is not None and packet.stream.index not in first:
                first[packet.stream.index] = float(packet.pts * packet.time_base)
            if len(first) == len(c.streams):
                break
    return first


def audio_start_ms(path: Path) -> float:
    """Where the file's first audio stream starts (its stated start time), in ms."""
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        return float(a.start_time * a.time_base * 1000) if a.start_time and a.time_base else 0.0


def streams(path: Path) -> list[StreamInfo]:
    with av.open(str(path)) as c:
        return [
            StreamInfo(
                s.index,
                s.type,
                s.codec_context.name,
                s.metadata.get("language"),
                int(s.disposition),
                float(s.duration * s.time_base) if s.duration and s.time_base else None,
                s.metadata.get("title") or s.metadata.get("handler_name"),
            )
            for s in c.streams
        ]


def video_durations(path: Path) -> list[int]:
    """The first video stream's packets' durations as the demuxer reads them (0: none stated or inferred)."""
    with av.open(str(path)) as c:
        return [p.duration or 0 for p in c.demux(c.streams.video[0]) if p.size]


def video_packets(path: Path) -> list[tuple[bytes, float | None]]:
    """The first video stream's packets: each one's bytes and presentation time (seconds)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return [(bytes(p), None if p.pts is None else float(p.pts * p.time_base)) for p in c.demux(stream) if p.size]


def audio_of(path: Path, index: int) -> tuple[np.ndarray, int]:
    """Audio stream ``index`` (of the file's streams) decoded: mono float32, its rate; as long as
    the stream states (an AAC decoder gives its last frame's padding too) when it states a length."""
    x, rate = channels_of(path, index)
    return x.mean(axis=1).astype(np.float32), rate


def channels_of(path: Path, index: int) -> tuple[np.ndarray, int]:
    """``audio_of`` with its channels kept: (samples, channels) float32, its rate."""
    with av.open(str(path)) as c:
        stream = c.streams[index]
        rate = stream.codec_context.sample_rate
        pieces = []
        for frame in c.decode(stream):
            a = frame.to_ndarray()
            a = a.T if frame.format.is_planar else a.reshape(frame.samples, -1)
            pieces.append(a)
        x = np.concatenate(pieces).astype(np.float32)
        if stream.duration and stream.time_base:
            x = x[: round(stream.duration * stream.time_base * rate)]
        return x, rate


def audio_seconds(path: Path, index: int) -> float:
    """An audio stream's length in seconds as a player sees it: stated, else decoded."""
    info = next(s for s in streams(path) if s.index == index)
    if info.seconds is not None:
        return info.seconds
    x, rate = audio_of(path, index)
    return len(x) / rate


def cues(path: Path, index: int) -> list[tuple[int, int, str]]:
    """Subtitle stream ``index``'s cues (start_ms, end_ms, text); mov_text's empty samples (the
    gaps between cues) left out."""
    with av.open(str(path)) as c:
        stream = c.streams[index]
        out = []
        for p in c.demux(stream):
            if not p.size or p.pts is None:
                continue
            data = bytes(p)
            if stream.codec_context.name == "mov_text":
                data = data[2 : 2 + int.from_bytes(data[:2], "big")]
            if data:
                start = p.pts * p.time_base
                end = start + (p.duration or 0) * p.time_base
                out.append((round(start * 1000), round(end * 1000), data.decode()))
        return out


def frame_seconds(kind: str, rate: int) -> Fraction:
    """One audio frame of the dubbed tracks' codec in ``kind``: AAC's 1024 samples at ``rate``
    (the source's), Opus's 20 ms."""
    return Fraction(1024, rate) if _AUDIO[kind] == "aac" else Fraction(960, 48000)


def write_huge_frame_video(out: Path, speech: Path) -> Path:
    """``speech`` under one 8192x8192 H.264 frame (MP4 with AAC, MKV with Opus, by ``out``'s
    suffix): a decoder that opened the video stream would allocate hundreds of MB."""
    kind = out.suffix[1:]
    x, rate = sf.read(speech, dtype="float32", always_2d=True)
    codec = _AUDIO[kind]
    arate = 48000 if codec == "libopus" else rate
    mono = x.mean(axis=1)
    if arate != rate:
        mono = soxr.resample(mono, rate, arate).astype(np.float32)
    with av.open(str(out), "w", format=_MUXER[kind]) as container:
        video = container.add_stream("libx264", rate=1)
        video.width = video.height = 8192
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast"}
        sound = container.add_stream(codec, rate=arate, layout="mono")
        sound.format = "flt" if codec == "libopus" else "fltp"
        frame = av.VideoFrame(8192, 8192, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.pts = 0
        container.mux(video.encode(frame))
        container.mux(video.encode(None))
        step = 960 if codec == "libopus" else 1024
        for at in range(0, len(mono), step):
            piece = mono[at : at + step][None, :]
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece), format=sound.format.name, layout="mono")
            af.sample_rate, af.pts = arate, at
            container.mux(sound.encode(af))
        container.mux(sound.encode(None))
    return out
