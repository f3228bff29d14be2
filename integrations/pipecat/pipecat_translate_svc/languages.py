"""Pipecat's languages <-> SeamlessM4T's codes (pure: no I/O).

Pipecat names languages with its ``Language`` enum, whose values are BCP-47 tags (``"es"``,
``"en-US"``, ``"zh-TW"``) and a few ISO 639-3 codes (``"cmn"``, ``"yue"``, ``"fil"``).
translate_svc's server takes SeamlessM4T's codes: ISO 639-3, with a script suffix where the model
has one (``"spa"``, ``"cmn"``, ``"cmn_Hant"``). The mapping is the project's own
(``translate_svc.languages``: ``langcodes`` normalises the tag, macrolanguages become the
individual language the model has), so the CLI, the OpenAI-compatible door and this service agree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import langcodes
from pipecat.transcriptions.language import Language

from translate_svc.client import Term
from translate_svc.languages import MACRO_TO_MODEL, bcp47_candidates, guess_model_code

#: model code -> the macrolanguage pipecat names it by (``cmn`` -> ``zho`` -> ``zh``)
_MODEL_TO_MACRO = {model: macro for macro, model in MACRO_TO_MODEL.items() if macro not in ("ekk", "fil")}
#: model codes whose pipecat name is not their own tag: Mandarin is pipecat's "zh" (its "cmn" is
#: rarely what a service expects), and its enum has regions, not scripts
_PIPECAT_NAME = {"cmn": Language.ZH, "cmn_Hant": Language.ZH_TW}


def to_model_code(language: Language | str) -> str:
    """A pipecat ``Language``, a BCP-47 tag or a model code -> the model's code.

    ``Language.ES``, ``"es"``, ``"es-MX"`` and ``"spa"`` give ``"spa"``; ``"zh"`` gives ``"cmn"``,
    ``"zh-TW"`` ``"cmn_Hant"``, ``Language.FIL`` ``"tgl"``. A value that is no language tag is
    returned as given (stripped), so that the server's own error names it.
    """
    value = (language.value if isinstance(language, Language) else str(language)).strip()
    if not value:
        raise ValueError("an empty language code")
    candidates = bcp47_candidates(value)
    if candidates:
        # the one script variant SeamlessM4T v2 has; every other code goes without its script
        return candidates[0] if candidates[0] == "cmn_Hant" else candidates[-1]
    return guess_model_code(value)


def to_model_codes(languages: Language | str | Sequence[Language | str]) -> list[str]:
    """One language or several -> the model's codes, in order, without repeats."""
    items = [languages] if isinstance(languages, str) else list(languages)
    codes: list[str] = []
    for item in items:
        code = to_model_code(item)
        if code not in codes:
            codes.append(code)
    return codes


def to_model_terms(terms: Sequence[Term | str], targets: Sequence[str]) -> tuple[Term | str, ...]:
    """``terms`` with each glossary entry's ``target_language`` as the model's code (it may be
    named as the targets are: ``Language.ES``, ``"es"``, ``"spa"``). An entry is for one of
    ``targets`` (model codes; the server refuses any other): ``ValueError`` naming it otherwise."""
    out: list[Term | str] = []
    for i, t in enumerate(terms):
        if isinstance(t, Term) and t.glossary:
            if not t.target_language:
                raise ValueError(f"terms[{i}] ({t.phrase!r}) is a glossary entry: set its target_language")
            code = to_model_code(t.target_language)
            if code not in targets:
                raise ValueError(
                    f"terms[{i}] ({t.phrase!r}) is a glossary entry for {t.target_language!r} ({code}), "
                    f"which is not among the target languages ({', '.join(targets) or 'none'})"
                )
            t = dataclasses.replace(t, target_language=code)
        out.append(t)
    return tuple(out)


def to_pipecat_language(code: str) -> Language | str:
    """A model code (``"spa"``) -> pipecat's ``Language`` (``Language.ES``); a code pipecat has
    no name for is returned as given (frames' ``language`` fields take either)."""
    if code in _PIPECAT_NAME:
        return _PIPECAT_NAME[code]
    base, _, script = code.partition("_")
    tags: list[str] = []
    for alpha3 in (base, _MODEL_TO_MACRO.get(base)):  # the language itself, then its macrolanguage
        if alpha3 is None:
            continue
        try:
            short = langcodes.Language.get(alpha3).language or alpha3
        except (LookupError, ValueError):
            short = alpha3
        tags += [f"{short}-{script}", short] if script else [short]
    for tag in (*tags, base):
        try:
            return Language(tag)
        except ValueError:
            continue
    return code
