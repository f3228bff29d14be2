"""Settled caption words and word timings on the wire (issue 45): our gRPC door's
``Translation.stable_text`` and ``words``, Riva's ``stability`` (a caption with settled words is
two results: 1.0 then 0.0, as Riva's and Google's streaming recognisers split an interim) and
Riva's ``words`` (start and end in ms), read back with Riva's own generated messages."""

from __future__ import annotations

import json

import pytest
from riva.client.proto import riva_asr_pb2 as asr

from translate_svc.transport.grpc import convert
from translate_svc.transport.openai.protocol import RealtimeProtocol
from translate_svc.transport.riva import convert as riva
from translate_svc.types import InterimResult, SegmentResult, Transcript, Translation, WordTiming
from translate_svc.vad.segmenter import SegmenterConfig

pytestmark = pytest.mark.unit

WORDS = (WordTiming("hola", 0, 320), WordTiming("a", 320, 400), WordTiming("todos", 400, 900))


def test_a_caption_carries_its_settled_words_apart_from_the_rest() -> None:
    caption = InterimResult(2, 1000, 3000, translations=(Translation("spa", "hola a todos", stable_text="hola a "),))
    msg = convert.stream_event_to_pb(caption).interim
    assert (msg.translations[0].text, msg.translations[0].stable_text) == ("hola a todos", "hola a ")
    r = riva.text_result(caption, "es-ES")
    assert [(x.alternatives[0].transcript, x.stability, x.is_final) for x in r.results] == [
        ("hola a ", 1.0, False),
        ("todos", 0.0, False),
    ]
    unsettled = InterimResult(2, 1000, 3000, translations=(Translation("spa", "hola a todos"),))
    assert [(x.alternatives[0].transcript, x.stability) for x in riva.text_result(unsettled, "es-ES").results] == [
        ("hola a todos", 0.0)
    ]


def test_word_timings_reach_both_doors() -> None:
    result = SegmentResult(
        0,
        1000,
        2000,
        Transcript("eng", "hello all", (WordTiming("hello", 1000, 1400), WordTiming("all", 1400, 1900))),
        (Translation("spa", "hola a todos", words=WORDS),),
    )
    msg = convert.segment_result_to_pb(result)
    assert [(w.word, w.start_ms, w.end_ms) for w in msg.translations[0].words] == [
        (w.word, w.start_ms, w.end_ms) for w in WORDS
    ]
    assert [(w.word, w.start_ms, w.end_ms) for w in msg.transcript.words] == [
        ("hello", 1000, 1400),
        ("all", 1400, 1900),
    ]
    alt = riva.text_result(result, "es-ES").results[0].alternatives[0]
    assert isinstance(alt, asr.SpeechRecognitionAlternative)
    assert [(w.word, w.start_time, w.end_time) for w in alt.words] == [(w.word, w.start_ms, w.end_ms) for w in WORDS]
    alt = riva.transcript_result(result, "eng").results[0].alternatives[0]
    assert [(w.word, w.start_time, w.end_time) for w in alt.words] == [("hello", 1000, 1400), ("all", 1400, 1900)]


def test_the_openai_doors_caption_carries_its_settled_words() -> None:
    caption = InterimResult(2, 1000, 3000, translations=(Translation("spa", "hola a todos", stable_text="hola a "),))
    (line,) = RealtimeProtocol("gpt-realtime-translate", None, SegmenterConfig()).render(caption)
    event = json.loads(str(line))
    assert event["x_interim"]["translations"] == {"spa": "hola a todos"}
    assert event["x_interim"]["stable_translations"] == {"spa": "hola a "}
