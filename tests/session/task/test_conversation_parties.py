"""A conversation's voice and rate per party (``PartySpeech``, keyed by the language the party
hears) on the task and its jobs (plain values): checked against the conversation's languages, the
model's voices and the speaking rates; refused beside a fit or outside a conversation; set anew by
an Update that names the conversation and kept by one that does not; each segment's job carries
them, and its speech in a language takes that language's voice and rate, the others the output's."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.conversation_card import CARD, LIMITS, TEXT
from translate_svc.errors import InvalidInput
from translate_svc.model_api.requests import DETECTED, ModelInput, SpeechFit
from translate_svc.session.task.change import TaskChange, change
from translate_svc.session.task.checks import resolve_task
from translate_svc.session.task.inputs import model_input
from translate_svc.types import NO_PARTIES, DubFit, OutputOptions, PartySpeech

pytestmark = pytest.mark.unit

SECOND = np.zeros(16000, np.float32)
SPEECH = OutputOptions(speaker_id=1, speed=1.25)
PARTIES = PartySpeech(voices=(("spa", 0),), speeds=(("spa", 0.75), ("eng", 1.5)))


def test_each_language_speaks_in_its_partys_voice_and_rate_the_others_in_the_outputs() -> None:
    task = resolve_task(CARD, LIMITS, "", [], SPEECH, conversation=["eng", "spa", "fra"], parties=PARTIES)
    assert task.parties == PARTIES
    item = model_input(task, SECOND, final=True)
    assert item.parties == PARTIES
    assert [item.voice(lang) for lang in ("eng", "spa", "fra")] == [1, 0, 1]
    assert [item.rate(lang) for lang in ("eng", "spa", "fra")] == [1.5, 0.75, 1.25]


@pytest.mark.parametrize(
    ("parties", "message"),
    [
        (PartySpeech(voices=(("deu", 1),)), r"conversation.voices names 'deu', not one of conversation.languages"),
        (PartySpeech(speeds=(("deu", 1.0),)), r"conversation.speeds names 'deu'"),
        (PartySpeech(voices=(("spa", 1), ("spa", 0))), r"conversation.voices names a language twice"),
        (PartySpeech(voices=(("spa", 2),)), r"conversation.voices\[spa\] is 2: use 0..1"),
        (PartySpeech(speeds=(("eng", 2.5),)), r"conversation.speeds\[eng\] must be a number from 0.5 to 2.0"),
        (PartySpeech(speeds=(("eng", float("nan")),)), r"conversation.speeds\[eng\] must be a number"),
    ],
)
def test_a_voice_or_rate_that_does_not_fit_is_refused_naming_it(parties: PartySpeech, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as e:
        resolve_task(CARD, LIMITS, "", [], SPEECH, conversation=["eng", "spa"], parties=parties)
    assert e.value.field == "conversation"


def test_rates_per_party_beside_a_fit_and_parties_without_a_conversation_are_refused() -> None:
    fitted = OutputOptions(fit=DubFit())
    with pytest.raises(InvalidInput, match=r"conversation\.speeds and fit are both set"):
        resolve_task(
            CARD, LIMITS, "", [], fitted, conversation=["eng", "spa"], parties=PartySpeech(speeds=(("spa", 1.0),))
        )
    voiced = resolve_task(
        CARD, LIMITS, "", [], fitted, conversation=["eng", "spa"], parties=PartySpeech(voices=(("spa", 1),))
    )
    assert voiced.parties.voices == (("spa", 1),)  # a voice goes with a fit
    with pytest.raises(InvalidInput, match="a voice or rate per party is a conversation's"):
        resolve_task(CARD, LIMITS, "eng", ["spa"], SPEECH, parties=PARTIES)


def test_an_update_naming_the_conversation_sets_them_anew_and_one_without_it_keeps_them() -> None:
    task = resolve_task(CARD, LIMITS, "", [], TEXT, conversation=["eng", "spa"], parties=PARTIES)
    assert change(CARD, LIMITS, task, TaskChange(speed=1.5)).parties == PARTIES
    anew = PartySpeech(voices=(("eng", 1),))
    assert change(CARD, LIMITS, task, TaskChange(conversation=("eng", "spa"), parties=anew)).parties == anew
    assert change(CARD, LIMITS, task, TaskChange(conversation=("eng", "spa"))).parties == NO_PARTIES
    with pytest.raises(InvalidInput, match=r"conversation\.voices names 'fra'"):
        change(CARD, LIMITS, task, TaskChange(conversation=("eng", "spa"), parties=PartySpeech(voices=(("fra", 0),))))


@pytest.mark.parametrize(
    ("parties", "fit", "message"),
    [
        (PartySpeech(voices=(("deu", 1),)), None, "names one of the conversation's"),
        (PartySpeech(speeds=(("eng", 1.0), ("eng", 1.5))), None, "names one of the conversation's"),
        (PartySpeech(speeds=(("eng", 3.0),)), None, "a party's rate is from 0.5 to 2.0"),
        (PartySpeech(speeds=(("eng", 1.5),)), SpeechFit(1000.0), "not beside a fit"),
    ],
)
def test_the_models_input_holds_its_parties_together(parties: PartySpeech, fit: SpeechFit | None, message: str) -> None:
    langs = ("eng", "spa")
    with pytest.raises(ValueError, match=message):
        ModelInput(SECOND, langs, DETECTED, detect=langs, conversation=True, parties=parties, fit=fit)
    with pytest.raises(ValueError, match="a party's voice or rate: a conversation's"):
        ModelInput(SECOND, langs, "eng", parties=PartySpeech(voices=(("spa", 1),)))
