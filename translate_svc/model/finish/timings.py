"""Word timings: where each translated word is in its speech, and each transcript word in
its segment.

**Translated words: exact.** The speech is made in two counted steps. Text-to-unit predicts a
duration (units) for every character of the text, and repeats each character's state that many
times (``SeamlessM4Tv2TextToUnitDecoder``); the vocoder predicts a duration (frames) for every
unit, repeats each unit that many times (``SeamlessM4Tv2CodeHifiGan``), and HiFi-GAN turns each
frame into a fixed number of samples (its transposed convolutions' strides). A word's characters
therefore own exactly the samples ``[upsampled(frames before its first unit), upsampled(frames up
to its last unit))``, cut to the waveform the vocoder returns. Both durations are read from the
model's own duration predictors, rounded as the model rounds them, as the speech stage returns
them (``Units.char_durations``, model/stages/text_to_unit.py; ``Vocoded.frames``, model/stages/vocoder.py).

**Transcript words: cross-attention alignment**, the method of Whisper's word timestamps
(``whisper/timing.py``, ``find_alignment``): after the greedy decode, one teacher-forced pass of the
text decoder over the decoded tokens returns its cross-attention; the heads and layers are
averaged, each token's row normalised, smoothed in time with a median filter, and dynamic time
warping over its negative gives a monotonic path from tokens to encoder frames. A token starts at
the first frame the path gives it; a word spans from its first token's start to the next word's
start (the last word to the segment's end), so words are ordered, never overlap and stay inside
the segment. An encoder frame of SeamlessM4T v2's speech encoder is 160 ms (10 ms features,
stacked by 2, the adaptor's stride 8), so that is the grain. Its accuracy needs real weights:
``docs/decisions.md`` says how it is to be measured.

Pure numpy; safe on any thread.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from translate_svc.types import MODEL_SAMPLE_RATE, WordTiming

#: SentencePiece's word-start marker
WORD_START = "\u2581"
#: the median filter's width over encoder frames (Whisper uses 7 over its 20 ms frames; ours are 160 ms)
MEDIAN_WIDTH = 3


def word_groups(pieces: Sequence[str]) -> list[tuple[int, int]]:
    """Token index ranges ``[a, b)`` of words: a word starts at a piece with the word-start marker
    (or at the first piece)."""
    starts = [i for i, p in enumerate(pieces) if i == 0 or p.startswith(WORD_START)]
    return [(a, b) for a, b in zip(starts, [*starts[1:], len(pieces)], strict=True)]


def to_ms(samples: int) -> int:
    return round(samples * 1000 / MODEL_SAMPLE_RATE)


def speech_words(
    words: Sequence[tuple[str, int, int]],
    token_chars: Sequence[int],
    char_units: Sequence[int] | np.ndarray,
    unit_frames: Sequence[int] | np.ndarray,
    samples_at: Sequence[int],
    wave_len: int,
) -> tuple[WordTiming, ...]:
    """Each word (text, first token, end token) of a spoken row in its speech.

    ``token_chars``: characters t2u gave each spoken token; ``char_units``: t2u's units per
    character; ``unit_frames``: the vocoder's frames per unit; ``samples_at[f]``: the samples that
    ``f`` frames make (``samples_at[0] == 0``); ``wave_len``: the waveform's samples (the vocoder
    may cut its end). A token past the spoken ones (the last, when the decode hit its token bound)
    ends at the waveform's end."""
    char_ends = np.concatenate([[0], np.cumsum(token_chars, dtype=np.int64)])
    unit_ends = np.concatenate([[0], np.cumsum(char_units, dtype=np.int64)])
    frame_ends = np.concatenate([[0], np.cumsum(unit_frames, dtype=np.int64)])

    def sample_at_token(t: int) -> int:
        if t >= len(char_ends):
            return wave_len
        units = int(unit_ends[min(int(char_ends[t]), len(unit_ends) - 1)])
        frames = int(frame_ends[min(units, len(frame_ends) - 1)])
        return min(int(samples_at[frames]), wave_len)

    return tuple(WordTiming(text, to_ms(sample_at_token(a)), to_ms(sample_at_token(b))) for text, a, b in words if text)


