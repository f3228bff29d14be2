"""A conversation's choice of a segment's language (model_api/turns.py) on plain values: the
identifier's top score, the previous turn's language kept on a short segment or an unsure
identification, a stated language without identification; the decode rows follow the choice."""

from __future__ import annotations

import numpy as np
import pytest

from translate_svc.model_api.requests import DETECTED, ModelInput
from translate_svc.model_api.rows import plan_rows
from translate_svc.model_api.turns import TurnPrior, TurnRule, choose_language, language_source
from translate_svc.types import LanguageSource

pytestmark = pytest.mark.unit

AUDIO = np.zeros(32000, np.float32)  # 2 s
SURE_SPA = {"eng": 0.02, "spa": 0.98}
UNSURE_SPA = {"eng": 0.45, "spa": 0.55}


def test_without_a_previous_turn_the_identifiers_top_language_wins() -> None:
    assert choose_language(SURE_SPA, None) == choose_language(UNSURE_SPA, None) == "spa"
    assert choose_language({"eng": 0.3, "spa": 0.3, "fra": 0.4}, None) == "fra"
    with pytest.raises(ValueError, match="no scores"):
        choose_language({}, None)


def test_a_short_segment_leans_harder_but_a_sure_identifier_still_switches() -> None:
    rule = TurnRule(short_turn_s=1.5, switch_margin=0.3, short_turn_margin=0.6)
    assert choose_language(UNSURE_SPA, rule.prior("eng", 1.0)) == "eng"
    assert choose_language({"eng": 0.25, "spa": 0.75}, rule.prior("eng", 1.0)) == "eng"  # 0.5 < 0.6: kept
    assert choose_language({"eng": 0.25, "spa": 0.75}, rule.prior("eng", 2.0)) == "spa"  # long: 0.5 >= 0.3
    assert choose_language(SURE_SPA, rule.prior("eng", 1.0)) == "spa"  # a quick reply in the other language
    assert choose_language(SURE_SPA, TurnPrior("eng", margin=1.0)) == "eng"  # 1: always kept


def test_a_longer_segment_switches_only_when_the_top_beats_the_previous_by_the_margin() -> None:
    assert choose_language(UNSURE_SPA, TurnPrior("eng", margin=0.3)) == "eng"  # 0.10 < 0.3
    assert choose_language(UNSURE_SPA, TurnPrior("eng", margin=0.05)) == "spa"  # 0.10 >= 0.05: it switches
    assert choose_language(UNSURE_SPA, TurnPrior("eng", margin=0.0)) == "spa"  # 0: the identifier decides
    # three languages: the margin is to the previous language's own score, not the runner-up's
    three = {"eng": 0.1, "spa": 0.5, "fra": 0.4}
    assert choose_language(three, TurnPrior("fra", margin=0.2)) == "fra"
    assert choose_language(three, TurnPrior("eng", margin=0.2)) == "spa"


def test_the_previous_language_agreeing_or_out_of_the_candidates_changes_nothing() -> None:
    assert choose_language(SURE_SPA, TurnPrior("spa", margin=0.3)) == "spa"
    assert choose_language(SURE_SPA, TurnPrior("fra", margin=0.3)) == "spa"


def test_the_source_says_what_decided() -> None:
    assert language_source("spa", SURE_SPA) is LanguageSource.IDENTIFIED
    assert language_source("eng", SURE_SPA) is LanguageSource.PREVIOUS_TURN
    assert language_source("eng", None) is language_source("eng", {}) is LanguageSource.STATED


def test_the_rule_makes_a_prior_from_the_segments_length() -> None:
    rule = TurnRule(short_turn_s=1.5, switch_margin=0.25, short_turn_margin=0.7)
    assert rule.prior("eng", 1.49) == TurnPrior("eng", 0.7)
    assert rule.prior("eng", 1.5) == TurnPrior("eng", 0.25)
    assert TurnRule(short_turn_s=0.0).prior("eng", 0.1).margin == 0.3  # 0: no segment is short
    assert TurnRule(switch_margin=0.5, short_turn_margin=0.2).prior("eng", 0.1).margin == 0.5  # never narrower
    with pytest.raises(ValueError, match=r"0\.\.1"):
        TurnPrior("eng", 1.5)


def test_the_rows_follow_the_choice_the_prior_made() -> None:
    """The previous turn's English kept: the transcript row is English, the translation Spanish."""
    item = ModelInput(
        AUDIO,
        ("eng", "spa"),
        DETECTED,
        detect=("eng", "spa"),
        conversation=True,
        prior=TurnPrior("eng", margin=1.0),
    )
    plan = plan_rows([item], {0: SURE_SPA})
    assert plan.spoken == ("eng",)
    assert [(r.language, r.target, r.transcript) for r in plan.rows] == [("eng", False, True), ("spa", True, False)]
    plain = ModelInput(AUDIO, ("eng", "spa"), DETECTED, detect=("eng", "spa"), conversation=True)
    assert plan_rows([plain], {0: SURE_SPA}).spoken == ("spa",)


def test_a_stated_language_needs_no_detection_and_no_prior() -> None:
    stated = ModelInput(AUDIO, ("eng", "spa"), "eng", conversation=True)
    plan = plan_rows([stated])  # nothing detected: none needed
    assert plan.spoken == ("eng",) and [r.language for r in plan.rows if r.target] == ["spa"]
    with pytest.raises(ValueError, match="stated language is one of the conversation's"):
        ModelInput(AUDIO, ("eng", "spa"), "fra", conversation=True)
    with pytest.raises(ValueError, match="without a prior"):
        ModelInput(AUDIO, ("eng", "spa"), "eng", conversation=True, prior=TurnPrior("spa", 0.3))
    with pytest.raises(ValueError, match="prior's language is one it detects among"):
        ModelInput(
            AUDIO, ("eng", "spa"), DETECTED, detect=("eng", "spa"), conversation=True, prior=TurnPrior("fra", 0.3)
        )
    with pytest.raises(ValueError, match="a conversation's"):
        ModelInput(AUDIO, ("spa",), "eng", prior=TurnPrior("eng", 0.3))
