"""Term lists in the text decoder: per-row phrase biases through transformers' logits processors.

A BOOST term adds its weight to the logits of its tokens: to the first token always, and to each
next one when the tokens before it were just written (``SequenceBiasLogitsProcessor`` with every
prefix of the phrase), so the decoder is pulled into the phrase and through it. A KEEP term (do not
translate) is boosted like that in the transcript; in the translations it gets ``KEEP_WEIGHT``, only
where the segment's transcript holds it, and only until the row has written it as many times as
the transcript says it: a name that was said comes out verbatim, one that was not said is never
forced in, and a kept phrase is not repeated. Rows of one batch have different term lists:
``RowSequenceBias`` applies each row's own. No search of our own: greedy decoding with the biased
logits, as ``generate`` does it.

A glossary entry (``Term.glossary``: "translate *phrase* as *translation*" into one target) acts
in the translation rows of its target language where the source (the segment's transcript, or a
text input's own text) holds its phrase (``said_in``): ``GlossaryForce`` adds
``GLOSSARY_WEIGHT`` to the translation's first token at every step, and once the row has written
the start of the translation (its last tokens are a proper prefix of the translation's tokens,
the longest such prefix of any entry) it forces the next token (every other score -inf), until the
row has written the translation as many times as the source says the phrase. Speech is made from
the decoded text, so it says the translation too.

Words (``translate_svc/words.py``): the source is searched for a phrase as a whole word
(``said_in``; a row's glossary entries all at once, by the same rule: ``glossary_index.py``). In
the decoder, a phrase's tokens are SentencePiece's for a word start (their first piece begins
with "▁"), so a bias, a forcing or a count only ever starts at a word start of
the output; a phrase written counts only where the token after it does not continue its last word
(``words.joins`` between the phrase's last character and the token's first), and a forced glossary
translation ends a word: the step after its last token, the tokens that would continue it are
masked. So "cat" written as the start of "category" is not "cat" written.

Model thread only (the tokenizer cache is not locked).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import torch
from transformers import LogitsProcessor, SequenceBiasLogitsProcessor

from translate_svc import words
from translate_svc.model.stages.by_row import ByRow
from translate_svc.model.stages.glossary_index import INDEXES
from translate_svc.types import DEFAULT_TERM_WEIGHT, Term

#: the bias of a kept phrase in a translation, where the transcript has it: enough to outweigh
#: the decoder's own preference, which a BOOST weight (at most 10) may not
KEEP_WEIGHT = 12.0
#: the bias toward a glossary translation's first token where the source says its phrase
GLOSSARY_WEIGHT = KEEP_WEIGHT
#: SentencePiece's word start
WORD_START = "\u2581"
#: phrases whose token ids are kept (least recently used dropped first): every stream's terms
#: pass here, so the cache is bounded, not one entry per phrase ever sent
MAX_CACHED_PHRASES = 4096

#: one phrase in one row: its token ids, its weight, how many times it may be written while
#: biased (0: no limit), and its last character (where a written phrase must end a word)
Entry = tuple[tuple[int, ...], float, int, str]
#: a row's biases, hashable
Bias = tuple[Entry, ...]
#: one glossary translation of a row: its token ids, how many times it is to be written, and its
#: last character
GlossaryEntry = tuple[tuple[int, ...], int, str]
#: a row's glossary translations
Glossary = tuple[GlossaryEntry, ...]


class Seams(Protocol):
    """What the processors ask of the tokenizer about a token after a written phrase."""

    def continues(self, last: str, token: int) -> bool:
        """Whether ``token`` continues the word that a phrase ending in ``last`` ends."""

    def continuing(self, last: str, size: int, device: torch.device) -> torch.Tensor:
        """Every token of a vocabulary of ``size`` that ``continues`` after ``last``, as a mask."""


class TermTokens:
    """Phrases as the tokenizer writes them inside a sentence (a word start), rows' biases, and
    which tokens continue a word (``Seams``)."""

    def __init__(self, tokenizer: object, max_cached: int = MAX_CACHED_PHRASES) -> None:
        self._tokenizer = tokenizer
        self._max_cached = max_cached
        self._ids: OrderedDict[str, tuple[int, ...]] = OrderedDict()  # least recently used first
        self._firsts: dict[int, str] = {}  # a token's first character, as looked up (one per token at most)
        self._masks: dict[tuple[bool, int, str], torch.Tensor] = {}

    def ids(self, phrase: str) -> tuple[int, ...]:
        key = words.normalise(phrase)
        ids = self._ids.get(key)
        if ids is not None:
            self._ids.move_to_end(key)
            return ids
        encoded = self._tokenizer(key, add_special_tokens=False)  # type: ignore[operator]
        ids = self._ids[key] = tuple(int(i) for i in encoded["input_ids"])
        if len(self._ids) > self._max_cached:
            self._ids.popitem(last=False)
        return ids

    def bias(self, weighted: Iterable[tuple[str, float, int]]) -> Bias:
        """The row's phrases as token ids, with their weights, limits and last characters."""
        return tuple(
            sorted(
                (self.ids(phrase), weight, times, words.normalise(phrase)[-1])
                for phrase, weight, times in weighted
                if self.ids(phrase)
            )
        )

    def glossary(self, translations: Iterable[tuple[str, int]]) -> Glossary:
        """The row's glossary translations as token ids, with how often each is to be written."""
        return tuple(
            (self.ids(text), times, words.normalise(text)[-1]) for text, times in translations if self.ids(text)
        )

    def first(self, token: int) -> str:
        """The token's first character as text: a space for a word start ("▁") or a piece with
        no text."""
        char = self._firsts.get(token)
        if char is None:
            piece = self._tokenizer.convert_ids_to_tokens(token)  # type: ignore[attr-defined]
            char = self._firsts[token] = _first_char(piece)
        return char

    def continues(self, last: str, token: int) -> bool:
        return words.joins(last, self.first(token))

    def continuing(self, last: str, size: int, device: torch.device) -> torch.Tensor:
        """Built once per kind of last character (``words.joins`` depends on the character
        before only through ``words.spaced_word_char``) and size: the whole vocabulary's pieces
        in one call, each distinct first character judged once."""
        key = (words.spaced_word_char(last), size, str(device))
        mask = self._masks.get(key)
        if mask is None:
            known = min(size, len(self._tokenizer))  # type: ignore[arg-type]
            pieces = self._tokenizer.convert_ids_to_tokens(list(range(known)))  # type: ignore[attr-defined]
            judged: dict[str, bool] = {}
            flags = [False] * size
            for token, piece in enumerate(pieces):
                char = _first_char(piece)
                flag = judged.get(char)
                if flag is None:
                    flag = judged[char] = words.joins(last, char)
                flags[token] = flag
            mask = self._masks[key] = torch.tensor(flags, dtype=torch.bool, device=device)
        return mask


