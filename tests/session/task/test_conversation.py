"""A conversation's task (session/task/conversation.py through ``checks.resolve_task``, and
``change.change`` for an Update) on plain values: the languages become the task's targets and
detection candidates and are echoed as the conversation; a change keeps the stream's kind; the
bound follows the server's limits; the job built from it asks for a conversation's rows; a
result and a caption carry the languages not detected."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from tests.support.conversation_card import CARD, LIMITS, TEXT
from translate_svc.engine.results import EngineResult
from translate_svc.errors import InvalidInput, NotInstalled
from translate_svc.model_api.requests import DETECTED, ModelOutput
from translate_svc.session.results import build_interim, build_result
from translate_svc.session.task.change import TaskChange, change
from translate_svc.session.task.checks import resolve_task
from translate_svc.session.task.inputs import model_input
from translate_svc.settings import LimitsSettings
from translate_svc.types import OutputOptions, Segment

pytestmark = pytest.mark.unit


def test_a_conversation_runs_as_its_languages_targets_and_candidates() -> None:
    task = resolve_task(CARD, LIMITS, "", [], TEXT, conversation=["eng", "spa"])
    assert (task.conversation, task.target_languages, task.detect) == (("eng", "spa"),) * 3
    assert task.source_language is None and task.output.transcript  # its source is said
    item = model_input(dataclasses.replace(task, output=OutputOptions(transcript=False)), np.zeros(16000), final=True)
    assert item.conversation and item.transcript_language == DETECTED and item.text_rows == 2


def test_an_update_changes_a_conversations_languages_and_keeps_its_kind() -> None:
    task = resolve_task(CARD, LIMITS, "", [], TEXT, conversation=["eng", "spa"])
    new = change(CARD, LIMITS, task, TaskChange(conversation=("spa", "fra", "eng")))
    assert new.conversation == new.target_languages == new.detect == ("spa", "fra", "eng")
    assert change(CARD, LIMITS, task, TaskChange(speed=1.5)).conversation == ("eng", "spa")
    with pytest.raises(InvalidInput, match="change its languages with `conversation`"):
        change(CARD, LIMITS, task, TaskChange(targets=("fra",)))
    fixed = resolve_task(CARD, LIMITS, "eng", ["spa"], TEXT)
    with pytest.raises(InvalidInput, match="not a conversation"):
        change(CARD, LIMITS, fixed, TaskChange(conversation=("eng", "spa")))
    with pytest.raises(InvalidInput, match="has 1 language"):
        change(CARD, LIMITS, task, TaskChange(conversation=("eng",)))


def test_a_rooms_listeners_languages_are_heard_beside_the_conversations_own() -> None:
    """A conversation speaking into a room (issue 99 item 5): its room's retarget adds the languages
    listened in as targets after its own, never as candidates; its client's updates keep them; its
    client is told its own languages; its segments take no renditions (their targets follow the
    language heard)."""
    from translate_svc.session.task.told import as_told

    task = resolve_task(CARD, LIMITS, "", [], TEXT, conversation=["eng", "spa"])
    task = dataclasses.replace(task, renditions=(("fra", 1.5),))
    roomed = change(CARD, LIMITS, task, TaskChange(listened=("fra", "spa"), renditions=(("fra", 1.5),)))
    assert roomed.target_languages == ("eng", "spa", "fra") and roomed.detect == ("eng", "spa")
    assert roomed.conversation == ("eng", "spa") and roomed.listened == ("fra",)
    item = model_input(roomed, np.zeros(16000), final=True)
    assert item.targets == ("eng", "spa", "fra") and item.detect == ("eng", "spa") and item.text_rows == 3
    assert not item.keep_units and item.renditions == ()
    # the client's update of its languages keeps the room's
    moved = change(CARD, LIMITS, roomed, TaskChange(conversation=("spa", "cmn")))
    assert moved.target_languages == ("spa", "cmn", "fra") and moved.detect == ("spa", "cmn")
    assert change(CARD, LIMITS, roomed, TaskChange(speed=1.25)).target_languages == ("eng", "spa", "fra")
    # a language listened in that becomes the conversation's is one of its own, once
    assert change(CARD, LIMITS, roomed, TaskChange(conversation=("fra", "eng"))).target_languages == ("fra", "eng")
    assert as_told(roomed, ("eng", "spa")).listened == ()
    fixed = resolve_task(CARD, LIMITS, "eng", ["spa"], TEXT)
    with pytest.raises(InvalidInput, match="not a conversation"):
        change(CARD, LIMITS, fixed, TaskChange(listened=("fra",)))
    with pytest.raises(InvalidInput, match="3 target languages requested"):
        change(CARD, LimitsSettings(max_target_languages=2), task, TaskChange(listened=("fra",)))


def test_the_bound_is_the_servers_and_the_identifier_is_needed() -> None:
    two = LimitsSettings(max_candidate_languages=2)
    with pytest.raises(InvalidInput, match="3 conversation languages requested; this server allows at most 2"):
        resolve_task(CARD, two, "", [], TEXT, conversation=["eng", "spa", "fra"])
    with pytest.raises(InvalidInput, match="'cmn' has text output only"):
        resolve_task(CARD, LIMITS, "", [], OutputOptions(), conversation=["eng", "cmn"])
    bare = dataclasses.replace(CARD, identifier=None)
    with pytest.raises(NotInstalled, match="conversation needs the spoken-language identifier"):
        resolve_task(bare, LIMITS, "", [], TEXT, conversation=["eng", "spa"])


def test_a_results_translations_are_the_languages_not_detected_and_a_caption_too() -> None:
    """A segment's result and its live caption built from a conversation's output: the detected
    language is the source (its transcript, its scores), never one of the translations."""
    task = resolve_task(CARD, LIMITS, "", [], TEXT, conversation=["eng", "spa", "fra"])
    out = ModelOutput("hola", {"eng": "hello", "fra": "salut"}, detected={"spa": 0.75, "eng": 0.125, "fra": 0.125})
    job = EngineResult(out, None, 1.0, 2.0, 1)
    result = build_result(Segment(0, 0, 1000, np.zeros(16000, np.float32)), task, job, time.perf_counter(), 0.0)
    assert [t.target_language for t in result.translations] == ["eng", "fra"]
    assert result.transcript is not None and result.transcript.language == "spa"
    assert result.detected is not None and result.detected.language == "spa"
    caption = build_interim((0, 0, 1000), task, job, out, time.perf_counter())
    assert [t.target_language for t in caption.translations] == ["eng", "fra"]
