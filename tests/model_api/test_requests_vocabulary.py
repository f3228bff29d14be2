"""The job vocabulary's own rules (model_api/requests.py, issues 33, 36 and 89; its own test module
since issue 89 item 4): the kind of work read from a ``ModelInput``'s fields, its seconds (a text's
stand-in for them), the text rows the scheduler budgets, the refusals of inputs that mix kinds
or name targets out of step with their simultaneous step, and when a step's new units are spoken.
Plain values: no torch."""

from __future__ import annotations

import numpy as np
import pytest

from translate_svc.model_api.requests import (
    DETECTED,
    TEXT_CHARS_PER_SECOND,
    ModelInput,
    SimulRequest,
    SimulTarget,
    SourceText,
    WorkKind,
    speak_now,
)
from translate_svc.model_api.rows import plan_rows

pytestmark = pytest.mark.unit

SECOND = np.zeros(16000, np.float32)
NO_AUDIO = np.zeros(0, np.float32)


def simul(*languages: str) -> SimulRequest:
    return SimulRequest(tuple(SimulTarget(lang) for lang in languages))


def test_the_kind_of_work_is_read_from_the_fields() -> None:
    assert ModelInput(SECOND, ("fra",)).kind is WorkKind.SEGMENT
    assert ModelInput(NO_AUDIO, ("fra",), text=SourceText("hi", "eng")).kind is WorkKind.TEXT
    assert ModelInput(SECOND, ("fra",), simul=simul("fra")).kind is WorkKind.RETRANSLATION


def test_an_inputs_seconds_are_its_audios_or_a_texts_stand_in() -> None:
    assert ModelInput(SECOND[:8000], ("fra",)).input_seconds == 0.5
    text = "x" * 45
    assert ModelInput(NO_AUDIO, ("fra",), text=SourceText(text, "eng")).input_seconds == 45 / TEXT_CHARS_PER_SECOND


def test_text_rows_count_each_language_once_and_the_transcript_where_it_is_its_own() -> None:
    assert ModelInput(SECOND, ("fra", "deu", "fra")).text_rows == 2
    assert ModelInput(SECOND, ("fra",), transcript_language="eng").text_rows == 2
    assert ModelInput(SECOND, ("eng",), transcript_language="eng").text_rows == 1  # one row is both
    assert ModelInput(SECOND, (), transcript_language=DETECTED, detect=()).text_rows == 1
    # a simultaneous step's transcript is always a row of its own
    assert ModelInput(SECOND, ("eng",), transcript_language="eng", simul=simul("eng")).text_rows == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"targets": ("fra",), "simul": simul("deu")}, "targets must be the ModelInput's targets"),
        ({"targets": ("fra", "deu"), "simul": simul("deu", "fra")}, "in order"),
        ({"audio": NO_AUDIO, "targets": ("fra",), "text": SourceText("hi", "eng"), "detect": ()}, "no transcript"),
        (
            {"audio": NO_AUDIO, "targets": ("fra",), "text": SourceText("hi", "eng"), "transcript_language": "eng"},
            "no transcript",
        ),
        ({"targets": ("fra",), "text": SourceText("hi", "eng")}, "no audio"),
        ({"audio": NO_AUDIO, "targets": (), "text": SourceText("hi", "eng")}, "at least one target"),
    ],
)
def test_inputs_that_mix_kinds_or_misname_targets_are_refused(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"audio": SECOND, **kwargs}
    with pytest.raises(ValueError, match=message):
        ModelInput(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"committed": (5, 6), "logprobs": (-0.1,)}, "1 logprobs for 2 committed tokens"),
        ({"committed": (5,), "spoken_tokens": 2}, "spoken_tokens 2 outside 0..1"),
        ({"spoken_units": -1}, "spoken_units must be >= 0"),
    ],
)
def test_a_targets_policy_state_must_hold_together(target: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulTarget("fra", **target)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"min_units": -1}, "min_units must be >= 0"),
        ({"agreement": 0}, "agreement must be an integer >= 1"),
        ({"agreement": True}, "agreement must be an integer >= 1"),
        ({"targets": (SimulTarget("fra"), SimulTarget("fra"))}, "each target language once"),
    ],
)
def test_a_simultaneous_steps_settings_must_make_sense(request_: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"targets": (SimulTarget("fra"),), **request_}
    with pytest.raises(ValueError, match=message):
        SimulRequest(**fields)  # type: ignore[arg-type]


def test_new_units_are_spoken_at_the_minimum_or_at_the_end() -> None:
    assert not speak_now(49, 50, final=False)
    assert speak_now(50, 50, final=False)
    assert speak_now(1, 50, final=True)
    assert not speak_now(0, 50, final=True)  # nothing new: nothing to speak
    assert not speak_now(0, 0, final=False)


def test_a_conversation_takes_one_row_per_language() -> None:
    """Without the flag the detected transcript keeps a row of its own in the count (it may be in
    no target's language); in a conversation it is always one of them."""
    langs = ("eng", "spa")
    assert ModelInput(SECOND, langs, DETECTED, detect=langs).text_rows == 3
    assert ModelInput(SECOND, langs, DETECTED, detect=langs, conversation=True).text_rows == 2


def test_a_conversation_in_a_room_is_translated_into_its_listeners_languages_too() -> None:
    """A room's listeners add targets beside the conversation's languages: identified among the
    conversation's only, translated into every target but the one heard, a row per target."""
    item = ModelInput(SECOND, ("eng", "spa", "fra"), DETECTED, detect=("eng", "spa"), conversation=True)
    assert item.text_rows == 3
    assert item.translated("spa") == ("eng", "fra") and item.translated("eng") == ("spa", "fra")
    plan = plan_rows([item], {0: {"spa": 0.7, "eng": 0.3}})
    assert plan.spoken == ("spa",)
    assert [(r.language, r.target) for r in plan.rows] == [("eng", True), ("spa", False), ("fra", True)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"targets": ("eng",), "detect": ("eng",)}, "two or more distinct languages"),
        ({"targets": ("eng", "eng"), "detect": ("eng",)}, "two or more distinct languages"),
        ({"detect": None}, "a stated language is one of the conversation's"),  # no detection: DETECTED is none
        ({"detect": ()}, "detects among two or more of its targets"),
        ({"detect": ("eng", "fra")}, "detects among two or more of its targets"),
        ({"detect": ("eng", "spa", "fra")}, "detects among two or more of its targets"),
        ({"transcript_language": "eng"}, "transcript is in the language detected"),
        ({"transcript_language": None}, "transcript is in the language detected"),
        ({"simul": simul("eng", "spa")}, "whole segment"),
        ({"renditions": (("spa", 1.5),)}, "whole segment"),
        ({"keep_units": True}, "whole segment"),
    ],
)
def test_a_conversation_that_does_not_hold_together_is_refused(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "audio": SECOND,
        "targets": ("eng", "spa"),
        "transcript_language": DETECTED,
        "detect": ("spa", "eng"),
        "conversation": True,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        ModelInput(**fields)  # type: ignore[arg-type]
    # the same without the flag is a plain input (the checks are the conversation's)
    if "simul" not in kwargs and kwargs.get("targets") != ("eng", "eng"):
        ModelInput(**{**fields, "conversation": False})  # type: ignore[arg-type]
