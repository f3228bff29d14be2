"""The segmenter (``vad/segmenter.py``) on synthetic speech probabilities, as its tests feed it:
a stream whose samples are their own indices (so a segment's samples are checked exactly), runs of
probabilities, a run fed in pieces with its events as comparable values, and random configs and
probability walks for the property tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from translate_svc.vad.segmenter import (
    WINDOW_SAMPLES,
    EagerEnd,
    EndReason,
    Segmenter,
    SegmenterConfig,
    SegmenterEvent,
    SegmentReady,
)

W = WINDOW_SAMPLES
SIL, SPEECH = 0.02, 0.9  # a window's probability in silence and in speech
DEFAULT = SegmenterConfig()


def index_stream(length: int) -> np.ndarray:
    """``length`` samples whose values are their indices."""
    return np.arange(length, dtype=np.float32)


def as_values(events: Sequence[SegmenterEvent], stream: np.ndarray) -> list[object]:
    """Events as comparable values; checks every segment's samples against the stream."""
    out: list[object] = []
    for e in events:
        if isinstance(e, SegmentReady):
            np.testing.assert_array_equal(e.samples, stream[e.start_sample : e.end_sample])
            out.append(("segment", e.start_sample, e.end_sample, e.reason))
        elif isinstance(e, EagerEnd):
            np.testing.assert_array_equal(e.samples, stream[e.start_sample : e.end_sample])
            out.append(("eager", e.pause, e.start_sample, e.end_sample))
        else:
            out.append(e)
    return out


def segment(start: int, end: int, reason: EndReason = EndReason.SILENCE) -> tuple[str, int, int, EndReason]:
    """A segment as ``as_values`` shows it."""
    return ("segment", start, end, reason)


def segment_probs(
    probs: Sequence[float],
    config: SegmenterConfig = DEFAULT,
    *,
    length: int | None = None,
    chunk: int | None = None,
    finish: bool = True,
    lead_in: int = 0,
) -> list[object]:
    """Feed ``probs`` (and ``length`` samples, default len(probs) * 512) in ``chunk``-sample pieces."""
    length = len(probs) * W if length is None else length
    x = index_stream(length)
    p = np.asarray(probs, dtype=np.float32)
    seg = Segmenter(config, lead_in=lead_in)
    events: list[SegmenterEvent] = []
    step = chunk or max(length, 1)
    done = 0
    for i in range(0, length, step):
        piece = x[i : i + step]
        ready = min((i + piece.size) // W, p.size)
        events += seg.push(piece, p[done:ready])
        done = ready
    events += seg.push(np.zeros(0, dtype=np.float32), p[done:])
    if finish:
        events += seg.finish()
    return as_values(events, x)


def prob_runs(*runs: tuple[float, int]) -> list[float]:
    """Probabilities from (value, windows) runs."""
    return [value for value, count in runs for _ in range(count)]


def random_config(
    rng: np.random.Generator, pads: Sequence[int] = (0, 30, 200), silences: Sequence[int] = (0, 100, 300)
) -> SegmenterConfig:
    """A config drawn from the values the property tests try."""
    pad = int(rng.choice(pads))
    return SegmenterConfig(
        threshold=float(rng.choice([0.3, 0.5])),
        min_silence_ms=int(rng.choice(silences)),
        speech_pad_ms=pad,
        min_speech_ms=int(rng.choice([0, 250])),
        max_segment_ms=int(rng.choice([1000, 2500, 15000])),
    )


def random_probs(rng: np.random.Generator, trial: int, n: int) -> np.ndarray:
    """A random walk in [0, 1] (speech with dips and pauses), or, one time in three, unbroken speech."""
    walk = np.abs((np.cumsum(rng.normal(0, 0.2, n)) + 1) % 2 - 1)
    return walk if trial % 3 else 0.55 + 0.45 * rng.random(n)
