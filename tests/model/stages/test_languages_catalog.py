"""What the loaded checkpoint can say per language (model/stages/languages.py; its own test module
since issue 89 item 4): text for every text-decoder language, speech only where text-to-unit and
the vocoder both have the language, any text language as a source; names for display only. Plain
values."""

from __future__ import annotations

import pytest

from translate_svc.model.stages.languages import LanguageCatalog

pytestmark = pytest.mark.unit


def test_speech_needs_the_language_in_text_to_unit_and_the_vocoder() -> None:
    catalog = LanguageCatalog.from_generation_config(
        {"eng": 1, "fra": 2, "cmn": 3, "xyz": 4}, {"eng": 0, "fra": 1, "xyz": 2}, {"eng": 0, "cmn": 1, "xyz": 2}
    )
    assert catalog.text_codes == {"eng", "fra", "cmn", "xyz"}
    assert catalog.speech_codes == {"eng", "xyz"}


def test_a_checkpoint_without_speech_maps_speaks_nothing() -> None:
    catalog = LanguageCatalog.from_generation_config({"eng": 1}, None, None)
    assert catalog.speech_codes == frozenset()
    (eng,) = catalog.languages()
    assert (eng.text_output, eng.speech_output) == (True, False)


def test_languages_are_listed_in_code_order_with_names_where_known() -> None:
    catalog = LanguageCatalog.from_generation_config({"fra": 2, "xyz": 4, "eng": 1}, {"eng": 0}, {"eng": 0})
    languages = catalog.languages()
    assert [(lang.code, lang.name) for lang in languages] == [("eng", "English"), ("fra", "French"), ("xyz", "xyz")]
    assert all(lang.speech_input and lang.text_output for lang in languages)  # any can be the source
    assert [lang.speech_output for lang in languages] == [True, False, False]
