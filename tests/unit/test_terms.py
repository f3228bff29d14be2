"""Term lists' pure parts: which phrases a row is biased towards, and how often."""

from __future__ import annotations

import torch

from translate_svc.model.terms import KEEP_WEIGHT, RowSequenceBias, _count, _prefixes, row_terms
from translate_svc.types import DEFAULT_TERM_WEIGHT, Term

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
    assert _count([1, 2, 3, 1, 2, 1, 2, 3], (1, 2, 3)) == 2
    assert _count([1, 1, 1], (1, 1)) == 1  # not overlapping
    assert _count([], (1,)) == 0
    bias = (((5, 6), 3.0, 0), ((5, 7), 4.0, 0))
    assert _prefixes(bias) == [[[5], 4.0], [[5, 6], 3.0], [[5, 7], 4.0]]


def test_each_row_gets_its_own_bias_and_a_kept_phrase_stops_once_written() -> None:
    rows = [
        (((4,), 2.0, 0),),  # boost token 4
        (),  # no terms
        (((4, 5), 9.0, 1),),  # keep [4, 5], once
    ]
    processor = RowSequenceBias(rows)
    scores = torch.zeros(3, 8)
    written = torch.tensor([[0, 1], [0, 1], [0, 4]])
    out = processor(written, scores.clone())  # type: ignore[arg-type]
    assert out[0, 4] == 2.0 and out[1].abs().sum() == 0
    assert out[2, 4] == 9.0 and out[2, 5] == 9.0  # the phrase's start, and its next token after its start
    done = torch.tensor([[0, 1, 2], [0, 1, 2], [0, 4, 5]])  # row 2 has written the phrase once
    out = processor(done, torch.zeros(3, 8))  # type: ignore[arg-type]
    assert out[2].abs().sum() == 0 and out[0, 4] == 2.0


def test_the_term_token_cache_is_a_bounded_lru() -> None:
    from translate_svc.model.terms import MAX_CACHED_PHRASES, TermTokens

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
