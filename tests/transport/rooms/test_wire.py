"""The room listener's WebSocket wire (``transport/rooms/protocol.py``) and the OpenAI door's
``x_room`` extension, with plain values: each result encoded once per language and its bytes
shared, a backlog read but not played, refusals as HTTP statuses, a speaker's room in its config."""

from __future__ import annotations

import gc
import json
from weakref import WeakKeyDictionary

import numpy as np
import pytest

from translate_svc.errors import InvalidInput, Overloaded, PermissionDenied, ShuttingDown
from translate_svc.session.events import Draining, RoomJoin, StreamConfig, StreamEnded
from translate_svc.session.rooms.listener import ListenStarted, OutputDropped, RoomOutput
from translate_svc.transport.http.errors import refusal
from translate_svc.transport.openai.protocol import ROOM_FIXED, RealtimeProtocol
from translate_svc.transport.rooms.protocol import LISTEN_RATE, Encodings, closed, frames, listen_ask
from translate_svc.types import InterimResult, SegmentError, SegmentResult, Transcript, Translation
from translate_svc.vad.segmenter import SegmenterConfig

pytestmark = pytest.mark.unit


def result(rate: int = 24000, seconds: float = 0.5) -> SegmentResult:
    audio = np.sin(np.arange(int(rate * seconds), dtype=np.float32) / 10) * 0.5
    return SegmentResult(
        3, 1000, 2500, Transcript("eng", "hello"), (Translation("spa", "hola", audio.astype(np.float32), rate),)
    )


def test_a_result_is_encoded_once_and_its_bytes_shared_by_every_listener() -> None:
    encoded: Encodings = WeakKeyDictionary()  # the door's
    out = RoomOutput("mayor", result())
    first = frames(out, encoded)
    again = frames(out, encoded)  # the next listener of the language
    assert [f.data is g.data for f, g in zip(first, again, strict=True)] == [True, True]
    assert len(encoded) == 1
    head, speech = first
    assert head.text and not speech.text
    body = json.loads(head.data)
    assert body["type"] == "room.segment" and body["speaker"] == "mayor" and body["backlog"] is False
    assert (body["segment_id"], body["start_ms"], body["end_ms"], body["language"]) == (3, 1000, 2500, "spa")
    assert body["transcript"] == {"text": "hello", "language": "eng", "avg_logprob": None} and body["error"] is None
    assert body["avg_logprob"] is None  # not computed: null (issue 72)
    # speech at the listeners' rate, whatever the speaker asked for: 0.5 s
    assert body["audio"] == {
        "format": "pcm16",
        "sample_rate": LISTEN_RATE,
        "samples": LISTEN_RATE // 2,
        "speech_rate": None,  # not told by this result (issue 90)
    }
    assert len(speech.data) == 2 * body["audio"]["samples"]
    assert np.abs(np.frombuffer(speech.data, "<i2")).max() > 10000
    # the door's cache holds no output alive: once no listener holds it, its entry is gone
    del out
    gc.collect()
    assert len(encoded) == 0


def test_a_backlog_result_carries_text_only() -> None:
    (head,) = frames(RoomOutput("mayor", result(), backlog=True), WeakKeyDictionary())
    body = json.loads(head.data)
    assert body["backlog"] is True and body["audio"] is None and body["text"] == "hola"


def test_captions_failures_and_notices() -> None:
    encoded: Encodings = WeakKeyDictionary()
    caption = InterimResult(4, 0, 800, None, (Translation("fra", "bonjour le", stable_text="bonjour"),))
    (c,) = frames(RoomOutput("s1", caption), encoded)
    assert json.loads(c.data) == {
        "type": "room.caption",
        "speaker": "s1",
        "segment_id": 4,
        "start_ms": 0,
        "end_ms": 800,
        "language": "fra",
        "text": "bonjour le",
        "stable_text": "bonjour",
        "transcript": None,
        "backlog": False,
    }
    failed = SegmentResult(5, 0, 10, error=SegmentError("INTERNAL", "the model failed"))
    (f,) = frames(RoomOutput("s1", failed), encoded)
    assert json.loads(f.data)["error"] == {"code": "INTERNAL", "message": "the model failed"}
    (s,) = frames(ListenStarted("r", "spa", "", 2, (("mayor", 7),)), encoded)
    assert json.loads(s.data)["speakers"] == [{"id": "mayor", "first_segment_id": 7}]
    (d,) = frames(OutputDropped(3, 9), encoded)
    assert json.loads(d.data) == {"type": "room.dropped", "count": 3, "total": 9}
    (n,) = frames(Draining(1_700_000_000_000, 5000), encoded)
    assert json.loads(n.data)["type"] == "room.draining"
    last, code = closed(ShuttingDown("this server shut down"))
    assert code == 1012 and json.loads(last.data)["reason"] == "server_shutting_down"


