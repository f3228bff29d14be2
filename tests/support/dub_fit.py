"""What a test of dubbing to the source's clock checks (issue 90 item 2), whichever door the
segments came through: each segment's speech at a rate within the bound, ending by the next
segment's start (the audio's end, for the last one) whenever the rate is under the bound's
fastest, its reported overlap the speech's length past that budget, and its length the unfitted
speech's divided by its rate (within the speaking-rate tolerance). Plain values: spans in ms,
sample counts, rates. Never the words (a random-weight model's words mean nothing)."""

from __future__ import annotations

from dataclasses import dataclass

from tests.support.speaking_rate import at_rate, rate_failure

#: a rate on the wire is a float32 (1.35 arrives as 1.35000002)
RATE_EPS = 1e-5


@dataclass(frozen=True)
class Spoken:
    """One translation of one segment as a door returned it."""

    language: str
    samples: int
    sample_rate_hz: int
    #: the rate it says its speech was made at, and how far (ms) it says the speech runs over
    speech_rate: float | None
    overlap_ms: int | None


@dataclass
class FitTally:
    """How the segments' speech came out: fitted under the bound's fastest, at it and still within
    the budget, at it and over (overlaps); the translations looked at."""

    under: int = 0
    at_fastest_fits: int = 0
    overlaps: int = 0
    checked: int = 0


def budgets(spans: list[tuple[int, int]], audio_ms: int) -> list[int]:
    """Each segment's budget: from its start to the next segment's (the last one's: the audio's end)."""
    ends = [start for start, _ in spans[1:]] + [audio_ms]
    return [end - start for (start, _), end in zip(spans, ends, strict=True)]


def check_fitted(
    spans: list[tuple[int, int]],
    audio_ms: int,
    spoken: list[list[Spoken]],
    slowest: float,
    fastest: float,
    plain: list[list[Spoken]] | None = None,
) -> FitTally:
    """Every translation of every segment (``spoken``, in segment order; ``plain``: the same
    request unfitted) checked as the module docstring says; the tally of how they came out."""
    tally = FitTally()
    for n, (budget, translations) in enumerate(zip(budgets(spans, audio_ms), spoken, strict=True)):
        for k, t in enumerate(translations):
            where = (n, t.language, spans[n], budget, t)
            assert t.speech_rate is not None and t.overlap_ms is not None, where
            assert slowest - RATE_EPS <= t.speech_rate <= fastest + RATE_EPS, where
            speech_ms = t.samples * 1000 / t.sample_rate_hz
            over = max(0, -(-(t.samples * 1000 - budget * t.sample_rate_hz) // t.sample_rate_hz))
            assert t.overlap_ms == over, where
            if t.speech_rate < fastest - RATE_EPS:  # the bound held: the speech ends by the next start
                assert speech_ms <= budget, where
                tally.under += 1
            elif over:
                tally.overlaps += 1
            else:
                tally.at_fastest_fits += 1
            if plain is not None:
                p = plain[n][k]
                assert p.language == t.language
                assert at_rate(p.samples, t.samples, t.speech_rate, t.sample_rate_hz), (
                    where,
                    rate_failure(p.samples, t.samples, t.speech_rate, t.sample_rate_hz),
                )
            tally.checked += 1
    return tally
