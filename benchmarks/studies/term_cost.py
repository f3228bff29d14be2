"""Model time per segment: plain, with word timings, and with a 100-entry glossary (issue 45), in
one run on one runner; and (``steps``) the term processors' own time per decode step (issue 57).

Usage: ``python benchmarks/studies/term_cost.py [MODEL_DIR] [AUDIO] [REPS]`` (defaults: the test
checkpoint, ``../shared/audio/silero_test.wav``, 9): the audio cut into 3 s segments, each translated
into Spanish with speech and the English transcript, one segment per ``run`` call. Each
repetition runs every configuration over every segment, in turn (so drift on a shared CPU hits
them alike); prints each repetition's mean ms per segment and, last, each configuration's median
(and fastest) over the repetitions.

The glossary: 100 entries into Spanish, of which the 5 longest words the checkpoint transcribes
in the segments (so they act: a first-token bias, then forcing) and 95 phrases no segment says
(they cost a look-up in the transcript each). An entry makes the server decode the transcript
row before the translation rows (two decoder passes where one did both).

``python benchmarks/studies/term_cost.py steps [ROWS] [TOKENS] [REPS]`` (defaults 16, 256, 5): the two
term processors (``RowSequenceBias``, ``GlossaryForce``) alone, no model, as ``generate`` calls
them: rows that grow by one token a step from a 2-token prompt to TOKENS, scores the size of the
real model's vocabulary (256,102), 128 glossary entries and 32 KEEP terms said once in every row's
source and never written (so every one stays due: each step looks at each of them). Prints the
mean ms per step over the last 32 steps (rows near TOKENS long) and over the whole decode, the
median of REPS decodes; torch on cores - 1 threads, as the server's model thread. Written against
the processors' constructors before and after issue 57 (a ``seams`` argument), so one script
measures both.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from typing import Any

import numpy as np
import soundfile as sf
import torch

from translate_svc.audio.resample import resample
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model_api.requests import ModelInput
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


VOCAB = 256_102  # SeamlessM4T v2's text vocabulary


class SyntheticTokenizer:
    """A tokenizer of VOCAB pieces for ``TermTokens``: a word is 1-3 pieces from its hash (ids
    300-999: never written by the rows below), the first a word start; the rest of the
    vocabulary alternates word starts and pieces that go on a word."""

    def __len__(self) -> int:
        return VOCAB

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        ids = []
        for word in text.split():
            h = sum(map(ord, word)) * 7919
            ids += [300 + h % 350] + [650 + (h >> k) % 350 for k in range(h % 3)]
        return {"input_ids": ids}

    def convert_ids_to_tokens(self, ids: int | list[int]) -> str | list[str]:
        piece = lambda t: f"\u2581w{t}" if t < 650 or t % 2 else f"p{t}"  # noqa: E731
        return piece(ids) if isinstance(ids, int) else [piece(t) for t in ids]


def step_cost(rows: int, tokens: int, reps: int) -> None:
    from translate_svc.model.stages import terms as t

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))  # as the server's model thread on CPU
    rng = random.Random(57)
    tok = t.TermTokens(SyntheticTokenizer())
    biases = [tok.bias([(f"Name{k} Person{k}", t.KEEP_WEIGHT, 1) for k in range(32)])] * rows
    glossaries = [tok.glossary([(f"nube producto {k} acme", 1) for k in range(128)])] * rows

    def processors() -> list[Any]:
        try:
            return [t.RowSequenceBias(biases, tok), t.GlossaryForce(glossaries, tok)]  # type: ignore[call-arg]
        except TypeError:  # before issue 57: no seams
            return [t.RowSequenceBias(biases), t.GlossaryForce(glossaries)]  # type: ignore[call-arg]

    means: dict[str, list[float]] = {"last 32 steps": [], "whole decode": []}
    for _ in range(reps):
        procs = processors()
        ids = torch.tensor([[3, 256_050]] * rows)  # a start token and a language token
        per_step = []
        for _step in range(tokens - 2):
            scores = torch.zeros(rows, VOCAB)
            t0 = time.perf_counter()
            for proc in procs:
                scores = proc(ids, scores)
            per_step.append((time.perf_counter() - t0) * 1000)
            ids = torch.cat([ids, torch.tensor([[rng.randrange(1000, 256_000)] for _ in range(rows)])], dim=1)
        means["last 32 steps"].append(float(np.mean(per_step[-32:])))
        means["whole decode"].append(float(np.mean(per_step)))
    sys.stdout.write(
        f"{rows} rows to {tokens} tokens, 128 glossary entries and 32 KEEP terms due, {reps} decodes. "
        + "; ".join(
            f"{k}: median {statistics.median(v):.2f} ms/step (each decode: {', '.join(f'{x:.2f}' for x in v)})"
            for k, v in means.items()
        )
        + "\n"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "steps":
        args = [int(a) for a in sys.argv[2:]]
        step_cost(*(args + [16, 256, 5][len(args) :]))
        return
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