def _first_char(piece: object) -> str:
    text = str(piece or "")
    return " " if not text or text.startswith(WORD_START) else text[0]


def said_in(term: Term, source: str) -> int:
    """Times the source text says the term's phrase as a whole word (``words.occurrences``, the
    one matcher): a KEEP term in any case, a glossary entry in its case unless ``ignore_case``."""
    return words.occurrences(term.phrase, source, ignore_case=term.folds_case)


def row_terms(terms: Sequence[Term], *, transcript_row: bool, transcript: str | None) -> list[tuple[str, float, int]]:
    """(phrase, weight, times) of one text row: BOOST terms everywhere; KEEP terms boosted in the
    transcript row, and in a translation row where ``transcript`` holds them, as often as it does."""
    weighted = [(t.phrase, t.weight, 0) for t in terms if t.boost]
    if transcript_row:
        weighted += [(t.phrase, DEFAULT_TERM_WEIGHT, 0) for t in terms if t.keep]
    elif transcript is not None:
        for t in terms:
            times = said_in(t, transcript) if t.keep else 0
            if times:
                weighted.append((t.phrase, KEEP_WEIGHT, times))
    return weighted


def row_glossary(terms: Sequence[Term], *, language: str, source: str | None) -> list[tuple[str, int]]:
    """(translation, times) of a translation row into ``language``: its glossary entries whose
    phrase ``source`` holds, as often as it does (``said_in``'s count), in the terms' order. No
    source (a transcript row): none. The entries are looked for all at once, by their index
    (``glossary_index.py``: asked for by a row's first ask, built on a thread of its own and kept
    for the next; until then each entry is looked for)."""
    if source is None:
        return []
    row = INDEXES.row(terms, language)
    if row.index is None:  # not built yet: each entry looked for, as before there were indexes
        return [(t.translation, times) for t in row.entries if (times := said_in(t, source))]
    return [(row.entries[n].translation, times) for n, times in sorted(row.index.counts(source).items())]


