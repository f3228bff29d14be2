"""Language tags -> the model's codes, for every door that takes tags: the CLI (``--from es``) and
the OpenAI-compatible door (``audio.output.language: "es"``). Pure (no I/O).

SeamlessM4T names languages by ISO 639-3 code, with a script suffix where it has one (``spa``,
``cmn``, ``cmn_Hant``). Tags are parsed and normalised by ``langcodes`` (deprecated tags, likely
scripts: ``zh-TW`` is written in Hant, ``iw`` is ``he``), mapped to ISO 639-3 with its
``to_alpha3``, and a macrolanguage (``zh`` -> ``zho``, ``ar`` -> ``ara``) is replaced by the
individual language the model uses (``cmn``, ``arb``).
"""

from __future__ import annotations

import re

import langcodes

#: ISO 639-3 macrolanguages (and codes langcodes normalises to) -> the individual language
#: SeamlessM4T v2 has. Only languages of the model; everything else maps to itself.
MACRO_TO_MODEL: dict[str, str] = {
    "zho": "cmn",  # Chinese -> Mandarin (zh-Hant -> cmn_Hant through the script)
    "ara": "arb",  # Arabic -> Modern Standard Arabic
    "fas": "pes",  # Persian -> Western Persian
    "msa": "zsm",  # Malay -> Standard Malay
    "swa": "swh",  # Swahili -> Swahili (individual)
    "nor": "nob",  # Norwegian -> Bokmål
    "uzb": "uzn",  # Uzbek -> Northern Uzbek
    "mon": "khk",  # Mongolian -> Halh Mongolian
    "nep": "npi",  # Nepali (macro) -> Nepali (individual)
    "ori": "ory",  # Oriya (macro) -> Odia
    "pus": "pbt",  # Pashto -> Southern Pashto
    "orm": "gaz",  # Oromo -> West Central Oromo
    "aze": "azj",  # Azerbaijani -> North Azerbaijani
    "ful": "fuv",  # Fulah -> Nigerian Fulfulde
    "lav": "lvs",  # Latvian -> Standard Latvian
    "ekk": "est",  # Standard Estonian -> Estonian (the model's code)
    "fil": "tgl",  # langcodes writes Tagalog (tl) as Filipino; the model says tgl
}
_MODEL_CODE = re.compile(r"^[a-z]{3}(_[A-Z][a-z]{3})?$")
_MODEL_CODE = re.compile(r"^[a-z]{3}(_[A-Z][a-z]{3})?$")


def bcp47_candidates(value: str) -> list[str]:
    """Model codes ``value`` can mean as a BCP-47 tag, most specific first (``zh-TW`` ->
    ``["cmn_Hant", "cmn"]``); empty when it is no language tag at all."""
    try:
        tag = langcodes.Language.get(value.strip().replace("_", "-"))
        if not tag.language:
            return []
        alpha3 = tag.to_alpha3()
    except (LookupError, ValueError):  # LanguageTagError is a ValueError
        return []
    code = MACRO_TO_MODEL.get(alpha3, alpha3)
    script = tag.script
    if script is None:
        try:
            script = tag.maximize().script
        except (LookupError, ValueError):
            script = None
    return [f"{code}_{script}", code] if script else [code]


def guess_model_code(value: str) -> str:
    """``value`` as a model code without asking the server (``--no-lang-check``, or a token that
    may not call ListLanguages): model-code-shaped values and anything that is no BCP-47 tag are
    sent as given, so the server's own message names them."""
    v = value.strip()
    if _MODEL_CODE.match(v):
        return v
    candidates = bcp47_candidates(v)
    if not candidates:
        return v
    if len(candidates) == 2 and candidates[0] == "cmn_Hant":
        return candidates[0]  # the one script variant SeamlessM4T v2 has
    return candidates[-1]
