"""A request's terms checked: BOOST and KEEP phrases and glossary entries (TRANSLATE terms), each
field's own range, no phrase twice, each entry for a target the request translates into, and a
KEEP or glossary phrase only where the spoken language can be known. Pure; any thread."""

from __future__ import annotations

from collections.abc import Sequence

from translate_svc import words
from translate_svc.errors import InvalidInput, shown
from translate_svc.session.task.counts import check_counts, examples
from translate_svc.settings import LimitsSettings
from translate_svc.types import DEFAULT_TERM_WEIGHT, MAX_TERM_WEIGHT, ModelCard, Term


def check_terms(terms: Sequence[Term], limits: LimitsSettings) -> None:
    glossary = sum(t.glossary for t in terms)
    check_counts(limits, terms=len(terms) - glossary, glossary=glossary)
    seen: set[str] = set()
    for n, t in enumerate(terms):
        phrase = t.phrase
        if t.glossary:
            _check_entry(n, t, limits)
        if not phrase.strip():
            raise InvalidInput(f"terms[{n}].phrase is empty: give the words to boost or keep")
        if len(phrase) > limits.max_term_chars:
            raise InvalidInput(
                f"terms[{n}].phrase is {len(phrase)} characters; at most {limits.max_term_chars} "
                "(ServerLimits.max_term_chars): a term is a name or a few words, not a sentence"
            )
        if not phrase.isprintable():
            raise InvalidInput(f"terms[{n}].phrase {shown(phrase)} holds control characters: send plain text")
        if t.boost and not 0 < t.weight <= MAX_TERM_WEIGHT:
            raise InvalidInput(
                f"terms[{n}].weight is {t.weight:g}: a BOOST weight is in (0, {MAX_TERM_WEIGHT:g}] "
                f"(0 or unset means {DEFAULT_TERM_WEIGHT:g})"
            )
        key = words.key(phrase, ignore_case=True)  # two phrases that match the same words (words.py)
        if t.glossary:  # one entry per phrase and target; a BOOST or KEEP term may name it too
            key = f"{t.target_language}\0{words.key(phrase, ignore_case=t.ignore_case)}"
        if key in seen:
            raise InvalidInput(
                f"terms lists {shown(phrase)} more than once"
                + (f" for target {shown(t.target_language)}" if t.glossary else "")
            )
        seen.add(key)


def _check_entry(n: int, t: Term, limits: LimitsSettings) -> None:
    """A glossary entry's own fields (its target checked against the request's in
    ``check_glossary``)."""
    if t.keep:
        raise InvalidInput(f"terms[{n}] is both KEEP and TRANSLATE: send one kind")
    if not t.phrase.strip():
        raise InvalidInput(f"terms[{n}].phrase is empty: give the source words the glossary entry translates")
    if not t.translation.strip():
        raise InvalidInput(
            f"terms[{n}].translation is empty: a TRANSLATE term needs the target phrase to say for "
            f"{shown(t.phrase)} (for a phrase to keep as it is, use KEEP)"
        )
    if len(t.translation) > limits.max_term_chars:
        raise InvalidInput(
            f"terms[{n}].translation is {len(t.translation)} characters; at most {limits.max_term_chars} "
            "(ServerLimits.max_term_chars)"
        )
    if not t.translation.isprintable():
        raise InvalidInput(f"terms[{n}].translation {shown(t.translation)} holds control characters: send plain text")
    if not t.target_language:
        raise InvalidInput(
            f"terms[{n}].target_language is empty: a TRANSLATE term is for one target language (a model "
            'code of target_languages, e.g. "spa")'
        )
    if t.weight != DEFAULT_TERM_WEIGHT:
        raise InvalidInput(f"terms[{n}].weight is {t.weight:g}: a TRANSLATE term takes no weight (leave it 0)")


def check_glossary(card: ModelCard, terms: Sequence[Term], source: str, targets: Sequence[str]) -> None:
    """Each glossary entry is for a language the request translates into (a known code, one of
    ``targets``) other than the source language: an entry for a language not asked for could not
    act, and is refused rather than ignored."""
    for n, t in enumerate(terms):
        if not t.glossary:
            continue
        lang = t.target_language
        if lang not in card.text_codes:
            raise InvalidInput(
                f"terms[{n}].target_language {shown(lang)} is not a language of this server: use a model "
                f"code from ListLanguages (e.g. {examples(card.text_codes)})"
            )
        if lang not in targets:
            raise InvalidInput(
                f"terms[{n}].target_language is {shown(lang)}, not among target_languages "
                f"({', '.join(shown(t) for t in targets) or 'none'}): add it to target_languages, or drop "
                "the entry (a stream's update may not drop a language its glossary entries are for)"
            )
        if lang == source:
            raise InvalidInput(
                f"terms[{n}].target_language {shown(lang)} is the source language: a glossary entry "
                "translates into another language (use KEEP or BOOST for the source's own words)"
            )


def check_keep(
    card: ModelCard, terms: Sequence[Term], source: str, targets: Sequence[str], detect: list[str] | None
) -> None:
    """A KEEP term acts where the segment's transcript holds its phrase, so the server decodes the
    transcript for it, in the source language, or in the one detected. Without either, and no
    identifier to detect it, the term could not act: refused, never accepted and ignored."""
    keep = next((n for n, t in enumerate(terms) if t.keep or t.glossary), None)
    if keep is None or not targets or source or detect is not None or card.identifier is not None:
        return
    if terms[keep].glossary:
        raise InvalidInput(
            f"terms[{keep}] is TRANSLATE and source_language is empty: a glossary phrase is translated "
            "where the speech says it, which needs the spoken language, and this server has no language "
            'identifier to find it: set source_language (e.g. "eng")'
        )
    raise InvalidInput(
        f"terms[{keep}] is KEEP and source_language is empty: a kept phrase is carried where the speech "
        "says it, which needs the spoken language, and this server has no language identifier to find "
        'it: set source_language (e.g. "eng")'
    )
