"""Caller audio (bytes, files, numpy arrays) -> the bytes and format the wire takes. Pure."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from translate_svc.client._convert import SAMPLE_BYTES
from translate_svc.client.types import ClipEncoding, StreamEncoding
from translate_svc.wire.pcm import float_to_pcm16, pcm16_to_float  # numpy only: the server's own scale

#: what ``translate`` accepts
AudioInput = bytes | bytearray | memoryview | str | os.PathLike[str] | np.ndarray[Any, Any]


def _interleaved(x: np.ndarray[Any, Any], channels: int | None) -> tuple[np.ndarray[Any, Any], int]:
    """(frames,) or (frames, channels) -> flat interleaved samples and the channel count."""
    if x.ndim == 1:
        ch = channels or 1
    elif x.ndim == 2:
        ch = x.shape[1]
        if channels is not None and channels != ch:
            raise ValueError(f"the array has {ch} channels (shape {x.shape}) but channels={channels} was given")
    else:
        raise ValueError(f"audio arrays are (frames,) or (frames, channels); got shape {x.shape}")
    flat: np.ndarray[Any, Any] = np.ascontiguousarray(x).reshape(-1)
    return flat, ch


def to_float32(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if x.dtype == np.int16:
        return pcm16_to_float(x)
    if np.issubdtype(x.dtype, np.floating):
        # FLOAT32 on the wire must lie in [-1, 1]; resampled audio overshoots by a hair
        clipped: np.ndarray[Any, Any] = np.clip(x.astype(np.float32, copy=False), -1.0, 1.0)
        return clipped
    raise TypeError(f"audio arrays must be float (in [-1, 1]) or int16, not {x.dtype}")


def to_int16(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if x.dtype == np.int16:
        return x
    if np.issubdtype(x.dtype, np.floating):
        return float_to_pcm16(x)
    raise TypeError(f"audio arrays must be float (in [-1, 1]) or int16, not {x.dtype}")


def chunk_bytes(chunk: bytes | bytearray | memoryview | np.ndarray[Any, Any], encoding: StreamEncoding) -> bytes:
    """One stream chunk as the wire bytes of ``encoding`` (arrays: int16 or float, (frames[, channels]))."""
    if isinstance(chunk, bytes | bytearray | memoryview):
        return bytes(chunk)
    if not isinstance(chunk, np.ndarray):
        raise TypeError(f"send bytes or a numpy array, not {type(chunk).__name__}")
    flat = np.ascontiguousarray(chunk).reshape(-1)
    if encoding == "linear16":
        return to_int16(flat).astype("<i2", copy=False).tobytes()
    if encoding == "float32":
        return to_float32(flat).astype("<f4", copy=False).tobytes()
    if encoding in ("mulaw", "alaw"):
        if flat.dtype != np.uint8:
            raise TypeError(f"{encoding} chunks are G.711 bytes: send bytes or a uint8 array")
        return flat.tobytes()
    raise TypeError("opus chunks are packets: send each packet as bytes")


def clip_input(
    audio: AudioInput,
    *,
    encoding: ClipEncoding | None,
    sample_rate: int | None,
    channels: int | None,
) -> tuple[bytes, ClipEncoding, int, int]:
    """``translate``'s input -> (content, encoding, sample_rate_hz, channels)."""
    if isinstance(audio, np.ndarray):
        if sample_rate is None:
            raise ValueError("a numpy array needs its sample_rate")
        flat, ch = _interleaved(audio, channels)
        if encoding in (None, "float32") and (encoding == "float32" or flat.dtype != np.int16):
            return to_float32(flat).astype("<f4", copy=False).tobytes(), "float32", sample_rate, ch
        if encoding in (None, "linear16"):
            return to_int16(flat).astype("<i2", copy=False).tobytes(), "linear16", sample_rate, ch
        raise ValueError(f"a numpy array is sent as linear16 or float32, not {encoding}")
    if isinstance(audio, str | os.PathLike):
        content = Path(audio).read_bytes()
    elif isinstance(audio, bytes | bytearray | memoryview):
        content = bytes(audio)
    else:
        raise TypeError(f"translate takes file bytes, a path or a numpy array, not {type(audio).__name__}")
    enc: ClipEncoding = encoding or "container"
    if enc == "container":
        return content, enc, 0, 0
    if sample_rate is None:
        raise ValueError(f"raw {enc} audio needs its sample_rate")
    ch = channels or 1
    if len(content) % (SAMPLE_BYTES[enc] * ch):
        raise ValueError(f"{len(content)} bytes are not a whole number of {enc} frames of {ch} channel(s)")
    return content, enc, sample_rate, ch
