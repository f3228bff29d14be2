"""The silence rule against the semantic end of turn at each eagerness, on real speech (issue 102,
point 3): segments cut mid-sentence, and how long after the speech's end a sentence's segment closes.

Offline, no server, no translation model: silero VAD, the ``Segmenter`` and the end-of-turn model
(Smart Turn v3.2, its real weights from the ``pipecat-ai`` wheel) as the server runs them. The
speech is jfk.flac ("And so, my fellow Americans, ask not what your country can do for you, ask
what you can do for your country": two sentences in four phrases), as it reaches the VAD on three
paths (16 kHz; 24 kHz PCM16, the OpenAI door's; 8 kHz µ-law, a phone call's), and with a silence
spliced into each phrase at its deepest dip in speech probability (a word boundary: a speaker who
hesitates mid-phrase), ``--splice-ms`` long. A segment end more than 300 ms from a sentence's end
is a cut mid-sentence. A sentence's close latency is the audio fed past its speech's end when its
segment is emitted, plus the model's measured time for the decision that closed it (a TURN close
waits for it). The model's cost per decision is measured here too (wall, one turn a call).
With an eager end of turn (``--eager F``: each rule's ``eager_threshold`` at F times its own
threshold; 0: none), the eager ends, those speech resumed after (their speculative work dropped)
and those a close confirmed (their work kept), and how long before the close a kept one started.

With ``--espeak``, also sentences built for it (espeak-ng's voices, ``apt-get install
espeak-ng``): each of ``ESPEAK_SENTENCES`` said with a ``--splice-ms`` break (SSML) inside it, where
a speaker would pause to think, 1.5 s between sentences.

    PYTHONPATH=$PWD python -m benchmarks.studies.end_of_turn [--splice-ms 600] [--eager 0.5] [--espeak]
        [--json out/turns.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from tests.support.paths import SHARED_AUDIO
from tests.support.speech import speech_pcm16
from translate_svc.vad.segmenter import (
    EAGERNESS,
    WINDOW_SAMPLES,
    EagerEnd,
    EndReason,
    Segmenter,
    SegmenterConfig,
    SegmentReady,
    SpeechResumed,
    TurnQuestion,
)
from translate_svc.vad.silero import SileroVad
from translate_svc.vad.turn_end import SmartTurn

RATE = 16000
#: where jfk.flac's two sentences end (s; silero's speech ends: tests/vad/test_turn_end.py)
SENTENCE_ENDS_S = (2.24, 10.59)
#: jfk.flac's phrases (s): a silence is spliced inside each
PHRASES_S = ((0.3, 2.3), (3.3, 4.4), (5.4, 7.7), (8.2, 10.6))
NEAR_S = 0.3
RULES = ("", "low", "medium", "high")
#: sentences with a pause inside each (SSML's break goes at the "|"), as a speaker would pause to
#: think before the rest: the semantic rule should keep each whole
ESPEAK_SENTENCES = (
    "Could you tell me | where the nearest train station is?",
    "I was thinking that we could | meet again next week.",
    "The report shows that our sales | went up by ten percent this year.",
    "If it rains tomorrow, | we will stay at home and read.",
    "My brother, who lives in Paris, | is coming to visit us in May.",
    "We need to buy some bread, | some milk, and a few apples.",
)
ESPEAK_VOICES = ("en-us", "en-gb+f4", "en-us+m3")


def paths(x16: np.ndarray) -> dict[str, np.ndarray]:
    """The speech as the VAD gets it on each door's path (16 kHz float32)."""
    pcm24 = speech_pcm16(SHARED_AUDIO / "jfk.flac", 60, 24000)
    pcm8 = speech_pcm16(SHARED_AUDIO / "jfk.flac", 60, 8000)
    buf = io.BytesIO()
    sf.write(buf, pcm8, 8000, format="RAW", subtype="ULAW")
    ulaw, _ = sf.read(io.BytesIO(buf.getvalue()), samplerate=8000, channels=1, format="RAW", subtype="ULAW")
    return {
        "16k": x16,
        "24k-pcm": soxr.resample(pcm24.astype(np.float32) / 32768, 24000, RATE, quality="HQ").astype(np.float32),
        "8k-ulaw": soxr.resample(np.asarray(ulaw, np.float32), 8000, RATE, quality="HQ").astype(np.float32),
    }


