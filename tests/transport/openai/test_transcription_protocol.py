"""OpenAI's realtime transcription protocol without a socket (DESIGN.md pitfall 25): client events in,
the stream core's requests and wire events out; the core's events in, OpenAI's events out. The item
rules with the core's events fabricated in the orders the core can give them: a region the length
cap split, a commit that closed nothing, a clear, a failed segment, the drain. Plain values."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from translate_svc.errors import EngineFailed, ShuttingDown
from translate_svc.session.events import (
    AudioIn,
    Draining,
    Flush,
    Invalid,
    SpeechEvent,
    StreamConfig,
    StreamEnded,
    StreamEvent,
    StreamRequest,
    Update,
    Updated,
)
from translate_svc.settings import LimitsSettings
from translate_svc.transport.openai.asr_options import TurnDetection, boost_terms
from translate_svc.transport.openai.protocol import RESTART_CLOSE_CODE
from translate_svc.transport.openai.transcription import (
    COMMITTED,
    COMPLETED,
    DELTA,
    FAILED,
    MAX_HELD,
    TranscriptionProtocol,
)
from translate_svc.transport.openai.transcription_config import (
    ParamError,
    TranscriptionSettings,
    stream_config,
    update_beta,
    update_ga,
)
from translate_svc.types import (
    AudioEncoding,
    Language,
    ModelCard,
    ModelInfo,
    SegmentError,
    SegmentResult,
    Timing,
    Transcript,
)
from translate_svc.vad.segmenter import SegmenterConfig

pytestmark = pytest.mark.unit

VAD = SegmenterConfig()
LIMITS = LimitsSettings()
CARD = ModelCard(
    ModelInfo("test", "r", True),
    (Language("eng", "English", True, True, True), Language("spa", "Spanish", True, True, True)),
    1,
)
GA: dict[str, Any] = {
    "type": "transcription",
    "audio": {"input": {"transcription": {"model": "whisper-1", "language": "en"}}},
}
COMMIT_MODE = {**GA, "audio": {"input": {**GA["audio"]["input"], "turn_detection": None}}}


def send(p: TranscriptionProtocol, kind: str, **fields: Any) -> tuple[list[dict[str, Any]], list[StreamRequest]]:
    outs = list(p.receive(json.dumps({"type": kind, **fields})))
    return [json.loads(o) for o in outs if isinstance(o, str)], [o for o in outs if not isinstance(o, str)]


def render(p: TranscriptionProtocol, *events: StreamEvent) -> list[dict[str, Any]]:
    return [json.loads(o) for ev in events for o in p.render(ev)]


def started(session: dict[str, Any] = GA) -> TranscriptionProtocol:
    p = TranscriptionProtocol("gpt-4o-transcribe", VAD, LIMITS, card=CARD)
    events, requests = send(p, "session.update", session=session)
    assert events == [] and len(requests) == 1 and isinstance(requests[0], StreamConfig)
    return p


def result(n: int, text: str = "hello") -> SegmentResult:
    return SegmentResult(n, 1000 * n, 1000 * n + 800, Transcript("eng", text), timing=Timing(model_ms=5, total_ms=9))


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["type"], e.get("item_id")) for e in events]


def test_the_config_is_asr_only_in_the_language_given_with_the_prompt_boosted() -> None:
    p = TranscriptionProtocol("m", VAD, LIMITS, card=CARD)
    session = {**GA, "audio": {"input": {"transcription": {"language": "en", "prompt": "Kennedy, ask not;\nfellow"}}}}
    _, requests = send(p, "session.update", session=session)
    config = requests[0]
    assert isinstance(config, StreamConfig)
    assert config.target_languages == () and config.source_language == "eng" and config.detect is None
    assert config.output.transcript and not config.output.text and not config.output.speech
    assert [t.phrase for t in config.terms] == ["Kennedy", "ask not", "fellow"] and not any(
        t.keep for t in config.terms
    )
    assert config.format.encoding is AudioEncoding.LINEAR16 and config.format.sample_rate_hz == 24000


def test_server_vad_s_parameters_are_the_vad_s_and_g711_is_taken() -> None:
    session = {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "transcription": {"language": "es"},
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.6,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                },
            }
        },
    }
    p = TranscriptionProtocol("m", VAD, LIMITS, card=CARD)
    _, requests = send(p, "session.update", session=session)
    config = requests[0]
    assert isinstance(config, StreamConfig) and config.source_language == "spa"
    assert (config.vad.threshold, config.vad.speech_pad_ms, config.vad.min_silence_ms) == (0.6, 300, 500)
    assert config.format.encoding is AudioEncoding.MULAW and config.format.sample_rate_hz == 8000
    # G.711: any byte count is whole samples
    events, audio = send(p, "input_audio_buffer.append", audio=base64.b64encode(b"\x01\x02\x03").decode())
    assert events == [] and audio == [AudioIn(b"\x01\x02\x03")]


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({**GA, "tools": []}, "session.tools"),
        ({**GA, "audio": {"input": {"transcription": {"model": ["a", "b"]}}}},
         "session.audio.input.transcription.model"),
        ({**GA, "audio": {"input": {"transcription": {"delay": "low"}}}}, "session.audio.input.transcription.delay"),
        ({**GA, "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}},
         "session.audio.input.format.rate"),
        ({**GA, "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}}},
         "session.audio.input.turn_detection.threshold"),
        ({**GA, "audio": {"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 5}}}},
         "session.audio.input.turn_detection.idle_timeout_ms"),
        ({**GA, "audio": {"input": {"transcription": {"language": "zz-nothing"}}}},
         "session.audio.input.transcription.language"),
        ({**GA, "audio": {"input": {"transcription": {"language": "en", "prompt": "x" * 65}}}},
         "session.audio.input.transcription.prompt"),
        ({**GA, "audio": {"input": {"transcription": None}}}, "session.audio.input.transcription"),
        ({**GA, "audio": {"output": {}}}, "session.audio.output"),
    ],
)  # fmt: skip
def test_a_bad_update_names_its_field_and_changes_nothing(session: dict[str, Any], param: str) -> None:
    p = TranscriptionProtocol("m", VAD, LIMITS, card=CARD)
    events, requests = send(p, "session.update", session=session, event_id="e1")
    assert requests == [] and not p.started
    assert [e["type"] for e in events] == ["error"]
    error = events[0]["error"]
    assert (error["type"], error["code"], error["param"], error["event_id"]) == (
        "invalid_request_error",
        "invalid_value",
        param,
        "e1",
    )


def test_without_a_language_and_an_identifier_the_first_audio_is_refused_and_not_used() -> None:
    p = TranscriptionProtocol("m", VAD, LIMITS, card=CARD)  # CARD has no identifier
    events, requests = send(p, "input_audio_buffer.append", audio=base64.b64encode(bytes(4800)).decode())
    assert requests == [] and events[0]["error"]["param"] == "session.audio.input.transcription.language"
    assert "this audio was not used" in events[0]["error"]["message"]
    # the beta names its own fields
    beta = update_beta({"input_audio_transcription": {"model": "whisper-1"}}, p.settings, VAD)
    with pytest.raises(ParamError) as e:
        stream_config(beta, CARD, VAD, LIMITS)
    assert e.value.param == "session.input_audio_transcription.language"


def test_server_vad_commits_a_region_s_segments_when_it_stops_and_a_split_one_before_each_result() -> None:
    p = started()
    got = render(p, SpeechEvent(True, 300, 0), SpeechEvent(False, 2000, 1), result(0))
    item0 = got[0]["item_id"]
    assert kinds(got) == [
        ("input_audio_buffer.speech_started", item0),
        ("input_audio_buffer.speech_stopped", item0),
        (COMMITTED, item0),
        (DELTA, item0),
        (COMPLETED, item0),
    ]
    assert got[2]["previous_item_id"] is None and got[3]["delta"] == got[4]["transcript"] == "hello"
    assert got[4]["usage"] == {"type": "duration", "seconds": 0.8} and got[4]["x_segment"]["segment_id"] == 0
    # a long region: the length cap split it; its first segment's result comes while it still runs
    got = render(p, SpeechEvent(True, 3000, 1), result(1))
    item1 = got[0]["item_id"]
    assert kinds(got) == [
        ("input_audio_buffer.speech_started", item1),
        (COMMITTED, item1),
        (DELTA, item1),
        (COMPLETED, item1),
    ]
    assert got[1]["previous_item_id"] == item0
    got = render(p, SpeechEvent(False, 20000, 3), result(2, ""))
    item2 = got[1]["item_id"]
    assert kinds(got) == [("input_audio_buffer.speech_stopped", item1), (COMMITTED, item2), (COMPLETED, item2)]
    assert got[1]["previous_item_id"] == item1 and len({item0, item1, item2}) == 3
    assert got[2]["transcript"] == ""  # an empty transcript has no delta


def test_a_commit_is_answered_with_the_segments_it_closed_or_an_empty_item() -> None:
    p = started()
    events, requests = send(p, "input_audio_buffer.commit")
    assert events == [] and requests == [Update(target_languages=()), Flush(), Update(target_languages=())]
    # mid-speech: the commit closed the region (its items answer it)
    got = render(p, SpeechEvent(True, 0, 0), ack(p, 0), SpeechEvent(False, 900, 1), ack(p, 1))
    assert [e["type"] for e in got] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        COMMITTED,
    ]
    send(p, "input_audio_buffer.commit")
    got = render(p, ack(p, 1), ack(p, 1))  # nothing closed, nothing waited: an empty item answers it
    assert [e["type"] for e in got] == [COMMITTED, COMPLETED]
    assert got[1]["transcript"] == "" and got[1]["x_no_speech"] and got[0]["previous_item_id"] is not None


def ack(p: TranscriptionProtocol, next_id: int) -> Updated:
    """The core's answer to a marker (the fields the protocol reads; the stream itself unused)."""
    return Updated(stream=None, first_segment_id=next_id)  # type: ignore[arg-type]


