"""Term lists' pure parts: which phrases a row is biased towards, and how often; a phrase's
tokens written as a whole word (issue 57)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.fake_vocab import SEAMS
from tests.support.paths import TEST_MODEL
from translate_svc.model.stages.terms import (
    KEEP_WEIGHT,
    GlossaryForce,
    RowSequenceBias,
    TermTokens,
    WordCount,
    _count,
    _prefixes,
    row_terms,
)
from translate_svc.types import DEFAULT_TERM_WEIGHT, Term

pytestmark = pytest.mark.unit

TERMS = (Term("Acme", keep=True), Term("gRPC", weight=5.0))


def test_kept_phrases_follow_the_transcript_and_boosts_go_everywhere() -> None:
    assert row_terms(TERMS, transcript_row=True, transcript=None) == [
        ("gRPC", 5.0, 0),
        ("Acme", DEFAULT_TERM_WEIGHT, 0),
    ]
    # a translation row: the kept phrase only where it was said, as often as it was said
    assert row_terms(TERMS, transcript_row=False, transcript="the acme team and ACME") == [
        ("gRPC", 5.0, 0),
        ("Acme", KEEP_WEIGHT, 2),
    ]
    assert row_terms(TERMS, transcript_row=False, transcript="nobody said it") == [("gRPC", 5.0, 0)]
    assert row_terms(TERMS, transcript_row=False, transcript=None) == [("gRPC", 5.0, 0)]


def test_phrase_counts_and_prefixes() -> None:
    assert _count([1, 2, 3, 1, 2, 1, 2, 3], (1, 2, 3), "x", SEAMS) == 2
    assert _count([1, 1, 1], (1, 1), "x", SEAMS) == 1  # not overlapping
    assert _count([], (1,), "x", SEAMS) == 0
    bias = (((5, 6), 3.0, 0, "x"), ((5, 7), 4.0, 0, "x"))
    assert _prefixes(bias) == [[[5], 4.0], [[5, 6], 3.0], [[5, 7], 4.0]]


def test_a_phrase_written_as_the_start_of_a_longer_word_is_not_written() -> None:
    """The tokens of "cat" (▁c a t) written and then "e": the row wrote "cate…", not "cat". Followed by a word
    start, a full stop or nothing yet, it was written; after a phrase ending in punctuation only
    a combining mark goes on its last character."""
    cat = (10, 110, 111)
    assert _count([2, *cat, 112, 113], cat, "t", SEAMS) == 0  # cate g…
    assert _count([2, *cat, 112, *cat, 114], cat, "t", SEAMS) == 0  # cate, then cats
    assert _count([2, *cat, 201], cat, "t", SEAMS) == 0  # a combining mark after it goes on its t
    assert _count([2, *cat, 11, *cat, 200, *cat], cat, "t", SEAMS) == 3
    assert _count([2, 10, 200, 112], (10, 200), ".", SEAMS) == 1  # "c." then a letter
    assert _count([2, 10, 200, 201], (10, 200), ".", SEAMS) == 0


def test_a_kept_phrase_is_biased_until_written_as_a_whole_word() -> None:
    """A KEEP "cat" said once: the row that wrote "cat" as the start of "category" has not written
    it, so the bias goes on (it stopped there while terms matched substrings)."""
    processor = RowSequenceBias([(((10, 110, 111), 9.0, 1, "t"),)], SEAMS)
    inside = torch.tensor([[0, 10, 110, 111, 112]])  # ▁c a t e
    out = processor(inside, torch.zeros(1, 202))  # type: ignore[arg-type]
    assert out[0, 10] == 9.0  # still pushed: the phrase's first token
    whole = torch.tensor([[0, 10, 110, 111, 11]])  # ▁c a t ▁n
    assert processor(whole, torch.zeros(1, 202)).abs().sum() == 0  # type: ignore[arg-type]


def test_a_phrases_tokens_start_at_a_word_start_so_no_match_starts_inside_a_word() -> None:
    """The tokens the decoder is biased towards, forced into or counts are the phrase's tokens
    for a word start: a row in the middle of a word ("pl|ann…" written as ▁p l a n n) never
    continues one. ``TermTokens.ids`` on the test checkpoint's tokenizer."""

    from transformers import AutoProcessor

    model = TEST_MODEL
    tokenizer = AutoProcessor.from_pretrained(model, local_files_only=True).tokenizer
    tokens = TermTokens(tokenizer)
    for phrase in ("ann", "cat", "nube acme", " report ", "C++", "猫"):
        first = tokenizer.convert_ids_to_tokens(tokens.ids(phrase)[0])
        assert first.startswith("\u2581"), (phrase, first)
    ann = tokens.ids("ann")
    processor = RowSequenceBias([((ann, 5.0, 0, "n"),)], tokens)
    planning = tokenizer("planning", add_special_tokens=False)["input_ids"]
    row = torch.tensor([[0, *planning[:3]]])  # ▁p l a: the "a" of the row is not ann's ▁a
    out = processor(row, torch.zeros(1, len(tokenizer)))  # type: ignore[arg-type]
    assert out[0].nonzero().flatten().tolist() == [ann[0]]  # only the phrase's first (word-start) token


