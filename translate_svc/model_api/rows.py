"""A batch's decode rows, planned in one place.

The text decoder runs one **row** per (input, language): every target of a segment, a text or a
simultaneous step, and the transcript of a segment or step in the language it was spoken (or
detected) in. ``plan_rows`` turns a batch of ``ModelInput`` (and the languages detected for those
that asked) into a ``RowPlan``: each row's id, its input, language, role, forced prefix, the
seconds its token cap is measured by, its terms, and the pass it is decoded in. The scheduler
counts a batch's rows with ``row_count``; the model's runners execute a plan (model/runner.py with
``generate`` in model/stages/decoder.py, or our own loop in model/decode/); no other code builds rows.

The rules, as the runner has always applied them:

- a **segment**: one row per distinct target, in order, then its transcript's row unless the
  transcript is in a target's language (then that row is both);
- a **conversation's segment** (``ModelInput.conversation``): one row per language of the
  conversation, in order; the detected language's row is its transcript (heard) and not a
  target, the others are its translations: as many rows whichever language is detected;
- a **text**: one row per distinct target, no transcript;
- a **simultaneous step**: one row per target with its committed tokens as a forced prefix, then
  the transcript's own row, unforced, even where a target has its language;
- a row in the language its input was spoken in is **heard**: the terms treat it as the
  transcript (BOOST and KEEP phrases as themselves, no glossary);
- where an input's terms act only on what was said (KEEP or glossary entries, ``needs_source``)
  and it has targets in other languages, its heard rows are decoded in a **first pass**, so the
  translation rows (the second pass) know what was said.

Plain values only (no torch), so the engine and its tests read it without the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from translate_svc.model_api.requests import DETECTED, ModelInput, WorkKind
from translate_svc.model_api.turns import choose_language
from translate_svc.types import Term


def needs_source(terms: Sequence[Term]) -> bool:
    """Terms that act on a translation only where the source says their phrase (KEEP, glossary)."""
    return any(t.keep or t.glossary for t in terms)


@dataclass(frozen=True)
class DecodeRow:
    """One row of the text decoder."""

    #: unique within its plan (``plan_rows``' ``first_id`` on): what logits processors key a row's
    #: state by, so rows may join and leave a running decode
    id: int
    #: the index of its input in the batch
    item: int
    #: the model code of the language it is decoded in (its language token)
    language: str
    #: a translation its input asked for (its text and speech are the result's)
    target: bool
    #: its input's transcript (a segment's may be a target's row too)
    transcript: bool
    #: in the language its input was spoken in (``RowPlan.spoken``): the terms treat it as the transcript
    heard: bool
    #: tokens forced at its start (a simultaneous step's committed tokens); empty: none
    prefix: tuple[int, ...] = ()
    #: its input's length in seconds (``ModelInput.input_seconds``): what its token cap is measured by
    seconds: float = 0.0
    #: its input's terms (``ModelInput.terms``)
    terms: tuple[Term, ...] = ()
    #: decoded in the first pass (a heard row whose translations need what it says)
    first: bool = False


@dataclass(frozen=True)
class RowPlan:
    """A batch's rows, in decode order, and per input the language its transcript is in."""

    rows: tuple[DecodeRow, ...]
    #: per input, its transcript's language (a detected one resolved); None: no transcript
    spoken: tuple[str | None, ...]

    def __len__(self) -> int:
        return len(self.rows)

    def of(self, item: int) -> list[tuple[int, DecodeRow]]:
        """An input's rows with their index in the plan."""
        return [(r, row) for r, row in enumerate(self.rows) if row.item == item]

    @property
    def passes(self) -> tuple[tuple[int, ...], ...]:
        """The rows' indices per decode pass, in order: the first pass (if any), then the rest."""
        first = tuple(r for r, row in enumerate(self.rows) if row.first)
        rest = tuple(r for r, row in enumerate(self.rows) if not row.first)
        return tuple(p for p in (first, rest) if p)

    @property
    def terms(self) -> bool:
        """Whether any row has terms (without, one plain decode serves every row)."""
        return any(row.terms for row in self.rows)