def chunk_words(
    words: Sequence[tuple[str, int, int]],
    token_ends: Sequence[int],
    first_token: int,
    first_unit: int,
    unit_frames: Sequence[int] | np.ndarray,
    samples_at: Sequence[int],
    wave_len: int,
) -> tuple[WordTiming, ...]:
    """The words spoken in a simultaneous step's chunk, in it (ms from its first sample).

    ``words``: (text, first token, end token) of the committed text; ``token_ends[j]``: the units
    t2u gave its first ``j`` tokens (this step's run over the whole committed text); the chunk is
    that run's units from ``first_unit`` (the units spoken before) on, and the words in it are
    those that end past ``first_token`` (the tokens spoken before), so each committed word is in
    exactly one chunk. ``unit_frames``: the vocoder's frames per unit of the chunk; ``samples_at``
    and ``wave_len`` as in ``speech_words``. A longer text can move t2u's earlier boundaries a few
    units (model/simultaneous.py), so a word's start before the chunk's first unit is cut to 0."""
    frame_ends = np.concatenate([[0], np.cumsum(unit_frames, dtype=np.int64)])

    def sample_at_token(t: int) -> int:
        units = min(max(0, int(token_ends[min(t, len(token_ends) - 1)]) - first_unit), len(frame_ends) - 1)
        return min(int(samples_at[int(frame_ends[units])]), wave_len)

    return tuple(
        WordTiming(text, to_ms(sample_at_token(a)), to_ms(sample_at_token(b)))
        for text, a, b in words
        if text and b > first_token
    )


def upsampled_samples(frames: int, stages: Sequence[tuple[int, int, int]]) -> list[int]:
    """``[samples of f frames for f in 0..frames]`` through HiFi-GAN's transposed convolutions
    (stride, padding, kernel per stage: ``(L - 1) * stride - 2 * padding + kernel``)."""
    out = [0]
    for f in range(1, frames + 1):
        n = f
        for stride, pad, kernel in stages:
            n = (n - 1) * stride - 2 * pad + kernel
        out.append(n)
    return out


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The monotonic path through ``cost`` (tokens x frames) of least total cost, from (0, 0) to the
    last cell, moving right, down or diagonally (Whisper's ``dtw_cpu``): token and frame indices."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    trace = np.zeros((n + 1, m + 1), np.int8)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            choices = (acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
            k = int(np.argmin(choices))
            acc[i, j] = cost[i - 1, j - 1] + choices[k]
            trace[i, j] = k
    i, j = n, m
    tokens, frames = [], []
    while i > 0 and j > 0:
        tokens.append(i - 1)
        frames.append(j - 1)
        step = int(trace[i, j])
        if step == 0:
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    return np.array(tokens[::-1]), np.array(frames[::-1])


def attention_words(
    words: Sequence[tuple[str, int, int]], attention: np.ndarray, frame_ms: float, span_ms: int
) -> tuple[WordTiming, ...]:
    """Each word (text, first token, end token) of a transcript on its segment (ms from its start),
    from ``attention`` (text tokens x encoder frames, heads and layers averaged)."""
    words = [w for w in words if w[0]]
    if not words or attention.size == 0:
        return ()
    weights = attention / np.maximum(attention.sum(axis=1, keepdims=True), 1e-9)
    weights = _median_filter(weights, MEDIAN_WIDTH)
    tokens, frames = dtw_path(-weights)
    first = np.full(attention.shape[0], attention.shape[1], np.int64)
    for t, f in zip(tokens.tolist(), frames.tolist(), strict=True):
        first[t] = min(first[t], f)
    starts = [min(span_ms, round(int(first[a]) * frame_ms)) for _, a, _ in words]
    for k in range(1, len(starts)):  # ordered (the path is monotonic; rounding and clamping keep it so)
        starts[k] = max(starts[k], starts[k - 1])
    ends = [*starts[1:], span_ms]
    return tuple(WordTiming(text, s, e) for (text, _, _), s, e in zip(words, starts, ends, strict=True))


def _median_filter(x: np.ndarray, width: int) -> np.ndarray:
    """A median over ``width`` frames along the last axis (edges reflected), as Whisper smooths."""
    if width <= 1 or x.shape[-1] < width:
        return x
    pad = width // 2
    padded = np.pad(x, ((0, 0), (pad, pad)), mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1)
    smoothed: np.ndarray = np.median(windows, axis=-1)
    return smoothed
