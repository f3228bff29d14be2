"""``cli/output.word_cues`` (issue 45): caption conventions over timed words, with plain values."""

from __future__ import annotations

from translate_svc.client_cli.output import CUE_LINE_CHARS, word_cues


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
