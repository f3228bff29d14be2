"""A fake tokenizer's vocabulary for the term tests (``model/stages/terms.py``' ``TermTokens``): which
pieces start a word and which go on one, with no checkpoint; ``SEAMS``, the word seams it gives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from translate_svc.model.stages.terms import TermTokens


class Vocab:
    """A tokenizer's pieces for ``TermTokens``: ids below 100 are SentencePiece word starts
    ("▁w<id>"), 100-199 pieces that go on a word ("x<id>"), 200 a full stop, 201 a combining
    acute; ``PIECES`` names some of them."""

    PIECES: ClassVar[dict[int, str]] = {10: "▁c", 11: "▁n", 12: "▁a", 110: "a", 111: "t", 112: "e", 113: "g", 114: "s"}

    def __len__(self) -> int:
        return 202

    def piece(self, token: int) -> str:
        if token in self.PIECES:
            return self.PIECES[token]
        return "." if token == 200 else "\u0301" if token == 201 else f"▁w{token}" if token < 100 else f"x{token}"

    def convert_ids_to_tokens(self, ids: int | Sequence[int]) -> str | list[str]:
        return self.piece(ids) if isinstance(ids, int) else [self.piece(t) for t in ids]

    def __call__(self, text: str, add_special_tokens: bool) -> dict[str, list[int]]:
        raise AssertionError("not asked in these tests")


#: the word seams of ``Vocab``
SEAMS = TermTokens(Vocab())
