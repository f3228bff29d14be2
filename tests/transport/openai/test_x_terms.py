"""The OpenAI door's term-list extension ``x_terms`` (issue 45) without a server: each item becomes
the stream core's ``Term`` (as the gRPC door's ``terms``), every refusal is ``session.task``'s check
with the item named as ``x_terms[n]`` and in ``param``; the realtime protocol puts the terms in the
stream's config, echoes them, keeps them across a drain's ``x_resume``, and refuses (not fatally)
an update that would change them or drop a glossary entry's language."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from translate_svc.errors import ShuttingDown
from translate_svc.session.events import Invalid, StreamConfig, StreamEnded, StreamRequest, Update
from translate_svc.settings import LimitsSettings
from translate_svc.transport.openai import x_terms
from translate_svc.transport.openai.protocol import RealtimeProtocol
from translate_svc.transport.openai.session_update import MAX_RESUME_CHARS
from translate_svc.transport.openai.wire import ParamError
from translate_svc.types import DEFAULT_TERM_WEIGHT, Language, ModelCard, ModelInfo, Term
from translate_svc.vad.segmenter import SegmenterConfig

pytestmark = pytest.mark.unit

LIMITS = LimitsSettings()
CARD = ModelCard(
    ModelInfo("test", "r", True),
    tuple(Language(c, c, True, True, True) for c in ("eng", "spa", "fra")),
    1,
)
ENTRY = {"phrase": "Acme Cloud", "kind": "translate", "translation": "Nube Acme", "target_language": "es"}


def refusal(value: Any, limits: LimitsSettings = LIMITS) -> ParamError:
    with pytest.raises(ParamError) as e:
        x_terms.parse(value, limits)
    return e.value


def test_items_become_the_cores_terms_as_the_grpc_doors_do() -> None:
    st = x_terms.parse(
        [{"phrase": "Kubernetes", "weight": 5}, {"phrase": "Acme", "kind": "keep"}, {"phrase": "gRPC"}, ENTRY],
        LIMITS,
    )
    assert st.terms == (
        Term("Kubernetes", weight=5.0),
        Term("Acme", keep=True),
        Term("gRPC", weight=DEFAULT_TERM_WEIGHT),
        Term("Acme Cloud", glossary=True, translation="Nube Acme", target_language="spa"),
    )
    assert st.tags == ("", "", "", "es")
    # echoed with every default filled in; read back, the same terms
    assert x_terms.parse(st.wire(), LIMITS) == st
    assert x_terms.parse(None, LIMITS) == x_terms.SessionTerms()


@pytest.mark.parametrize(
    ("value", "param", "words"),
    [
        ({"phrase": "x"}, "session.x_terms", "must be a list"),
        (["Acme"], "session.x_terms[0]", "must be an object"),
        ([{"phrase": "x", "kind": "forbid"}], "session.x_terms[0].kind", '"boost", "keep" or "translate"'),
        ([{"phrase": "x", "colour": 1}], "session.x_terms[0].colour", "does not know"),
        ([{"phrase": 3}], "session.x_terms[0].phrase", "must be a string"),
        ([{"phrase": "x", "kind": "keep", "weight": 2}], "session.x_terms[0].weight", "only a boost term"),
        ([{"phrase": "x", "weight": "high"}], "session.x_terms[0].weight", "must be a number"),
        ([{"phrase": "x", "target_language": "es"}], "session.x_terms[0].target_language", "glossary entry"),
        ([{**ENTRY, "ignore_case": "yes"}], "session.x_terms[0].ignore_case", "true or false"),
        # session.task's own checks, the item named as the door names it
        ([{"phrase": "ok"}, {"phrase": " "}], "session.x_terms[1].phrase", "x_terms[1].phrase is empty"),
        ([{"phrase": "x", "weight": 11}], "session.x_terms[0].weight", "x_terms[0].weight is 11: a BOOST weight"),
        ([{**ENTRY, "translation": ""}], "session.x_terms[0].translation", "x_terms[0].translation is empty"),
        ([{**ENTRY, "target_language": ""}], "session.x_terms[0].target_language", "target_language is empty"),
        ([{"phrase": "Acme"}, {"phrase": "acme", "kind": "keep"}], "session.x_terms", "x_terms lists 'acme' more"),
    ],
)
def test_a_bad_item_is_refused_naming_it(value: Any, param: str, words: str) -> None:
    e = refusal(value)
    assert e.param == param and words in e.message, (e.param, e.message)


def test_lists_are_counted_against_the_servers_limits_before_any_item_is_looked_at() -> None:
    limits = LimitsSettings(max_terms=2, max_glossary_entries=1)
    # items that would each be refused: the count comes first
    e = refusal([{"phrase": 3}] * 3, limits)
    assert e.param == "session.x_terms" and e.message.startswith("3 x_terms items sent") and "max_terms" in e.message
    e = refusal([ENTRY, {**ENTRY, "target_language": "fr"}], limits)
    assert e.param == "session.x_terms" and "2 glossary entries" in e.message and "max_glossary_entries" in e.message
    assert len(x_terms.parse([{"phrase": "a"}, {"phrase": "b"}, ENTRY], limits).terms) == 3


def test_the_session_checks_name_the_entry_and_what_to_set() -> None:
    st = x_terms.parse([{"phrase": "a"}, {**ENTRY, "target_language": "fr"}], LIMITS)
    with pytest.raises(ParamError) as e:
        x_terms.check_session(st, CARD, "eng", None, ("spa",), ["es"])
    assert e.value.param == "session.x_terms[1].target_language"
    assert "'fr', not one of this session's output languages ('es')" in e.value.message
    keep = x_terms.parse([{"phrase": "Acme", "kind": "keep"}], LIMITS)
    with pytest.raises(ParamError) as e:
        x_terms.check_session(keep, CARD, "", None, ("spa",), ["es"])
    assert e.value.param == "session.x_terms[0]" and "set audio.input.language" in e.value.message
    x_terms.check_session(keep, CARD, "eng", None, ("spa",), ["es"])
    spanish = x_terms.parse([ENTRY], LIMITS)
    with pytest.raises(ParamError) as e:  # session.task's check_glossary
        x_terms.check_session(spanish, CARD, "spa", None, ("spa",), ["es"])
    assert e.value.param == "session.x_terms[0].target_language" and "is the source language" in e.value.message


# -- in the realtime protocol -------------------------------------------------------------------


def split(outs: list[Any]) -> tuple[list[dict[str, Any]], list[StreamRequest]]:
    return [json.loads(o) for o in outs if isinstance(o, str)], [o for o in outs if not isinstance(o, str)]


def update(**session: Any) -> str:
    return json.dumps({"type": "session.update", "event_id": "ev1", "session": session})


def started(terms: list[dict[str, Any]], *languages: str) -> tuple[RealtimeProtocol, StreamConfig]:
    p = RealtimeProtocol("m", None, SegmenterConfig(), card=CARD, limits=LIMITS)
    audio = {"input": {"language": "en"}, "output": {"languages": list(languages or ["es"])}}
    events, (config,) = split(list(p.receive(update(audio=audio, x_terms=terms))))
    assert events == [] and isinstance(config, StreamConfig)
    return p, config


def test_the_terms_go_into_the_streams_config_and_are_echoed() -> None:
    p, config = started([{"phrase": "Acme", "kind": "keep"}, ENTRY])
    assert config.terms == (
        Term("Acme", keep=True),
        Term("Acme Cloud", glossary=True, translation="Nube Acme", target_language="spa"),
    )
    assert p.session()["x_terms"] == [
        {"phrase": "Acme", "kind": "keep"},
        {**ENTRY, "ignore_case": False},
    ]


def test_terms_sent_before_the_output_language_are_kept_for_the_config() -> None:
    p = RealtimeProtocol("m", None, SegmenterConfig(), card=CARD, limits=LIMITS)
    events, requests = split(list(p.receive(update(x_terms=[{"phrase": "Acme", "kind": "keep"}]))))
    assert [e["type"] for e in events] == ["session.updated"] and requests == []
    _, (config,) = split(list(p.receive(update(audio={"input": {"language": "en"}, "output": {"language": "es"}}))))
    assert isinstance(config, StreamConfig) and config.terms == (Term("Acme", keep=True),)


def test_a_refused_term_list_ends_the_opening_session_with_its_param() -> None:
    p = RealtimeProtocol("m", None, SegmenterConfig(), card=CARD, limits=LIMITS)
    audio = {"input": {"language": "en"}, "output": {"language": "es"}}
    _, (req,) = split(list(p.receive(update(audio=audio, x_terms=[{"phrase": "x", "kind": "forbid"}]))))
    assert isinstance(req, Invalid) and isinstance(req.error, ParamError)
    assert req.error.param == "session.x_terms[0].kind"


def test_a_running_session_refuses_other_terms_and_goes_on() -> None:
    p, _ = started([{"phrase": "Acme", "kind": "keep"}])
    events, requests = split(list(p.receive(update(x_terms=[{"phrase": "Other", "kind": "keep"}]))))
    assert requests == [] and [e["type"] for e in events] == ["error"]
    error = events[0]["error"]
    assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "session.x_terms", "ev1")
    assert "fixed once the session runs" in error["message"]
    # the same terms again (as echoed): no change, answered as any update
    same = p.session()["x_terms"]
    events, requests = split(list(p.receive(update(x_terms=same))))
    assert requests == [] and [e["type"] for e in events] == ["session.updated"]
    # a bad list mid-session: refused the same way, not fatal
    events, requests = split(list(p.receive(update(x_terms="no"))))
    assert requests == [] and events[0]["error"]["param"] == "session.x_terms"


def test_a_retarget_may_not_drop_a_glossary_entrys_language() -> None:
    p, _ = started([ENTRY], "es", "fr")
    events, requests = split(list(p.receive(update(audio={"output": {"languages": ["fr"]}}))))
    assert requests == [] and [e["type"] for e in events] == ["error"]
    assert events[0]["error"]["param"] == "session.x_terms[0].target_language"
    _, requests = split(list(p.receive(update(audio={"output": {"languages": ["es"]}}))))
    assert requests == [Update(("spa",))]


def test_a_drained_session_resumes_with_its_terms() -> None:
    terms = [{"phrase": "Acme", "kind": "keep"}, ENTRY]
    p, config = started(terms)
    ended = StreamEnded(segments_total=3, audio_received_ms=9000, limit=ShuttingDown("bye"), resume_offset_ms=8000)
    (closed,) = [json.loads(o) for o in p.render(ended) if isinstance(o, str)]
    again = RealtimeProtocol("m", None, SegmenterConfig(), card=CARD, limits=LIMITS)
    _, (resumed,) = split(list(again.resume(closed["x_resume"])))
    assert isinstance(resumed, StreamConfig) and resumed.terms == config.terms
    assert resumed.resume is not None and resumed.resume.offset_ms == 8000


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:60]


def test_a_resume_too_long_for_a_url_is_not_offered_and_the_message_says_so() -> None:
    # 100 glossary entries (the defaults allow 128) of hashes, which hardly compress: over a URL's bound
    entries = [{**ENTRY, "phrase": sha(f"p{n}"), "translation": sha(f"t{n}")} for n in range(100)]
    p, _ = started(entries)
    ended = StreamEnded(segments_total=1, audio_received_ms=900, limit=ShuttingDown("bye"), resume_offset_ms=800)
    (closed,) = [json.loads(o) for o in p.render(ended) if isinstance(o, str)]
    assert "x_resume" not in closed and "too long to resume" in closed["x_message"]
    # a few terms compress well within it
    p, _ = started([{"phrase": f"Name {n}"} for n in range(32)])
    (closed,) = [json.loads(o) for o in p.render(ended) if isinstance(o, str)]
    assert len(closed["x_resume"]) <= MAX_RESUME_CHARS


def test_an_older_servers_uncompressed_resume_is_still_read() -> None:
    state = {
        "session": {"audio": {"output": {"languages": ["es"]}, "input": {"language": "en", "transcription": None}}},
        "resume": ["ab" * 16, 2, 500],
    }
    value = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
    p = RealtimeProtocol("m", None, SegmenterConfig(), card=CARD, limits=LIMITS)
    _, (config,) = split(list(p.resume(value)))
    assert isinstance(config, StreamConfig) and config.target_languages == ("spa",) and config.terms == ()


# -- on a realtime transcription session (boost terms only) ----------------------------------------


def test_a_transcription_session_takes_boost_terms_beside_its_prompt_and_refuses_the_others() -> None:
    from translate_svc.transport.openai.asr_options import TurnDetection
    from translate_svc.transport.openai.transcription_config import (
        TranscriptionSettings,
        stream_config,
        update_beta,
        update_ga,
    )

    vad = SegmenterConfig()
    start = TranscriptionSettings(TurnDetection.of(vad))
    ga = {
        "type": "transcription",
        "audio": {"input": {"transcription": {"language": "en", "prompt": "Acme, Kubernetes"}}},
        "x_terms": [{"phrase": "kubernetes", "weight": 8}, {"phrase": "gRPC"}],
    }
    config = stream_config(update_ga(ga, start, vad, LIMITS), CARD, vad, LIMITS)
    # x_terms first, with their weights; the prompt's names not already there at the default
    assert config.terms == (Term("kubernetes", weight=8.0), Term("gRPC"), Term("Acme"))
    beta = update_beta({"x_terms": [{"phrase": "gRPC", "weight": 2}]}, start, vad, LIMITS)
    assert beta.terms.terms == (Term("gRPC", weight=2.0),)
    for item in ({"phrase": "Acme", "kind": "keep"}, ENTRY):
        with pytest.raises(ParamError) as e:
            update_ga({**ga, "x_terms": [{"phrase": "ok"}, item]}, start, vad, LIMITS)
        assert e.value.param == "session.x_terms[1].kind" and "only boost terms" in e.value.message
    with pytest.raises(ParamError) as e:  # the server's limits, prompt and x_terms together
        limits = LimitsSettings(max_terms=2)
        stream_config(update_ga(ga, start, vad, limits), CARD, vad, limits)
    assert "make 3 terms to boost" in e.value.message
