"""The Riva-compatible door (``server.riva``, docs/riva-compat.md) with the unmodified
``nvidia-riva-client`` on loopback: speech-to-text and speech-to-speech translation answer once per
segment, on the segments our own door cuts from the same audio; StreamingRecognize gives live
captions (interim) and finals; ListSupportedLanguagePairs lists our languages; a language the model
lacks, an unknown token, a custom dnt translation are refused as Riva's clients expect; TranslateText
translates as our own TranslateText does; the door's streams count against ``max_streams``
and the tenant's caps, and drain like every stream.

Riva's clients are synchronous (grpc's threads): they run in ``asyncio.to_thread`` beside the
server's loop; a test that must hold a stream open gates its audio on what the server answered."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
import riva.client
from riva.client.proto import riva_nmt_pb2 as nmt
from riva.client.proto import riva_nmt_pb2_grpc as nmt_grpc

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.app import build
from translate_svc.transport.host import DoorSetupError, TranslateServer
from translate_svc.transport.riva.convert import END_REASON, SEGMENTS_TOTAL, SESSION_ID, parse_segment_fields

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

RATE = 16000
CHUNK_BYTES = 6400  # 200 ms of PCM16 at 16 kHz
SECONDS = 20.0


@pytest.fixture(scope="module")
def pcm(shared_audio: Path) -> bytes:
    return speech_pcm16(shared_audio / "silero_test.wav", SECONDS, RATE).tobytes()


def chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def door(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.server.riva = True
    async with serving(settings) as live:
        yield live


def recognition(language: str = "en-US", **kw: Any) -> Any:
    return riva.client.RecognitionConfig(
        encoding=riva.client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=RATE, language_code=language, **kw
    )


def s2t_config(target: str = "es-ES", **translation: Any) -> Any:
    return riva.client.StreamingTranslateSpeechToTextConfig(
        asr_config=riva.client.StreamingRecognitionConfig(config=recognition()),
        translation_config=riva.client.TranslationConfig(target_language_code=target, **translation),
    )


def nmt_client(port: int, metadata: list[list[str]] | None = None) -> Any:
    return riva.client.NeuralMachineTranslationClient(riva.client.Auth(uri=f"127.0.0.1:{port}", metadata_args=metadata))


async def our_spans(live: LiveServer, data: bytes, targets: list[str], speech: bool) -> list[tuple[int, int]]:
    """The segments our own door (StreamingTranslate) gives for the same audio, chunked alike."""
    config = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=RATE),
        source_language="eng",
        target_languages=targets,
        output=pb.OutputOptions(speech=speech, transcript=not targets),
    )

    async def gen() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=config)
        for c in chunks(data):
            yield pb.StreamingTranslateRequest(audio=c)

    segs = [r.segment async for r in live.stub.StreamingTranslate(gen(), timeout=300) if r.HasField("segment")]
    return [(s.start_ms, s.end_ms) for s in segs]


def spans_of(responses: list[Any]) -> list[tuple[int, int]]:
    fields = [parse_segment_fields(r.id.value) for r in responses]
    assert all("status" not in f for f in fields), fields
    assert [int(f["segment"]) for f in fields] == list(range(len(fields)))
    return [(int(f["start_ms"]), int(f["end_ms"])) for f in fields]


async def test_speech_to_text_answers_once_per_segment_on_our_doors_segments(door: LiveServer, pcm: bytes) -> None:
    client = nmt_client(door.port)
    cfg = s2t_config(dnt_phrases=["Silero##Silero,VAD"])  # KEEP terms, as Riva's client sends a dict
    responses = await asyncio.to_thread(lambda: list(client.streaming_s2t_response_generator(chunks(pcm), cfg)))
    want = await our_spans(door, pcm, ["spa"], speech=False)
    assert want and spans_of(responses) == want
    for r in responses:
        (result,) = r.results
        assert result.is_final and result.stability == 1.0 and len(result.alternatives) == 1
        assert list(result.alternatives[0].language_code) == ["spa"]
        end_ms = int(parse_segment_fields(r.id.value)["end_ms"])
        assert result.audio_processed == pytest.approx(end_ms / 1000, abs=1e-3)
    # confidence (issue 72): exp of the translation's mean token log-probability, each segment its own
    confidences = [r.results[0].alternatives[0].confidence for r in responses]
    assert all(0.0 < c <= 1.0 for c in confidences) and len(set(confidences)) == len(confidences)


def wav_file(path: Path, pcm: bytes, rate: int, note_bytes: int = 4000) -> Path:
    """A WAV file as tools write them: a LIST chunk (``note_bytes`` of metadata, 125 ms of audio if
    taken for samples) between the format and the samples."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, 2 * rate, 2, 16)
    chunks_ = [b"fmt ", struct.pack("<I", len(fmt)), fmt, b"LIST", struct.pack("<I", note_bytes), b"\0" * note_bytes]
    chunks_ += [b"data", struct.pack("<I", len(pcm)), pcm]
    body = b"WAVE" + b"".join(chunks_)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def s2t_file(client: Any, path: Path) -> list[Any]:
    """Riva's own file iterator, as its examples stream a file (from its first byte)."""
    audio = riva.client.AudioChunkFileIterator(path, CHUNK_BYTES // 2)
    return list(client.streaming_s2t_response_generator(audio, s2t_config()))


async def test_a_wav_file_streamed_by_rivas_file_iterator_has_its_header_cut(
    door: LiveServer, pcm: bytes, tmp_path: Path
) -> None:
    """Riva's ``AudioChunkFileIterator`` sends a WAV file from its first byte: the header is checked
    against the config and cut, never taken for samples (the segments are those of the raw PCM, not
    125 ms later); a header that disagrees with the config is INVALID_ARGUMENT saying so."""
    client = nmt_client(door.port)
    responses = await asyncio.to_thread(s2t_file, client, wav_file(tmp_path / "speech.wav", pcm, RATE))
    assert spans_of(responses) == await our_spans(door, pcm, ["spa"], speech=False)
    with pytest.raises(grpc.RpcError) as err:  # the same samples, said to be 8 kHz
        await asyncio.to_thread(s2t_file, client, wav_file(tmp_path / "8k.wav", pcm[: 2 * RATE], 8000))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "8000 Hz" in err.value.details()


async def test_an_ogg_opus_file_streamed_as_riva_sends_it_is_translated_packet_by_packet(
    door: LiveServer, shared_audio: Path, tmp_path: Path
) -> None:
    """OGGOPUS: the Ogg Opus file's bytes, cut anywhere by Riva's file iterator, are our OPUS
    stream's packets: the segments are those our own door gives for the same packets (demuxed by
    PyAV); a stream whose bytes are not Ogg, or that ends inside a page, is INVALID_ARGUMENT."""
    import av
    import soundfile as sf

    path = tmp_path / "speech.opus"
    sf.write(path, speech_pcm16(shared_audio / "silero_test.wav", SECONDS, 48000), 48000, format="OGG", subtype="OPUS")
    with av.open(str(path)) as container:
        packets = [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]
    config = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.OPUS, sample_rate_hz=48000, channels=1),
        source_language="eng",
        target_languages=["spa"],
        output=pb.OutputOptions(speech=False),
    )

    async def ours() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=config)
        for packet in packets:
            yield pb.StreamingTranslateRequest(audio=packet)

    want = [
        (r.segment.start_ms, r.segment.end_ms)
        async for r in door.stub.StreamingTranslate(ours(), timeout=300)
        if r.HasField("segment")
    ]
    cfg = s2t_config()
    cfg.asr_config.config.encoding = riva.client.AudioEncoding.OGGOPUS
    cfg.asr_config.config.sample_rate_hertz = 48000
    client = nmt_client(door.port)

    def stream(file: Path) -> list[Any]:  # 1000-byte reads: pages and packets cut across messages
        return list(client.streaming_s2t_response_generator(riva.client.AudioChunkFileIterator(file, 1000), cfg))

    assert want and spans_of(await asyncio.to_thread(stream, path)) == want
    (tmp_path / "raw.opus").write_bytes(b"\x01\x02" * 3000)
    with pytest.raises(grpc.RpcError) as err:
        await asyncio.to_thread(stream, tmp_path / "raw.opus")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not an Ogg stream" in err.value.details()
    (tmp_path / "cut.opus").write_bytes(path.read_bytes()[:-100])  # a file cut short: said, not dropped
    with pytest.raises(grpc.RpcError) as err:
        await asyncio.to_thread(stream, tmp_path / "cut.opus")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "inside an Ogg page" in err.value.details()