def spoken_language(item: ModelInput, detected: Mapping[str, float] | None) -> str | None:
    """The language an input's transcript is decoded in: its own, or the one chosen from the
    detected scores (the best, or a conversation's previous turn's: ``turns.choose_language``)."""
    lang = item.transcript_language
    if lang == DETECTED:
        if not detected:
            raise ValueError("a transcript in the detected language, with nothing detected")
        return choose_language(detected, item.prior)
    return lang


def _languages(item: ModelInput, spoken: str | None) -> list[tuple[str, bool, bool, tuple[int, ...]]]:
    """An input's rows as (language, target, transcript, prefix), in order."""
    if item.kind is WorkKind.RETRANSLATION:
        assert item.simul is not None
        rows = [(t.language, True, False, t.committed) for t in item.simul.targets]
        return rows + ([(spoken, False, True, ())] if spoken is not None else [])
    langs = list(dict.fromkeys(item.targets))
    if item.kind is WorkKind.SEGMENT and spoken is not None and spoken not in langs:
        langs.append(spoken)
    targets = item.translated(spoken)
    return [(lang, lang in targets, lang == spoken, ()) for lang in langs]


def plan_rows(
    inputs: Sequence[ModelInput],
    detected: Mapping[int, Mapping[str, float]] | None = None,
    *,
    first_id: int = 0,
) -> RowPlan:
    """The rows of a batch (see the module docstring). ``detected``: per input index, the scores of
    the languages detected for inputs whose transcript is in the detected language."""
    detected = detected or {}
    rows: list[DecodeRow] = []
    spoken_all: list[str | None] = []
    for k, item in enumerate(inputs):
        spoken = None if item.kind is WorkKind.TEXT else spoken_language(item, detected.get(k))
        spoken_all.append(spoken)
        first_pass = needs_source(item.terms)
        for lang, target, transcript, prefix in _languages(item, spoken):
            heard = lang == spoken
            others = bool(set(item.targets) - {lang})
            rows.append(
                DecodeRow(
                    id=first_id + len(rows),
                    item=k,
                    language=lang,
                    target=target,
                    transcript=transcript,
                    heard=heard,
                    prefix=prefix,
                    seconds=item.input_seconds,
                    terms=item.terms,
                    first=heard and first_pass and others,
                )
            )
    return RowPlan(tuple(rows), tuple(spoken_all))


def with_prefixes(plan: RowPlan, prefixes: Mapping[int, tuple[int, ...]]) -> RowPlan:
    """``plan`` with the rows of the inputs ``prefixes`` names (by input index) forced to start
    with their tokens (texts spoken as written: ``SourceText.as_written``)."""
    if not prefixes:
        return plan
    rows = tuple(dataclasses.replace(r, prefix=prefixes[r.item]) if r.item in prefixes else r for r in plan.rows)
    return dataclasses.replace(plan, rows=rows)


def row_count(item: ModelInput) -> int:
    """Text decoder rows an input takes (``ModelInput.text_rows``: the rule lives with the input)."""
    return item.text_rows


def bare_rows(languages: Sequence[str], prefixes: Sequence[tuple[int, ...]], seconds: Sequence[float]) -> RowPlan:
    """Rows of encoder outputs handed in directly, one input each (no request: a step's decode of
    given rows, tools and tests): row ``r`` in ``languages[r]`` with its forced prefix, a target."""
    rows = tuple(
        DecodeRow(id=r, item=r, language=lang, target=True, transcript=False, heard=False, prefix=p, seconds=s)
        for r, (lang, p, s) in enumerate(zip(languages, prefixes, seconds, strict=True))
    )
    return RowPlan(rows, (None,) * len(rows))
