"""Model time per segment: plain, with word timings, and with a 100-entry glossary (issue 45), in
one run on one runner.

Usage: ``python benchmarks/term_cost.py [MODEL_DIR] [AUDIO] [REPS]`` (defaults: the test
checkpoint, ``../shared/audio/silero_test.wav``, 9): the audio cut into 3 s segments, each translated
into Spanish with speech and the English transcript, one segment per ``run`` call. Each
repetition runs every configuration over every segment, in turn (so drift on a shared CPU hits
them alike); prints each repetition's mean ms per segment and, last, each configuration's median
(and fastest) over the repetitions.

The glossary: 100 entries into Spanish, of which the 5 longest words the checkpoint transcribes
in the segments (so they act: a first-token bias, then forcing) and 95 phrases no segment says
(they cost a look-up in the transcript each). An entry makes the server decode the transcript
row before the translation rows (two decoder passes where one did both).
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np
import soundfile as sf

from translate_svc.audio.resample import resample
from translate_svc.engine.runner import ModelInput
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.seamless import SeamlessStages
from translate_svc.types import Term

ENTRIES = 100
SAID = 5


def glossary(runner: SeamlessRunner, spans: list[np.ndarray]) -> tuple[Term, ...]:
    said: set[str] = set()
    for span in spans:
        (out,) = runner.run([ModelInput(span, ("spa",), "eng", speech=False)])
        said.update(w for w in (out.transcript or "").split() if len(w) >= 2)
    picked = sorted(said, key=len, reverse=True)[:SAID]
    unsaid = [f"Product{k} Cloud" for k in range(ENTRIES - len(picked))]
    return tuple(
        Term(p, glossary=True, translation=f"nube acme {k}", target_language="spa")
        for k, p in enumerate(picked + unsaid)
    )


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "model_cache/test-model"
    path = sys.argv[2] if len(sys.argv) > 2 else "../shared/audio/silero_test.wav"
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 9
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    x = audio.mean(1) if rate == 16000 else resample(audio.mean(1), rate, 16000)
    runner = SeamlessRunner(SeamlessStages(model))
    spans = [x[i * 16000 : (i + 3) * 16000] for i in range(0, len(x) // 16000 - 2, 3)]
    terms = glossary(runner, spans)
    configs = {
        "plain": {},
        "word timings": {"words": True},
        f"{ENTRIES}-entry glossary": {"terms": terms},
    }

    def run(kw: dict[str, object]) -> float:
        times = []
        for span in spans:
            item = ModelInput(span, ("spa",), "eng", **kw)  # type: ignore[arg-type]
            t0 = time.perf_counter()
            runner.run([item])
            times.append((time.perf_counter() - t0) * 1000)
        return float(np.mean(times))

    for kw in configs.values():  # warm every path
        run(kw)
    outs = runner.run([ModelInput(span, ("spa",), "eng", speech=False, terms=terms) for span in spans])
    acting = sum("nube acme" in out.texts["spa"] for out in outs)
    sys.stdout.write(f"translations that say a glossary translation: {acting} of {len(spans)}\n")
    got: dict[str, list[float]] = {name: [] for name in configs}
    for rep in range(reps):
        for name, kw in configs.items():
            got[name].append(run(kw))
        sys.stdout.write(f"rep {rep}: " + ", ".join(f"{n} {v[-1]:.1f}" for n, v in got.items()) + " ms/segment\n")
    sys.stdout.write(
        f"{len(spans)} segments of 3 s, {reps} repetitions; {SAID} of {ENTRIES} entries said. Median ms per segment: "
        + ", ".join(f"{n} {statistics.median(v):.1f}" for n, v in got.items())
        + "; fastest repetition: "
        + ", ".join(f"{n} {min(v):.1f}" for n, v in got.items())
        + "\n"
    )


if __name__ == "__main__":
    main()