async def test_speech_to_speech_answers_pcm_at_the_asked_rate_once_per_segment(door: LiveServer, pcm: bytes) -> None:
    client = nmt_client(door.port)
    cfg = riva.client.StreamingTranslateSpeechToSpeechConfig(
        asr_config=riva.client.StreamingRecognitionConfig(config=recognition()),
        translation_config=riva.client.TranslationConfig(source_language_code="en-US", target_language_code="fr"),
        tts_config=riva.client.SynthesizeSpeechConfig(
            encoding=riva.client.AudioEncoding.LINEAR_PCM, sample_rate_hz=22050, language_code="fr-FR"
        ),
    )
    responses = await asyncio.to_thread(lambda: list(client.streaming_s2s_response_generator(chunks(pcm), cfg)))
    want = await our_spans(door, pcm, ["fra"], speech=True)
    assert want and spans_of(responses) == want
    # PCM16 samples, one buffer per segment
    assert all(len(r.speech.audio) % 2 == 0 for r in responses)
    assert any(r.speech.audio for r in responses)


async def test_list_supported_language_pairs_lists_our_languages(door: LiveServer) -> None:
    client = nmt_client(door.port)
    got = await asyncio.to_thread(client.get_config, "any-model")
    ours = await door.stub.ListLanguages(pb.ListLanguagesRequest())
    ((name, pair),) = got.languages.items()
    assert name == ours.model.name
    assert list(pair.src_lang) == [lang.code for lang in ours.languages if lang.speech_input]
    assert list(pair.tgt_lang) == [lang.code for lang in ours.languages if lang.text_output]


