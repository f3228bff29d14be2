"""The Riva door's conversion (``transport/riva/convert.py``) with plain values: language codes
through our BCP-47 mapping, ``dnt_phrases`` as KEEP terms in both shapes Riva's clients send, Riva's
encodings and the TTS rate, and what is refused (never dropped)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from riva.client.proto import riva_asr_pb2 as asr
from riva.client.proto import riva_audio_pb2 as audio
from riva.client.proto import riva_nmt_pb2 as nmt

from translate_svc.errors import InvalidInput
from translate_svc.session.events import AudioIn, StreamConfig
from translate_svc.settings import LimitsSettings
from translate_svc.transport.riva import convert
from translate_svc.types import AudioEncoding, AudioFormat, Language, ModelCard, ModelInfo, SegmentResult, Term, Timing
from translate_svc.vad.segmenter import SegmenterConfig

pytestmark = pytest.mark.unit

CARD = ModelCard(
    info=ModelInfo(name="m", revision="r", is_test_model=True),
    languages=tuple(
        Language(code, code, speech_input=True, text_output=True, speech_output=code != "cmn")
        for code in ("cmn", "cmn_Hant", "eng", "spa")
    ),
    num_speakers=1,
)
VAD = SegmenterConfig()
LIMITS = LimitsSettings()


def s2t(
    target: str = "es-ES", encoding: int = audio.LINEAR_PCM, **translation: object
) -> nmt.StreamingTranslateSpeechToTextRequest:
    return nmt.StreamingTranslateSpeechToTextRequest(
        config=nmt.StreamingTranslateSpeechToTextConfig(
            asr_config=asr.StreamingRecognitionConfig(
                config=asr.RecognitionConfig(encoding=encoding, sample_rate_hertz=8000, language_code="en-US")
            ),
            translation_config=nmt.TranslationConfig(target_language_code=target, **translation),
        )
    )


@pytest.mark.parametrize(
    ("tag", "code"), [("en-US", "eng"), ("es", "spa"), ("eng", "eng"), ("zh-TW", "cmn_Hant"), ("zh-CN", "cmn")]
)
def test_language_codes_go_through_the_bcp47_mapping(tag: str, code: str) -> None:
    assert convert.model_language(tag, CARD, "f") == code


def test_a_language_the_model_lacks_is_named() -> None:
    with pytest.raises(InvalidInput, match="f 'de-DE': this server's model has no such language"):
        convert.model_language("de-DE", CARD, "f")


def test_dnt_phrases_in_both_shapes_become_keep_terms() -> None:
    # riva.client's add_dnt_phrases_dict: one element "a##a,b##b"; or one phrase per element
    got = convert.dnt_terms(["NVIDIA##NVIDIA,Riva##Riva", "GPU", "  "], "dnt_phrases", "spa")
    assert got == (Term("NVIDIA", keep=True), Term("Riva", keep=True), Term("GPU", keep=True))


def test_a_dictionary_line_with_its_own_translation_is_a_glossary_entry_for_the_target() -> None:
    got = convert.dnt_terms(["GPU", "Riva##Rive, Acme Cloud ## Nube Acme"], "dnt_phrases", "spa")
    assert got == (
        Term("GPU", keep=True),
        Term("Riva", glossary=True, translation="Rive", target_language="spa"),
        Term("Acme Cloud", glossary=True, translation="Nube Acme", target_language="spa"),
    )
    with pytest.raises(InvalidInput, match=r"dnt_phrases\[0\] has an empty phrase in '##Rive'"):
        convert.dnt_terms(["##Rive"], "dnt_phrases", "spa")


def test_a_stream_config_maps_its_dictionary_onto_its_target_and_counts_entries_apart() -> None:
    lines = ",".join(f"w{i}##v{i}" for i in range(LIMITS.max_glossary_entries))
    got = convert.translate_request(s2t(dnt_phrases=[lines, "GPU"]), CARD, VAD, LIMITS)
    assert isinstance(got, StreamConfig)
    glossary = [t for t in got.terms if t.glossary]
    assert len(glossary) == LIMITS.max_glossary_entries and {t.target_language for t in glossary} == {"spa"}
    with pytest.raises(InvalidInput, match=rf"^{LIMITS.max_glossary_entries + 1} glossary entries"):
        convert.translate_request(s2t(dnt_phrases=[lines, "x##y"]), CARD, VAD, LIMITS)


def test_a_speech_to_text_config_maps_onto_the_stream_config() -> None:
    got = convert.translate_request(s2t(dnt_phrases=["GPU"], model_name="any"), CARD, VAD, LIMITS)
    assert isinstance(got, StreamConfig)
    assert got.format.encoding is AudioEncoding.LINEAR16 and got.format.sample_rate_hz == 8000
    assert got.source_language == "eng" and got.target_languages == ("spa",)
    assert got.output.text and not got.output.speech and got.terms == (Term("GPU", keep=True),)
    assert got.interim_interval_ms == 0


@pytest.mark.parametrize(
    ("riva", "ours"),
    [(audio.MULAW, AudioEncoding.MULAW), (audio.ALAW, AudioEncoding.ALAW), (audio.OGGOPUS, AudioEncoding.OPUS)],
)
def test_riva_encodings_map_onto_ours(riva: int, ours: AudioEncoding) -> None:
    got = convert.translate_request(s2t(encoding=riva), CARD, VAD, LIMITS)
    assert isinstance(got, StreamConfig) and got.format.encoding is ours


@pytest.mark.parametrize("encoding", [audio.FLAC, 7])
def test_flac_and_unknown_encodings_are_refused_in_a_stream(encoding: int) -> None:
    with pytest.raises(InvalidInput, match=r"asr_config\.config\.encoding .* is not taken in a stream"):
        convert.translate_request(s2t(encoding=encoding), CARD, VAD, LIMITS)


def test_the_tts_rate_is_the_speech_rate_and_its_language_must_be_the_target() -> None:
    def s2s(language: str) -> nmt.StreamingTranslateSpeechToSpeechRequest:
        req = nmt.StreamingTranslateSpeechToSpeechRequest()
        req.config.asr_config.config.CopyFrom(s2t().config.asr_config.config)
        req.config.translation_config.target_language_code = "es"
        req.config.tts_config.sample_rate_hz = 22050
        req.config.tts_config.language_code = language
        return req

    got = convert.translate_request(s2s("es-US"), CARD, VAD, LIMITS)
    assert isinstance(got, StreamConfig) and got.output.speech and got.output.speech_sample_rate_hz == 22050
    with pytest.raises(InvalidInput, match=r"tts_config\.language_code .en-US. is not the target language"):
        convert.translate_request(s2s("en-US"), CARD, VAD, LIMITS)


def test_audio_and_the_empty_buffer() -> None:
    assert convert.translate_request(
        nmt.StreamingTranslateSpeechToTextRequest(audio_content=b"ab"), CARD, VAD, LIMITS
    ) == (AudioIn(b"ab", field="audio_content"))
    assert convert.translate_request(nmt.StreamingTranslateSpeechToTextRequest(), CARD, VAD, LIMITS) is None


def test_recognize_interim_results_take_their_interval_from_custom_configuration() -> None:
    cfg = asr.StreamingRecognitionConfig(
        config=asr.RecognitionConfig(encoding=audio.LINEAR_PCM, sample_rate_hertz=16000, language_code="en-US"),
        interim_results=True,
    )
    got = convert.recognize_request(asr.StreamingRecognizeRequest(streaming_config=cfg), CARD, VAD, LIMITS)
    assert isinstance(got, StreamConfig) and got.interim_interval_ms == convert.DEFAULT_INTERIM_INTERVAL_MS
    assert got.target_languages == () and got.output.transcript
    cfg.config.custom_configuration["interim_interval_ms"] = "500"
    got = convert.recognize_request(asr.StreamingRecognizeRequest(streaming_config=cfg), CARD, VAD, LIMITS)
    assert isinstance(got, StreamConfig) and got.interim_interval_ms == 500
    cfg.config.custom_configuration["beam_size"] = "4"
    with pytest.raises(InvalidInput, match="custom_configuration has 'beam_size'"):
        convert.recognize_request(asr.StreamingRecognizeRequest(streaming_config=cfg), CARD, VAD, LIMITS)
    with pytest.raises(InvalidInput, match="runtime_config is not supported"):
        convert.recognize_request(asr.StreamingRecognizeRequest(runtime_config={"a": "b"}), CARD, VAD, LIMITS)


def test_segment_fields_carry_the_span_timing_and_a_failed_segments_status() -> None:
    from translate_svc.types import SegmentError

    r = SegmentResult(3, 1200, 3400, timing=Timing(queue_ms=5.4, model_ms=20.2, total_ms=26))
    assert convert.parse_segment_fields(convert.segment_fields(r).value) == {
        "segment": "3",
        "start_ms": "1200",
        "end_ms": "3400",
        "queue_ms": "5",
        "model_ms": "20",
        "total_ms": "26",
    }
    failed = SegmentResult(4, 0, 10, error=SegmentError("INTERNAL", "model failed & more"))
    fields = convert.parse_segment_fields(convert.speech_response(failed).id.value)
    assert fields["status"] == "INTERNAL" and fields["message"] == "model failed & more"


def _wav(pcm: bytes, *, rate: int = 16000, bits: int = 16, note: bytes = b"") -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * bits // 8, bits // 8, bits)
    chunks = [b"fmt ", struct.pack("<I", len(fmt)), fmt]
    if note:
        chunks += [b"LIST", struct.pack("<I", len(note)), note + b"\0" * (len(note) & 1)]
    body = b"WAVE" + b"".join(chunks) + b"data" + struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_a_wav_header_is_cut_from_the_first_chunk_and_checked_against_the_config() -> None:
    fmt16k = AudioFormat(AudioEncoding.LINEAR16, 16000, 1)
    pcm = bytes(range(200)) * 4
    assert convert.wav_payload(pcm, fmt16k, "audio_content") == pcm  # raw samples: as they are
    assert convert.wav_payload(_wav(pcm), fmt16k, "audio_content") == pcm
    assert convert.wav_payload(_wav(pcm, note=b"odd"), fmt16k, "audio_content") == pcm  # a padded chunk skipped
    with pytest.raises(InvalidInput, match="8000 Hz"):
        convert.wav_payload(_wav(pcm, rate=8000), fmt16k, "audio_content")
    with pytest.raises(InvalidInput, match="24-bit"):
        convert.wav_payload(_wav(pcm, bits=24), fmt16k, "audio_content")
    with pytest.raises(InvalidInput, match="do not both begin in this message"):
        convert.wav_payload(_wav(pcm, note=b"x" * 4000)[:1000], fmt16k, "audio_content")


def test_ogg_opus_bytes_cut_anywhere_give_the_same_packets_headers_checked(tmp_path: Path) -> None:
    import av
    import numpy as np
    import soundfile as sf

    path = tmp_path / "tone.opus"
    sf.write(path, (0.3 * np.sin(np.arange(48000) / 7)).astype(np.float32), 48000, format="OGG", subtype="OPUS")
    data = path.read_bytes()
    with av.open(str(path)) as container:
        want = [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]
    whole = convert.OggOpusPackets(1, "audio_content").feed(data)
    cut = convert.OggOpusPackets(1, "audio_content")
    pieces = [cut.feed(data[at : at + 37]) for at in range(0, len(data), 37)]
    assert whole == want and [p for piece in pieces for p in piece] == want
    with pytest.raises(InvalidInput, match="config says 2"):
        convert.OggOpusPackets(2, "audio_content").feed(data)
    with pytest.raises(InvalidInput, match="not an Ogg stream"):
        convert.OggOpusPackets(1, "audio_content").feed(b"RIFF" + data)
