"""A dubbed video made from its source, through PyAV: the source's container again, its
video streams copied packet for packet (never decoded, never encoded again: each packet's bytes are
the source's), one audio track per target language (AAC in MP4 and MOV, Opus in WebM and MKV,
tagged with its language and marked ``dub``, the first the default), the source's audio as tracks
too when asked (every audio stream it has, the dubbed one first: their packets copied, marked
``original``, each keeping its language tag), and one subtitle track per language
(``mov_text`` in MP4 and MOV, WebVTT in WebM and MKV).

Every track starts where the source's audio does (its stream's start time: a video whose sound
starts after its picture, as ``ffmpeg -itsoffset`` or an edit list makes it, keeps its sync):
each dubbed track's first sample there, the subtitles' cues shifted by it (segment times count
from the audio's first sample).

Each dubbed track is exactly as long as the source's audio (``Remux.source_frames`` at its rate,
converted to the track's: a frame of the encoder at most apart once encoded): the job's dubbed
track (``jobs/dub.py``: each segment's speech at its segment's start) resampled with soxr where
its rate is not the track's (``track_rate``: in AAC the speech's own rate when the dub plays
alone, the source's in the mix; Opus's 48 kHz). With the
voice-over mix (``duck_db``) the source's audio plays under the dub: at its own level where the dub
is silent, lowered to ``duck_db`` while it speaks (ramped over ``ATTACK_S`` before and
``RELEASE_S`` after, so the change is heard as a duck, not a click); without, the dub alone.

With a loudness target (``Remux.loudness``: BS.1770 integrated loudness and a true-peak ceiling,
``audio/loudness.py``) each dubbed track is measured as it plays (the dub, or the mix) in passes
before it is written, and written through the normaliser with the gain found: one gain for the
mix as a whole, so the source under the dub keeps its duck (``duck_db`` below the dub's level).

The work goes a second of output at a time (``WINDOW_S``): the tracks' next second is encoded and
the source's packets up to it are copied, so the muxer interleaves them with a small buffer and
memory stays a few seconds of audio whatever the video's length. Matroska states no decoding time
for its packets (FFmpeg derives some with the video's decoder and parser, which are not opened
here, and leaves the others unset): each packet of a Matroska source is given the earliest
presentation time of itself and the next ``_AHEAD`` packets of its stream (fewer beyond
``_AHEAD_BYTES``), never earlier than the one before (non-decreasing, never after its own
presentation time; Matroska keeps only presentation times, so the copy's are the source's). An
MP4's or MOV's own decoding times are kept. The source's streams not copied are discarded by its
demuxer, and the muxer interleaves within a second (``max_interleave_delta``).

Synchronous, CPU-bound (decoding the source's audio for the mix, encoding every track): run on a
worker thread (``jobs/video.py``'s pool). Thread-safe (a call holds its own containers).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol, cast

import av
import numpy as np
import soxr
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.packet import Packet
from av.stream import Discard, Disposition, Stream
from av.subtitles.stream import SubtitleStream
from av.video.stream import VideoStream

from translate_svc.audio.loudness import LoudnessTarget, Normaliser, plan_loudness
from translate_svc.audio.media import MediaKind, audio_start, only_audio, open_media
from translate_svc.audio.mp4_boxes import subtitles_off

#: a second of output at a time
WINDOW_S = 1.0
#: the source's audio goes down to ``duck_db`` over this before the dub speaks, and back up over
#: ``RELEASE_S`` after it stops
ATTACK_S = 0.15
RELEASE_S = 0.3
#: AAC's sample rates: a dubbed AAC track is at the source's rate where it is one of these, else 48 kHz
AAC_RATES = frozenset({96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000})
OPUS_RATE = 48000
#: samples per encoded frame
_FRAME = {"aac": 1024, "libopus": 960}
_OPUS_BIT_RATE = {1: 64_000, 2: 96_000}


def bit_rate(codec: str, rate: int, channels: int) -> int:
    """A dubbed track's bit rate: Opus's by channels; AAC's by rate too (FFmpeg's AAC encoder asked
    for more bits than its rate holds works several times longer for nothing: 64 kbit/s of 16 kHz
    mono measured 4x the CPU of 48 kbit/s)."""
    if codec == "libopus":
        return _OPUS_BIT_RATE[channels]
    return min(96_000, 3 * rate) if channels == 1 else min(128_000, 4 * rate)


#: packets of a stream looked at ahead to give one without a decoding time its own, and at most
#: this many bytes of them (a stream of huge packets is looked at less far ahead)
_AHEAD = 32
_AHEAD_BYTES = 64 * 1024 * 1024
#: the longest text of a mov_text sample (its length is 16 bits)
_MOV_TEXT_MAX = 65535
#: what FFmpeg's text subtitle encoders need to open (they write a track's header from it)
_ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\nScaledBorderAndShadow: yes\n\n"
    b"[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, "
    b"Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, "
    b"MarginL, MarginR, MarginV, Encoding\n"
    b"Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1\n\n"
    b"[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)


class TrackSource(Protocol):
    """A dubbed track read from its start: ``read(n)``, its next ``n`` PCM16 samples (fewer at its
    end); ``close`` when done."""

    def read(self, n: int) -> np.ndarray: ...

    def close(self, *_: Any) -> None: ...


@dataclass(frozen=True)
class DubInput:
    """One target's dubbed track: ``read(n)`` gives its next ``n`` PCM16 samples at ``rate`` (fewer
    at its end), ``speaking`` where its speech is ([start, end) in samples at ``rate``, in order of
    start), ``language`` its ISO 639-2/T code (``language_tag`` writes it as the container wants).
    ``again``: the same track from its start, once more for each loudness pass (``Remux.loudness``)."""

    language: str
    rate: int
    read: Callable[[int], np.ndarray]
    speaking: Sequence[tuple[int, int]]
    title: str = ""
    again: Callable[[], TrackSource] | None = None


@dataclass(frozen=True)
class SubtitleInput:
    """One language's subtitles: (start_ms, end_ms, text), in order."""

    language: str
    cues: Sequence[tuple[int, int, str]]
    title: str = ""


