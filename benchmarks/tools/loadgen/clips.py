"""The audio each stream plays: real speech files (16 kHz mono int16), further copies rotated so
streams differ, cut or looped to a length, and encoded once to Opus packets when asked."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import typer

from benchmarks.tools.loadgen.options import RunOptions
from tests.support.paths import SHARED_AUDIO
from translate_svc.client_cli.load.clips import SAMPLE_RATE, fit_pcm, rotate_pcm, shift_samples

#: Opus: one packet per message, 20 ms of audio on a 48 kHz timeline


#: Opus: one packet per message, 20 ms of audio on a 48 kHz timeline
OPUS_RATE = 48000


OPUS_FRAME = 960


OPUS_FRAME_MS = 20


OPUS_BITRATE = 32000


@dataclass(frozen=True)
class Clip:
    name: str
    pcm: np.ndarray  # 16 kHz mono int16
    packets: tuple[bytes, ...] | None = field(default=None, compare=False)  # OPUS: one per 20 ms

    @property
    def audio_ms(self) -> float:
        if self.packets is not None:
            return float(len(self.packets) * OPUS_FRAME_MS)
        return len(self.pcm) * 1000.0 / SAMPLE_RATE


def opus_packets(pcm: np.ndarray) -> tuple[bytes, ...]:
    """16 kHz int16 mono -> Opus packets of 20 ms each at 48 kHz (libopus, VoIP mode, 32 kbit/s).

    Every packet the encoder gives is kept (its flush included), so the stream's timeline is
    ``len(packets) * 20`` ms: the clip plus the encoder's delay, rounded up to whole frames.
    """
    import av
    import soxr
    from av.audio.frame import AudioFrame

    x = soxr.resample(pcm.astype(np.float32) / 32768.0, SAMPLE_RATE, OPUS_RATE) if len(pcm) else np.zeros(0)
    s16 = np.clip(np.round(np.asarray(x) * 32768.0), -32768, 32767).astype(np.int16)
    padded = np.zeros(math.ceil(len(s16) / OPUS_FRAME) * OPUS_FRAME, dtype=np.int16)
    padded[: len(s16)] = s16
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = OPUS_RATE
    enc.layout = "mono"
    enc.format = "s16"
    enc.bit_rate = OPUS_BITRATE
    enc.time_base = Fraction(1, OPUS_RATE)
    enc.options = {"application": "voip", "frame_duration": "20"}
    enc.open()
    packets: list[bytes] = []
    for start in range(0, len(padded), OPUS_FRAME):
        frame = AudioFrame.from_ndarray(padded[None, start : start + OPUS_FRAME], format="s16", layout="mono")
        frame.sample_rate = OPUS_RATE
        frame.pts = start
        packets.extend(bytes(p) for p in enc.encode(frame))
    packets.extend(bytes(p) for p in enc.encode(None))
    return tuple(packets)


def fit_clip(clip: Clip, seconds: float) -> Clip:
    """The clip cut, or looped, to ``seconds`` of audio (0: as it is)."""
    n = round(seconds * SAMPLE_RATE)
    if n <= 0 or n == len(clip.pcm) or not len(clip.pcm):
        return clip
    return Clip(f"{clip.name}[{seconds:g}s]", fit_pcm(clip.pcm, n))


def encode_clips(clips: list[Clip], encoding: str) -> list[Clip]:
    """OPUS: every distinct clip encoded once (streams sharing a clip share its packets)."""
    if encoding != "opus":
        return clips
    done: dict[str, Clip] = {}
    out = []
    for c in clips:
        if c.name not in done:
            done[c.name] = Clip(c.name, c.pcm, opus_packets(c.pcm))
        out.append(done[c.name])
    return out


def load_clips(files: tuple[str, ...]) -> list[Clip]:
    from translate_svc.client_cli.decode import load_pcm16k

    clips = []
    for f in files:
        path = Path(f)
        if not path.is_file():
            path = SHARED_AUDIO / f
        if not path.is_file():
            raise typer.BadParameter(
                f"audio file {f!r} not found (looked in . and {SHARED_AUDIO})", param_hint="--files"
            )
        clips.append(Clip(path.name, load_pcm16k(path)))
    return clips


def stream_clips(clips: list[Clip], n: int, shift_s: float) -> list[Clip]:
    """Stream i plays clip ``i % len(clips)``; its k-th copy rotated to start ``k * shift_s`` in."""
    out = []
    for i in range(n):
        clip, k = clips[i % len(clips)], i // len(clips)
        shift = shift_samples(len(clip.pcm), k, shift_s)
        if shift == 0:
            out.append(clip)
        else:
            out.append(Clip(f"{clip.name}@{shift / SAMPLE_RATE:.2f}s", rotate_pcm(clip.pcm, shift)))
    return out


def flood_clips_for(clips: list[Clip], opts: RunOptions, assign: list[Clip]) -> list[Clip]:
    """Flood stream j plays the clip a further stream N+j would, looped to outlast the real-time phase."""
    if not opts.flood_streams:
        return []
    longest_s = max((c.audio_ms for c in assign), default=0.0) / 1000.0
    need_s = opts.flood_speed * (longest_s / opts.speed + opts.stagger_s) * 1.1 + 1.0
    extra = stream_clips(clips, opts.streams + opts.flood_streams, opts.shift_s)[opts.streams :]
    return [fit_clip(Clip(f"flood:{c.name}", c.pcm), need_s) for c in extra]