class RowTokens:
    """The rows ``generate`` has written so far, as lists, kept by appending each step's new
    column: ``generate`` only appends, so a step converts one token per row, not every row's
    every token. ``update`` says when it started afresh (the first step, or input that is not the
    rows it has plus new columns, as far as the last column it has tells: then the callers'
    match state starts afresh too)."""

    def __init__(self) -> None:
        self.rows: list[list[int]] = []
        self._width = 0

    def update(self, input_ids: torch.Tensor) -> bool:
        height, width = input_ids.shape
        if (
            not self.rows
            or height != len(self.rows)
            or width < self._width
            or input_ids[:, self._width - 1].tolist() != [row[-1] for row in self.rows]
        ):
            self.rows, self._width = input_ids.tolist(), width
            return True
        if width > self._width:
            for row, new in zip(self.rows, input_ids[:, self._width :].tolist(), strict=True):
                row.extend(new)
            self._width = width
        return False


class WordCount:
    """How many times one row has written one phrase's tokens as a whole word (not overlapping,
    from the left, where the token after them does not continue the phrase's last word, or none
    follows yet), kept as the row grows. The places before ``_at`` are decided (a match there
    has its next token); each update decides only the new ones (``list.index`` finds the
    phrase's first token), so a step costs a few operations per phrase, not a pass over the
    row."""

    __slots__ = ("_at", "_count", "_ids", "_last")

    def __init__(self, ids: tuple[int, ...], last: str) -> None:
        self._ids, self._last = ids, last
        self._at = self._count = 0

    def update(self, row: list[int], seams: Seams) -> tuple[int, bool]:
        """(times written, counting one that ends the row; whether one ends the row)."""
        ids, n, at = self._ids, len(self._ids), self._at
        decided = len(row) - n  # a match starting before this has a token after it
        while at < decided:
            try:
                at = row.index(ids[0], at, decided)
            except ValueError:
                at = decided
                break
            if tuple(row[at : at + n]) == ids and not seams.continues(self._last, row[at + n]):
                self._count += 1
                at += n
            else:
                at += 1
        self._at = at
        ends = at == decided and tuple(row[at:]) == ids
        return self._count + ends, ends


class RowSequenceBias(LogitsProcessor):
    """Each row's biases at each step: its phrases (those still under their limit, written as
    whole words) as every prefix with its weight, through one ``SequenceBiasLogitsProcessor`` per
    distinct set (cached). What each row has written is followed step by step (``RowTokens``,
    ``WordCount``): one ``generate`` call's processor, as ``decode_text`` makes it."""

    def __init__(
        self, rows: Mapping[int, Bias] | Sequence[Bias], seams: Seams, order: Sequence[int] | None = None
    ) -> None:
        """``rows``: each row's biases by row id (a sequence: ids 0, 1, ...); ``order``: the ids in
        the batch's order (model/stages/decoder.py ``ByRow``)."""
        self.rows = ByRow(rows, order)
        self._rows = self.rows.values
        self._seams = seams
        self._processors: dict[Bias, SequenceBiasLogitsProcessor] = {}
        self._written = RowTokens()
        self._counts: list[list[WordCount | None]] = []

    def reorder(self, order: Sequence[int]) -> None:
        """The batch's rows are now these ids (rows joined or left): what each has written is read
        afresh from the next step's input."""
        self.rows.reorder(order)
        self._rows, self._written = self.rows.values, RowTokens()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._written.update(input_ids):
            self._counts = [[WordCount(e[0], e[3]) if e[2] else None for e in bias] for bias in self._rows]
        groups: dict[Bias, list[int]] = {}
        for r, bias in enumerate(self._rows):
            counts = self._counts[r]
            if any(counts):
                row = self._written.rows[r]
                bias = tuple(
                    e for e, c in zip(bias, counts, strict=True) if c is None or c.update(row, self._seams)[0] < e[2]
                )
            if bias:
                groups.setdefault(bias, []).append(r)
        for bias, members in groups.items():
            processor = self._processors.get(bias)
            if processor is None:
                processor = self._processors[bias] = SequenceBiasLogitsProcessor(_prefixes(bias))
            if len(members) == len(self._rows):  # one set for every row: no copies in and out
                return processor(input_ids, scores)  # type: ignore[no-any-return]
            rows = torch.tensor(members, device=scores.device)
            scores[rows] = processor(input_ids[rows], scores[rows])
        return scores


