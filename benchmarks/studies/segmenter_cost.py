"""The segmenter's own cost per 32 ms window (no VAD model: speech-like random probabilities), this
checkout's against another revision's ``segmenter.py``, interleaved in one run; also with a resumed
call's 1 s lead-in.

    git show <rev>:translate_svc/vad/segmenter.py > /tmp/seg_before.py
    python benchmarks/studies/segmenter_cost.py /tmp/seg_before.py
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from types import ModuleType

import numpy as np

from translate_svc.vad import segmenter as current


def load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("segmenter_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def per_window_us(module: ModuleType, probs: np.ndarray, **kwargs: int) -> float:
    w = module.WINDOW_SAMPLES
    x = np.zeros(probs.size * w, np.float32)
    seg = module.Segmenter(module.SegmenterConfig(), **kwargs)
    t = time.perf_counter()
    for i in range(probs.size):  # window by window, as a live stream feeds it
        seg.push(x[i * w : (i + 1) * w], probs[i : i + 1])
    return (time.perf_counter() - t) / probs.size * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", help="another revision's translate_svc/vad/segmenter.py")
    ap.add_argument("--windows", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    before = load(args.before)
    rng = np.random.default_rng(0)
    probs = np.abs((np.cumsum(rng.normal(0, 0.2, args.windows)) + 1) % 2 - 1).astype(np.float32)
    runs: dict[str, list[float]] = {"before": [], "this checkout": [], "this checkout, 1 s lead-in": []}
    for _ in range(args.repeats):
        runs["before"].append(per_window_us(before, probs))
        runs["this checkout"].append(per_window_us(current, probs))
        runs["this checkout, 1 s lead-in"].append(per_window_us(current, probs, lead_in=16_000))
    for name, values in runs.items():
        print(f"{name}: median {statistics.median(values):.2f} µs per window (min {min(values):.2f})")


if __name__ == "__main__":
    main()
