"""What marking synthetic speech costs and how well the mark reads: for each shared speech clip,
the process's CPU seconds per second of speech to mark it and to detect the mark (``--repeats``
runs each: min and median), the detector's probability on the clip marked and unmarked, the
detected spans, and the mark's SNR (dB of the speech over the change).

    python -m benchmarks.tools.marking_cost --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import soundfile as sf
import soxr

from tests.support.paths import SHARED_AUDIO
from translate_svc.marking.watermarker import Watermarker, shared

#: (file, rate): the files as the service's vocoder speaks (16 kHz) and one at its own 44.1 kHz
CLIPS = (("jfk.flac", 16000), ("jfk.flac", 44100), ("silero_test.wav", 16000))


def clip(name: str, rate: int) -> np.ndarray:
    audio, own = sf.read(SHARED_AUDIO / name, dtype="float32", always_2d=True)
    x: np.ndarray = audio.mean(axis=1)
    return x if own == rate else np.asarray(soxr.resample(x, own, rate), dtype=np.float32)


def cpu_per_second(run: Callable[[], object], seconds: float, repeats: int) -> tuple[float, float]:
    costs = []
    for _ in range(repeats):
        started = time.process_time()
        run()
        costs.append((time.process_time() - started) / seconds)
    return min(costs), statistics.median(costs)


def measure(marker: Watermarker, name: str, rate: int, repeats: int) -> str:
    x = clip(name, rate)
    seconds = len(x) / rate
    marked = marker.mark(x, rate)
    snr = 10 * np.log10(np.sum(x**2) / np.sum((marked - x) ** 2))
    mark_cost = cpu_per_second(lambda: marker.mark(x, rate), seconds, repeats)
    detect_cost = cpu_per_second(lambda: marker.detect(marked, rate), seconds, repeats)
    found, clean = marker.detect(marked, rate), marker.detect(x, rate)
    return (
        f"| {name} @ {rate // 1000 if rate % 1000 == 0 else rate / 1000} kHz, {seconds:.1f} s "
        f"| {mark_cost[0]:.3f} / {mark_cost[1]:.3f} | {detect_cost[0]:.3f} / {detect_cost[1]:.3f} "
        f"| {found.probability:.3f} {list(found.spans)} | {clean.probability:.3f} {list(clean.spans)} | {snr:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    started = time.process_time()
    marker = shared()
    print(f"load: {time.process_time() - started:.2f} CPU s ({marker.name})")
    print(
        "| clip | mark CPU s / s (min / median) | detect CPU s / s | marked: probability, spans | unmarked | SNR dB |"
    )
    print("|---|---|---|---|---|---|")
    for name, rate in CLIPS:
        print(measure(marker, name, rate, args.repeats), flush=True)


if __name__ == "__main__":
    main()
