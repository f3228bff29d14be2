"""How the speech watermark survives what a real path does to audio, and how often human speech
reads as marked: the shared speech cut into clips of ``--clip-s`` seconds at 16 kHz (the rate the
vocoder speaks), each clip marked by the product's watermarker as the finish stage marks speech,
then sent through each transformation; the detector's answer on the marked clip (a detection:
``marked``, probability over 0.75) and on the same clip unmarked through the same transformation (a
false positive). Transformations: PCM16; Opus at 16/24/32 kbit/s (libopus, 48 kHz, as WebRTC and
the Opus doors send); G.711 mu-law at 8 kHz (a phone line); MP3 and AAC at 64 kbit/s; resampling
to 44.1 kHz and to 22.05 kHz and back; speed changes by resampling (0.9x and 1.1x: pitch moves
too); white noise at 20 and 10 dB SNR; another speaker's voice under it at 20 and 10 dB (the
dubbed track's voice-over mix: the dub over the original); cuts to 2 s and 1 s (the clip's start).

    python -m benchmarks.tools.marking_robustness [--clip-s 4]

Prints one markdown row per transformation: detections (marked clips read as marked, of all,
and the lowest probability) and false positives (unmarked clips read as marked, of all, and the
highest probability). The speech is human speech marked, a stand-in for our vocoder's (the test
checkpoint's random vocoder makes no speech).
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable

import av
import numpy as np
import soundfile as sf
import soxr

from tests.support.paths import SHARED_AUDIO
from translate_svc.audio.g711 import decode_mulaw, encode_mulaw
from translate_svc.marking.watermarker import Watermarker, shared

RATE = 16000
FILES = ("jfk.flac", "silero_test.wav")
MARKED_ABOVE = 0.75  # session/calls/detect.py's bound

Transform = Callable[[np.ndarray, int], tuple[np.ndarray, int]]


def speech(name: str) -> np.ndarray:
    audio, own = sf.read(SHARED_AUDIO / name, dtype="float32", always_2d=True)
    return np.asarray(soxr.resample(audio.mean(axis=1), own, RATE), dtype=np.float32)


def clips(clip_s: float) -> list[np.ndarray]:
    n = int(clip_s * RATE)
    out = []
    for name in FILES:
        x = speech(name)
        out += [x[at : at + n] for at in range(0, len(x) - n + 1, n)]
    return out


def _resampled(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    return np.asarray(soxr.resample(x, rate_in, rate_out), dtype=np.float32)


def pcm16(x: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    return (np.clip(np.round(x * 32767), -32768, 32767) / 32768).astype(np.float32), rate


def codec(name: str, kbps: int, container: str, codec_rate: int) -> Transform:
    """Through FFmpeg's ``name`` encoder at ``kbps`` and back (PyAV), at ``codec_rate``."""

    def run(x: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
        y = _resampled(x, rate, codec_rate)
        buf = io.BytesIO()
        with av.open(buf, "w", format=container) as out:
            stream = out.add_stream(name, rate=codec_rate, layout="mono")
            stream.bit_rate = kbps * 1000
            frame = av.AudioFrame.from_ndarray(y[np.newaxis, :], format="flt", layout="mono")
            frame.sample_rate = codec_rate
            for packet in stream.encode(frame):
                out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        buf.seek(0)
        pieces = []
        with av.open(buf, "r") as inp:
            for decoded in inp.decode(audio=0):
                pieces.append(decoded.to_ndarray().reshape(-1, decoded.samples).mean(axis=0))
        z = np.concatenate(pieces).astype(np.float32)
        return _resampled(z, codec_rate, rate), rate

    return run


def mulaw8k(x: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    return np.asarray(decode_mulaw(encode_mulaw(_resampled(x, rate, 8000))), dtype=np.float32), 8000


def through(rate_mid: int) -> Transform:
    return lambda x, rate: (_resampled(_resampled(x, rate, rate_mid), rate_mid, rate), rate)


def speed(factor: float) -> Transform:
    """Played ``factor`` times faster (resampled, read at the old rate: pitch moves too)."""
    return lambda x, rate: (_resampled(x, rate, round(rate / factor)), rate)


def noise(snr_db: float) -> Transform:
    def run(x: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
        rng = np.random.default_rng(len(x))
        n = rng.standard_normal(len(x)).astype(np.float32)
        n *= np.sqrt(np.mean(x**2) / np.mean(n**2) / 10 ** (snr_db / 10))
        return (x + n).astype(np.float32), rate

    return run


def under(voice: np.ndarray, snr_db: float) -> Transform:
    """Another speaker's voice under the clip, ``snr_db`` below it (the voice-over mix)."""

    def run(x: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
        v = np.resize(voice, len(x))
        v = v * np.sqrt(np.mean(x**2) / max(np.mean(v**2), 1e-12) / 10 ** (snr_db / 10))
        return (x + v).astype(np.float32), rate

    return run


def cut(seconds: float) -> Transform:
    return lambda x, rate: (x[: int(seconds * rate)], rate)


def transforms() -> list[tuple[str, Transform]]:
    other = speech(FILES[0])[::-1].copy()  # a voice that is not under test, reversed: no clip of it repeats
    return [
        ("none (float)", lambda x, rate: (x, rate)),
        ("PCM16", pcm16),
        ("Opus 32 kbit/s", codec("libopus", 32, "ogg", 48000)),
        ("Opus 24 kbit/s", codec("libopus", 24, "ogg", 48000)),
        ("Opus 16 kbit/s", codec("libopus", 16, "ogg", 48000)),
        ("G.711 mu-law 8 kHz", mulaw8k),
        ("MP3 64 kbit/s", codec("libmp3lame", 64, "mp3", 44100)),
        ("AAC 64 kbit/s", codec("aac", 64, "adts", 44100)),
        ("resampled to 44.1 kHz", lambda x, rate: (_resampled(x, rate, 44100), 44100)),
        ("through 22.05 kHz and back", through(22050)),
        ("speed 0.9x (resampled)", speed(0.9)),
        ("speed 1.1x (resampled)", speed(1.1)),
        ("white noise, 20 dB SNR", noise(20)),
        ("white noise, 10 dB SNR", noise(10)),
        ("another voice under it, 20 dB", under(other, 20)),
        ("another voice under it, 10 dB", under(other, 10)),
        ("cut to its first 2 s", cut(2.0)),
        ("cut to its first 1 s", cut(1.0)),
    ]


def row(marker: Watermarker, name: str, fn: Transform, pairs: list[tuple[np.ndarray, np.ndarray]]) -> str:
    marked_p, clean_p = [], []
    for clean, marked in pairs:
        y, rate = fn(marked, RATE)
        marked_p.append(marker.detect(y, rate).probability)
        y, rate = fn(clean, RATE)
        clean_p.append(marker.detect(y, rate).probability)
    hits = sum(p > MARKED_ABOVE for p in marked_p)
    false = sum(p > MARKED_ABOVE for p in clean_p)
    n = len(pairs)
    found = f"{hits}/{n} ({100 * hits / n:.0f} %), lowest {min(marked_p):.3f}"
    return f"| {name} | {found} | {false}/{n}, highest {max(clean_p):.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip-s", type=float, default=4.0)
    args = parser.parse_args()
    marker = shared()
    pairs = [(x, marker.mark(x, RATE)) for x in clips(args.clip_s)]
    print(f"{len(pairs)} clips of {args.clip_s:g} s ({', '.join(FILES)} at 16 kHz), mark: {marker.name}")
    print("| transformation | marked read as marked | unmarked read as marked (false positives) |")
    print("|---|---|---|")
    for name, fn in transforms():
        print(row(marker, name, fn, pairs), flush=True)


if __name__ == "__main__":
    main()
