"""Model time per segment with and without word timings (issue 45), one run on one runner.

Usage: ``python benchmarks/word_timing_cost.py [MODEL_DIR] [AUDIO]`` (defaults: the test
checkpoint and ``../shared/audio/jfk.flac``): 3 s segments, Spanish with speech, the transcript
row, repeated three times; prints each repetition's mean model time per segment.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import soundfile as sf

from translate_svc.audio.resample import resample
from translate_svc.engine.runner import ModelInput
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.seamless import SeamlessStages


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "model_cache/test-model"
    path = sys.argv[2] if len(sys.argv) > 2 else "../shared/audio/jfk.flac"
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    x = audio.mean(1) if rate == 16000 else resample(audio.mean(1), rate, 16000)
    runner = SeamlessRunner(SeamlessStages(model))
    spans = [x[i * 16000 : (i + 3) * 16000] for i in range(0, len(x) // 16000 - 2, 3)]

    def run(words: bool) -> float:
        times = []
        for span in spans:
            t0 = time.perf_counter()
            runner.run([ModelInput(span, ("spa",), "eng", words=words)])
            times.append((time.perf_counter() - t0) * 1000)
        return float(np.mean(times))

    run(True), run(False)  # warm both paths
    for rep in range(3):
        off, on = run(False), run(True)
        sys.stdout.write(f"rep {rep}: ms per segment without word timings {off:.1f}, with {on:.1f}\n")


if __name__ == "__main__":
    main()
