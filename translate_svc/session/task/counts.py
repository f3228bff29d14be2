"""A request's lists counted against the server's limits before any element is looked at (a list
over its limit costs no more than its count), with the messages that say what to send instead.
Pure; any thread."""

from __future__ import annotations

from collections.abc import Callable

from translate_svc.errors import InvalidInput, shown
from translate_svc.settings import LimitsSettings

#: how a candidate list's limit message ends: an empty list is allowed
ANY_CANDIDATE = " (or none: any language the identifier can pick)"
#: the most languages a conversation has (each segment is identified among them and decoded into
#: each: the cost of a request with this many targets)
MAX_CONVERSATION_LANGUAGES = 4


def check_counts(
    limits: LimitsSettings,
    *,
    texts: int = 0,
    targets: int = 0,
    candidates: int = 0,
    terms: int = 0,
    terms_are: str = "terms",
    glossary: int = 0,
    conversation: int = 0,
) -> None:
    """A request's lists counted against their limits, with the messages the checks of their
    values give. The doors call this with the wire's counts (``len(msg.terms)``; for Riva's
    comma-separated ``dnt_phrases`` an upper bound, its commas counted) before any element is
    converted: a list over its limit costs no more than its count (security finding F3). ``terms_are``:
    what the terms are called on the caller's wire. ``glossary``: the glossary entries (TRANSLATE
    terms), counted apart (``max_glossary_entries``); ``terms`` counts the others. A door counts a
    list's kinds only when the whole list is within both limits together (``split_term_counts``)."""
    if texts > limits.max_texts:
        raise InvalidInput(
            f"{texts} texts: send at most {limits.max_texts} per request (ServerLimits.max_texts); "
            "split them over several calls"
        )
    check_count("target languages", targets, limits.max_target_languages)
    check_count("candidate languages", candidates, limits.max_candidate_languages, ANY_CANDIDATE)
    check_count("conversation languages", conversation, conversation_bound(limits))
    if terms > limits.max_terms:
        raise InvalidInput(
            f"{terms} {terms_are} sent; this server allows at most {limits.max_terms} per request "
            "(ServerLimits.max_terms): keep the names and jargon that matter most (glossary entries, "
            f"TRANSLATE terms, count apart: at most {limits.max_glossary_entries}, ServerLimits.max_glossary_entries)"
        )
    if glossary > limits.max_glossary_entries:
        raise InvalidInput(
            f"{glossary} glossary entries (TRANSLATE terms) sent; this server allows at most "
            f"{limits.max_glossary_entries} per request (ServerLimits.max_glossary_entries): keep the "
            "entries the speech is likely to say"
        )


def conversation_bound(limits: LimitsSettings) -> int:
    """The most languages a conversation may have on this server: ``MAX_CONVERSATION_LANGUAGES``,
    and no more than the identifier's candidates or a request's targets (``max_candidate_languages``,
    ``max_target_languages``: a conversation's segment is identified among all its languages and
    decodes a row in each)."""
    return min(MAX_CONVERSATION_LANGUAGES, limits.max_candidate_languages, limits.max_target_languages)


def split_term_counts(limits: LimitsSettings, total: int, glossary: Callable[[], int]) -> tuple[int, int]:
    """(other terms, glossary entries) of a wire list of ``total`` terms for ``check_counts``: its
    kinds are looked at (``glossary()``) only when ``total`` is within both limits together, so a
    list over them costs no more than its count."""
    if total > limits.max_terms + limits.max_glossary_entries:
        return total, 0
    n = glossary()
    return total - n, n


def check_count(what: str, n: int, most: int, hint: str = "") -> None:
    if n > most:
        raise InvalidInput(f"{n} {what} requested; this server allows at most {most} per request{hint}")


def check_list(field: str, what: str, values: list[str], most: int, hint: str = "") -> None:
    """At most ``most`` values (counted first: nothing else is looked at in a longer list), none twice."""
    check_count(what, len(values), most, hint)
    dup = sorted({v for v in values if values.count(v) > 1})
    if dup:
        raise InvalidInput(f"{field} lists {shown(dup[0])} more than once")


def examples(codes: frozenset[str]) -> str:
    return ", ".join(sorted(codes)[:3])
