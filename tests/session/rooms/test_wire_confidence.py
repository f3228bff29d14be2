"""The rooms' cluster wire (``session/rooms/wire.py``) carries confidence (issue 72): a result's
translation and transcript ``avg_logprob`` and each word's cross to another process's listeners,
and a message written without them (a process of the release before) still reads, with none."""

from __future__ import annotations

import msgspec
import pytest

from translate_svc.session.rooms import wire
from translate_svc.session.rooms.listener import RoomOutput
from translate_svc.types import DetectedLanguage, LanguageSource, SegmentResult, Transcript, Translation, WordTiming

pytestmark = pytest.mark.unit


def test_confidence_crosses_the_cluster_wire() -> None:
    words = (WordTiming("hola", 0, 200, logprob=-0.5), WordTiming("mundo", 200, 400, logprob=-1.5))
    heard = Transcript("eng", "hello world", (WordTiming("hello", 0, 300, logprob=-0.25),), avg_logprob=-0.125)
    r = SegmentResult(4, 100, 900, heard, (Translation("spa", "hola mundo", words=words, avg_logprob=-0.75),))
    _, out = wire.decode(wire.encode("p1", RoomOutput("mayor", r), "", speech=False))
    got = out.event
    assert isinstance(got, SegmentResult) and got.transcript is not None
    assert got.transcript.avg_logprob == -0.125 and [w.logprob for w in got.transcript.words] == [-0.25]
    (t,) = got.translations
    assert t.avg_logprob == -0.75 and [w.logprob for w in t.words] == [-0.5, -1.5]

    plain = SegmentResult(5, 0, 500, Transcript("eng", "hi"), (Translation("spa", "hola"),))
    _, out = wire.decode(wire.encode("p1", RoomOutput("mayor", plain), "", speech=False))
    assert isinstance(out.event, SegmentResult) and out.event.translations[0].avg_logprob is None


def test_a_message_without_the_fields_still_reads() -> None:
    data = wire.encode("p1", RoomOutput("mayor", SegmentResult(6, 0, 500, None, (Translation("spa", "hola"),))), "",
                       speech=False)  # fmt: skip
    message = msgspec.msgpack.decode(data)
    message[wire.Wire.__struct_fields__.index("translation")] = ["spa", "hola", [], "", None]  # the older Text
    _, out = wire.decode(msgspec.msgpack.encode(message))
    assert isinstance(out.event, SegmentResult) and out.event.translations[0].text == "hola"
    assert out.event.translations[0].avg_logprob is None


def test_what_chose_a_segment_s_language_crosses_the_cluster_wire() -> None:
    """A conversation's segment (issue 99): its detected language's source (stated, or kept from the
    previous turn) reaches another process's listeners as the speaker's own see it; a message of
    the release before (no source) reads as identified."""
    for source in LanguageSource:
        r = SegmentResult(7, 0, 500, None, (Translation("spa", "hola"),), detected=DetectedLanguage("eng", (), source))
        _, out = wire.decode(wire.encode("p1", RoomOutput("mayor", r), "", speech=False))
        assert isinstance(out.event, SegmentResult) and out.event.detected == r.detected, source
    stated = SegmentResult(8, 0, 500, None, (), detected=DetectedLanguage("eng", (), LanguageSource.STATED))
    message = msgspec.msgpack.decode(wire.encode("p1", RoomOutput("mayor", stated), "", speech=False))
    _, out = wire.decode(msgspec.msgpack.encode(message[: wire.Wire.__struct_fields__.index("language_source")]))
    assert isinstance(out.event, SegmentResult) and out.event.detected is not None
    assert out.event.detected.source is LanguageSource.IDENTIFIED


def test_a_conversation_turn_s_original_crosses_the_cluster_wire() -> None:
    """Issue 99 item 5: a turn heard in its listeners' language carries the speaker's own audio for
    those who asked (``RoomOutput.original``): the mark and the audio reach another process; a
    listener there who did not ask gets it as said (text, no audio). A message of the release
    before (no mark) reads as no original."""
    import numpy as np

    voice = (0.3 * np.sin(2 * np.pi * 220 * np.arange(8000) / 16000)).astype(np.float32)
    heard = Transcript("spa", "hola")
    r = SegmentResult(9, 0, 500, heard, (Translation("spa", "hola", voice, 16000),))
    data = wire.encode("p1", RoomOutput("mayor", r, original=True), "", speech=True)
    _, out = wire.decode(data)
    (t,) = out.event.translations
    assert out.original and t.text == "hola" and t.audio is not None and len(t.audio) == len(voice)
    said = out.as_said()
    assert not said.original and said.event.translations == () and said.said == heard
    message = msgspec.msgpack.decode(data)
    _, older = wire.decode(msgspec.msgpack.encode(message[: wire.Wire.__struct_fields__.index("original")]))
    assert not older.original
