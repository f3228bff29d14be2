"""Decode client audio (raw PCM16/F32/G.711 or a WAV/FLAC/OGG/MP3 container) to float32 mono.

Everything downstream (resampler, VAD, model) works on one representation: a 1-D float32 array in
``[-1, 1]`` at a known sample rate. This module is the single place that turns bytes into it, and
the single place that tells a client what is wrong with the bytes it sent (``InvalidInput`` with a
message that says what to fix).

All functions are pure and thread-safe: the G.711 tables are built once at import and only read.
"""

from __future__ import annotations

import io
import logging

import numpy as np
import soundfile as sf

from translate_svc.errors import InvalidInput
from translate_svc.types import AudioEncoding, AudioFormat

logger = logging.getLogger(__name__)

MIN_SAMPLE_RATE_HZ = 8_000
MAX_SAMPLE_RATE_HZ = 48_000

#: Bytes per sample of each raw encoding (a frame is this times the channel count).
SAMPLE_WIDTH: dict[AudioEncoding, int] = {
    AudioEncoding.LINEAR16: 2,
    AudioEncoding.FLOAT32: 4,
    AudioEncoding.MULAW: 1,
    AudioEncoding.ALAW: 1,
}

_CONTAINER_HINT = "send WAV, FLAC, OGG or MP3, or a raw encoding with its sample rate"


def _mulaw_table() -> np.ndarray:
    """ITU-T G.711 µ-law expansion of all 256 codes to 16-bit linear values, scaled to [-1, 1].

    Same arithmetic as the reference ``ulaw2linear`` (Sun/CCITT g711.c): codes are stored
    complemented, a 3-bit segment and a 4-bit mantissa, bias 0x84.
    """
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    linear = np.where(u & 0x80, 0x84 - t, t - 0x84)
    return (linear / 32768.0).astype(np.float32)


def _alaw_table() -> np.ndarray:
    """ITU-T G.711 A-law expansion of all 256 codes to 16-bit linear values, scaled to [-1, 1].

    Same arithmetic as the reference ``alaw2linear``: codes are stored XOR 0x55, a 3-bit segment
    and a 4-bit mantissa; segment 0 is linear.
    """
    a = np.arange(256, dtype=np.int32) ^ 0x55
    mantissa = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, mantissa + 8, (mantissa + 0x108) << np.maximum(seg - 1, 0))
    linear = np.where(a & 0x80, t, -t)
    return (linear / 32768.0).astype(np.float32)


#: Lookup tables indexed by the encoded byte (no ``audioop``: it is gone in Python 3.13).
MULAW_TABLE: np.ndarray = _mulaw_table()
ALAW_TABLE: np.ndarray = _alaw_table()


def check_raw_format(fmt: AudioFormat, *, allow_container: bool = True) -> None:
    """Raise ``InvalidInput`` unless ``fmt`` describes audio this service can decode.

    Streams pass ``allow_container=False``: a container cannot be decoded chunk by chunk, so a
    stream must use a raw encoding with an explicit sample rate. For CONTAINER the rate and the
    channel count come from the bytes, so ``fmt.sample_rate_hz`` and ``fmt.channels`` are not checked.
    """
    try:
        encoding = AudioEncoding(fmt.encoding)
    except ValueError:
        allowed = ", ".join(e.value for e in AudioEncoding)
        raise InvalidInput(f"unknown audio encoding {fmt.encoding!r}: use one of {allowed}") from None
    if encoding is AudioEncoding.CONTAINER:
        if not allow_container:
            raise InvalidInput(
                "audio encoding CONTAINER is not accepted here: streams take raw encodings only "
                "(LINEAR16, FLOAT32, MULAW or ALAW, with sample_rate_hz and channels set)"
            )
        return
    if not MIN_SAMPLE_RATE_HZ <= fmt.sample_rate_hz <= MAX_SAMPLE_RATE_HZ:
        raise InvalidInput(
            f"sample rate {fmt.sample_rate_hz} Hz is not supported: set sample_rate_hz between "
            f"{MIN_SAMPLE_RATE_HZ} and {MAX_SAMPLE_RATE_HZ} Hz for {encoding.value} audio"
        )
    if fmt.channels not in (1, 2):
        raise InvalidInput(f"{fmt.channels} channels are not supported: send mono (1) or interleaved stereo (2) audio")


