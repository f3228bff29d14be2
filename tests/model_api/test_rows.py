"""The plan of decode rows (model_api/rows.py, issue 69) on plain values: which rows a batch gets, in
which order and pass, with which prefix, role and bound; no model."""

from __future__ import annotations

import numpy as np
import pytest

from translate_svc.model_api.requests import DETECTED, ModelInput, SimulRequest, SimulTarget, SourceText
from translate_svc.model_api.rows import bare_rows, plan_rows, row_count
from translate_svc.types import Term

pytestmark = pytest.mark.unit

AUDIO = np.zeros(32000, np.float32)  # 2 s
KEEP = (Term("Acme", keep=True),)
BOOST = (Term("gRPC", weight=5.0),)


def summary(plan):  # type: ignore[no-untyped-def]
    return [(r.item, r.language, r.target, r.transcript, r.heard, r.prefix, r.first) for r in plan.rows]


def test_a_segment_gets_a_row_per_distinct_target_then_its_transcript() -> None:
    plan = plan_rows([ModelInput(AUDIO, ("spa", "fra", "spa"), "eng")])
    assert summary(plan) == [
        (0, "spa", True, False, False, (), False),
        (0, "fra", True, False, False, (), False),
        (0, "eng", False, True, True, (), False),
    ]
    assert plan.spoken == ("eng",) and [r.id for r in plan.rows] == [0, 1, 2]
    assert all(r.seconds == 2.0 for r in plan.rows)


def test_a_transcript_in_a_targets_language_shares_its_row() -> None:
    plan = plan_rows([ModelInput(AUDIO, ("eng", "spa"), "eng")])
    assert summary(plan) == [(0, "eng", True, True, True, (), False), (0, "spa", True, False, False, (), False)]


def test_asr_only_is_the_transcript_row_alone() -> None:
    assert summary(plan_rows([ModelInput(AUDIO, (), "eng")])) == [(0, "eng", False, True, True, (), False)]


def test_a_detected_transcript_takes_the_best_scored_language() -> None:
    item = ModelInput(AUDIO, ("spa",), DETECTED, detect=("eng", "deu"))
    plan = plan_rows([item], {0: {"eng": 0.2, "deu": 0.8}})
    assert plan.spoken == ("deu",) and [r.language for r in plan.rows] == ["spa", "deu"]
    with pytest.raises(ValueError, match="nothing detected"):
        plan_rows([item])


def test_a_text_gets_its_targets_and_no_transcript() -> None:
    item = ModelInput(np.zeros(0, np.float32), ("spa", "fra"), text=SourceText("x" * 30, "eng"), terms=KEEP)
    plan = plan_rows([item])
    assert summary(plan) == [(0, "spa", True, False, False, (), False), (0, "fra", True, False, False, (), False)]
    assert plan.spoken == (None,) and plan.rows[0].seconds == 2.0  # 30 characters at 15 a second


def test_a_step_forces_each_targets_committed_tokens_and_decodes_its_transcript_apart() -> None:
    simul = SimulRequest((SimulTarget("eng", (5, 6)), SimulTarget("spa", (7,))))
    plan = plan_rows([ModelInput(AUDIO, ("eng", "spa"), "eng", simul=simul)])
    assert summary(plan) == [
        (0, "eng", True, False, True, (5, 6), False),
        (0, "spa", True, False, False, (7,), False),
        (0, "eng", False, True, True, (), False),
    ]


def test_terms_that_need_the_source_decode_the_heard_rows_first() -> None:
    inputs = [ModelInput(AUDIO, ("spa",), "eng", terms=KEEP), ModelInput(AUDIO, ("fra",), "eng", terms=BOOST)]
    plan = plan_rows(inputs, first_id=100)
    assert [r.id for r in plan.rows] == [100, 101, 102, 103]
    assert [r.first for r in plan.rows] == [False, True, False, False]  # KEEP: its transcript first
    assert plan.passes == ((1,), (0, 2, 3)) and plan.terms
    # a transcript alone has no translation waiting for it
    assert plan_rows([ModelInput(AUDIO, (), "eng", terms=KEEP)]).passes == ((0,),)
    assert not plan_rows([ModelInput(AUDIO, ("spa",), "eng")]).terms


def test_the_count_the_scheduler_budgets_is_the_plans_rows() -> None:
    simul = SimulRequest((SimulTarget("eng"), SimulTarget("spa")))
    inputs = [
        ModelInput(AUDIO, ("spa", "fra", "spa"), "eng"),
        ModelInput(AUDIO, ("eng", "spa"), "eng"),
        ModelInput(AUDIO, ("spa",), None),
        ModelInput(AUDIO, ("eng", "spa"), "eng", simul=simul),
        ModelInput(np.zeros(0, np.float32), ("spa", "fra"), text=SourceText("hola", "spa")),
    ]
    for item in inputs:
        assert row_count(item) == item.text_rows == len(plan_rows([item]))
    # before detection the count keeps a row for the transcript (it may be a target's language)
    detect = ModelInput(AUDIO, ("spa",), DETECTED, detect=("spa", "eng"))
    assert row_count(detect) == 2 and len(plan_rows([detect], {0: {"spa": 0.9, "eng": 0.1}})) == 1


def test_bare_rows_are_targets_with_their_prefixes() -> None:
    plan = bare_rows(["spa", "fra"], [(1,), ()], [1.0, 2.0])
    assert [(r.id, r.item, r.language, r.prefix, r.seconds, r.target) for r in plan.rows] == [
        (0, 0, "spa", (1,), 1.0, True),
        (1, 1, "fra", (), 2.0, True),
    ]


def conversation(*languages: str) -> ModelInput:
    return ModelInput(AUDIO, languages, DETECTED, detect=languages, conversation=True)


@pytest.mark.parametrize("spoken", ["eng", "spa", "fra"])
def test_a_conversations_detected_language_is_its_transcript_and_the_others_its_targets(spoken: str) -> None:
    item = conversation("eng", "spa", "fra")
    scores = {lang: 0.9 if lang == spoken else 0.05 for lang in ("eng", "spa", "fra")}
    plan = plan_rows([item], {0: scores})
    assert plan.spoken == (spoken,)
    assert summary(plan) == [
        (0, lang, lang != spoken, lang == spoken, lang == spoken, (), False) for lang in ("eng", "spa", "fra")
    ]
    # one row per language whichever is detected: what the scheduler budgets is what is decoded
    assert row_count(item) == item.text_rows == len(plan) == 3
    assert item.translated(spoken) == tuple(lang for lang in ("eng", "spa", "fra") if lang != spoken)


def test_a_conversation_with_terms_that_need_the_source_decodes_the_heard_row_first() -> None:
    item = ModelInput(AUDIO, ("eng", "spa"), DETECTED, detect=("eng", "spa"), conversation=True, terms=KEEP)
    plan = plan_rows([item], {0: {"eng": 0.1, "spa": 0.9}})
    assert [(r.language, r.target, r.first) for r in plan.rows] == [("eng", True, False), ("spa", False, True)]
    assert plan.passes == ((1,), (0,))