class GlossaryForce(LogitsProcessor):
    """Each row's glossary translations (those written fewer times than due, as whole words):
    where the row's last tokens are a proper prefix of one (the longest such prefix; the first
    entry on a tie), only its next token stays possible; otherwise, where the row has just written
    one that was due, the tokens that would continue its last word are masked (it ends a word),
    and each due one's first token gets ``weight``. What each row has written is followed step by
    step (``RowTokens``, ``WordCount``), and the prefixes are looked for only where the row's last
    token is inside some translation."""

    def __init__(
        self,
        rows: Mapping[int, Glossary] | Sequence[Glossary],
        seams: Seams,
        weight: float = GLOSSARY_WEIGHT,
        order: Sequence[int] | None = None,
    ) -> None:
        """``rows``: each row's translations by row id (a sequence: ids 0, 1, ...); ``order``: the
        ids in the batch's order (model/stages/decoder.py ``ByRow``)."""
        self.rows = ByRow(rows, order)
        self._rows = self.rows.values
        self._seams = seams
        self._weight = weight
        self._written = RowTokens()
        self._counts: list[list[WordCount]] = []
        #: per row, every token of its translations but their last: the tokens a prefix can end on
        self._inner = [frozenset(t for ids, _, _ in entries for t in ids[:-1]) for entries in self._rows]

    def reorder(self, order: Sequence[int]) -> None:
        """The batch's rows are now these ids (rows joined or left): what each has written is read
        afresh from the next step's input."""
        self.rows.reorder(order)
        self._rows, self._written = self.rows.values, RowTokens()
        self._inner = [frozenset(t for ids, _, _ in entries for t in ids[:-1]) for entries in self._rows]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._written.update(input_ids):
            self._counts = [[WordCount(ids, last) for ids, _, last in entries] for entries in self._rows]
        for r, entries in enumerate(self._rows):
            if not entries:
                continue
            written = self._written.rows[r]
            due, ended = [], set()
            for (ids, times, last), count in zip(entries, self._counts[r], strict=True):
                n, ends_row = count.update(written, self._seams)
                if n < times:
                    due.append(ids)
                if ends_row and n <= times:  # written just now, and it was due
                    ended.add(last)
            forced = next_forced(written, due) if due and written[-1] in self._inner[r] else None
            if forced is not None:
                kept = scores[r, forced].clone()
                scores[r] = float("-inf")
                scores[r, forced] = kept
                continue
            for last in ended:
                scores[r, self._seams.continuing(last, scores.shape[-1], scores.device)] = float("-inf")
            if due:  # each distinct first token once, in one indexed add
                scores[r, list(dict.fromkeys(ids[0] for ids in due))] += self._weight
        return scores


def next_forced(written: Sequence[int], translations: Sequence[tuple[int, ...]]) -> int | None:
    """The token that continues a translation ``written`` ends inside (the longest match), if any."""
    best: tuple[int, int] | None = None  # (matched length, next token)
    for ids in translations:
        for k in range(len(ids) - 1, 0, -1):
            if (best is None or k > best[0]) and k <= len(written) and tuple(written[-k:]) == ids[:k]:
                best = (k, ids[k])
                break
    return None if best is None else best[1]


def _prefixes(bias: Bias) -> list[list[list[int] | float]]:
    """Every prefix of every phrase, with its weight (the largest where phrases share one)."""
    out: dict[tuple[int, ...], float] = {}
    for ids, weight, _, _ in bias:
        for n in range(1, len(ids) + 1):
            out[ids[:n]] = max(out.get(ids[:n], 0.0), weight)
    return [[list(ids), w] for ids, w in sorted(out.items())]


def _count(written: list[int], phrase: tuple[int, ...], last: str, seams: Seams) -> int:
    """Times ``written`` holds ``phrase`` as a whole word (``WordCount`` on the whole row at
    once; ``last`` is the phrase's last character)."""
    return WordCount(phrase, last).update(written, seams)[0]
