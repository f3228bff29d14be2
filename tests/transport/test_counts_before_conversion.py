"""Issue 52 F3 with plain values: every list of a request counted against its limit before any of
it is converted, on every door; a message's bytes beside its audio held to a config's size before
protobuf parses it (the OpenAI door: an event's characters before ``json.loads``). (F5, a stream's
audio held to its bytes and the wall clock, is tests/session/test_timeline_pay.py.)"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from riva.client.proto import riva_asr_pb2 as asr
from riva.client.proto import riva_audio_pb2 as riva_audio
from riva.client.proto import riva_nmt_pb2 as nmt

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.errors import InvalidInput
from translate_svc.session.task.counts import check_counts
from translate_svc.settings import LimitsSettings
from translate_svc.transport.calls import config_message_bytes, stream_message_bytes
from translate_svc.transport.grpc import convert as ours
from translate_svc.transport.openai.protocol import RealtimeProtocol
from translate_svc.transport.openai.wire import MAX_BESIDE_AUDIO_CHARS, BadEnvelope, Envelope, beside_audio, envelope
from translate_svc.transport.riva import convert as riva
from translate_svc.transport.rpc import audio_bytes, audio_path, parse_beside_audio
from translate_svc.types import Language, ModelCard, ModelInfo, Term
from translate_svc.vad.segmenter import SegmenterConfig

pytestmark = pytest.mark.unit

LIMITS = LimitsSettings()
VAD = SegmenterConfig()
CARD = ModelCard(
    info=ModelInfo(name="m", revision="r", is_test_model=True),
    languages=tuple(Language(c, c, speech_input=True, text_output=True, speech_output=True) for c in ("eng", "spa")),
    num_speakers=1,
)


@pytest.fixture
def terms_made(monkeypatch: pytest.MonkeyPatch) -> list[Term]:
    """Every Term either door makes (none, for a list over its limit)."""
    made: list[Term] = []

    def counting(*args: Any, **kwargs: Any) -> Term:
        made.append(Term(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(ours, "Term", counting)
    monkeypatch.setattr(riva, "Term", counting)
    return made


# -- counts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({"texts": 17}, "17 texts: send at most 16 per request (ServerLimits.max_texts)"),
        ({"targets": 5}, "5 target languages requested; this server allows at most 4 per request"),
        ({"candidates": 5}, "5 candidate languages requested; this server allows at most 4 per request (or none"),
        ({"terms": 33}, "33 terms sent; this server allows at most 32 per request (ServerLimits.max_terms)"),
    ],
)
def test_each_list_is_refused_by_its_count_in_the_words_its_values_check_uses(
    counts: dict[str, int], message: str
) -> None:
    with pytest.raises(InvalidInput) as e:
        check_counts(LIMITS, **counts)
    assert e.value.message.startswith(message)
    check_counts(LIMITS, texts=16, targets=4, candidates=4, terms=32)  # at the limits: fine


def test_our_config_of_200000_terms_is_refused_before_one_term_is_made(terms_made: list[Term]) -> None:
    cfg = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000),
        target_languages=["spa"],
        terms=[pb.Term(phrase="a") for _ in range(200_000)],
    )
    with pytest.raises(InvalidInput, match=r"^200000 terms sent"):
        ours.stream_request(pb.StreamingTranslateRequest(config=cfg), VAD, LIMITS)
    assert terms_made == []  # counted, not converted (what it costs: tests/support/attacks/counts.py)
    del cfg.terms[32:]
    assert len(ours.stream_config(cfg, VAD, LIMITS).terms) == 32 == len(terms_made)


def test_a_clip_and_a_text_request_count_their_lists_and_detection_only_when_on() -> None:
    with pytest.raises(InvalidInput, match=r"^5 target languages"):
        ours.check_lists(pb.TranslateRequest(target_languages=["spa"] * 5), LIMITS)
    with pytest.raises(InvalidInput, match=r"^17 texts"):
        ours.check_lists(pb.TranslateTextRequest(texts=["a"] * 17), LIMITS)
    off = pb.LanguageDetection(enabled=False, candidates=["eng"] * 100)  # never read: not counted
    ours.check_lists(pb.TranslateRequest(language_detection=off), LIMITS)
    with pytest.raises(InvalidInput, match=r"^100 candidate languages"):
        ours.check_lists(
            pb.TranslateRequest(language_detection=pb.LanguageDetection(enabled=True, candidates=["eng"] * 100)), LIMITS
        )


def _riva_s2t(
    dnt: list[str], contexts: list[asr.SpeechContext] = (), **custom: str
) -> nmt.StreamingTranslateSpeechToTextRequest:  # type: ignore[assignment]
    recognition = asr.RecognitionConfig(
        encoding=riva_audio.LINEAR_PCM, sample_rate_hertz=16000, language_code="en-US", speech_contexts=contexts
    )
    recognition.custom_configuration.update(custom)
    return nmt.StreamingTranslateSpeechToTextRequest(
        config=nmt.StreamingTranslateSpeechToTextConfig(
            asr_config=asr.StreamingRecognitionConfig(config=recognition),
            translation_config=nmt.TranslationConfig(target_language_code="es-ES", dnt_phrases=dnt),
        )
    )


def test_rivas_500000_comma_items_are_counted_by_their_commas_and_no_term_is_made(terms_made: list[Term]) -> None:
    with pytest.raises(InvalidInput, match=r"^500000 terms \(dnt_phrases items and speech_contexts phrases\) sent"):
        riva.translate_request(_riva_s2t(["a," * 499_999 + "a"]), CARD, VAD, LIMITS)
    assert terms_made == []  # counted by their commas: nothing split or converted


def test_rivas_count_near_the_limit_is_exact_and_takes_speech_contexts_with_it(terms_made: list[Term]) -> None:
    words = [f"w{k}" for k in range(32)]
    got = riva.translate_request(_riva_s2t([",".join(words) + ",", " "]), CARD, VAD, LIMITS)  # blank items: no terms
    assert got is not None and len(getattr(got, "terms", ())) == 32
    boost = [asr.SpeechContext(phrases=["x"], boost=2.0)]
    with pytest.raises(InvalidInput, match=r"^33 terms"):
        riva.translate_request(_riva_s2t([",".join(words)], boost), CARD, VAD, LIMITS)
    with pytest.raises(InvalidInput, match=r"^33 terms"):  # StreamingRecognize: its contexts alone
        many = [asr.SpeechContext(phrases=[f"p{k}"]) for k in range(33)]
        cfg = asr.StreamingRecognitionConfig(
            config=asr.RecognitionConfig(
                encoding=riva_audio.LINEAR_PCM, sample_rate_hertz=16000, language_code="en-US", speech_contexts=many
            )
        )
        riva.recognize_request(asr.StreamingRecognizeRequest(streaming_config=cfg), CARD, VAD, LIMITS)
    with pytest.raises(InvalidInput, match=r"^1000 terms"):  # more contexts than could be terms: their number
        riva.translate_request(_riva_s2t([], [asr.SpeechContext()] * 1000), CARD, VAD, LIMITS)


def test_rivas_custom_configuration_and_texts_are_counted_first() -> None:
    with pytest.raises(InvalidInput, match="custom_configuration has 100 keys: this server reads only"):
        riva.translate_request(_riva_s2t([], **{str(k): "" for k in range(100)}), CARD, VAD, LIMITS)
    with pytest.raises(InvalidInput, match=r"^17 texts"):
        riva.text_request(nmt.TranslateTextRequest(texts=["a"] * 17, target_language="es"), CARD, LIMITS)
    with pytest.raises(InvalidInput, match=r"^40 terms"):
        riva.text_request(nmt.TranslateTextRequest(texts=["a"], dnt_phrases=["a," * 40]), CARD, LIMITS)


# -- bytes beside the audio, before protobuf parses them -------------------------------------------

STREAM_AUDIO = (
    audio_path(pb.StreamingTranslateRequest, "audio"),
    audio_path(pb.StreamingTranslateRequest, "packet.data"),
)


def _stream(raw: bytes) -> pb.StreamingTranslateRequest:
    return parse_beside_audio(
        pb.StreamingTranslateRequest,
        raw,
        stream_message_bytes(LIMITS),
        beside_limit=config_message_bytes(LIMITS),
        audio=STREAM_AUDIO,
        most_fields=4,
        too_large="smaller",
        beside_hint="fewer terms",
    )


def test_audio_is_found_on_the_wire_without_parsing() -> None:
    chunk = b"\x01" * 1_000_000
    audio = pb.StreamingTranslateRequest(audio=chunk).SerializeToString()
    packet = pb.StreamingTranslateRequest(packet=pb.AudioPacket(data=chunk, timestamp=48000)).SerializeToString()
    config = pb.StreamingTranslateRequest(
        config=pb.StreamingConfig(source_language="x" * 1_000_000)
    ).SerializeToString()
    assert audio_bytes(audio, STREAM_AUDIO, 4) == audio_bytes(packet, STREAM_AUDIO, 4) == len(chunk)
    assert audio_bytes(config, STREAM_AUDIO, 4) == 0
    assert audio_bytes(audio[:-1], STREAM_AUDIO, 4) == 0  # cut short: not a run of fields
    assert audio_bytes(audio + b"\x18\x01" * 4, STREAM_AUDIO, 4) == 0  # more fields than a message has
    assert audio_bytes(b"\x0b" + audio, STREAM_AUDIO, 4) == 0  # a group: no message of ours has one
    assert _stream(audio).audio == chunk and _stream(packet).packet.timestamp == 48000


def test_a_message_without_audio_over_a_configs_size_is_refused_unparsed() -> None:
    limit = config_message_bytes(LIMITS)
    assert limit == 65536 + 32 * (8 * 64 + 16) + 128 * (8 * 64 + 64)  # terms, glossary entries
    fits = pb.StreamingTranslateRequest(config=pb.StreamingConfig(source_language="x" * (limit - 16)))
    assert _stream(fits.SerializeToString()).config.source_language == "x" * (limit - 16)
    big = pb.StreamingTranslateRequest(config=pb.StreamingConfig(terms=[pb.Term(phrase="a")] * 200_000))
    with pytest.raises(InvalidInput) as e:
        _stream(big.SerializeToString())
    assert e.value.message == (
        f"the StreamingTranslateRequest message holds {big.ByteSize()} bytes that are not audio, over the "
        f"{limit} bytes this method takes beside an audio chunk: fewer terms"
    )
    # an audio chunk with a config's worth of other bytes beside it is still an audio chunk
    both = pb.StreamingTranslateRequest(audio=b"\x01" * 1_000_000).SerializeToString() + b"\x1a\x02ab"
    assert len(_stream(both).audio) == 1_000_000


def test_rivas_config_with_a_large_map_is_refused_before_it_is_parsed() -> None:
    msg = _riva_s2t([], **{str(k): "" for k in range(20_000)})
    raw = msg.SerializeToString()
    with pytest.raises(InvalidInput, match="bytes that are not audio"):
        parse_beside_audio(
            nmt.StreamingTranslateSpeechToTextRequest,
            raw,
            stream_message_bytes(LIMITS),
            beside_limit=config_message_bytes(LIMITS),
            audio=(audio_path(nmt.StreamingTranslateSpeechToTextRequest, "audio_content"),),
            most_fields=4,
            too_large="",
            beside_hint="",
        )


def test_a_clips_bytes_beside_its_audio_are_bounded_however_many_fields_they_take() -> None:
    path = (audio_path(pb.TranslateRequest, "audio.content"),)
    audio = pb.AudioInput(content=b"\x01" * 1_000_000, format=pb.AudioFormat(encoding=pb.CONTAINER))
    fine = pb.TranslateRequest(audio=audio, target_languages=["spa"] * 4, terms=[pb.Term(phrase="t")] * 32)
    assert audio_bytes(fine.SerializeToString(), path, 32 + 4 + 8) == 1_000_000
    many = pb.TranslateRequest(audio=audio, terms=[pb.Term(phrase="t")] * 100)  # more fields than the lists allow
    assert audio_bytes(many.SerializeToString(), path, 32 + 4 + 8) == 0


# -- the OpenAI door: an event's characters beside its audio, before json.loads --------------------


def test_a_large_event_must_be_an_append_whose_audio_is_most_of_it() -> None:
    audio = base64.b64encode(b"\x01" * 3_000_000).decode()
    append = json.dumps({"type": "session.input_audio_buffer.append", "event_id": "audio", "audio": audio})
    assert beside_audio(append) == len(append) - len(audio) and isinstance(envelope(append), Envelope)
    small = json.dumps({"type": "session.update", "session": {"x": [0] * 1000}})
    assert isinstance(envelope(small), Envelope)
    junk = json.dumps({"type": "session.update", "session": {"x": [{}] * 400_000}})
    refusal = envelope(junk)
    assert isinstance(refusal, BadEnvelope) and refusal.code == "event_too_large"
    escaped = json.dumps({"type": "x", "audio": "\\u0041" * 200_000})  # escapes are work for json.loads
    assert beside_audio(escaped) == len(escaped) > MAX_BESIDE_AUDIO_CHARS


def test_the_protocol_refuses_such_events_and_nesting_json_cannot_follow_unread() -> None:
    p = RealtimeProtocol("gpt-realtime-translate", None, VAD)
    for text in (json.dumps({"type": "session.update", "session": {"x": [0] * 100_000}}), "[" * 60_000):
        (out,) = list(p.receive(text))
        assert isinstance(out, str) and json.loads(out)["type"] == "error"
    assert json.loads(next(iter(p.receive("[" * 60_000))))["error"]["code"] == "invalid_event"
