"""The OpenAI door's protocol without a socket (DESIGN.md pitfall 25): client events in, the stream
core's requests and wire events out; the core's events in, OpenAI's events (or WebRTC speech) out.
Plain values, no server, no event loop."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from translate_svc.errors import ErrorCode, ShuttingDown
from translate_svc.session.events import (
    AudioIn,
    Draining,
    Invalid,
    StreamConfig,
    StreamEnded,
    StreamRequest,
    Update,
)
from translate_svc.transport.openai.protocol import (
    RATE,
    RESTART_CLOSE_CODE,
    RealtimeProtocol,
)
from translate_svc.transport.openai.results import AUDIO_DELTA_SAMPLES
from translate_svc.transport.openai.wire import Speech
from translate_svc.types import (
    AudioEncoding,
    Commit,
    Profanity,
    SegmentError,
    SegmentResult,
    SimultaneousOptions,
    Timing,
    Transcript,
    Translation,
)
from translate_svc.vad.segmenter import SegmenterConfig

pytestmark = pytest.mark.unit

VAD = SegmenterConfig()


def protocol(**kwargs: Any) -> RealtimeProtocol:
    return RealtimeProtocol("gpt-realtime-translate", None, VAD, **kwargs)


def event(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})


def update(*languages: str, **session: Any) -> str:
    return event("session.update", session={"audio": {"output": {"languages": list(languages)}}, **session})


def append(data: bytes, **fields: Any) -> str:
    return event("session.input_audio_buffer.append", audio=base64.b64encode(data).decode("ascii"), **fields)


def split(outs: list[Any]) -> tuple[list[dict[str, Any]], list[StreamRequest]]:
    """What the protocol gave: the events to send (as JSON), and the requests."""
    return [json.loads(o) for o in outs if isinstance(o, str)], [o for o in outs if not isinstance(o, str)]


def configured(**kwargs: Any) -> RealtimeProtocol:
    p = protocol(**kwargs)
    events, requests = split(list(p.receive(update("es"))))
    assert events == [] and len(requests) == 1 and isinstance(requests[0], StreamConfig)
    return p


def test_the_first_update_naming_a_language_is_the_streams_config() -> None:
    p = protocol()
    events, requests = split(list(p.receive(update("es", x_captions_interval_ms=500))))
    assert events == []
    (config,) = requests
    assert isinstance(config, StreamConfig)
    assert (config.format.encoding, config.format.sample_rate_hz, config.format.channels) == (
        AudioEncoding.LINEAR16,
        RATE,
        1,
    )
    assert config.target_languages == ("spa",) and config.interim_interval_ms == 500
    assert config.simultaneous == SimultaneousOptions(1000, 2)
    assert config.output.speech_sample_rate_hz == RATE and config.vad is VAD
    assert p.configured and p.languages == ["es"]


def test_an_update_without_a_language_is_answered_and_requests_nothing() -> None:
    p = protocol()
    events, requests = split(list(p.receive(event("session.update", session={"x_speech": False}))))
    assert requests == [] and [e["type"] for e in events] == ["session.updated"]
    assert events[0]["session"]["x_speech"] is False and not p.configured


def test_audio_before_the_config_is_refused_and_not_used() -> None:
    events, requests = split(list(protocol().receive(append(b"\x00\x00" * 10, event_id="a1"))))
    assert requests == []
    assert [(e["error"]["code"], e["error"]["event_id"]) for e in events] == [("missing_output_language", "a1")]


def test_an_append_is_cut_into_the_cores_chunks_one_at_a_time() -> None:
    p = configured(chunk_bytes=2048)
    outs = p.receive(append(b"\x01\x00" * 2500))
    first = next(outs)  # a generator: the rest is not cut yet
    assert isinstance(first, AudioIn) and len(first.data) == 2048
    rest = list(outs)
    assert [len(r.data) for r in rest if isinstance(r, AudioIn)] == [2048, 904]


def test_bad_audio_is_invalid_and_an_append_over_the_limit_is_refused() -> None:
    p = configured(max_append_bytes=100)
    _, requests = split(list(p.receive(append(b"\x00" * 3))))  # an odd number of bytes
    assert len(requests) == 1 and isinstance(requests[0], Invalid)
    events, requests = split(list(p.receive(append(b"\x00" * 102, event_id="big"))))
    assert requests == [] and events[0]["error"]["code"] == "append_too_large"
    assert events[0]["error"]["event_id"] == "big"


def test_messages_the_protocol_cannot_use_are_answered_and_the_session_goes_on() -> None:
    p = protocol()
    for message, code in [
        (None, "invalid_event"),  # a binary frame
        ("not json", "invalid_event"),
        (event("session.dance"), "unknown_event"),
        (json.dumps({"type": "session.update", "event_id": "x" * 65}), "invalid_value"),
    ]:
        events, requests = split(list(p.receive(message)))
        assert requests == [] and [e["error"]["code"] for e in events] == [code], message
    assert not p.closed


def test_session_close_ends_the_input() -> None:
    p = configured()
    assert list(p.receive(event("session.close"))) == [] and p.closed


def test_a_changed_language_is_an_update_answered_by_session_updated() -> None:
    p = configured()
    _, requests = split(list(p.receive(update("fr", "de"))))
    assert requests == [Update(("fra", "deu"))]
    assert p.languages == ["es"]  # until the stream core answers


def result(audio_samples: int) -> SegmentResult:
    audio = np.zeros(audio_samples, np.float32)
    t = Translation("spa", "hola", audio=audio, sample_rate_hz=RATE)
    return SegmentResult(3, 1000, 2000, translations=(t,), timing=Timing(total_ms=12.0, model_ms=8.0))


def test_a_result_is_a_text_delta_and_200_ms_speech_deltas() -> None:
    p = configured()
    samples = AUDIO_DELTA_SAMPLES * 2 + 10
    events = [json.loads(o) for o in p.render(result(samples)) if isinstance(o, str)]
    # then the segment's done events (issue 51: tests/transport/openai/test_realtime_protocol.py's done tests)
    deltas = ["session.output_transcript.delta"] + ["session.output_audio.delta"] * 3
    assert [e["type"] for e in events] == [*deltas, "session.output_transcript.done", "session.output_audio.done"]
    text = events[0]
    assert (text["delta"], text["elapsed_ms"], text["x_language"]) == ("hola", 2000, "es")
    assert text["x_segment"] == {"segment_id": 3, "start_ms": 1000, "end_ms": 2000}
    sizes = [len(base64.b64decode(e["delta"])) // 2 for e in events[1:4]]
    assert sizes == [AUDIO_DELTA_SAMPLES, AUDIO_DELTA_SAMPLES, 10]
    second = [json.loads(o) for o in p.render(result(0)) if isinstance(o, str)]
    assert second[0]["delta"] == " hola"  # appended: a space between segments


def test_on_webrtc_speech_is_for_a_track_not_in_events() -> None:
    p = configured(tracks=True, input_rate=48000)
    outs = list(p.render(result(480)))
    speech = [o for o in outs if isinstance(o, Speech)]
    # the text delta, the speech for the track, the done events (issue 51)
    assert len(outs) == 4 and len(speech) == 1
    assert (speech[0].tag, len(speech[0].audio), speech[0].rate) == ("es", 480, RATE)
    _, requests = split(list(p.receive(append(b"\x00\x00"))))
    assert requests == []  # audio comes on the microphone's track


def test_a_drain_ends_with_x_resume_that_resumes_the_session_on_another_server() -> None:
    p = configured()
    notice = [json.loads(o) for o in p.render(Draining(deadline_unix_ms=5, remaining_ms=3000)) if isinstance(o, str)]
    # a notice of its own kind, not an error (issue 51: strict clients close on any error)
    assert [e["type"] for e in notice] == ["session.x_draining"]
    assert notice[0]["code"] == "server_shutting_down" and "3000 ms" in notice[0]["message"]
    assert (notice[0]["remaining_ms"], notice[0]["deadline_unix_ms"]) == (3000, 5)
    ended = StreamEnded(segments_total=4, audio_received_ms=9000, limit=ShuttingDown("bye"), resume_offset_ms=8000)
    events = [json.loads(o) for o in p.render(ended) if isinstance(o, str)]
    assert [e["type"] for e in events] == ["session.closed"]
    closed = events[0]
    assert (closed["x_reason"], closed["x_resume_offset_ms"]) == ("draining", 8000)
    assert "8000 ms" in closed["x_message"] and "x_resume" in closed["x_message"]
    assert p.close_code == RESTART_CLOSE_CODE
    again = protocol()
    _, requests = split(list(again.resume(closed["x_resume"])))
    (config,) = requests
    assert isinstance(config, StreamConfig) and config.target_languages == ("spa",)
    assert config.resume is not None and (config.resume.next_segment_id, config.resume.offset_ms) == (4, 8000)
    _, requests = split(list(protocol().resume("not-a-resume")))
    assert len(requests) == 1 and isinstance(requests[0], Invalid)
    # with a lead-in (x_resume_lead_in_ms): the audio starts that much before the offset and is only
    # listened to up to it
    _, requests = split(list(protocol(resume_lead_in="1000").resume(closed["x_resume"])))
    (config,) = requests
    assert isinstance(config, StreamConfig) and config.resume is not None
    assert (config.resume.offset_ms, config.resume.lead_in_ms) == (7000, 1000)
    for bad in ("-5", "1e3", "²", "9" * 5000, "8001", "10001"):  # not a whole number, or before the stream's start
        _, requests = split(list(protocol(resume_lead_in=bad).resume(closed["x_resume"])))
        assert len(requests) == 1 and isinstance(requests[0], Invalid), bad
        assert "x_resume_lead_in_ms" in requests[0].error.message and "0 to 8000" in requests[0].error.message


def types_of(p: RealtimeProtocol, *evs: Any) -> list[dict[str, Any]]:
    return [json.loads(o) for ev in evs for o in p.render(ev) if isinstance(o, str)]


def test_a_segment_ends_with_its_done_events_each_with_our_span_and_timing() -> None:
    p = protocol()
    transcribed = {"audio": {"output": {"language": "es"}, "input": {"language": "en", "transcription": {}}}}
    split(list(p.receive(event("session.update", session=transcribed))))
    heard = Transcript("eng", "hello")
    r = SegmentResult(
        3,
        1000,
        2000,
        transcript=heard,
        translations=(Translation("spa", "hola", audio=np.zeros(10, np.float32), sample_rate_hz=RATE),),
        timing=Timing(total_ms=12.0, model_ms=8.0),
    )
    events = types_of(p, r)
    kinds = [e["type"] for e in events]
    assert kinds == [
        "session.input_transcript.delta",
        "session.output_transcript.delta",
        "session.output_audio.delta",
        "session.input_transcript.done",
        "session.output_transcript.done",
        "session.output_audio.done",
    ]
    span = {"segment_id": 3, "start_ms": 1000, "end_ms": 2000}
    done_in, done_out, done_audio = events[3:]
    assert (done_in["transcript"], done_in["x_language"], done_in["x_segment"]) == ("hello", "eng", span)
    assert (done_out["transcript"], done_out["x_language"], done_out["x_segment"]) == ("hola", "es", span)
    assert done_out["x_timing"] == {"latency_ms": 12.0, "model_ms": 8.0}
    assert (done_audio["x_language"], done_audio["x_segment"]) == ("es", span)
    assert all(e["elapsed_ms"] == 2000 and "x_failed" not in e for e in events[3:])
    # the next segment's text done has no leading space (a delta has: deltas are appended)
    nxt = SegmentResult(4, 2500, 3000, translations=(Translation("spa", "adios"),))
    events = types_of(p, nxt)
    assert [e["delta"] for e in events if e["type"] == "session.output_transcript.delta"] == [" adios"]
    assert [e["transcript"] for e in events if e["type"] == "session.output_transcript.done"] == ["adios"]


def test_after_commits_the_done_transcript_is_the_whole_text_and_speech_off_sends_no_audio_done() -> None:
    p = protocol()
    split(list(p.receive(update("es", x_speech=False))))
    commits = [Commit(7, Translation("spa", t), source_ms=ms) for t, ms in (("hola", 1000), (" que tal", 2000))]
    r = SegmentResult(7, 0, 2500, translations=(Translation("spa", "hola que tal"),), speech_in_commits=True)
    events = types_of(p, *commits, r)
    assert [e["type"] for e in events] == ["session.output_transcript.delta"] * 3 + ["session.output_transcript.done"]
    assert events[2]["delta"] == "" and events[2]["x_done"] == {"text": "hola que tal"}
    assert events[3]["transcript"] == "hola que tal" and events[3]["elapsed_ms"] == 2500


def test_confidence_rides_as_x_avg_logprob_where_computed() -> None:
    """Issue 91: a commit's text delta carries the mean over the tokens it adds, the segment's
    ``x_done`` delta and done events the whole text's; a commit of speech only, and texts whose
    confidence was not computed, carry none."""
    p = protocol()
    transcribed = {"audio": {"output": {"language": "es"}, "input": {"language": "en", "transcription": {}}}}
    split(list(p.receive(event("session.update", session=transcribed))))
    speech = np.zeros(10, np.float32)
    commits = [
        Commit(7, Translation("spa", "hola", avg_logprob=-0.5), source_ms=1000),
        Commit(7, Translation("spa", "", audio=speech, sample_rate_hz=RATE), source_ms=1500),
    ]
    heard = Transcript("eng", "hello", avg_logprob=-0.25)
    r = SegmentResult(
        7,
        0,
        2000,
        transcript=heard,
        translations=(Translation("spa", "hola", avg_logprob=-0.75),),
        speech_in_commits=True,
    )
    events = types_of(p, *commits, r)
    sure = {e["type"] + ("+done" if "x_done" in e else ""): e.get("x_avg_logprob") for e in events}
    assert sure == {
        "session.output_transcript.delta": -0.5,  # the commit's
        "session.output_audio.delta": None,
        "session.input_transcript.delta": -0.25,
        "session.output_transcript.delta+done": -0.75,
        "session.input_transcript.done": -0.25,
        "session.output_transcript.done": -0.75,
        "session.output_audio.done": None,
    }
    plain = types_of(
        p,
        SegmentResult(8, 2000, 3000, transcript=Transcript("eng", "bye"), translations=(Translation("spa", "adios"),)),
    )
    assert plain and all("x_avg_logprob" not in e for e in plain)


def test_x_done_events_false_turns_them_off_and_must_be_a_boolean() -> None:
    p = protocol()
    split(list(p.receive(update("es", x_done_events=False))))
    kinds = {e["type"] for e in types_of(p, result(10))}
    assert kinds == {"session.output_transcript.delta", "session.output_audio.delta"}
    assert p.session()["x_done_events"] is False
    _, requests = split(list(protocol().receive(update("es", x_done_events="no"))))
    assert len(requests) == 1 and isinstance(requests[0], Invalid)
    assert "x_done_events must be true or false" in requests[0].error.message


def test_a_failed_segment_is_a_notice_not_an_error_and_still_ends_its_talk() -> None:
    p = configured()
    said = Commit(5, Translation("spa", "hola", audio=np.zeros(10, np.float32), sample_rate_hz=RATE), source_ms=900)
    failed = SegmentResult(5, 0, 1500, error=SegmentError(ErrorCode.UNAVAILABLE.value, "the model process was lost"))
    events = types_of(p, said, failed)
    kinds = [e["type"] for e in events]
    assert "error" not in kinds
    assert kinds[-3:] == ["session.x_segment_failed", "session.output_transcript.done", "session.output_audio.done"]
    report = events[-3]
    assert (
        report["error"]["code"] == "server_unavailable" and report["error"]["message"] == "the model process was lost"
    )
    assert report["x_segment"] == {"segment_id": 5, "start_ms": 0, "end_ms": 1500}
    assert events[-2]["transcript"] == "hola" and events[-2]["x_failed"] is True and events[-1]["x_failed"] is True


def test_x_profanity_is_the_streams_filter_and_must_be_a_mode() -> None:
    """Issue 72: ``x_profanity`` off, mask or remove (absent or null: the tenant's default)."""
    _, requests = split(list(protocol().receive(update("es", x_profanity="mask"))))
    (config,) = requests
    assert isinstance(config, StreamConfig) and config.output.profanity is Profanity.MASK
    _, requests = split(list(protocol().receive(update("es"))))
    assert isinstance(requests[0], StreamConfig) and requests[0].output.profanity is None
    p = protocol()
    split(list(p.receive(update("es", x_profanity="remove"))))
    assert p.session()["x_profanity"] == "remove"
    _, requests = split(list(protocol().receive(update("es", x_profanity="bleep"))))
    assert len(requests) == 1 and isinstance(requests[0], Invalid)
    assert "x_profanity must be" in requests[0].error.message


def test_noise_reduction_turns_rnnoise_on_is_shown_and_survives_a_resume() -> None:
    """Issue 72: ``audio.input.noise_reduction`` (either type) is the stream's noise suppression;
    a bad value is refused naming it; a drained session's ``x_resume`` keeps it."""
    p = protocol()
    _, requests = split(
        list(
            p.receive(
                update("es", audio={"output": {"language": "es"}, "input": {"noise_reduction": {"type": "far_field"}}})
            )
        )
    )
    (config,) = requests
    assert isinstance(config, StreamConfig) and config.ear.noise_suppression
    assert p.session()["audio"]["input"]["noise_reduction"] == {"type": "far_field"}
    _, requests = split(list(protocol().receive(update("es"))))
    assert isinstance(requests[0], StreamConfig) and not requests[0].ear.noise_suppression
    bad = update("es", audio={"output": {"language": "es"}, "input": {"noise_reduction": {"type": "loud"}}})
    _, requests = split(list(protocol().receive(bad)))
    assert isinstance(requests[0], Invalid) and "audio.input.noise_reduction.type" in requests[0].error.message
    ended = StreamEnded(segments_total=1, audio_received_ms=2000, limit=ShuttingDown("bye"), resume_offset_ms=1000)
    closed = next(json.loads(o) for o in p.render(ended) if isinstance(o, str))
    _, requests = split(list(protocol().resume(closed["x_resume"])))
    assert isinstance(requests[0], StreamConfig) and requests[0].ear.noise_suppression