def test_with_turn_detection_off_results_wait_for_a_commit() -> None:
    p = started(COMMIT_MODE)
    assert render(p, SpeechEvent(True, 0, 0), SpeechEvent(False, 900, 1), SpeechEvent(True, 1000, 1)) == []
    assert render(p, result(0)) == []  # transcribed, not said: the client has not committed
    send(p, "input_audio_buffer.commit")
    got = render(p, ack(p, 1), SpeechEvent(False, 1800, 2), ack(p, 2))
    assert [e["type"] for e in got] == [COMMITTED, DELTA, COMPLETED, COMMITTED]
    # a commit that closed nothing but found segments waiting is answered by them
    render(p, SpeechEvent(True, 2000, 2), SpeechEvent(False, 2900, 3), result(2))
    send(p, "input_audio_buffer.commit")
    assert [e["type"] for e in render(p, ack(p, 3), ack(p, 3))] == [COMMITTED, DELTA, COMPLETED]
    assert [e["type"] for e in render(p, result(1))] == [DELTA, COMPLETED]


def test_a_clear_drops_every_segment_not_committed() -> None:
    p = started(COMMIT_MODE)
    render(p, result(0))
    send(p, "input_audio_buffer.clear")
    got = render(p, ack(p, 1), SpeechEvent(False, 1800, 2), ack(p, 2))
    assert [e["type"] for e in got] == ["input_audio_buffer.cleared"]
    assert render(p, result(1)) == []  # its result came after: dropped too
    send(p, "input_audio_buffer.commit")
    got = render(p, ack(p, 2), SpeechEvent(False, 3000, 3), ack(p, 3), result(2))
    assert [e["type"] for e in got] == [COMMITTED, DELTA, COMPLETED] and got[0]["previous_item_id"] is None
    # server VAD: a region that stops while a clear is on its way is not committed
    q = started()
    send(q, "input_audio_buffer.clear")
    got = render(q, SpeechEvent(True, 0, 0), ack(q, 0), SpeechEvent(False, 900, 1), result(0), ack(q, 1))
    assert [e["type"] for e in got] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.cleared",
    ]


