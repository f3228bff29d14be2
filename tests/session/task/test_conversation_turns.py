"""A conversation's stated language and its turn prior on the task and its jobs (plain values):
the stated language is checked against the conversation's languages, set and cleared by an
Update; a segment's job then skips identification, or carries the previous turn's language
with the server's rule; a result says what chose its language."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from tests.support.conversation_card import CARD, LIMITS, TEXT
from translate_svc.engine.results import EngineResult
from translate_svc.errors import InvalidInput
from translate_svc.model_api.requests import DETECTED, ModelOutput
from translate_svc.model_api.turns import TurnPrior, TurnRule
from translate_svc.session.results import build_result
from translate_svc.session.task.change import TaskChange, change
from translate_svc.session.task.checks import resolve_task
from translate_svc.session.task.inputs import model_input
from translate_svc.types import LanguageSource, Segment

pytestmark = pytest.mark.unit

RULE = TurnRule(short_turn_s=1.5, switch_margin=0.3)
SECOND = np.zeros(16000, np.float32)


def test_a_stated_language_is_one_of_the_conversations_and_skips_identification() -> None:
    task = resolve_task(CARD, LIMITS, "", [], TEXT, conversation=["eng", "spa"], stated="eng")
    assert task.stated_language == "eng" and task.detect == ("eng", "spa")
    item = model_input(task, SECOND, final=True, previous="spa", turns=RULE)
    assert item.detect is None and item.transcript_language == "eng" and item.prior is None
    assert item.translated("eng") == ("spa",)
    with pytest.raises(
        InvalidInput, match=r"stated_language is 'fra', not one of conversation.languages \(eng, spa\)"
    ) as e:
        resolve_task(CARD, LIMITS, "", [], TEXT, conversation=["eng", "spa"], stated="fra")
    assert e.value.field == "conversation"
    assert resolve_task(CARD, LIMITS, "", [], TEXT, conversation=["eng", "spa"], stated="").stated_language is None


def test_an_update_states_and_clears_the_language_and_a_change_without_it_keeps_it() -> None:
    task = resolve_task(CARD, LIMITS, "", [], TEXT, conversation=["eng", "spa"])
    stated = change(CARD, LIMITS, task, TaskChange(conversation=("eng", "spa"), stated_language="spa"))
    assert stated.stated_language == "spa"
    assert change(CARD, LIMITS, stated, TaskChange(speed=1.5)).stated_language == "spa"
    assert change(CARD, LIMITS, stated, TaskChange(conversation=("eng", "spa"))).stated_language is None
    with pytest.raises(InvalidInput, match="stated_language is 'deu'"):
        change(CARD, LIMITS, task, TaskChange(conversation=("eng", "spa"), stated_language="deu"))


def test_a_segment_leans_on_the_previous_turn_by_the_servers_rule() -> None:
    task = resolve_task(CARD, LIMITS, "", [], TEXT, conversation=["eng", "spa"])
    short = model_input(task, SECOND, final=True, previous="eng", turns=RULE)
    assert short.transcript_language == DETECTED and short.prior == TurnPrior("eng", 0.6)
    long = model_input(task, np.zeros(32000, np.float32), final=True, previous="eng", turns=RULE)
    assert long.prior == TurnPrior("eng", 0.3)
    # no previous turn, one outside the languages (an update changed them), or no rule: no prior
    assert model_input(task, SECOND, final=True, previous=None, turns=RULE).prior is None
    assert model_input(task, SECOND, final=True, previous="fra", turns=RULE).prior is None
    assert model_input(task, SECOND, final=True, previous="eng").prior is None


def result_of(task, out):  # type: ignore[no-untyped-def]
    job = EngineResult(out, None, 1.0, 2.0, 1)
    return build_result(Segment(0, 0, 1000, SECOND), task, job, time.perf_counter(), 0.0)


def test_a_result_says_what_chose_its_language() -> None:
    task = resolve_task(CARD, LIMITS, "", [], TEXT, conversation=["eng", "spa"])
    scores = {"spa": 0.9, "eng": 0.1}
    kept = result_of(task, ModelOutput("hello", {"spa": "hola"}, detected=scores, spoken="eng"))
    assert kept.detected is not None and kept.detected.language == "eng"
    assert kept.detected.source is LanguageSource.PREVIOUS_TURN and kept.detected.scores[0] == ("spa", 0.9)
    assert [t.target_language for t in kept.translations] == ["spa"]
    assert kept.transcript is not None and kept.transcript.language == "eng"
    top = result_of(task, ModelOutput("hola", {"eng": "hello"}, detected=scores, spoken="spa"))
    assert top.detected is not None and top.detected.source is LanguageSource.IDENTIFIED
    stated = dataclasses.replace(task, stated_language="eng")
    said = result_of(stated, ModelOutput("hello", {"spa": "hola"}, spoken="eng"))
    assert said.detected is not None and (said.detected.language, said.detected.scores) == ("eng", ())
    assert said.detected.source is LanguageSource.STATED
    assert [t.target_language for t in said.translations] == ["spa"]
