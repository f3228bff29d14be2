"""Our term-list extension of a realtime session, ``x_terms``: names and jargon to get
right, as the gRPC door's ``terms`` (docs/api.md, "Term lists"), in JSON::

    "x_terms": [{"phrase": "Acme", "kind": "keep"},
                {"phrase": "Acme Cloud", "kind": "translate", "translation": "Nube Acme",
                 "target_language": "es", "ignore_case": false},
                {"phrase": "Kubernetes", "weight": 5}]

``kind`` is ``"boost"`` (the default; ``weight`` in (0, 10], absent, null or 0: 3), ``"keep"`` or
``"translate"`` (a glossary entry: ``translation`` into ``target_language``, one of the session's
output languages as the client named them). Counted, then converted, then checked by the stream
core's own checks (``session.task``: the same limits and messages), each refusal a ``ParamError``
whose ``param`` names the item (``session.x_terms[2].target_language``) and whose message names it
as ``x_terms[2]``. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from translate_svc.errors import InvalidInput, shown
from translate_svc.languages import guess_model_code
from translate_svc.session.task.counts import check_counts, split_term_counts
from translate_svc.session.task.terms import check_glossary, check_terms
from translate_svc.settings import LimitsSettings
from translate_svc.transport.openai.wire import ParamError
from translate_svc.types import DEFAULT_TERM_WEIGHT, ModelCard, Term

PARAM = "session.x_terms"
KINDS = ("boost", "keep", "translate")
FIELDS = frozenset({"phrase", "kind", "weight", "translation", "target_language", "ignore_case"})
#: a glossary entry's target tag, as ``audio.output.languages``' tags
MAX_TAG_CHARS = 35
#: a message of ``session.task`` that names one item (``terms[3].phrase …``)
_ITEM = re.compile(r"terms\[(\d+)\](?:\.(\w+))?")
_T = TypeVar("_T")


@dataclass(frozen=True)
class SessionTerms:
    """A session's terms (the stream core's) and each one's target as the client named it (a
    glossary entry's tag; "" for the others)."""

    terms: tuple[Term, ...] = ()
    tags: tuple[str, ...] = ()

    def wire(self) -> list[dict[str, Any]]:
        """As ``x_terms`` (every default filled in): what ``session.updated`` echoes, and what a
        drained session's ``x_resume`` carries (``parse`` gives the same terms back)."""
        out: list[dict[str, Any]] = []
        for t, tag in zip(self.terms, self.tags, strict=True):
            if t.glossary:
                item = {"phrase": t.phrase, "kind": "translate", "translation": t.translation}
                out.append({**item, "target_language": tag, "ignore_case": t.ignore_case})
            else:
                out.append({"phrase": t.phrase, "kind": "keep"} if t.keep else {"phrase": t.phrase, "weight": t.weight})
        return out


def parse(value: Any, limits: LimitsSettings, param: str = PARAM) -> SessionTerms:
    """``x_terms`` as the stream core's terms, counted before any item is looked at, each item's
    fields checked as the gRPC door's are (``ParamError``). Null: none."""
    if value is None:
        return SessionTerms()
    if not isinstance(value, list):
        raise ParamError(
            'x_terms must be a list of terms such as [{"phrase": "Acme", "kind": "keep"}] (or null: none)', param
        )
    others, glossary = split_term_counts(
        limits, len(value), lambda: sum(isinstance(v, dict) and v.get("kind") == "translate" for v in value)
    )
    named(param, lambda: check_counts(limits, terms=others, glossary=glossary, terms_are="x_terms items"))
    items = [_term(n, item, f"{param}[{n}]") for n, item in enumerate(value)]
    out = SessionTerms(tuple(t for t, _ in items), tuple(tag for _, tag in items))
    named(param, lambda: check_terms(out.terms, limits))
    return out


def check_targets(st: SessionTerms, targets: Sequence[str], tags: Sequence[str], param: str = PARAM) -> None:
    """Each glossary entry is for one of the session's output languages (``targets``, the model
    codes of ``tags``): one for a language not translated into could not act (refused, also when
    an update of the output languages would drop it)."""
    for n, (t, tag) in enumerate(zip(st.terms, st.tags, strict=True)):
        if t.glossary and t.target_language not in targets:
            raise ParamError(
                f"x_terms[{n}].target_language is {shown(tag)}, not one of this session's output languages "
                f"({', '.join(shown(t) for t in tags) or 'none'}): add it to audio.output.languages, or drop "
                "the entry",
                f"{param}[{n}].target_language",
            )


def changed(session: dict[str, Any], current: SessionTerms, limits: LimitsSettings) -> ParamError | None:
    """Why a running session's update cannot be used for its ``x_terms`` (None: it names none, or
    the same ones): the terms are fixed once the stream runs, as the gRPC door's (its ``update``
    changes targets and voice only)."""
    if "x_terms" not in session:
        return None
    try:
        asked = parse(session["x_terms"], limits)
    except ParamError as e:
        return e
    if asked.terms == current.terms:
        return None
    return ParamError(
        "x_terms are fixed once the session runs (its first session.update with an output language): "
        "this update was not used; open a new session for other terms",
        PARAM,
    )


