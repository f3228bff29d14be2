"""G.711 µ-law and A-law *encoding*, for speech played into a phone call (the phone door).

Decoding is ``codec.py``'s (256-entry tables); encoding is one 65,536-entry table per law, indexed
by the 16-bit sample, built at import from G.711's reference arithmetic (the Sun/CCITT ``g711.c``
``linear2ulaw``/``linear2alaw``): no ``audioop`` (gone in Python 3.13), no per-sample Python.
Every code's decoded value encodes back to that code (µ-law's negative zero, 0x7F, comes back as
positive zero, 0xFF). Pure and thread-safe.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from translate_svc.audio.codec import ALAW_TABLE, MULAW_TABLE
from translate_svc.wire.pcm import float_to_pcm16

#: µ-law: the bias added before the segment search, and the largest magnitude encoded
_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635
#: A-law: the top of each segment of the 13-bit magnitude
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)

#: what each law's silence is on the wire (a frame of these plays as nothing)
MULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5


def _every_sample() -> np.ndarray:
    """All 65,536 int16 values, in the order of their uint16 bit patterns (the table's index)."""
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)


def _ulaw_encode_table() -> np.ndarray:
    pcm = _every_sample()
    sign = np.where(pcm < 0, 0x80, 0)
    mag = np.minimum(np.abs(pcm), _ULAW_CLIP) + _ULAW_BIAS
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7  # 0..7: mag is 0x84..0x7FFF
    mantissa = (mag >> (exponent + 3)) & 0x0F
    table: np.ndarray = (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)
    return table


def _alaw_encode_table() -> np.ndarray:
    pcm = _every_sample() >> 3  # 13 bits
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_ALAW_SEG_END, mag)  # first segment whose top is >= mag
    low = np.where(seg < 2, (mag >> 1) & 0x0F, (mag >> np.maximum(seg, 1)) & 0x0F)
    code = np.where(seg >= 8, 0x7F, (seg << 4) | low)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


ULAW_ENCODE: np.ndarray = _ulaw_encode_table()
ALAW_ENCODE: np.ndarray = _alaw_encode_table()


def encode_mulaw(samples: np.ndarray[Any, Any]) -> bytes:
    """Float samples (nominally [-1, 1]) -> µ-law bytes, one per sample."""
    return bytes(ULAW_ENCODE[float_to_pcm16(samples).view(np.uint16)])


def encode_alaw(samples: np.ndarray[Any, Any]) -> bytes:
    """Float samples (nominally [-1, 1]) -> A-law bytes, one per sample."""
    return bytes(ALAW_ENCODE[float_to_pcm16(samples).view(np.uint16)])


def decode_mulaw(data: bytes) -> np.ndarray[Any, Any]:
    """µ-law bytes -> float32 samples (codec.py's table)."""
    return np.asarray(MULAW_TABLE[np.frombuffer(data, dtype=np.uint8)], dtype=np.float32)


def decode_alaw(data: bytes) -> np.ndarray[Any, Any]:
    """A-law bytes -> float32 samples (codec.py's table)."""
    return np.asarray(ALAW_TABLE[np.frombuffer(data, dtype=np.uint8)], dtype=np.float32)
