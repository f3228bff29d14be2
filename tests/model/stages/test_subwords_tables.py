"""Subwords into characters as tables (model/stages/subwords.py, issue 70; its own test module
since issue 89 item 4), on a hand-made vocabulary: each token's characters, the upstream's rule that
a punctuation mark followed by a word starting with the space takes that space (and the word gives
it up), the unknown token one character, counting stopped at padding or EOS, and the character ids
one token after the other. No checkpoint; equality with the upstream loops on the test checkpoint is
tests/model/stages/test_t2u_buckets.py's."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from translate_svc.model.stages.subwords import SPACE, SubwordTables

pytestmark = pytest.mark.unit

PAD, UNK, EOS = 0, 1, 7
HI, COMMA, YO, U, BARE = 2, 3, 4, 5, 6
TEXTS = {PAD: "<pad>", UNK: "<unk>", HI: f"{SPACE}hi", COMMA: ",", YO: f"{SPACE}yo", U: "u", BARE: SPACE, EOS: "</s>"}
CHARS = {ch: k + 10 for k, ch in enumerate(f"{SPACE}hiyou,<pad>/s")}


@pytest.fixture(scope="module")
def tables() -> SubwordTables:
    gen = SimpleNamespace(id_to_text={str(k): v for k, v in TEXTS.items()}, char_to_id=CHARS)
    return SubwordTables.build(gen, vocab_size=8, device=torch.device("cpu"), pad=PAD, unk=UNK)


def test_each_tokens_kind_is_read_once_from_its_text(tables: SubwordTables) -> None:
    assert tables.lengths[[HI, COMMA, YO, U, BARE, UNK]].tolist() == [3, 1, 3, 1, 1, 1]
    assert tables.punct[[COMMA, BARE, U, HI]].tolist() == [True, False, False, False]  # the space is no mark
    assert tables.spaced[[HI, YO, BARE, COMMA]].tolist() == [True, True, False, False]


def test_a_mark_before_a_spaced_word_takes_its_space(tables: SubwordTables) -> None:
    counts = tables.char_counts(torch.tensor([[HI, COMMA, YO, U], [HI, COMMA, U, PAD]]))
    assert counts.tolist() == [[3, 2, 2, 1], [3, 1, 1, 0]]  # "▁hi" ",▁" "yo" "u"; no space to take


def test_counting_stops_at_the_first_pad(tables: SubwordTables) -> None:
    assert tables.char_counts(torch.tensor([[HI, PAD, YO]])).tolist() == [[3, 0, 0]]


def test_a_rows_total_is_known_on_the_host_without_its_last_token(tables: SubwordTables) -> None:
    rows = [
        [9, 9, HI, COMMA, YO, U, EOS],  # start, language, text, its last token (EOS)
        [9, 9, HI, COMMA, EOS, PAD, PAD],
        [9, 9, EOS],
    ]
    assert tables.char_totals(rows, EOS) == [8, 4, 0]
    assert tables.char_totals(rows[:1], EOS) == [int(tables.char_counts(torch.tensor([[HI, COMMA, YO, U]])).sum())]


def test_character_ids_are_each_tokens_own_one_after_the_other(tables: SubwordTables) -> None:
    ids = tables.char_ids(torch.tensor([[HI, COMMA, UNK]]), width=7)
    expected = [CHARS[SPACE], CHARS["h"], CHARS["i"], CHARS[","], UNK, PAD, PAD]
    assert ids.tolist() == [expected]
    assert tables.char_ids(torch.tensor([[HI]]), width=2).tolist() == [[CHARS[SPACE], CHARS["h"]]]  # cut
