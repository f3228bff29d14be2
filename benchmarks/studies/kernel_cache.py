"""The CPU kernel caches against the warm-up's buckets (issue 70): the vocoder at a few frame
buckets, first after every frame bucket ran once (as the warm-up ``buckets`` leaves it), then twice
more, in a process of its own per cache size.

Run from the repository root::

    python -m benchmarks.studies.kernel_cache                  # default caches, then 16384 entries

oneDNN's primitive cache and ideep's (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``, ``LRU_CACHE_CAPACITY``)
are read once, at the first convolution; ``SeamlessStages`` sizes both (model/stages/device.py) unless the
environment does, so the "default" child sets them to oneDNN's default, 1024.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

CHILD = "--child"


def child() -> None:
    import torch

    from tests.support.paths import TEST_MODEL
    from translate_svc.model.stages.seamless import SeamlessStages
    from translate_svc.model.stages.shapes import ladder

    stages = SeamlessStages(TEST_MODEL, device="cpu", dtype="float32")
    voc = stages._vocoder
    units, frames = ladder(3000), ladder(5000)

    def ms(u: int, f: int) -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            voc.warm(1, u, f)
        return (time.perf_counter() - t0) * 1000.0

    for k, f in enumerate(frames):  # every frame bucket once, as the warm-up runs them
        ms(units[min(k, len(units) - 1)], f)
    for f in (frames[3], frames[6], frames[9], frames[12]):
        print(f"  {f} frames: " + " / ".join(f"{ms(16, f):.1f}" for _ in range(3)) + " ms")


def main() -> None:
    if sys.argv[1:] == [CHILD]:
        child()
        return
    for label, entries in (("default (1024)", "1024"), ("16384", "16384")):
        print(f"kernel caches {label}: a vocoder call after the warm-up, first / second / third")
        env = dict(os.environ, ONEDNN_PRIMITIVE_CACHE_CAPACITY=entries, LRU_CACHE_CAPACITY=entries)
        subprocess.run([sys.executable, "-m", "benchmarks.studies.kernel_cache", CHILD], env=env, check=True)


if __name__ == "__main__":
    main()