def espeak(voice: str, break_ms: int) -> tuple[np.ndarray, tuple[float, ...]]:
    """``ESPEAK_SENTENCES`` in ``voice`` at 16 kHz, each with a ``break_ms`` pause inside it and
    1.5 s of silence after it, and where each sentence's speech ends (s)."""
    pieces, ends, at = [], [], 0
    for text in ESPEAK_SENTENCES:
        ssml = "<speak>" + text.replace("|", f'<break time="{break_ms}ms"/>') + "</speak>"
        wav = subprocess.run(["espeak-ng", "-v", voice, "-m", "--stdout", ssml], check=True, capture_output=True).stdout
        audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
        x = soxr.resample(audio, rate, RATE, quality="HQ").astype(np.float32)
        loud = np.flatnonzero(np.abs(x) > 0.01)
        x = x[: loud[-1] + 1]  # its speech's end: the last sample above -40 dBFS
        pieces += [x, np.zeros(RATE * 3 // 2, np.float32)]
        at += len(x)
        ends.append(at / RATE)
        at += RATE * 3 // 2
    return np.concatenate(pieces), tuple(ends)


def probabilities(x: np.ndarray) -> np.ndarray:
    vad = SileroVad()
    state = vad.new_state()
    return np.concatenate([vad.probabilities(state, x), vad.finish(state)])


def spliced(x: np.ndarray, splice_ms: int) -> tuple[np.ndarray, tuple[float, ...]]:
    """``x`` with ``splice_ms`` of silence inside each phrase at its least speech-like window, and
    the sentence ends moved with it."""
    p = probabilities(x)
    cuts = []
    for a, b in PHRASES_S:
        lo, hi = int((a + 0.4) * RATE) // WINDOW_SAMPLES, int((b - 0.4) * RATE) // WINDOW_SAMPLES
        cuts.append((lo + int(np.argmin(p[lo:hi]))) * WINDOW_SAMPLES)
    gap = np.zeros(splice_ms * RATE // 1000, np.float32)
    pieces, at = [], 0
    for c in cuts:
        pieces += [x[at:c], gap]
        at = c
    pieces.append(x[at:])
    ends = tuple(e + sum(len(gap) / RATE for c in cuts if c / RATE < e) for e in SENTENCE_ENDS_S)
    return np.concatenate(pieces), ends


def run(x: np.ndarray, rule: str, model: SmartTurn, ends: tuple[float, ...], eager: float = 0.0) -> dict[str, Any]:
    """The segments one rule cuts from ``x`` fed a window at a time, each answer taken at once;
    ``eager``: its eager threshold as a fraction of the rule's own."""
    x = np.concatenate([x, np.zeros(RATE, np.float32)])  # a second of silence after the speech
    p = probabilities(x)
    threshold = eager * EAGERNESS[rule].threshold if rule else 0.0
    seg = Segmenter(dataclasses.replace(SegmenterConfig(), eagerness=rule, eager_threshold=threshold))
    closes: list[tuple[int, int, EndReason, float]] = []  # start, end, reason, wait (s) past the speech
    asked, model_s = 0, []
    speculated: list[tuple[int, int, int]] = []  # each eager end's span and the audio fed when it came
    resumed, kept_ahead_s = 0, []

    def take(events: list[Any], fed: int, waited: float) -> None:
        nonlocal asked, resumed
        for e in events:
            if isinstance(e, TurnQuestion):
                asked += 1
                t0 = time.perf_counter()
                (complete,) = model.complete([e.samples])
                model_s.append(time.perf_counter() - t0)
                take(seg.answer(e, complete), fed, waited + model_s[-1])
            elif isinstance(e, EagerEnd):
                speculated.append((e.start_sample, e.end_sample, fed))
            elif isinstance(e, SpeechResumed):
                resumed += 1
            elif isinstance(e, SegmentReady):
                closes.append((e.start_sample, e.end_sample, e.reason, waited + (fed - e.end_sample) / RATE))
                if speculated and speculated[-1][:2] == (e.start_sample, e.end_sample):  # confirmed: kept
                    kept_ahead_s.append((fed - speculated.pop()[2]) / RATE)

    for i in range(len(p)):
        end = min((i + 1) * WINDOW_SAMPLES, len(x))
        take(seg.push(x[i * WINDOW_SAMPLES : end], p[i : i + 1]), end, 0.0)
    take(seg.finish(), len(x), 0.0)
    pad = SegmenterConfig().speech_pad_ms / 1000
    seg_ends = [b / RATE - pad for _, b, _, _ in closes]
    mid = sum(1 for e in seg_ends if min(abs(e - s) for s in ends) > NEAR_S)
    # a sentence's close: its segment's emit delay past the segment's end, plus the pad
    latency = [wait + pad for (_, b, _, wait) in closes if min(abs(b / RATE - pad - s) for s in ends) <= NEAR_S]
    return {
        "segments": len(closes),
        "cut_mid_sentence": mid,
        "sentence_close_ms": [round(1000 * v) for v in latency],
        "questions": asked,
        "model_ms_each": [round(1000 * v, 1) for v in model_s],
        "spans_s": [(round(a / RATE, 2), round(b / RATE, 2), r.value) for a, b, r, _ in closes],
        "eager_threshold": round(threshold, 3),
        "eager_ends": len(speculated) + len(kept_ahead_s),
        "eager_resumed": resumed,
        "eager_kept_ahead_ms": [round(1000 * v) for v in kept_ahead_s],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--splice-ms", type=int, default=600)
    ap.add_argument("--eager", type=float, default=0.0, help="eager_threshold as a fraction of each rule's threshold")
    ap.add_argument("--espeak", action="store_true", help="also espeak-ng's sentences with a pause inside each")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    model = SmartTurn()
    x16 = soxr.resample(
        sf.read(SHARED_AUDIO / "jfk.flac", dtype="float32", always_2d=True)[0].mean(axis=1),
        sf.info(str(SHARED_AUDIO / "jfk.flac")).samplerate,
        RATE,
    ).astype(np.float32)
    report: dict[str, Any] = {}
    inputs = {
        name: {"as said": (x, SENTENCE_ENDS_S), f"+{args.splice_ms} ms mid-phrase": spliced(x, args.splice_ms)}
        for name, x in paths(x16).items()
    }
    if args.espeak:
        inputs["espeak"] = {f"{v}, {args.splice_ms} ms": espeak(v, args.splice_ms) for v in ESPEAK_VOICES}
    for name, variants in inputs.items():
        for variant, (audio, ends) in variants.items():
            for rule in RULES:
                r = run(audio, rule, model, ends, args.eager)
                report[f"{name} {variant} {rule or 'silence'}"] = r
                lat = r["sentence_close_ms"]
                eager = ""
                if r["eager_threshold"]:
                    eager = (
                        f"  eager ends {r['eager_ends']} (resumed {r['eager_resumed']}, kept "
                        f"{len(r['eager_kept_ahead_ms'])}, started ahead ms {r['eager_kept_ahead_ms']})"
                    )
                print(
                    f"{name:8} {variant:22} {rule or 'silence':8} segments {r['segments']:2}  mid-sentence "
                    f"{r['cut_mid_sentence']:2}  sentence close ms {lat}  questions {r['questions']}{eager}"
                )
    each = [v for r in report.values() for v in r["model_ms_each"]]
    p50, p95 = np.median(each), np.percentile(each, 95)
    print(f"model per decision: {len(each)} decisions, p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    if args.eager:
        semantic = [r for r in report.values() if r["eager_threshold"]]
        dropped = sum(r["eager_resumed"] for r in semantic)
        print(
            f"eager ends at {args.eager} x each rule's threshold: {sum(r['eager_ends'] for r in semantic)}, "
            f"dropped (speech resumed) {dropped} = {dropped / max(1, sum(r['segments'] for r in semantic)):.2f} "
            f"a segment, kept {sum(len(r['eager_kept_ahead_ms']) for r in semantic)}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