async def test_reflection_lists_the_riva_services(door: LiveServer) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(door.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for answer in stub.ServerReflectionInfo(iter([request])):
        names = {s.name for s in answer.list_services_response.service}
        break
    assert {"nvidia.riva.nmt.RivaTranslation", "nvidia.riva.asr.RivaSpeechRecognition"} <= names


async def test_a_language_the_model_lacks_is_invalid_argument_naming_it(door: LiveServer, pcm: bytes) -> None:
    client = nmt_client(door.port)
    ours = await door.stub.ListLanguages(pb.ListLanguagesRequest())
    assert "fin" not in {lang.code for lang in ours.languages}
    with pytest.raises(grpc.RpcError) as err:
        await asyncio.to_thread(
            lambda: list(client.streaming_s2t_response_generator(chunks(pcm[:32000]), s2t_config("fi-FI")))
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "translation_config.target_language_code 'fi-FI'" in err.value.details()


async def test_a_dictionary_line_with_its_own_translation_is_a_glossary_entry_as_ours(
    door: LiveServer, pcm: bytes
) -> None:
    """Riva's ``phrase##translation`` is our TRANSLATE term for the call's target: Riva's
    ``translate()`` with it equals our TranslateText with that entry (which says the translation
    where the text has the phrase: tests/service/test_glossary_paths.py), and differs from the
    plain translation. A line without a phrase is INVALID_ARGUMENT naming it."""
    client = nmt_client(door.port)
    texts = ["Please send the report to me.", "Nothing here."]
    got = await asyncio.to_thread(
        client.translate, texts, "", "en-US", "es-ES", dnt_phrases_dict={"report": "nube acme"}
    )
    entry = pb.Term(phrase="report", kind=pb.Term.TRANSLATE, translation="nube acme", target_language="spa")
    ours = await door.stub.TranslateText(
        pb.TranslateTextRequest(
            texts=texts,
            source_language="eng",
            target_languages=["spa"],
            output=pb.OutputOptions(speech=False),
            terms=[entry],
        )
    )
    assert [t.text for t in got.translations] == [r.translations[0].text for r in ours.results]
    plain = await asyncio.to_thread(client.translate, texts, "", "en-US", "es-ES")
    assert got.translations[0].text != plain.translations[0].text and "nube acme" in got.translations[0].text
    cfg = s2t_config(dnt_phrases=["NVIDIA", "##Nvidia Corp"])
    with pytest.raises(grpc.RpcError) as err:
        await asyncio.to_thread(lambda: list(client.streaming_s2t_response_generator(chunks(pcm[:32000]), cfg)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "dnt_phrases[1] has an empty phrase" in err.value.details()


async def test_translate_text_translates_as_our_own_translate_text_does(door: LiveServer) -> None:
    """Riva's ``translate()`` goes through the same text core as our ``TranslateText``: one
    translation per text, in order, in the asked language, equal to ours for the same texts (the
    words are a random model's: only their equality is checked); dnt_phrases are KEEP terms, as
    ours (tests/transport/riva/test_convert.py checks the mapping); a language the model lacks is
    INVALID_ARGUMENT naming it."""
    client = nmt_client(door.port)
    texts = ["Good morning, everyone.", "NVIDIA makes GPUs.", "See you tomorrow"]
    got = await asyncio.to_thread(client.translate, texts, "", "en-US", "es-ES")
    assert [t.language for t in got.translations] == ["es-ES"] * 3
    ours = await door.stub.TranslateText(
        pb.TranslateTextRequest(
            texts=texts, source_language="eng", target_languages=["spa"], output=pb.OutputOptions(speech=False)
        )
    )
    assert [t.text for t in got.translations] == [r.translations[0].text for r in ours.results]
    kept = await asyncio.to_thread(client.translate, texts, "", "en-US", "es-ES", dnt_phrases_dict={"NVIDIA": "NVIDIA"})
    ours_kept = await door.stub.TranslateText(
        pb.TranslateTextRequest(
            texts=texts,
            source_language="eng",
            target_languages=["spa"],
            output=pb.OutputOptions(speech=False),
            terms=[pb.Term(phrase="NVIDIA", kind=pb.Term.KEEP)],
        )
    )
    assert [t.text for t in kept.translations] == [r.translations[0].text for r in ours_kept.results]
    with pytest.raises(grpc.RpcError) as err:
        await asyncio.to_thread(client.translate, ["hello"], "", "en-US", "fi")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "target_language 'fi'" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        await asyncio.to_thread(client.translate, ["ok", "  "], "", "en-US", "es-ES")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


class Answers:
    """What a stream has answered so far, for its audio generator to wait on (a sync client's threads)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.responses: list[Any] = []

    def add(self, response: Any) -> None:
        with self._cond:
            self.responses.append(response)
            self._cond.notify_all()

    def wait(self, what: Any, timeout: float = 120.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: what(self.responses), timeout)


async def test_streaming_recognize_gives_interim_captions_then_finals(test_model_dir: Path, pcm: bytes) -> None:
    """The stock Riva STT plugins' call. Captions come while speech is open: the audio stops inside
    a long speech region (9.3 s to 13.3 s) until a caption of it came (no stall close on this server),
    after every earlier segment's final (an engine busy with them would skip the caption)."""
    settings = make_settings(test_model_dir)
    settings.server.riva = True
    settings.limits.stall_close_ms = 0
    async with serving(settings) as live:
        want = await our_spans(live, pcm, [], speech=False)
        before = [s for s in want if s[1] < 9000]
        answers = Answers()

        def finals(rs: list[Any]) -> int:
            return sum(r.results[0].is_final for r in rs)

        def audio() -> Iterator[bytes]:
            cs = chunks(pcm)
            for n, c in enumerate(cs):
                if n * 0.2 == 9.0:
                    assert answers.wait(lambda rs: finals(rs) >= len(before))
                if n * 0.2 == 12.0:
                    assert answers.wait(lambda rs: any(not r.results[0].is_final for r in rs))
                yield c

        service = riva.client.ASRService(riva.client.Auth(uri=f"127.0.0.1:{live.port}"))
        streaming = riva.client.StreamingRecognitionConfig(config=recognition(), interim_results=True)

        def run() -> None:
            for r in service.streaming_response_generator(audio(), streaming):
                answers.add(r)

        await asyncio.to_thread(run)
    rs = answers.responses
    finals_only = [r for r in rs if r.results[0].is_final]
    assert spans_of(finals_only) == want
    interims = [r for r in rs if not r.results[0].is_final]
    assert interims
    for r in interims:
        (result,) = r.results
        fields = parse_segment_fields(r.id.value)
        assert fields["interim"] == "1" and result.stability == 0.0
        seg = int(fields["segment"])
        final_at = next(
            i for i, f in enumerate(rs) if f in finals_only and int(parse_segment_fields(f.id.value)["segment"]) == seg
        )
        assert rs.index(r) < final_at  # a caption comes before its final, never after
        assert int(fields["start_ms"]) == want[seg][0] and result.audio_processed <= want[seg][1] / 1000 + 0.2
        assert list(result.alternatives[0].language_code) == ["eng"]


async def test_streaming_recognize_fills_words_only_with_enable_word_time_offsets(door: LiveServer, pcm: bytes) -> None:
    """Riva's switch for word timings: each final's words with their offsets (ms on the stream's
    timeline, inside the segment), none without it; a translation stream, whose results carry no
    words, refuses it rather than ignore it."""
    service = riva.client.ASRService(riva.client.Auth(uri=f"127.0.0.1:{door.port}"))

    def finals(**kw: Any) -> list[Any]:
        config = riva.client.StreamingRecognitionConfig(config=recognition(**kw))
        return [r for r in service.streaming_response_generator(chunks(pcm), config) if r.results[0].is_final]

    timed = await asyncio.to_thread(finals, enable_word_time_offsets=True)
    plain = await asyncio.to_thread(finals)
    assert spans_of(timed) == spans_of(plain)
    assert not any(r.results[0].alternatives[0].words for r in plain)
    counted = 0
    for r, (start, end) in zip(timed, spans_of(timed), strict=True):
        alt = r.results[0].alternatives[0]
        words = list(alt.words)
        assert " ".join(w.word for w in words).split() == alt.transcript.split()
        for a, b in itertools.pairwise(words):
            assert a.end_time <= b.start_time
        assert all(start <= w.start_time <= w.end_time <= end for w in words)
        assert 0.0 < alt.confidence <= 1.0 and all(0.0 < w.confidence <= 1.0 for w in words)  # issue 72
        counted += len(words)
    assert counted, "no word came with offsets: nothing was checked"
    word_confidences = {w.confidence for r in timed for w in r.results[0].alternatives[0].words}
    assert len(word_confidences) > 1  # each word its own, not a constant
    assert [r.results[0].alternatives[0].confidence for r in plain] == pytest.approx(
        [r.results[0].alternatives[0].confidence for r in timed], abs=1e-4
    )  # the transcript's confidence comes without word timings too

    client = nmt_client(door.port)
    cfg = s2t_config()
    cfg.asr_config.config.enable_word_time_offsets = True
    with pytest.raises(grpc.RpcError) as err:
        await asyncio.to_thread(lambda: list(client.streaming_s2t_response_generator(chunks(pcm[:32000]), cfg)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "enable_word_time_offsets" in err.value.details()


@contextlib.contextmanager
def held_stream(port: int, pcm: bytes, metadata: tuple[tuple[str, str], ...] = ()) -> Iterator[Any]:
    """A Riva S2T stream through the package's own stub, held open: its config and a second of audio
    are sent, then it waits; yields the call once the server opened its session (initial metadata)."""
    release = threading.Event()

    def requests() -> Iterator[Any]:
        yield nmt.StreamingTranslateSpeechToTextRequest(config=s2t_config())
        for c in chunks(pcm[: RATE * 2]):
            yield nmt.StreamingTranslateSpeechToTextRequest(audio_content=c)
        release.wait(60)

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    call = nmt_grpc.RivaTranslationStub(channel).StreamingTranslateSpeechToText(requests(), metadata=metadata)
    try:
        yield call, release
    finally:
        release.set()
        call.cancel()
        channel.close()


def refused(port: int, pcm: bytes, metadata: list[list[str]] | None = None) -> grpc.RpcError:
    try:
        list(nmt_client(port, metadata).streaming_s2t_response_generator(chunks(pcm[:32000]), s2t_config()))
    except grpc.RpcError as e:
        return e
    raise AssertionError("the stream was not refused")


async def test_riva_streams_count_against_max_streams_and_drain_like_every_stream(
    test_model_dir: Path, pcm: bytes
) -> None:
    settings = make_settings(test_model_dir)
    settings.server.riva = True
    settings.limits.max_streams = 1
    settings.server.drain_s = 0.5
    async with serving(settings) as live:
        with held_stream(live.port, pcm) as (call, release):
            metadata = dict(await asyncio.to_thread(call.initial_metadata))
            assert metadata[SESSION_ID]
            e = await asyncio.to_thread(refused, live.port, pcm)  # a second Riva stream
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            with pytest.raises(grpc.aio.AioRpcError) as ours:  # and our own door's
                await our_spans(live, pcm[:32000], ["spa"], speech=False)
            assert ours.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            stopping = asyncio.create_task(live.server.stop(grace=5))
            got: list[Any] = []

            def read() -> grpc.RpcError:
                try:
                    for r in call:
                        got.append(r)
                except grpc.RpcError as e:
                    return e
                raise AssertionError("the stream did not end with a status")

            reading = asyncio.create_task(asyncio.to_thread(read))
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            release.set()  # the client stops sending: the server's status comes at once
            ended = await reading
            await stopping
        assert ended.code() == grpc.StatusCode.UNAVAILABLE and "shut down" in ended.details()
        trailers = dict(ended.trailing_metadata() or ())
        assert trailers[END_REASON] == "draining" and int(trailers[SEGMENTS_TOTAL]) == len(got)


async def test_tokens_unknown_refused_and_tenant_caps_hold(test_model_dir: Path, pcm: bytes, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("riva-token * tenant=acme streams=1\nother-token languages\n")
    settings = make_settings(test_model_dir)
    settings.server.riva = True
    settings.auth.tokens_file = tokens
    async with serving(settings) as live:
        e = await asyncio.to_thread(refused, live.port, pcm, [["authorization", "Bearer not-a-token"]])
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED
        e = await asyncio.to_thread(refused, live.port, pcm)
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED
        e = await asyncio.to_thread(refused, live.port, pcm, [["authorization", "Bearer other-token"]])
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED and '"stream"' in e.details()
        pairs = await asyncio.to_thread(nmt_client(live.port, [["authorization", "Bearer other-token"]]).get_config, "")
        assert len(pairs.languages) == 1
        with held_stream(live.port, pcm, (("authorization", "Bearer riva-token"),)) as (call, _):
            await asyncio.to_thread(call.initial_metadata)
            e = await asyncio.to_thread(refused, live.port, pcm, [["authorization", "Bearer riva-token"]])
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "acme" in e.details()


async def test_the_riva_door_is_off_by_default(live: LiveServer) -> None:
    """The session's server has no ``server.riva``: Riva's methods are not served on its port."""
    with pytest.raises(grpc.RpcError) as err:
        await asyncio.to_thread(nmt_client(live.port).get_config, "")
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_riva_without_its_protos_is_refused_at_start_with_what_to_install(
    test_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--riva`` on a server without nvidia-riva-client: one line saying what to install, not a
    traceback (the door's modules are imported again, with Riva's protos gone)."""
    for name in [m for m in sys.modules if m.startswith("translate_svc.transport.riva")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "riva.client.proto", None)  # what an absent package raises
    settings = make_settings(test_model_dir)
    settings.server.riva = True
    with pytest.raises(DoorSetupError, match="pip install --no-deps nvidia-riva-client"):
        TranslateServer(build(settings, runner_factory=FakeRunner))
