"""Resample float32 mono audio to the model rate (16 kHz) with soxr.

Why one code path: whole-clip ``Translate`` and live ``StreamingTranslate`` must hand the VAD and
the model the same 16 kHz samples for the same input, or the same file would segment (and
translate) differently depending on how it was sent. soxr's streaming resampler is exact with
respect to chunking (its output does not depend on where the chunk edges fall), so
:func:`resample` is simply a :class:`StreamResampler` fed the whole clip in one call with
``last=True``: offline equals streaming by construction, not by test luck.
"""

from __future__ import annotations

import logging

import numpy as np
import soxr

from translate_svc.types import MODEL_SAMPLE_RATE

logger = logging.getLogger(__name__)

#: soxr quality preset: 'HQ' (20-bit precision, passband to 91% of Nyquist) is transparent for
#: speech and several times cheaper than 'VHQ'.
QUALITY = "HQ"


class StreamResampler:
    """Resamples one stream chunk by chunk, carrying soxr's filter state across chunks.

    Stateless per-chunk resampling would restart the filter at each chunk edge (clicks, and output
    that depends on the chunking); this keeps one ``soxr.ResampleStream`` per stream instead.
    Pass ``last=True`` exactly once, with the final chunk (it may be empty), to flush the filter's
    tail; the object cannot be used afterwards.

    Not thread-safe: one instance per stream, used by one caller at a time.
    """

    def __init__(self, in_rate: int, out_rate: int = MODEL_SAMPLE_RATE) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got in_rate={in_rate}, out_rate={out_rate}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream: soxr.ResampleStream | None = (
            None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=QUALITY)
        )
        self._finished = False

    @property
    def finished(self) -> bool:
        """True once a chunk was processed with ``last=True``."""
        return self._finished

    def process(self, chunk: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample the next 1-D chunk; returns the float32 output available so far (may be empty)."""
        if self._finished:
            raise RuntimeError("StreamResampler already received its last chunk; create a new one per stream")
        x = np.ascontiguousarray(chunk, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected 1-D mono samples, got shape {x.shape}")
        self._finished = last
        if self._stream is None:
            return x
        # as a one-column 2-D array: soxr's 1-D path adds a numpy ``squeeze`` call per chunk (a
        # live stream's 20 ms message is one chunk); the samples are the same
        out: np.ndarray = self._stream.resample_chunk(x.reshape(-1, 1), last=last)
        return out.reshape(-1)


def resample(x: np.ndarray, in_rate: int, out_rate: int = MODEL_SAMPLE_RATE) -> np.ndarray:
    """Resample a whole clip; identical to streaming the same clip through :class:`StreamResampler`.

    Thread-safe (no shared state). Returns float32; the input itself when the rates are equal
    (as float32, contiguous).
    """
    return StreamResampler(in_rate, out_rate).process(x, last=True)
