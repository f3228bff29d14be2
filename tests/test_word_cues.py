"""``subtitles.word_cues`` (issue 45; the CLI's ``--word-cues`` and, issue 57, the audio REST
endpoints' word cues): caption conventions over timed words, with plain values."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from translate_svc.subtitles import CUE_LINE_CHARS, word_cues

pytestmark = pytest.mark.unit


def timed(words: list[str], start: int = 0) -> list[tuple[int, int, str]]:
    return [(start + 300 * i, start + 300 * i + 250, w) for i, w in enumerate(words)]


def test_cues_have_two_lines_of_42_characters_and_never_cut_a_word() -> None:
    words = ("the quick brown fox jumps over the lazy dog " * 6).split()
    long = "x" * 50
    groups = [timed(words), timed(["a", long, "b"], 100_000)]
    cues = word_cues(groups)
    assert [w for _, _, text in cues for w in text.split()] == [w for g in groups for _, _, w in g]
    for start, end, text in cues:
        lines = text.split("\n")
        assert 1 <= len(lines) <= 2
        assert all(len(line) <= CUE_LINE_CHARS or line == long for line in lines)
        inside = [w for g in groups for s, e, w in g if start <= s and e <= end]
        assert text.split() == inside
    assert len(cues) > 2  # the 54 words needed several cues: the rule was exercised
    assert all(c[0] >= 100_000 or c[1] < 100_000 for c in cues)  # no cue spans two segments


def test_empty_words_are_skipped_and_no_words_make_no_cue() -> None:
    assert word_cues([[]]) == []
    assert word_cues([[(0, 10, " "), (10, 20, "hi")]]) == [(10, 20, "hi")]


@st.composite
def timed_groups(draw: st.DrawFn) -> list[list[tuple[int, int, str]]]:
    """Segments of ordered, non-overlapping timed words (ms), adjacent or with gaps, some of no
    length (a transcript's words that share an encoder frame; words past the vocoder's cut), each
    such one at least two words from the next."""
    groups, at = [], 0
    for _ in range(draw(st.integers(1, 3))):
        words: list[tuple[int, int, str]] = []
        since = 2
        for _ in range(draw(st.integers(0, 40))):
            at += draw(st.sampled_from([0, 0, 20, 160]))
            instant = since >= 2 and draw(st.integers(0, 3)) == 0
            length = 0 if instant else draw(st.integers(1, 400))
            since = 0 if instant else since + 1
            words.append((at, at + length, draw(st.text("abcdefghij", min_size=1, max_size=12))))
            at += length
        groups.append(words)
        at += 1
    return groups


@given(timed_groups())
@settings(max_examples=300, deadline=None)
def test_each_cue_is_the_words_inside_its_times(groups: list[list[tuple[int, int, str]]]) -> None:
    """The done-when of issue 45, for any timings: each cue's text is exactly the words of its
    segment inside its times (closed), at most two lines of at most 42 characters, every word once
    and in order. A word of no length on a cue's edge would lie inside both cues: never so."""
    cues = word_cues(groups)
    assert [w for _, _, text in cues for w in text.split()] == [w for g in groups for _, _, w in g]
    for start, end, text in cues:
        lines = text.split("\n")
        assert 1 <= len(lines) <= 2 and all(len(line) <= CUE_LINE_CHARS for line in lines)
        inside = [[w for s, e, w in g if start <= s and e <= end] for g in groups]
        assert text.split() in inside, (start, end, text)