def dropped(st: SessionTerms, targets: Sequence[str], tags: Sequence[str]) -> ParamError | None:
    """Why a running session's output languages cannot become ``tags`` (``check_targets``), or None."""
    try:
        check_targets(st, targets, tags)
    except ParamError as e:
        return e
    return None


def check_session(
    st: SessionTerms,
    card: ModelCard | None,
    source: str,
    detect: tuple[str, ...] | None,
    targets: Sequence[str],
    tags: Sequence[str],
    param: str = PARAM,
) -> None:
    """The terms against the session they start with, before its config goes to the stream core
    (which checks them again: a session opened before the model was loaded, ``card`` None, is
    checked there only): glossary targets among the output languages; a KEEP term or an entry,
    which act where the speech says their phrase, need the spoken language (given, detected on
    request, or found by the server's identifier)."""
    check_targets(st, targets, tags, param)
    if card is None:
        return
    n = next((n for n, t in enumerate(st.terms) if t.keep or t.glossary), None)
    if n is not None and not source and detect is None and card.identifier is None:
        kind = "keep" if st.terms[n].keep else "translate"
        raise ParamError(
            f"x_terms[{n}] is {kind!r} and the session has no spoken language: a {kind} term acts where the "
            "speech says its phrase, which needs the spoken language, and this server has no language "
            'identifier to find it: set audio.input.language (e.g. "en")',
            f"{param}[{n}]",
        )
    named(param, lambda: check_glossary(card, st.terms, source, targets))


def named(param: str, check: Callable[[], _T]) -> _T:
    """``check()``, a refusal of ``session.task`` as a ``ParamError`` naming the item it names."""
    try:
        return check()
    except ParamError:
        raise
    except InvalidInput as e:
        raise as_param(e, param) from None


def as_param(e: InvalidInput, param: str = PARAM) -> ParamError:
    """``session.task``'s refusal of a term list as the door's: ``terms[3]`` -> ``x_terms[3]``,
    ``param`` the item (and its field) it names, else the list."""
    m = _ITEM.match(e.message)
    if m is None:
        return ParamError(e.message.replace("terms lists", "x_terms lists", 1), param)
    return ParamError("x_" + e.message, f"{param}[{m[1]}]" + (f".{m[2]}" if m[2] else ""))


def _term(n: int, item: Any, param: str) -> tuple[Term, str]:
    """One item as a ``Term`` and its target tag; its own fields checked (the values' ranges:
    ``check_terms``)."""
    if not isinstance(item, dict):
        raise ParamError(f'x_terms[{n}] must be an object such as {{"phrase": "Acme", "kind": "keep"}}', param)
    for key in item:
        if key not in FIELDS:
            raise ParamError(
                f"x_terms[{n}] has a field this server does not know: {shown(key, 40)} (known: "
                f"{', '.join(sorted(FIELDS))})",
                f"{param}.{key}" if isinstance(key, str) and len(key) <= 40 else param,
            )
    phrase = item.get("phrase")
    if not isinstance(phrase, str):
        raise ParamError(
            f"x_terms[{n}].phrase must be a string: the words to boost, keep or translate", f"{param}.phrase"
        )
    kind = item.get("kind", "boost")
    if kind not in KINDS:
        shown_kind = shown(kind, 20) if isinstance(kind, str) else "not a string"
        raise ParamError(f'x_terms[{n}].kind is {shown_kind}: use "boost", "keep" or "translate"', f"{param}.kind")
    weight = item.get("weight")
    if weight is not None and kind != "boost":
        raise ParamError(
            f"x_terms[{n}].weight is set on a {kind!r} term: only a boost term takes a weight (leave it out)",
            f"{param}.weight",
        )
    if weight is not None and (not isinstance(weight, int | float) or isinstance(weight, bool)):
        raise ParamError(f"x_terms[{n}].weight must be a number in (0, 10] (absent: 3)", f"{param}.weight")
    if kind != "translate":
        for field in ("translation", "target_language", "ignore_case"):
            if item.get(field) not in (None, "", False):
                raise ParamError(
                    f'x_terms[{n}].{field} is set on a {kind!r} term: it belongs to a glossary entry, set "kind": '
                    '"translate" (or leave it out)',
                    f"{param}.{field}",
                )
        return Term(phrase, kind == "keep", float(weight or DEFAULT_TERM_WEIGHT)), ""
    translation, tag, ignore_case = (
        item.get("translation", ""),
        item.get("target_language", ""),
        item.get("ignore_case"),
    )
    if not isinstance(translation, str):
        raise ParamError(f"x_terms[{n}].translation must be a string: the target phrase", f"{param}.translation")
    if not isinstance(tag, str) or len(tag) > MAX_TAG_CHARS:
        raise ParamError(
            f'x_terms[{n}].target_language must be one of the session\'s output languages, as named there (e.g. "es")',
            f"{param}.target_language",
        )
    if ignore_case is not None and not isinstance(ignore_case, bool):
        raise ParamError(f"x_terms[{n}].ignore_case must be true or false", f"{param}.ignore_case")
    code = guess_model_code(tag) if tag.strip() else ""
    return Term(
        phrase, glossary=True, translation=translation, target_language=code, ignore_case=bool(ignore_case)
    ), tag
