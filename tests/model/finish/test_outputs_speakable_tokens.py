"""What a batch's outputs are made from (model/finish/outputs.py, issues 70 and 72; its own test
module since issue 89 item 4): the tokens the speech is made from have a filtered row's listed
words taken out (the rest moved left, padded at the end) and leave every other row alone; a row's
values follow the positions taken out; a row's shown tokens leave the special ones out; a row
without text is told apart. A word-piece tokenizer stand-in (the test checkpoint's pieces): no
checkpoint, no model run. The filter through the runner is tests/model/finish/test_profanity.py's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from translate_svc.model.finish import outputs, profanity

pytestmark = pytest.mark.unit

PAD, UNK, START, EOS, ENG = 0, 1, 2, 3, 62
#: a listed word written with plain letters (LDNOOBW's English list; the filter's own data)
LISTED = next(w for w in profanity.listed("eng") if w.isascii() and w.isalpha())


class Pieces:
    """A tokenizer of whole-word pieces (``▁word``) and the special tokens above."""

    def __init__(self) -> None:
        self.pieces = {PAD: "<pad>", UNK: "<unk>", START: "<s>", EOS: "</s>", ENG: "__eng__"}
        self.all_special_ids = [PAD, UNK, START, EOS, ENG]
        self.unk_token = "<unk>"

    def id(self, word: str) -> int:
        for i, p in self.pieces.items():
            if p == "▁" + word:
                return i
        self.pieces[100 + len(self.pieces)] = "▁" + word
        return self.id(word)

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self.pieces[i] for i in ids]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        kept = [i for i in ids if not (skip_special_tokens and i in self.all_special_ids)]
        return "".join(self.pieces[i] for i in kept).replace("▁", " ").strip()


def row(tok: Pieces, *words: str) -> tuple[int, ...]:
    return (START, ENG, *(tok.id(w) for w in words), EOS)


def test_a_filtered_rows_listed_word_is_taken_out_of_the_tokens_it_is_spoken_from() -> None:
    tok = Pieces()
    said = row(tok, "the", LISTED, "here")
    other = row(tok, "the", LISTED, "there", "now")
    sequences = torch.tensor([[*said, PAD], list(other)])  # right-padded, as generate writes them
    spoken, host, cut = outputs._speakable(tok, sequences, [said, other], ["eng", "eng"], [True, False], PAD)
    assert host[0] == row(tok, "the", "here") and host[1] == other  # the unfiltered row keeps it
    assert cut == {0: {3}}  # the listed word's position in its sequence
    assert spoken.tolist() == [[*host[0], PAD, PAD], list(other)]  # the rest moved left, padded


def test_rows_that_say_no_listed_word_are_handed_back_as_they_are() -> None:
    tok = Pieces()
    clean = row(tok, "good", "morning")
    sequences = torch.tensor([list(clean)])
    assert outputs._speakable(tok, sequences, [clean], ["eng"], [True], PAD)[0] is sequences
    assert outputs._speakable(tok, sequences, [clean], ["eng"], [False], PAD) == (sequences, [clean], {})


def test_a_rows_values_follow_the_positions_taken_out() -> None:
    """``drop`` names sequence positions; the values start after ``[start, language]``."""
    assert outputs._kept([-0.1, -0.2, -0.3, -0.4], {3}) == [-0.1, -0.3, -0.4]
    assert outputs._kept([-0.1, -0.2], None) == [-0.1, -0.2]
    assert outputs._kept([-0.1, -0.2], set()) == [-0.1, -0.2]


def test_a_rows_shown_tokens_are_its_text_pieces_with_their_values() -> None:
    tok = Pieces()
    seq = row(tok, "hello", "world")
    shown = outputs._tokens(tok, seq, [-0.5, -0.25, -0.125])  # the two words and EOS
    assert shown == ((" hello", -0.5), (" world", -0.25))


def test_padding_is_cut_from_the_end_only_and_a_row_without_text_is_told_apart() -> None:
    assert outputs._unpadded([START, ENG, PAD, 7, PAD, PAD], PAD) == (START, ENG, PAD, 7)
    assert outputs._padded([START, ENG, 7], 5, PAD) == [START, ENG, 7, PAD, PAD]
    gen = SimpleNamespace(eos_token_id=EOS, pad_token_id=PAD)
    assert outputs._has_text([START, ENG, 7, EOS], gen)
    assert not outputs._has_text([START, ENG, EOS], gen)
    assert not outputs._has_text([START, ENG], gen)


def test_an_id_past_the_tokenizers_pieces_is_shown_as_the_unknown_token(test_model_dir: Path) -> None:
    """The full-size random checkpoint's model writes ids from its real 256,102-token vocabulary,
    its tokenizer knows a few dozen (convert_ids_to_tokens gives None for the rest): its finish
    failed on an H200 (2026-11-30). The real tokenizer, such ids read as its unknown token."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(test_model_dir)
    known = tok.convert_tokens_to_ids("a")
    past = len(tok) + 1000
    assert tok.convert_ids_to_tokens([past]) == [None]  # what the finish is given
    seq = (tok.bos_token_id, tok.convert_tokens_to_ids("__eng__"), known, past, 256_000, tok.eos_token_id)
    shown = outputs._tokens(tok, seq, [-0.5, -0.25, -0.125, -1.0])
    assert shown == (("a", -0.5), (tok.unk_token, -0.25), (tok.unk_token, -0.125))
