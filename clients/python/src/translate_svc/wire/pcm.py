"""float32 <-> 16-bit PCM: the one conversion, for the service and for its client SDK.

The scale is 32768 both ways. Reading divides by 32768, as libsndfile (soundfile) does and every
decoder here does; writing multiplies by 32768, rounds to nearest (ties to even) and clips to
``[-32768, 32767]``. Writing is then the exact inverse of reading, so PCM16 -> float -> PCM16 gives
back every sample unchanged, and the clip keeps +1.0 (and anything louder) at 32767 instead of
wrapping it round to -32768. The price is that +1.0 is written 1/32768 too quiet, which nothing can
hear. (x 32767 would be symmetric, but moves every sample beyond half scale by one step on a PCM16
round trip.)

Dependency-free (numpy only) on purpose: ``translate_svc.client`` imports this module, so the SDK
and the server share one scale instead of two copies that could drift apart. Keep it a leaf.
Pure and thread-safe.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Full scale of 16-bit PCM: sample ``s`` stands for ``s / PCM16_SCALE``.
PCM16_SCALE = 32768.0


def pcm16_to_float(samples: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Integer PCM16 samples (any integer dtype) -> a fresh float32 array in ``[-1, 1)``."""
    out: np.ndarray[Any, Any] = np.asarray(samples).astype(np.float32)
    out /= np.float32(PCM16_SCALE)  # in place: one float32 array, not two (and exact: a power of two)
    return out


def float_to_pcm16(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Float samples (nominally ``[-1, 1]``; louder is clipped) -> int16, the inverse of :func:`pcm16_to_float`.

    Scaled in ``x``'s own float precision (float32 stays float32) and rounded before the cast, so a
    value read from PCM16 comes back as the same integer. Wire bytes: ``.astype("<i2").tobytes()``.
    """
    scaled: np.ndarray[Any, Any] = np.round(np.asarray(x) * PCM16_SCALE)
    np.clip(scaled, -PCM16_SCALE, PCM16_SCALE - 1, out=scaled)
    return scaled.astype(np.int16)
