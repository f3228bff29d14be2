"""Language tags (BCP-47, ISO 639-1/3) -> the server's SeamlessM4T codes, and back for reporting.

LiveKit speaks BCP-47 (``"es"``, ``"pt-BR"``); translate_svc speaks the model's ISO 639-3 codes
(``"spa"``, ``"por"``, ``"cmn_Hant"``). ``translate_svc.languages`` (pure: ``langcodes`` only) makes
the candidates; the server's own ``languages()`` answer picks the one it has and says whether it
can hear or speak it.
"""

from __future__ import annotations

from typing import Literal

from translate_svc.client import Languages
from translate_svc.languages import bcp47_candidates, guess_model_code


class UnsupportedLanguageError(ValueError):
    """The server has no such language, or cannot hear (source) or speak (target) it."""


def resolve(tag: str, languages: Languages | None, *, role: Literal["source", "target"]) -> str:
    """``tag`` as the server's code. Without ``languages`` (not fetched yet): the best guess."""
    value = tag.strip()
    if languages is None:
        return str(guess_model_code(value))
    by_code = {lang.code: lang for lang in languages.languages}
    if value in by_code:
        found = by_code[value]
    else:
        matches = [c for c in bcp47_candidates(value) if c in by_code]
        if not matches:
            have = ", ".join(sorted(by_code))
            raise UnsupportedLanguageError(f"{tag!r}: the translate_svc server has no such language (it has {have})")
        found = by_code[matches[0]]
    if role == "target" and not found.speech_output:
        raise UnsupportedLanguageError(
            f"{tag!r} ({found.code}): the translate_svc server translates into it as text only, not speech"
        )
    if role == "source" and not found.speech_input:
        raise UnsupportedLanguageError(f"{tag!r} ({found.code}): the translate_svc server cannot hear speech in it")
    return str(found.code)