def decode_raw(data: bytes, fmt: AudioFormat, *, allow_empty: bool = False) -> np.ndarray:
    """Decode little-endian interleaved raw audio to float32 mono in ``[-1, 1]``.

    Channels are averaged. FLOAT32 input beyond ``[-1, 1]`` is clipped (as a DAC would) so every
    consumer can rely on the range; NaN or Inf is rejected because it would poison the VAD state
    and the model. ``allow_empty`` lets a stream accept an empty chunk as a no-op.
    """
    check_raw_format(fmt, allow_container=False)
    encoding = AudioEncoding(fmt.encoding)
    if not data:
        if allow_empty:
            return np.zeros(0, dtype=np.float32)
        raise InvalidInput(f"audio is empty: send at least one frame of {encoding.value} audio")
    width = SAMPLE_WIDTH[encoding]
    frame_bytes = width * fmt.channels
    if len(data) % frame_bytes:
        raise InvalidInput(
            f"audio of {len(data)} bytes is not a whole number of frames: {encoding.value} with "
            f"{fmt.channels} channel(s) takes {frame_bytes} bytes per frame ({width} bytes per sample "
            f"x {fmt.channels} channels); send only complete frames"
        )
    if encoding is AudioEncoding.LINEAR16:
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(32768.0)
    elif encoding is AudioEncoding.FLOAT32:
        samples = np.frombuffer(data, dtype="<f4").astype(np.float32)
        bad = np.flatnonzero(~np.isfinite(samples))
        if bad.size:
            index = int(bad[0])
            raise InvalidInput(
                f"FLOAT32 audio holds a non-finite value ({samples[index]}) at sample index {index} "
                f"(frame {index // fmt.channels}): send finite values in [-1, 1]"
            )
        np.clip(samples, -1.0, 1.0, out=samples)
    elif encoding is AudioEncoding.MULAW:
        samples = MULAW_TABLE[np.frombuffer(data, dtype=np.uint8)]
    else:  # ALAW (check_raw_format has excluded everything else)
        samples = ALAW_TABLE[np.frombuffer(data, dtype=np.uint8)]
    return _downmix(samples.reshape(-1, fmt.channels))


def decode_container(data: bytes) -> tuple[np.ndarray, int]:
    """Decode a WAV/FLAC/OGG/MP3 file held in memory with soundfile; returns (mono float32, rate)."""
    try:
        frames, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc)
        raise InvalidInput(f"could not decode the audio container: {reason}; {_CONTAINER_HINT}") from None
    if frames.shape[0] == 0:
        raise InvalidInput(f"audio container holds no audio frames; {_CONTAINER_HINT} with at least one frame")
    if not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
        raise InvalidInput(
            f"audio container has sample rate {rate} Hz: resample it to between "
            f"{MIN_SAMPLE_RATE_HZ} and {MAX_SAMPLE_RATE_HZ} Hz"
        )
    bad = np.flatnonzero(~np.isfinite(frames).all(axis=1))
    if bad.size:
        frame = int(bad[0])
        value = frames[frame][~np.isfinite(frames[frame])][0]
        raise InvalidInput(
            f"audio container holds a non-finite value ({value}) at frame {frame}: send finite samples in [-1, 1]"
        )
    np.clip(frames, -1.0, 1.0, out=frames)
    return _downmix(frames), int(rate)


def decode_audio(data: bytes, fmt: AudioFormat) -> tuple[np.ndarray, int]:
    """Decode a whole clip in any accepted format; returns (mono float32 in [-1, 1], sample rate)."""
    check_raw_format(fmt, allow_container=True)
    if not data:
        raise InvalidInput("audio is empty: send the audio bytes (a container file or raw samples)")
    if AudioEncoding(fmt.encoding) is AudioEncoding.CONTAINER:
        return decode_container(data)
    return decode_raw(data, fmt), fmt.sample_rate_hz


def _downmix(frames: np.ndarray) -> np.ndarray:
    """(frames, channels) -> contiguous float32 (frames,), averaging the channels."""
    if frames.shape[1] == 1:
        return np.ascontiguousarray(frames[:, 0], dtype=np.float32)
    return frames.mean(axis=1, dtype=np.float32)
