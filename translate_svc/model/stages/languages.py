"""Languages the loaded model supports, read from its generation config (never a fixed list)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from translate_svc.types import Language

# Display names for the ISO 639-3 (+ script) codes SeamlessM4T v2 uses. Only names: which
# languages exist, and what each can do, comes from the loaded model.
_NAMES = {
    "afr": "Afrikaans", "amh": "Amharic", "arb": "Modern Standard Arabic", "ary": "Moroccan Arabic",
    "arz": "Egyptian Arabic", "asm": "Assamese", "ast": "Asturian", "azj": "North Azerbaijani",
    "bel": "Belarusian", "ben": "Bengali", "bos": "Bosnian", "bul": "Bulgarian", "cat": "Catalan",
    "ceb": "Cebuano", "ces": "Czech", "ckb": "Central Kurdish", "cmn": "Mandarin Chinese",
    "cmn_Hant": "Mandarin Chinese (Traditional)", "cym": "Welsh", "dan": "Danish", "deu": "German",
    "ell": "Greek", "eng": "English", "est": "Estonian", "eus": "Basque", "fin": "Finnish",
    "fra": "French", "fuv": "Nigerian Fulfulde", "gaz": "West Central Oromo", "gle": "Irish",
    "glg": "Galician", "guj": "Gujarati", "heb": "Hebrew", "hin": "Hindi", "hrv": "Croatian",
    "hun": "Hungarian", "hye": "Armenian", "ibo": "Igbo", "ind": "Indonesian", "isl": "Icelandic",
    "ita": "Italian", "jav": "Javanese", "jpn": "Japanese", "kam": "Kamba", "kan": "Kannada",
    "kat": "Georgian", "kaz": "Kazakh", "kea": "Kabuverdianu", "khk": "Halh Mongolian",
    "khm": "Khmer", "kir": "Kyrgyz", "kor": "Korean", "lao": "Lao", "lit": "Lithuanian",
    "ltz": "Luxembourgish", "lug": "Ganda", "luo": "Luo", "lvs": "Standard Latvian",
    "mai": "Maithili", "mal": "Malayalam", "mar": "Marathi", "mkd": "Macedonian",
    "mlt": "Maltese", "mni": "Meitei", "mya": "Burmese", "nld": "Dutch",
    "nno": "Norwegian Nynorsk", "nob": "Norwegian Bokmål", "npi": "Nepali", "nya": "Nyanja",
    "oci": "Occitan", "ory": "Odia", "pan": "Punjabi", "pbt": "Southern Pashto",
    "pes": "Western Persian", "pol": "Polish", "por": "Portuguese", "ron": "Romanian",
    "rus": "Russian", "slk": "Slovak", "slv": "Slovenian", "sna": "Shona", "snd": "Sindhi",
    "som": "Somali", "spa": "Spanish", "srp": "Serbian", "swe": "Swedish", "swh": "Swahili",
    "tam": "Tamil", "tel": "Telugu", "tgk": "Tajik", "tgl": "Tagalog", "tha": "Thai",
    "tur": "Turkish", "ukr": "Ukrainian", "urd": "Urdu", "uzn": "Northern Uzbek",
    "vie": "Vietnamese", "xho": "Xhosa", "yor": "Yoruba", "yue": "Cantonese",
    "zlm": "Colloquial Malay", "zsm": "Standard Malay", "zul": "Zulu",
}  # fmt: skip


@dataclass(frozen=True)
class LanguageCatalog:
    """What the loaded checkpoint can do per language. Immutable; safe to share across threads.

    - text output: the language has a text-decoder language token;
    - speech output: it also has text-to-unit and vocoder language ids;
    - speech input: the speech encoder is language-agnostic, and the source language is only
      used to produce the transcript (ASR = decoding into the source language), so any
      language with text output can be named as the source.
    """

    text_codes: frozenset[str]
    speech_codes: frozenset[str]

    @classmethod
    def from_generation_config(
        cls,
        text_decoder_lang_to_code_id: Mapping[str, int],
        t2u_lang_code_to_id: Mapping[str, int] | None,
        vocoder_lang_code_to_id: Mapping[str, int] | None,
    ) -> LanguageCatalog:
        text = frozenset(text_decoder_lang_to_code_id)
        speech = text & frozenset(t2u_lang_code_to_id or ()) & frozenset(vocoder_lang_code_to_id or ())
        return cls(text_codes=text, speech_codes=speech)

    def languages(self) -> list[Language]:
        return [
            Language(
                code=code,
                name=_NAMES.get(code, code),
                speech_input=True,
                text_output=True,
                speech_output=code in self.speech_codes,
            )
            for code in sorted(self.text_codes)
        ]
