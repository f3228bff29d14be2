"""A conversation's segment on the model runner (test checkpoint): the language the identifier
picks among the conversation's is the transcript, decoded as ``generate`` decodes it, and the
translations (text and speech) are the other languages' alone, each equal to ``generate`` into
it, each spoken in its party's voice and rate; the stable test translator does the same. The
identifier here is a stand-in that picks a given language (the runner's own stages do the rest)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tests.support.reference import hf_generate
from tests.support.speech import read_16k
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.testing.stable import StableTranslator
from translate_svc.model_api.requests import DETECTED, ModelInput
from translate_svc.types import ModelInfo, PartySpeech

pytestmark = [pytest.mark.integration, pytest.mark.slow(30)]


class Picking:
    """A language identifier (``model_api.runner.LanguageIdentifier``) that gives ``pick`` 0.9 of
    the candidates' probability and records the candidates it was asked among."""

    def __init__(self, pick: str) -> None:
        self.pick = pick
        self.asked: list[tuple[str, ...]] = []

    languages = frozenset({"eng", "spa", "fra"})
    name = "picking"
    info = ModelInfo("picking", "none", True)

    def identify(self, audios: Sequence[np.ndarray], candidates: Sequence[tuple[str, ...]]) -> list[dict[str, float]]:
        self.asked.extend(candidates)
        out = []
        for c in candidates:
            rest = [lang for lang in c if lang != self.pick]
            out.append({self.pick: 0.9} | {lang: 0.1 / len(rest) for lang in rest})
        return out


def conversation(audio: np.ndarray, *languages: str, speech: bool = True) -> ModelInput:
    return ModelInput(audio, languages, DETECTED, detect=languages, conversation=True, speech=speech)


@pytest.fixture(scope="module")
def span(shared_audio: Path) -> np.ndarray:
    return read_16k(shared_audio / "jfk.flac")[int(0.3 * 16000) : int(2.3 * 16000)]


@pytest.mark.parametrize("pick", ["spa", "eng"])
def test_the_language_detected_is_the_transcript_and_the_others_the_translations(
    runner: SeamlessRunner, test_model_dir: Path, span: np.ndarray, monkeypatch: pytest.MonkeyPatch, pick: str
) -> None:
    identifier = Picking(pick)
    monkeypatch.setattr(runner.stages, "identifier", identifier)
    other = "eng" if pick == "spa" else "spa"
    out = runner.run([conversation(span, "eng", "spa")])[0]
    assert identifier.asked == [("eng", "spa")]  # identified among the conversation's languages only
    assert out.detected is not None and max(out.detected, key=out.detected.__getitem__) == pick
    assert list(out.texts) == [other] and list(out.waveforms) == [other]
    assert out.transcript == hf_generate(test_model_dir, span, pick, speech=False)[0]
    text, wave = hf_generate(test_model_dir, span, other)
    assert out.texts[other] == text
    assert wave is not None and out.waveforms[other].shape == wave.shape


def test_three_languages_translate_into_the_two_not_detected_in_one_batch_with_a_plain_input(
    runner: SeamlessRunner, test_model_dir: Path, span: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner.stages, "identifier", Picking("fra"))
    plain = ModelInput(span, ("eng", "spa"), "fra", speech=False)  # the same languages, no conversation
    talk, alone = runner.run([conversation(span, "eng", "spa", "fra", speech=False), plain])
    assert sorted(talk.texts) == ["eng", "spa"] and talk.waveforms == {}
    assert talk.texts == alone.texts and talk.transcript == alone.transcript  # the same rows, roles apart


def test_the_stable_translator_translates_a_conversation_into_the_other_languages(test_model_dir: Path) -> None:
    stable = StableTranslator(test_model_dir)
    out = stable.run([conversation(np.zeros(16000, np.float32), "spa", "eng", "fra")])[0]
    assert out.detected == {"spa": 1.0}  # its made-up choice: the first candidate
    assert sorted(out.texts) == sorted(out.waveforms) == ["eng", "fra"] and out.transcript


def test_each_language_is_spoken_in_its_partys_voice_and_rate(
    runner: SeamlessRunner, span: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spanish detected among three: English in its party's voice at its party's rate, French in
    the segment's own; each equal to the same segment spoken with that voice and rate for all."""
    monkeypatch.setattr(runner.stages, "identifier", Picking("spa"))
    langs = ("eng", "spa", "fra")
    parties = PartySpeech(voices=(("eng", 2),), speeds=(("eng", 0.75),))
    talk = dataclasses.replace(conversation(span, *langs), parties=parties)
    mine = runner.run([talk])[0]
    everyone = runner.run([dataclasses.replace(conversation(span, *langs), speaker_id=2, speed=0.75)])[0]
    plain = runner.run([conversation(span, *langs)])[0]
    assert mine.texts == everyone.texts == plain.texts and sorted(mine.waveforms) == ["eng", "fra"]
    assert mine.speech_rates == {"eng": 0.75, "fra": 1.0}
    np.testing.assert_allclose(mine.waveforms["eng"], everyone.waveforms["eng"], atol=1e-4)
    np.testing.assert_allclose(mine.waveforms["fra"], plain.waveforms["fra"], atol=1e-4)
    assert len(mine.waveforms["eng"]) > len(plain.waveforms["eng"])  # slower
    voiced = runner.run([dataclasses.replace(talk, parties=PartySpeech(voices=(("eng", 2),)))])[0]
    assert voiced.waveforms["eng"].shape == plain.waveforms["eng"].shape
    assert not np.allclose(voiced.waveforms["eng"], plain.waveforms["eng"])  # another voice
