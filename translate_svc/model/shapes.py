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
