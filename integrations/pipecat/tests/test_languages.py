"""Pipecat's languages <-> the model's codes, and the service's construction (no pipeline)."""

from __future__ import annotations

import pytest
from pipecat.transcriptions.language import Language

from pipecat_translate_svc import TranslateSvcSTTService, to_model_code, to_model_codes, to_pipecat_language
from translate_svc.client import AsyncTranslateClient


@pytest.mark.parametrize(
    ("given", "code"),
    [
        (Language.ES, "spa"),
        (Language.ES_MX, "spa"),
        ("es", "spa"),
        ("spa", "spa"),
        (Language.EN_US, "eng"),
        (Language.ZH, "cmn"),
        (Language.ZH_TW, "cmn_Hant"),
        ("cmn_Hant", "cmn_Hant"),
        (Language.CMN, "cmn"),
        (Language.YUE, "yue"),
        (Language.FIL, "tgl"),
        (Language.TL, "tgl"),
        (Language.AR, "arb"),
        (Language.FA, "pes"),
        (Language.MS, "zsm"),
        (Language.NB, "nob"),
        (Language.PT_BR, "por"),
        (Language.XH, "xho"),
        ("xx-unknown", "xx-unknown"),
    ],
)
def test_pipecat_languages_become_model_codes(given: Language | str, code: str) -> None:
    assert to_model_code(given) == code


@pytest.mark.parametrize(
    ("code", "language"),
    [
        ("spa", Language.ES),
        ("eng", Language.EN),
        ("cmn", Language.ZH),
        ("cmn_Hant", Language.ZH_TW),
        ("arb", Language.AR),
        ("tgl", Language.FIL),
        ("yue", Language.YUE),
        ("nob", Language.NB),
    ],
)
def test_model_codes_become_pipecat_languages(code: str, language: Language) -> None:
    assert to_pipecat_language(code) == language
    assert to_model_code(language) == code


def test_a_code_pipecat_has_no_name_for_is_kept() -> None:
    assert to_pipecat_language("xyz") == "xyz"


def test_several_languages_keep_their_order_without_repeats() -> None:
    assert to_model_codes([Language.ES, "es-MX", "fra", Language.FR]) == ["spa", "fra"]
    assert to_model_codes(Language.DE) == ["deu"]


async def test_every_language_of_the_server_maps_onto_itself(server: str) -> None:
    """Every code the server lists goes through pipecat's naming and back unchanged."""
    async with AsyncTranslateClient(server) as client:
        codes = sorted((await client.languages()).codes)
    assert len(codes) >= 5  # the test checkpoint's few
    assert [c for c in codes if to_model_code(c) != c] == []
    assert [c for c in codes if to_model_code(to_pipecat_language(c)) != c] == []


def test_the_service_takes_an_address_and_languages() -> None:
    s = TranslateSvcSTTService(address="127.0.0.1:50051", source_language=Language.EN, target_languages=Language.ES)
    assert s.settings.language == "eng"
    assert s.settings.target_languages == ["spa"]
    s = TranslateSvcSTTService(
        address="127.0.0.1:50051",
        target_languages=["es"],
        settings=TranslateSvcSTTService.Settings(target_languages=[Language.FR, Language.DE]),
    )
    assert s.settings.target_languages == ["fra", "deu"]  # settings win, as pipecat's services do
    assert s.settings.language is None


def test_the_service_needs_something_to_do_and_somewhere_to_do_it() -> None:
    with pytest.raises(ValueError, match="target_languages"):
        TranslateSvcSTTService(address="127.0.0.1:50051")
    with pytest.raises(ValueError, match="address"):
        TranslateSvcSTTService(target_languages=["es"])
    with pytest.raises(ValueError, match="in the clear"):  # the SDK's own check
        TranslateSvcSTTService(address="translate.example:50051", target_languages=["es"], token="secret")
