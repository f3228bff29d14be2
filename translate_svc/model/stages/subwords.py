"""Subword -> characters as tables on the device: what t2u reads of a text row.

``SeamlessM4Tv2Model`` turns a row's text tokens into characters with three Python loops
(``_indices_to_subwords``: ``.item()`` per token; ``_count_character_length_in_subword``;
``_get_char_input_ids``: a ``torch.tensor`` copied to the device per subword), so t2u syncs the host
once per token of every row. Each token's part is fixed by its id (its subword's length, whether it
is a punctuation mark, whether it starts with the word space, its character ids), so
``SubwordTables`` builds those per id once at load, and a batch's counts and character ids are
gathers over them: the upstream rules (a punctuation mark followed by a word that starts with a
space takes that space, and the next word gives it up; the unknown token is one character) applied
to whole tensors. Equality with the upstream functions is tested (tests/model/stages/test_t2u_buckets.py).
Read-only after ``build``; the model thread uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

SPACE = "▁"


@dataclass(frozen=True, eq=False)
class SubwordTables:
    #: per token id: its characters as the upstream counts them (``len(str(subword))``; 1 for unk)
    lengths: torch.Tensor
    #: per token id: a one-character subword that is neither alphabetic, numeric nor the space
    punct: torch.Tensor
    #: per token id: a subword longer than one character that starts with the space
    spaced: torch.Tensor
    #: per token id: where its character ids start in ``flat``
    starts: torch.Tensor
    #: every token's character ids, one after the other
    flat: torch.Tensor
    pad: int
    unk: int
    #: ``lengths``, ``punct`` and ``spaced`` on the host (``char_totals``)
    host: tuple[np.ndarray, np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0), np.zeros(0))

    @classmethod
    def build(cls, gen: Any, vocab_size: int, device: torch.device, *, pad: int, unk: int = 1) -> SubwordTables:
        """From a generation config's ``id_to_text`` and ``char_to_id`` (an id it lacks is the
        string ``"None"``, as upstream's ``str(dict.get(...))``)."""
        id_to_text: dict[str, str] = dict(getattr(gen, "id_to_text", None) or {})
        char_to_id: dict[str, int] = dict(getattr(gen, "char_to_id", None) or {})
        n = max([vocab_size, *(int(k) + 1 for k in id_to_text)])
        lengths, punct, spaced, starts = [0] * n, [False] * n, [False] * n, [0] * n
        flat: list[int] = []
        for i in range(n):
            sub = str(id_to_text.get(str(i)))
            starts[i] = len(flat)
            if i == unk:
                lengths[i] = 1
                flat.append(unk)
            else:
                lengths[i] = len(sub)
                flat.extend(char_to_id.get(ch, unk) for ch in sub)
            punct[i] = len(sub) == 1 and not sub.isalpha() and not sub.isnumeric() and sub != SPACE
            spaced[i] = len(sub) > 1 and sub[0] == SPACE
        flat.append(pad)  # a last entry, so a clamped index past the end reads something
        host = (np.array(lengths, np.int64), np.array(punct, bool), np.array(spaced, bool))
        return cls(
            torch.tensor(lengths, dtype=torch.long, device=device),
            torch.tensor(punct, dtype=torch.bool, device=device),
            torch.tensor(spaced, dtype=torch.bool, device=device),
            torch.tensor(starts, dtype=torch.long, device=device),
            torch.tensor(flat, dtype=torch.long, device=device),
            pad,
            unk,
            host,
        )

    def char_totals(self, sequences: Sequence[Sequence[int]], eos: int) -> list[int]:
        """Each row's characters as t2u counts them (``char_counts`` summed over the row's t2u ids:
        its text without its last token, EOS as padding), from token ids on the host: the width
        of a batch's characters is known before any device work (no read of the device)."""
        lengths, punct, spaced = self.host
        out = []
        for seq in sequences:
            row = np.asarray(seq, np.int64)
            own = int((row != self.pad).sum())
            ids = row[2 : max(2, own - 1)]  # the text, without the row's own last token
            ids = ids[: np.argmax(np.append(ids == self.pad, True))]  # up to a pad (none expected)
            ids = ids[: np.argmax(np.append(ids == eos, True))]  # EOS reads as padding: counting stops
            if not len(ids):
                out.append(0)
                continue
            sp = spaced[ids]
            takes = punct[ids] & np.append(sp[1:], False)
            gives = np.append(False, takes[:-1])
            known = ids != self.unk
            out.append(int((lengths[ids] + (known & takes) - (known & ~takes & gives)).sum()))
        return out

    def char_counts(self, ids: torch.Tensor) -> torch.Tensor:
        """``_count_character_length_in_subword(ids, subwords, pad_token_id=pad)``: (rows, T)
        characters per token, 0 from a row's first pad on."""
        ids = ids.to(self.lengths.device)
        before_pad = torch.cumprod((ids != self.pad).long(), 1).bool()  # upstream stops at a pad
        own = (ids != self.pad).sum(1, keepdim=True)
        cols = torch.arange(ids.shape[1], device=ids.device)
        spaced = self.spaced[ids]
        next_spaced = torch.zeros_like(spaced)
        next_spaced[:, :-1] = spaced[:, 1:] & (cols[1:][None, :] < own)
        takes = self.punct[ids] & next_spaced  # a punctuation mark takes the next word's space
        gives = torch.zeros_like(takes)
        gives[:, 1:] = takes[:, :-1]  # ... which that word gives up
        known = ids != self.unk
        count = self.lengths[ids] + (known & takes).long() - (known & ~takes & gives).long()
        return count * before_pad

    def char_ids(self, ids: torch.Tensor, width: int) -> torch.Tensor:
        """``_get_char_input_ids``: (rows, ``width``) character ids of the row's tokens one after
        the other (each token's own characters, not its count), ``pad`` after them."""
        ids = ids.to(self.lengths.device)
        rows, t = ids.shape
        cols = torch.arange(t, device=ids.device)
        n = torch.where(cols[None, :] < (ids != self.pad).sum(1, keepdim=True), self.lengths[ids], 0)
        end = n.cumsum(1)
        pos = torch.arange(width, device=ids.device).expand(rows, width).contiguous()
        tok = torch.searchsorted(end, pos, right=True).clamp_(max=max(t - 1, 0))
        within = pos - (end - n).gather(1, tok)
        index = (self.starts[ids.gather(1, tok)] + within).clamp_(0, self.flat.shape[0] - 1)
        out = self.flat[index]
        return out.masked_fill(pos >= end[:, -1:], self.pad) if t else torch.full_like(pos, self.pad)
