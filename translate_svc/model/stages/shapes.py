"""Length buckets: pad variable lengths up to a few fixed sizes so tensor shapes repeat.

On CPU, oneDNN builds (JIT-compiles) a kernel for every new convolution shape and caches it.
Speech segments all differ in length, so without buckets every segment pays that build in the
speech encoder's convolutions and in every vocoder layer; on the test checkpoint the builds cost
several times the computation (docs/performance.md, "cold shapes"). Padding up to a geometric
series of lengths bounds the number of distinct shapes, so after warm-up nearly every call hits
oneDNN's cache. Padding is masked (parity tests: padded rows equal rows alone), and the series
step bounds the extra computation. Pure functions; no torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

#: the first bucket and the ratio between consecutive buckets (at most 25 % padding)
SMALLEST = 16
GROWTH = 1.25


def bucket_length(n: int, *, smallest: int = SMALLEST, growth: float = GROWTH) -> int:
    """The smallest member of ``smallest, ceil(smallest * growth), ...`` that is at least ``n``."""
    if n < 0:
        raise ValueError(f"length must be >= 0, got {n}")
    if smallest < 1 or growth <= 1.0:
        raise ValueError("need smallest >= 1 and growth > 1")
    b = smallest
    while b < n:
        b = max(b + 1, math.ceil(b * growth))
    return b


#: the speech encoder's frames step finer (at most 12.5 % padding): it is the compute-bound stage
ENCODER_GROWTH = 1.125


def frame_bucket(n: int) -> int:
    """The encoder's input frames bucket (``ENCODER_GROWTH``)."""
    return bucket_length(n, growth=ENCODER_GROWTH)


def bucket_rows(n: int) -> int:
    """Batch rows padded up to a power of two (1, 2, 4, 8, ...): at most 2x the rows, few sizes."""
    if n < 1:
        raise ValueError(f"rows must be >= 1, got {n}")
    return 1 << (n - 1).bit_length()


def ladder(upto: int, bucket: Callable[[int], int] = bucket_length) -> list[int]:
    """Every bucket ``bucket`` gives for lengths 1..``upto``, in order (what a warm-up runs)."""
    out: list[int] = []
    n = 1
    while n <= max(upto, 1):
        b = bucket(n)
        out.append(b)
        n = b + 1
    return out


#: what a segment may hold per second of its audio at most, for the warm-up's t2u and vocoder
#: ladders (more meets cold shapes, counted): characters, t2u's units, the vocoder's frames. Real
#: speech is ~15 characters and ~50 units a second; these cover the random-weight test checkpoint,
#: whose decodes run to the text cap and whose durations are noise (seen on real speech: 78
#: characters, 160 units and 240 frames a second)
CHARS_PER_S = 100
UNITS_PER_S = 250
FRAMES_PER_S = 400


def frame_seconds(frames: int) -> float:
    """Seconds of 16 kHz audio whose features have exactly ``frames`` stacked frames (the
    processor's 25 ms window, 10 ms hop, two frames stacked: 320 samples a frame plus the window)."""
    return (320 * frames + 100) / 16_000


def encoder_lengths_s(longest_s: float) -> tuple[float, ...]:
    """One audio length per encoder frame bucket up to ``longest_s`` (the warm-up's lengths)."""
    return tuple(frame_seconds(b) for b in ladder(int(longest_s * 50) + 1, frame_bucket))


class ShapeLog:
    """The tensor shapes each stage has met, and those first met after the warm-up.

    A shape first met after ``mark_warm`` is one the warm-up did not cover: on CUDA it costs a
    kernel selection (and, with graphs, a capture), on CPU a oneDNN kernel build, on the request
    that meets it. ``on_cold(stage)`` is told each one (the metric
    ``translate_svc_model_cold_shapes_total{stage}``, which should stay at 0 on a warmed server).
    At most ``most`` shapes are remembered (a stage whose shapes never repeat would otherwise
    grow it without end); past that, new shapes are still counted, never remembered. Model thread
    only, like the stages that call it."""

    def __init__(self, on_cold: Callable[[str], None] | None = None, *, most: int = 65_536) -> None:
        self._seen: set[tuple[str, tuple[int, ...]]] = set()
        self._on_cold = on_cold
        self._most = most
        self.warm = False
        #: shapes first met after ``mark_warm``, per stage
        self.cold: dict[str, int] = {}

    def saw(self, stage: str, shape: tuple[int, ...]) -> bool:
        """Record that ``stage`` ran on ``shape``; True when it is the first time."""
        key = (stage, tuple(int(n) for n in shape))
        if key in self._seen:
            return False
        if len(self._seen) < self._most:
            self._seen.add(key)
        if self.warm:
            self.cold[stage] = self.cold.get(stage, 0) + 1
            if self._on_cold is not None:
                self._on_cold(stage)
        return True

    def mark_warm(self) -> None:
        """The warm-up is over: shapes first met from now on are cold."""
        self.warm = True