def test_a_failed_segment_is_its_item_s_failure_not_an_error() -> None:
    p = started()
    failed = SegmentResult(0, 0, 900, error=SegmentError("UNAVAILABLE", "the model process was lost"))
    got = render(p, SpeechEvent(True, 0, 0), SpeechEvent(False, 900, 1), failed)
    assert [e["type"] for e in got][-1] == FAILED
    assert got[-1]["error"]["code"] == "server_unavailable" and got[-1]["item_id"] == got[-2]["item_id"]


def test_the_drain_is_a_notice_and_its_end_the_restart_close_and_other_ends_an_error() -> None:
    p = started()
    (notice,) = render(p, Draining(deadline_unix_ms=123, remaining_ms=1000))
    assert notice["type"] == "session.x_draining" and notice["code"] == "server_shutting_down"
    assert render(p, StreamEnded(0, 0, ShuttingDown("gone"))) == [] and p.close_code == RESTART_CLOSE_CODE
    q = started(COMMIT_MODE)
    render(q, result(0))
    got = render(q, StreamEnded(1, 900, EngineFailed("the model worker died")))
    assert [e["type"] for e in got] == [COMMITTED, DELTA, COMPLETED, "error"]  # what was transcribed is sent
    assert got[-1]["error"]["code"] == "engine_failed" and q.close_code == 1000


