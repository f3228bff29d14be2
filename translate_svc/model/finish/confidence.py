"""Confidence: a row's or word's mean token log-probability from the values the
decode kept (model/stages/decoder.py ``ChosenLogprobs``, model/decode/step.py ``choose``), shared by the
runner (model/runner.py) and the simultaneous steps (model/simultaneous.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from translate_svc.model.finish.aligner import WordTimer
from translate_svc.types import WordTiming


def mean_logprob(values: Sequence[float]) -> float | None:
    """A row's or word's confidence: the mean log-probability of its tokens; None without tokens."""
    return sum(values) / len(values) if values else None


def scored_words(
    timer: WordTimer, seq: Sequence[int], values: Sequence[float], words: Sequence[WordTiming], *, timed: bool
) -> tuple[WordTiming, ...]:
    """``words`` (the timer's, of row ``seq``) each with its tokens' mean log-probability. The
    words are the timer's word groups of ``seq``'s text tokens (speech words skip empty ones,
    ``timed``); where they do not line up, or a word's tokens have no value, it has none."""
    groups = timer.words_of(timer.text_ids(seq))
    if timed:
        groups = [g for g in groups if g[0]]
    if len(groups) != len(words):
        return tuple(words)
    return tuple(
        dataclasses.replace(w, logprob=mean_logprob(values[a:b]) if b <= len(values) else None)
        for w, (_, a, b) in zip(words, groups, strict=True)
    )


def scored_chunk_words(
    timer: WordTimer,
    tokens: Sequence[int],
    values: Sequence[float],
    first_token: int,
    words: Sequence[WordTiming],
) -> tuple[WordTiming, ...]:
    """A simultaneous chunk's ``words`` (``WordTimer.chunk`` over the committed ``tokens``, those
    past ``first_token``), each with its tokens' mean log-probability (``values``: one per token,
    from the step that chose it); unchanged where they do not line up or values are not known."""
    groups = [(a, b) for text, a, b in timer.words_of(tokens) if text and b > first_token]
    if len(values) != len(tokens) or len(groups) != len(words):
        return tuple(words)
    return tuple(
        dataclasses.replace(w, logprob=mean_logprob(values[a:b])) for w, (a, b) in zip(words, groups, strict=True)
    )