def test_each_row_gets_its_own_bias_and_a_kept_phrase_stops_once_written() -> None:
    rows = [
        (((4,), 2.0, 0, "x"),),  # boost token 4
        (),  # no terms
        (((4, 5), 9.0, 1, "x"),),  # keep [4, 5], once
    ]
    processor = RowSequenceBias(rows, SEAMS)
    scores = torch.zeros(3, 8)
    written = torch.tensor([[0, 1], [0, 1], [0, 4]])
    out = processor(written, scores.clone())  # type: ignore[arg-type]
    assert out[0, 4] == 2.0 and out[1].abs().sum() == 0
    assert out[2, 4] == 9.0 and out[2, 5] == 9.0  # the phrase's start, and its next token after its start
    done = torch.tensor([[0, 1, 2], [0, 1, 2], [0, 4, 5]])  # row 2 has written the phrase once
    out = processor(done, torch.zeros(3, 8))  # type: ignore[arg-type]
    assert out[2].abs().sum() == 0 and out[0, 4] == 2.0


def test_the_term_token_cache_is_a_bounded_lru() -> None:
    from translate_svc.model.stages.terms import MAX_CACHED_PHRASES, TermTokens

    calls: list[str] = []

    def tokenizer(text: str, add_special_tokens: bool) -> dict[str, list[int]]:
        calls.append(text)
        return {"input_ids": [len(text), 1]}

    terms = TermTokens(tokenizer, max_cached=3)
    assert [terms.ids(p) for p in ("a", " bb ", "ccc")] == [(1, 1), (2, 1), (3, 1)]
    assert terms.ids("a") == (1, 1) and calls == ["a", "bb", "ccc"]  # a hit: "a" is now the newest
    terms.ids("dddd")  # evicts the least recently used: "bb"
    assert list(terms._ids) == ["ccc", "a", "dddd"]
    terms.ids("bb")
    assert calls[-1] == "bb" and len(terms._ids) == 3
    # the default bound: a flood of distinct phrases keeps at most MAX_CACHED_PHRASES
    flood = TermTokens(tokenizer)
    for n in range(MAX_CACHED_PHRASES + 500):
        flood.ids(f"phrase {n}")
    assert len(flood._ids) == MAX_CACHED_PHRASES <= 8192
    assert f"phrase {MAX_CACHED_PHRASES + 499}" in flood._ids and "phrase 0" not in flood._ids


# -- the per-step state (issue 57): what each step decides equals a pass over the whole row -------

WORD_STARTS, GOING_ON = [1, 2, 3], [110, 111, 112]
TOKENS = st.sampled_from([*WORD_STARTS, *GOING_ON, 200, 201])
PHRASE = st.tuples(st.sampled_from(WORD_STARTS), st.lists(st.sampled_from([*WORD_STARTS, *GOING_ON]), max_size=2))


def whole_pass(written: list[int], phrase: tuple[int, ...], last: str) -> tuple[int, bool]:
    """The definition, over the whole row: not overlapping, from the left, a match counts where
    the token after it does not continue ``last`` (or nothing follows it yet); and whether the
    last one counted ends the row."""
    n, at, count, ends = len(phrase), 0, 0, False
    while at + n <= len(written):
        if tuple(written[at : at + n]) == phrase and (
            at + n == len(written) or not SEAMS.continues(last, written[at + n])
        ):
            count, at, ends = count + 1, at + n, at + n == len(written)
        else:
            at += 1
    return count, ends


@settings(max_examples=400)
@given(head=PHRASE, last=st.sampled_from(["t", ".", "猫"]), data=st.data())
def test_a_word_count_kept_token_by_token_equals_a_pass_over_the_row(
    head: tuple[int, list[int]], last: str, data: st.DataObject
) -> None:
    """Rows drawn mostly from the phrase's own tokens (so matches overlap, repeat and are cut
    short), with a word start, a piece that goes on a word, a full stop and a combining mark."""
    phrase = (head[0], *head[1])
    row = data.draw(st.lists(st.sampled_from([*phrase, *phrase, 3, 112, 200, 201]), max_size=30))
    count = WordCount(phrase, last)
    for n in range(len(row) + 1):
        assert count.update(row[:n], SEAMS) == whole_pass(row[:n], phrase, last), (row[:n], phrase)


@given(
    rows=st.lists(st.lists(TOKENS, min_size=8, max_size=8), min_size=2, max_size=3),
    heads=st.lists(PHRASE, min_size=1, max_size=3),
    times=st.lists(st.integers(0, 2), min_size=3, max_size=3),
)
def test_processors_that_follow_the_rows_equal_fresh_ones_at_every_step(
    rows: list[list[int]], heads: list[tuple[int, list[int]]], times: list[int]
) -> None:
    """One ``RowSequenceBias`` and one ``GlossaryForce`` called step by step on growing rows (as
    ``generate`` calls them) give at every step the scores that new ones, which look at the
    whole rows, give."""
    phrases = [(h[0], *h[1]) for h in heads]
    bias = tuple(sorted((p, 4.0, times[k], "t") for k, p in enumerate(phrases)))
    glossary = tuple((p, max(1, times[k]), "t") for k, p in enumerate(phrases))
    per_row_bias = [bias if r % 2 == 0 else bias[:1] for r in range(len(rows))]
    per_row_glossary = [glossary if r % 2 == 1 else glossary[-1:] for r in range(len(rows))]
    following = [RowSequenceBias(per_row_bias, SEAMS), GlossaryForce(per_row_glossary, SEAMS)]
    for width in (1, 2, 3, 5, 6, 8):  # one new token a step, as generate; two, as a guard
        ids = torch.tensor([row[:width] for row in rows])
        scores = torch.arange(len(rows) * 202, dtype=torch.float32).reshape(len(rows), 202) % 7
        fresh = [RowSequenceBias(per_row_bias, SEAMS), GlossaryForce(per_row_glossary, SEAMS)]
        for kept, new in zip(following, fresh, strict=True):
            assert torch.equal(kept(ids, scores.clone()), new(ids, scores.clone())), (width, type(kept).__name__)  # type: ignore[arg-type]