@dataclass(frozen=True)
class Remux:
    """What the dubbed video holds besides the copied video: the source audio's exact length
    (every audio track's), the dubbed tracks, the subtitles, the source's audio as a track
    (``original``: its language tag; None: left out) and the voice-over mix (``duck_db``: the
    source's audio under each dub at this gain while it speaks; None: the dub alone)."""

    source_frames: int
    source_rate: int
    dubs: Sequence[DubInput]
    subtitles: Sequence[SubtitleInput] = ()
    original: str | None = None
    duck_db: float | None = None
    #: each dubbed track (as it plays: the dub, or the mix) brought to this loudness; None: as made
    loudness: LoudnessTarget | None = None


@dataclass(frozen=True)
class RemuxStats:
    video_packets: int
    #: each dubbed track's samples, at ``rate``
    track_samples: int
    rate: int
    #: each dubbed track's loudness gain before its limiter (dB), in ``Remux.dubs``' order (empty: none asked)
    gains_db: tuple[float, ...] = ()


#: ISO 639-2 bibliographic codes where they differ from the terminological ones
_BIBLIOGRAPHIC = {
    "sqi": "alb", "hye": "arm", "eus": "baq", "mya": "bur", "zho": "chi", "ces": "cze", "nld": "dut", "fra": "fre",
    "kat": "geo", "deu": "ger", "ell": "gre", "isl": "ice", "mkd": "mac", "mri": "mao", "msa": "may", "fas": "per",
    "ron": "rum", "slk": "slo", "bod": "tib", "cym": "wel",
}  # fmt: skip
#: the codes FFmpeg's MOV muxer writes (QuickTime's own language table, found by writing every code
#: of the model's languages in both forms and reading them back); any other is written undefined
_QUICKTIME = frozenset(
    "amh ara arm asm aze baq bel ben bul bur cat ces chi dan dut eng est fin fra geo ger gre guj heb hin hun ice ind "
    "ita jav jpn kan kaz khm kir kor lao lav lit mac mal mar may mlt mon nep nya ori orm per pol por pus ron rus slk "
    "slv snd som spa sve swa tam tel tgk tgl tha tur ukr urd uzb vie".split()
)


def language_tag(code: str, kind: MediaKind) -> str:
    """A track's language tag in ``kind`` from its ISO 639-2/T code: as it is in MP4 (ISO 639-2/T),
    WebM and MKV; in MOV the form QuickTime's table has (its terminological or bibliographic form,
    Swedish's ``sve``), ``und`` when it has none."""
    if kind is not MediaKind.MOV:
        return code
    for form in (code, _BIBLIOGRAPHIC.get(code, code), {"swe": "sve"}.get(code, code)):
        if form in _QUICKTIME:
            return form
    return "und"