def test_a_running_session_s_stream_settings_are_fixed() -> None:
    p = started()
    events, requests = send(p, "session.update", session=GA)
    assert requests == [] and [e["type"] for e in events] == ["session.updated"]
    spanish = {**GA, "audio": {"input": {"transcription": {"language": "es"}}}}
    events, requests = send(p, "session.update", session=spanish)
    assert requests == [] and events[0]["error"]["param"] == "session"


def test_commit_before_audio_and_unknown_events() -> None:
    p = TranscriptionProtocol("m", VAD, LIMITS, card=CARD)
    events, _ = send(p, "input_audio_buffer.commit")
    assert events[0]["error"]["code"] == "input_audio_buffer_commit_empty"
    events, _ = send(p, "input_audio_buffer.clear")
    assert [e["type"] for e in events] == ["input_audio_buffer.cleared"]
    events, _ = send(p, "response.create")
    assert events[0]["error"]["code"] == "unknown_event"
    p = started()
    _, requests = send(p, "input_audio_buffer.append", audio="bm90IGV2ZW4=!")
    assert isinstance(requests[0], Invalid)


def test_noise_reduction_is_applied_and_null_takes_it_back() -> None:
    """Issue 72: either type turns RNNoise on before the VAD; null turns it off."""
    s = TranscriptionSettings(TurnDetection.of(VAD))
    s = update_ga({"type": "transcription", "audio": {"input": {"noise_reduction": {"type": "far_field"}}}}, s, VAD)
    assert s.noise_reduction == "far_field" and s.ignored == ()
    s = update_ga({"type": "transcription", "audio": {"input": {"noise_reduction": None}}}, s, VAD)
    assert s.noise_reduction is None
    with pytest.raises(ParamError) as e:
        update_ga({"type": "transcription", "audio": {"input": {"noise_reduction": {"type": "loud"}}}}, s, VAD)
    assert e.value.param == "session.audio.input.noise_reduction.type"


def test_prompt_terms_are_bounded_by_the_server_s_limits() -> None:
    limits = LimitsSettings(max_terms=2)
    assert [t.phrase for t in boost_terms("a, b, A", (), limits, prompt_param="p", keywords_param="k")] == ["a", "b"]
    with pytest.raises(ParamError) as e:
        boost_terms("a, b", ("c",), limits, prompt_param="p", keywords_param="k")
    assert e.value.param == "p" and "at most 2" in e.value.message


def test_a_client_that_never_commits_holds_a_bounded_number_of_transcripts() -> None:
    p = started(COMMIT_MODE)
    for n in range(MAX_HELD):
        assert render(p, result(n)) == []
    got = render(p, result(MAX_HELD))  # one over: the oldest goes out as if committed
    assert [e["type"] for e in got] == [COMMITTED, DELTA, COMPLETED] and got[-1]["x_segment"]["segment_id"] == 0
    assert len(p._held) == MAX_HELD


def test_an_event_large_beside_its_audio_or_nested_deep_is_refused_unread_and_the_session_goes_on() -> None:
    """Issue 52 F3 holds for transcription sessions as for translation ones: an event with more than
    the limit beside its audio is refused before ``json.loads`` works through it, and JSON nested
    past the parser's recursion limit is an ``invalid_event``, not an exception out of ``receive``."""
    p = TranscriptionProtocol("m", VAD, LIMITS, card=CARD)
    big = json.dumps({"type": "session.update", "session": {**GA, "pad": "x" * 200_000}})
    outs = [json.loads(o) for o in p.receive(big)]
    assert [o["error"]["code"] for o in outs] == ["event_too_large"], outs
    deep = '{"type": "session.update", "session": ' + "[" * 20_000 + "]" * 20_000 + "}"
    outs = [json.loads(o) for o in p.receive(deep)]
    assert [o["error"]["code"] for o in outs] == ["invalid_event"], outs
    wire, requests = send(p, "session.update", session=GA)  # the session still takes its settings
    assert not [w for w in wire if w["type"] == "error"], wire
    audio = base64.b64encode(b"\0\0" * 2400).decode()
    wire, requests = send(p, "input_audio_buffer.append", audio=audio)
    assert any(isinstance(r, AudioIn) for r in requests), (wire, requests)