def test_the_handshake_query() -> None:
    assert listen_ask("r", {"language": "es"}).language == "spa"  # a tag is mapped as the door maps it
    assert listen_ask("r", {"language": "spa", "participant": "p1"}).participant == "p1"
    for bad in ({}, {"language": ""}, {"language": "x" * 65}, {"language": "spa", "lang": "fra"}):
        with pytest.raises(InvalidInput):
            listen_ask("r", bad)


def test_refusals_before_the_upgrade() -> None:
    assert refusal(InvalidInput("no")).status == 400
    assert refusal(PermissionDenied("no")).status == 403
    over = refusal(Overloaded("full", retry_after_ms=1000))
    assert over.status == 429 and over.headers["Retry-After"] == "1"
    assert refusal(ShuttingDown("bye")).status == 503


def configure(protocol: RealtimeProtocol, session: dict) -> list:  # type: ignore[type-arg]
    event = {"type": "session.update", "session": session}
    return list(protocol.receive(json.dumps(event)))


def speaker() -> RealtimeProtocol:
    return RealtimeProtocol("m", None, SegmenterConfig())


SESSION = {"audio": {"input": {"language": "en"}, "output": {"language": "es"}}}


def test_x_room_puts_the_room_in_the_config_in_segment_mode() -> None:
    p = speaker()
    (config,) = configure(p, {**SESSION, "x_room": {"name": "hall", "participant": "mayor"}})
    assert isinstance(config, StreamConfig)
    assert config.room == RoomJoin("hall", "mayor") and config.simultaneous is None
    # an explicit step is kept: the stream core refuses it with a message (not ignored)
    (config,) = configure(speaker(), {**SESSION, "x_room": {"name": "hall"}, "x_simultaneous_step_ms": 500})
    assert isinstance(config, StreamConfig) and config.simultaneous is not None
    # no room: the door's default, simultaneous mode
    (config,) = configure(speaker(), SESSION)
    assert isinstance(config, StreamConfig) and config.room is None and config.simultaneous is not None


def test_x_room_cannot_change_once_running_and_must_be_well_formed() -> None:
    p = speaker()
    configure(p, {**SESSION, "x_room": {"name": "hall"}})
    (answer,) = configure(p, {"x_room": {"name": "other"}})
    assert json.loads(answer)["error"]["message"] == ROOM_FIXED
    assert configure(p, {"x_room": {"name": "hall"}})[0].startswith('{"type": "session.updated"')
    for bad in ("hall", {"name": 3}, {"name": "hall", "extra": 1}, {"name": "x" * 65}):
        replies = configure(speaker(), {**SESSION, "x_room": bad})
        assert "x_room must be an object" in str(replies), bad


def test_a_drained_room_speaker_resumes_into_its_room() -> None:
    p = speaker()
    configure(p, {**SESSION, "x_room": {"name": "hall", "participant": "mayor"}})
    state = p.resume_state(StreamEnded(4, 9000, ShuttingDown("bye"), resume_offset_ms=8000))
    (config,) = list(speaker().resume(state))
    assert isinstance(config, StreamConfig)
    assert config.room == RoomJoin("hall", "mayor") and config.simultaneous is None and config.resume is not None


def test_a_segment_carries_its_confidence_and_a_caption_none() -> None:
    """``avg_logprob`` (issue 72): the translation's and the transcript's on ``room.segment``; a
    caption (superseded by its segment) has no place for one."""
    r = SegmentResult(
        3, 1000, 2500, Transcript("eng", "hello", avg_logprob=-0.25), (Translation("spa", "hola", avg_logprob=-0.5),)
    )
    (head,) = frames(RoomOutput("mayor", r, backlog=True), WeakKeyDictionary())
    body = json.loads(head.data)
    assert body["avg_logprob"] == -0.5 and body["transcript"]["avg_logprob"] == -0.25
    caption = InterimResult(3, 1000, 2000, Transcript("eng", "hel"), (Translation("spa", "ho"),))
    (head,) = frames(RoomOutput("mayor", caption), WeakKeyDictionary())
    body = json.loads(head.data)
    assert "avg_logprob" not in body and body["transcript"] == {"text": "hel", "language": "eng"}