def track_rate(kind: MediaKind, source_rate: int, speech_rate: int | None = None) -> int:
    """The dubbed tracks' rate in ``kind``: Opus's 48 kHz; in AAC the speech's own rate when the
    dub plays alone (``speech_rate``: nothing above it to keep, and the encoder's work in
    proportion), else the source's (the mix keeps its bandwidth), each where AAC has it (else 48 kHz)."""
    if kind.audio_codec == "libopus":
        return OPUS_RATE
    rate = source_rate if speech_rate is None else speech_rate
    return rate if rate in AAC_RATES else 48000


def remux(src: Path, dst: Path, kind: MediaKind, plan: Remux) -> RemuxStats:
    """Write the dubbed video of ``src`` (a ``kind`` file, checked by ``media.inspect_media``) to ``dst``."""
    source = open_media(src, kind)
    try:
        audio = source.streams.audio[0]
        videos = [v for v in source.streams.video if not v.disposition & Disposition.attached_pic]
        speech_rates = {d.rate for d in plan.dubs}
        alone = plan.duck_db is None and len(speech_rates) == 1
        rate = track_rate(kind, int(audio.codec_context.sample_rate), speech_rates.pop() if alone else None)
        length = (plan.source_frames * rate + plan.source_rate // 2) // plan.source_rate
        begins = audio_start(audio)
        # the muxer holds a second of packets at most to interleave them (FFmpeg's default: 10 s)
        options = {"max_interleave_delta": str(round(WINDOW_S * 1_000_000))}
        if kind in (MediaKind.MP4, MediaKind.MOV):
            options["movflags"] = "+faststart"
        channels = 1 if plan.duck_db is None or audio.codec_context.channels == 1 else 2
        gains = [_loudness_gain(src, kind, plan, d, rate, channels, length) for d in plan.dubs] if plan.loudness else []
        with av.open(str(dst), "w", format=kind.muxer, options=options) as out:
            copies: dict[int, Stream] = {v.index: out.add_stream_from_template(v) for v in videos}
            if kind.demuxer == "matroska":
                for v in videos:  # its frame rate, so the muxer states each frame's duration (DefaultDuration)
                    if v.average_rate:
                        cast(VideoStream, copies[v.index]).codec_context.framerate = v.average_rate
            mix = None
            if plan.duck_db is not None:
                mix = _Original(src, kind, rate, channels, length)
            layout = "mono" if channels == 1 else "stereo"
            tracks = [
                _Track(out, kind, d, rate, layout, length, first=i == 0, at=round(begins * rate))
                for i, d in enumerate(plan.dubs)
            ]
            if plan.loudness is not None:
                for track, gain in zip(tracks, gains, strict=True):
                    track.normalise(gain, plan.loudness.true_peak_dbtp)
            if plan.original is not None:  # every audio stream of the source, the dubbed one first
                others = [a for a in source.streams.audio if a.index != audio.index]
                for n, a in enumerate([audio, *others]):
                    original = out.add_stream_from_template(a)
                    tag = plan.original if a is audio else str(a.metadata.get("language") or "und")
                    original.metadata["language"] = language_tag(tag, kind) if a is audio else tag
                    _title(original, "original" if n == 0 else f"original {n + 1}", kind)
                    original.disposition = Disposition.original | (Disposition.default if not tracks and n == 0 else 0)
                    copies[a.index] = original
            subtitles = [_subtitle_stream(out, kind, s) for s in plan.subtitles]
            cues = _cue_packets(kind, plan.subtitles, subtitles, round(begins * 1000))
            for stream in source.streams:
                if stream.index not in copies:
                    stream.discard = Discard.all  # never read (an MP4's), or dropped as read (Matroska's)
            demuxed = source.demux(*[source.streams[i] for i in copies]) if copies else iter(())
            packets = _dts_filled(demuxed, derive=kind.demuxer == "matroska")
            waiting: Packet[Any] | None = None
            video_packets = 0
            step = max(1, round(WINDOW_S * rate))
            for start in range(0, length, step):
                n = min(step, length - start)
                under = None if mix is None else mix.read(n)
                for track in tracks:
                    track.add(start, n, under, plan.duck_db)
                until = begins + Fraction(start + n, rate)
                waiting, muxed = _copy_until(out, packets, waiting, copies, until)
                video_packets += muxed
                _mux_cues(out, cues, until)
            for track in tracks:
                track.finish()
            _, muxed = _copy_until(out, packets, waiting, copies, None)
            video_packets += muxed
            _mux_cues(out, cues, None)
            if mix is not None:
                mix.close()
        if kind in (MediaKind.MP4, MediaKind.MOV) and plan.subtitles:
            subtitles_off(dst)
        return RemuxStats(video_packets, length, rate, tuple(gains))
    finally:
        source.close()


def _loudness_gain(
    src: Path, kind: MediaKind, plan: Remux, dub: DubInput, rate: int, channels: int, length: int
) -> float:
    """The gain that brings ``dub``'s track, as it plays (over the source's audio when mixed), to
    ``plan.loudness`` (``plan_loudness``: the track made again for each pass, as ``remux`` makes it)."""
    assert plan.loudness is not None
    if dub.again is None:
        raise ValueError("a loudness target needs each dub's track again (DubInput.again) for its passes")
    again = dub.again

    def pieces() -> Iterator[np.ndarray]:
        source = again()
        played = _Played(DubInput(dub.language, dub.rate, source.read, dub.speaking), rate)
        mix = _Original(src, kind, rate, channels, length) if plan.duck_db is not None else None
        try:
            for start in range(0, length, max(1, round(WINDOW_S * rate))):
                n = min(max(1, round(WINDOW_S * rate)), length - start)
                yield played.next(start, n, None if mix is None else mix.read(n), plan.duck_db)
        finally:
            source.close()
            if mix is not None:
                mix.close()

    return plan_loudness(pieces, rate, channels, plan.loudness).gain_db


class _Played:
    """One target's dubbed track as it plays at the output's ``rate``: its speech resampled (soxr, one
    stream), over the source's audio when mixed (``next``, a window at a time, in order)."""

    def __init__(self, dub: DubInput, rate: int) -> None:
        self._dub, self._rate = dub, rate
        self._resample = None if dub.rate == rate else soxr.ResampleStream(dub.rate, rate, 1, dtype="float32")
        self._speech = np.zeros(0, np.float32)
        self._ended = False
        scale = Fraction(rate, dub.rate)
        self._starts = np.array([int(a * scale) for a, _ in dub.speaking], np.int64)
        self._ends = np.array([int(b * scale) for _, b in dub.speaking], np.int64)

    def next(self, start: int, n: int, under: np.ndarray | None, duck_db: float | None) -> np.ndarray:
        """The track's samples [start, start + n), (n, channels): the dub, over ``under`` (the source's
        audio) ducked to ``duck_db`` while it speaks."""
        speech = self._take(n)
        if under is None:
            return speech[:, None]
        assert duck_db is not None
        gain = ducked(self._starts, self._ends, start, n, self._rate, 10 ** (duck_db / 20))
        mixed: np.ndarray = under * gain[:, None] + speech[:, None]
        return mixed

    def _take(self, n: int) -> np.ndarray:
        while len(self._speech) < n and not self._ended:
            got = self._dub.read(self._dub.rate)
            self._ended = len(got) == 0
            x = np.asarray(got, np.float32) / 32768.0
            if self._resample is not None:
                x = self._resample.resample_chunk(x, last=self._ended)
            self._speech = np.concatenate([self._speech, x.astype(np.float32, copy=False)])
        out = self._speech[:n]
        self._speech = self._speech[n:]
        if len(out) < n:  # the track's end: silence to the source's length
            out = np.concatenate([out, np.zeros(n - len(out), np.float32)])
        return out


class _Track:
    """One target's dubbed track (``_Played``), brought to a loudness where asked (``normalise``),
    encoded a frame at a time."""

    def __init__(
        self, out: av.container.OutputContainer, kind: MediaKind, dub: DubInput, rate: int, layout: str,
        length: int, *, first: bool, at: int = 0,
    ) -> None:  # fmt: skip
        codec = kind.audio_codec
        self._channels = 1 if layout == "mono" else 2
        stream = cast(AudioStream, out.add_stream(codec, rate=rate, layout=layout))
        stream.format = "fltp" if codec == "aac" else "flt"
        stream.bit_rate = bit_rate(codec, rate, self._channels)
        stream.metadata["language"] = language_tag(dub.language, kind)
        _title(stream, dub.title or f"{dub.language} (dubbed)", kind)
        stream.disposition = Disposition.dub | (Disposition.default if first else 0)
        self._out, self._stream, self._codec = out, stream, codec
        self._frame = _FRAME[codec]
        self._rate, self._length = rate, length
        self._played = _Played(dub, rate)
        self._norm: Normaliser | None = None
        self._pending = np.zeros((0, self._channels), np.float32)
        self._pts = at  # its first sample where the source's audio starts

    def normalise(self, gain_db: float, ceiling_dbtp: float) -> None:
        """From now on the track is brought up by ``gain_db`` and limited to ``ceiling_dbtp``."""
        self._norm = Normaliser(self._rate, self._channels, gain_db, ceiling_dbtp)

    def add(self, start: int, n: int, under: np.ndarray | None, duck_db: float | None) -> None:
        """The track's samples [start, start + n): the dub, over the source's audio when mixed."""
        pcm = self._played.next(start, n, under, duck_db)
        if self._norm is not None:
            pcm = self._norm.process(pcm)
        self._encode(np.clip(pcm, -1.0, 1.0).astype(np.float32, copy=False))

    def _encode(self, pcm: np.ndarray) -> None:
        self._pending = np.concatenate([self._pending, pcm]) if len(self._pending) else pcm
        whole = len(self._pending) // self._frame * self._frame
        for at in range(0, whole, self._frame):
            self._send(self._pending[at : at + self._frame])
        self._pending = self._pending[whole:]

    def _send(self, pcm: np.ndarray | None) -> None:
        frame = None
        if pcm is not None:
            planes = pcm.T if self._codec == "aac" else pcm.reshape(1, -1)
            frame = AudioFrame.from_ndarray(
                np.ascontiguousarray(planes), format=self._stream.format.name, layout=self._stream.layout.name
            )
            frame.sample_rate = self._rate
            frame.pts = self._pts
            self._pts += len(pcm)
        for packet in self._stream.encode(frame):
            self._out.mux(packet)

    def finish(self) -> None:
        if self._norm is not None:  # the normaliser's look-ahead: the track's last samples
            self._encode(np.clip(self._norm.flush(), -1.0, 1.0).astype(np.float32, copy=False))
        if len(self._pending):
            self._send(self._pending)  # a short last frame: the encoders take one
        self._send(None)


def ducked(starts: np.ndarray, ends: np.ndarray, at: int, n: int, rate: int, floor: float) -> np.ndarray:
    """The source audio's gain over samples [at, at + n): 1 where the dub is silent, ``floor`` while
    it speaks ([starts, ends)), ramped down over ``ATTACK_S`` before each speech and up over
    ``RELEASE_S`` after it (the lowest where ramps meet)."""
    attack, release = max(1, round(ATTACK_S * rate)), max(1, round(RELEASE_S * rate))
    t = np.arange(at, at + n, dtype=np.int64)
    depth = np.zeros(n, np.float32)  # 0: full level, 1: at the floor
    near = np.flatnonzero((starts - attack < at + n) & (ends + release > at))
    for i in near:
        a, b = int(starts[i]), int(ends[i])
        w = np.where(t < a, (t - (a - attack)) / attack, np.where(t < b, 1.0, 1.0 - (t - b) / release))
        np.maximum(depth, np.clip(w, 0.0, 1.0).astype(np.float32), out=depth)
    gain: np.ndarray = (1.0 - (1.0 - floor) * depth).astype(np.float32)
    return gain


class _Original:
    """The source's audio for the mix: decoded, resampled to the output's rate and laid out mono
    or stereo (FFmpeg's resampler: a 5.1 source is downmixed by its matrix), exactly ``length``
    samples (silence past its end)."""

    def __init__(self, src: Path, kind: MediaKind, rate: int, channels: int, length: int) -> None:
        self.layout = "mono" if channels == 1 else "stereo"
        self._channels = channels
        self._container = open_media(src, kind)
        stream = self._container.streams.audio[0]
        only_audio(self._container, stream)
        self._frames = self._container.decode(stream)
        self._resampler = AudioResampler(format="fltp", layout=self.layout, rate=rate)
        self._held = np.zeros((0, channels), np.float32)
        self._left = length
        self._ended = False

    def read(self, n: int) -> np.ndarray:
        while len(self._held) < n and not self._ended:
            frame = next(self._frames, None)
            self._ended = frame is None
            for out in self._resampler.resample(frame):
                planes = np.asarray(out.to_ndarray(), np.float32).reshape(self._channels, -1)
                self._held = np.concatenate([self._held, planes.T])
        got = self._held[: min(n, self._left)]
        self._held = self._held[len(got) :]
        self._left -= len(got)
        if len(got) < n:
            got = np.concatenate([got, np.zeros((n - len(got), self._channels), np.float32)])
        return np.clip(got, -1.0, 1.0)

    def close(self) -> None:
        self._container.close()


def _subtitle_stream(out: av.container.OutputContainer, kind: MediaKind, subs: SubtitleInput) -> Stream:
    stream = cast(SubtitleStream, out.add_stream(kind.subtitle_codec))
    stream.codec_context.subtitle_header = _ASS_HEADER
    stream.metadata["language"] = language_tag(subs.language, kind)
    _title(stream, subs.title or subs.language, kind)
    return stream


def _title(stream: Stream, title: str, kind: MediaKind) -> None:
    """A track's title as players read it in ``kind``: Matroska's and WebM's ``title``; in MP4 and
    MOV the track's handler name (FFmpeg writes no title there: the ``hdlr`` name is what players
    show)."""
    stream.metadata["title"] = title
    if kind in (MediaKind.MP4, MediaKind.MOV):
        stream.metadata["handler_name"] = title


def _cue_packets(
    kind: MediaKind, subs: Sequence[SubtitleInput], streams: Sequence[Stream], shift_ms: int = 0
) -> deque[Packet[Any]]:
    """Every cue as its packet, in order of start (mov_text: a 16-bit length, then the text;
    WebVTT in Matroska: the text), ``shift_ms`` later than its times say (where the audio starts).
    A cue ends at the next one's start at the latest."""
    packets: list[Packet[Any]] = []
    for sub, stream in zip(subs, streams, strict=True):
        cues = [c for c in sub.cues if c[2]]
        for i, (start, end, text) in enumerate(cues):
            if i + 1 < len(cues):
                end = min(end, cues[i + 1][0])
            if end <= start:
                continue
            data = text.encode()
            if kind.subtitle_codec == "mov_text":
                data = data[:_MOV_TEXT_MAX].decode("utf-8", "ignore").encode()
                data = len(data).to_bytes(2, "big") + data
            packet = Packet(data)
            packet.stream = stream
            packet.time_base = Fraction(1, 1000)
            packet.pts = packet.dts = start + shift_ms
            packet.duration = end - start
            packets.append(packet)
    packets.sort(key=lambda p: p.pts or 0)
    return deque(packets)


def _mux_cues(out: av.container.OutputContainer, cues: deque[Packet[Any]], until: Fraction | None) -> None:
    while cues and (until is None or Fraction(cues[0].pts or 0, 1000) < until):
        out.mux(cues.popleft())


def _copy_until(
    out: av.container.OutputContainer,
    packets: Iterator[Packet[Any]],
    waiting: Packet[Any] | None,
    copies: dict[int, Stream],
    until: Fraction | None,
) -> tuple[Packet[Any] | None, int]:
    """The source's packets copied up to ``until`` (seconds; None: all); the first one after it
    (held for the next call) and how many video packets went."""
    muxed = 0
    while True:
        packet = waiting if waiting is not None else next(packets, None)
        if packet is None:
            return None, muxed
        at = packet.dts if packet.dts is not None else packet.pts
        if until is not None and at is not None and packet.time_base is not None and at * packet.time_base >= until:
            return packet, muxed
        waiting = None
        is_video = packet.stream.type == "video"
        packet.stream = copies[packet.stream.index]
        out.mux(packet)
        muxed += is_video


def _dts_filled(packets: Iterable[Packet[Any]], *, derive: bool) -> Iterator[Packet[Any]]:
    """The packets with data, each with a decoding time (see the module; ``derive``: every packet's
    made from the presentation times, else only a missing one): a stream's packets pass ``_AHEAD``
    late, the streams' order kept otherwise."""
    ahead: dict[int, deque[Packet[Any]]] = {}
    held: dict[int, int] = {}
    last: dict[int, int] = {}
    for packet in packets:
        if packet.size == 0:  # the demuxer's flush packets
            continue
        index = packet.stream.index
        queue = ahead.setdefault(index, deque())
        queue.append(packet)
        held[index] = held.get(index, 0) + packet.size
        while len(queue) > _AHEAD or (len(queue) > 1 and held[index] > _AHEAD_BYTES):
            first = queue.popleft()
            held[index] -= first.size
            yield _with_dts(first, queue, last, derive)
    for queue in ahead.values():
        while queue:
            yield _with_dts(queue.popleft(), queue, last, derive)


def _with_dts(packet: Packet[Any], ahead: deque[Packet[Any]], last: dict[int, int], derive: bool) -> Packet[Any]:
    index = packet.stream.index
    if (derive or packet.dts is None) and packet.pts is not None:
        dts = min([packet.pts, *(p.pts for p in ahead if p.pts is not None)])
        packet.dts = max(dts, last.get(index, dts))
    if packet.dts is not None:
        last[index] = packet.dts
    return packet
