"""Audio files decoded on the client, with the libraries the server uses: what the client commands
read (``inputs.py``), the bench's clips (``load/clips.py``) and the tests' and benchmarks' speech.

soundfile for WAV/FLAC/OGG/MP3, PyAV for WebM (the ``opus`` extra), soxr to resample (the ``cli``
extra); each of those two is imported only when a file needs it. Pure and thread-safe.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from translate_svc.wire.pcm import float_to_pcm16
from translate_svc.wire.rates import MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ

#: WebM/Matroska files start with EBML's magic number (libsndfile cannot read them; PyAV can)
EBML_MAGIC = b"\x1a\x45\xdf\xa3"


def decode_audio(data: bytes, *, rate: int | None = None) -> tuple[np.ndarray, int]:
    """A WAV/FLAC/OGG/MP3/WebM file's bytes -> (mono float32 in [-1, 1], its rate), decoded on the
    client with the libraries the server uses (soundfile; PyAV for WebM, the ``opus`` extra),
    channels averaged as the server does. Resampled to ``rate`` if given, else only when a stream
    could not take the file's own rate (outside 8..48 kHz: 16 kHz), with soxr (the ``cli`` extra) as
    the server does. Raises ``ValueError`` saying why the bytes are no audio (or what to install)."""
    samples, got = _decode_webm(data) if data[:4] == EBML_MAGIC else _decode_soundfile(data)
    want = rate if rate is not None else (got if MIN_SAMPLE_RATE_HZ <= got <= MAX_SAMPLE_RATE_HZ else 16000)
    return (samples, got) if want == got else (_resample(samples, got, want), want)


def _decode_soundfile(data: bytes) -> tuple[np.ndarray, int]:
    try:
        frames, got = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, TypeError) as exc:
        reason = getattr(exc, "error_string", None) or "the data is not an audio file soundfile can read"
        raise ValueError(f"could not decode the audio: {str(reason)[:120]} (WAV, FLAC, OGG, MP3 or WebM)") from None
    return _mono(frames), int(got)


def _decode_webm(data: bytes) -> tuple[np.ndarray, int]:
    try:
        import av  # the `opus` extra; the other formats never load FFmpeg
    except ImportError:
        raise ValueError("WebM audio needs PyAV: pip install 'translate-svc-client[opus]'") from None
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = next(iter(container.streams.audio), None)
            if stream is None:
                raise ValueError("the WebM file has no audio stream")
            planar = av.AudioResampler(format="fltp")  # float, one plane per channel; rate and layout kept
            blocks = [
                out.to_ndarray().T
                for frame in [*container.decode(stream), None]
                for out in planar.resample(frame)  # None: flush
            ]
            rate = int(stream.rate)
    except av.FFmpegError as exc:
        raise ValueError(f"could not decode the WebM audio: {str(exc)[:120]}") from None
    if not blocks:
        return np.zeros(0, np.float32), rate
    return _mono(np.concatenate(blocks)), rate


def _mono(frames: np.ndarray) -> np.ndarray:
    """(frames, channels) float32 -> mono, checked finite and clipped to [-1, 1] (as the server does)."""
    if not np.isfinite(frames).all():
        raise ValueError("the audio holds a non-finite value: send finite samples in [-1, 1]")
    np.clip(frames, -1.0, 1.0, out=frames)
    if frames.shape[1] == 1:
        return np.ascontiguousarray(frames[:, 0])
    mono: np.ndarray = frames.mean(axis=1, dtype=np.float32)
    return mono


def _resample(samples: np.ndarray, got: int, want: int) -> np.ndarray:
    """The server's resampling (``audio/resample.py``: one soxr stream, quality HQ, fed once)."""
    try:
        import soxr  # the `cli` extra
    except ImportError:
        raise ValueError(f"resampling {got} Hz audio to {want} Hz needs soxr: pip install soxr") from None
    stream = soxr.ResampleStream(got, want, 1, dtype="float32", quality="HQ")
    return np.asarray(stream.resample_chunk(np.ascontiguousarray(samples, np.float32), last=True), np.float32)


def load_pcm16k(path: Path) -> np.ndarray:
    """A file as 16 kHz mono int16 (what ``stream`` sends as LINEAR16)."""
    mono, _ = decode_audio(path.read_bytes(), rate=16000)
    return float_to_pcm16(mono).astype("<i2")  # the exact inverse of decoding: PCM16 files come back sample-exact
