"""Translate, ListLanguages, health and reflection over a real server on loopback."""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from tests.support.live_server import LiveServer, make_settings
from tests.support.raw import channel, raw_request, translate_file
from tests.support.reference import hf_generate
from tests.support.speech import jfk_16k
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.audio.resample import resample
from translate_svc.wire.pcm import pcm16_to_float

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(30)]

JFK_REGIONS_S = [(0.3, 2.3), (3.3, 4.4), (5.4, 7.7), (8.2, 10.6)]  # silero's own, from ../shared/audio/README.md


async def test_health_is_serving_and_reflection_lists_the_service(live: LiveServer) -> None:
    health = health_pb2_grpc.HealthStub(live.channel)
    for name in ("", "translate_svc.api.v1.Translator"):
        resp = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING

    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(live.channel)

    async def ask(**kw):  # type: ignore[no-untyped-def]
        async def reqs():  # type: ignore[no-untyped-def]
            yield reflection_pb2.ServerReflectionRequest(**kw)

        async for first in stub.ServerReflectionInfo(reqs()):
            return first
        raise AssertionError("no reflection response")

    services = {s.name for s in (await ask(list_services="")).list_services_response.service}
    assert "translate_svc.api.v1.Translator" in services
    fd = await ask(file_containing_symbol="translate_svc.api.v1.Translator")
    from google.protobuf import descriptor_pb2

    files = [
        descriptor_pb2.FileDescriptorProto.FromString(b) for b in fd.file_descriptor_response.file_descriptor_proto
    ]
    methods = {m.name for f in files for s in f.service if s.name == "Translator" for m in s.method}
    assert {"Translate", "ListLanguages", "StreamingTranslate"} <= methods


async def test_list_languages_reads_the_loaded_model(live: LiveServer) -> None:
    resp = await live.stub.ListLanguages(pb.ListLanguagesRequest())
    langs = {lang.code: lang for lang in resp.languages}
    assert {"eng", "spa", "fra", "deu"} <= set(langs)
    assert langs["spa"].speech_output and langs["spa"].text_output and langs["spa"].name == "Spanish"
    assert not langs["cmn"].speech_output
    assert resp.model.is_test_model and resp.model.revision.startswith("sha256:")


async def test_translate_a_file_end_to_end(live: LiveServer, shared_audio: Path) -> None:
    resp = await translate_file(live.stub, shared_audio / "jfk.flac", ["spa", "fra"], source="eng")
    assert resp.audio_duration_ms == pytest.approx(11_000, abs=100)
    assert [s.segment_id for s in resp.segments] == list(range(len(resp.segments)))
    assert len(resp.segments) == 4
    for seg, (a, b) in zip(resp.segments, JFK_REGIONS_S, strict=True):
        assert seg.start_ms <= a * 1000 + 200 and seg.end_ms >= b * 1000 - 200
        assert seg.status.code == code_pb2.OK
        # the fields, not the words: random weights may decode to special tokens only (empty text);
        # test_service_output_equals_generate_on_each_segment checks the texts themselves
        assert seg.HasField("transcript") and seg.transcript.language == "eng"
        assert [t.target_language for t in seg.translations] == ["spa", "fra"]
        for t in seg.translations:
            assert t.audio.sample_rate_hz == 16000 and t.audio.content
            assert t.audio.duration_ms == round(len(t.audio.content) / 2 / 16)
        assert seg.timing.model_ms > 0 and seg.timing.total_ms >= seg.timing.model_ms
    starts = [s.start_ms for s in resp.segments]
    assert starts == sorted(starts)


async def test_service_output_equals_generate_on_each_segment(  # type: ignore[no-untyped-def]
    live: LiveServer, runner, shared_audio: Path, test_model_dir: Path
) -> None:
    """Parity over every segment of both shared files, as the server segments and batches them:
    the text exactly and the waveform within 1e-4 of transformers' generate on a plain model, for
    segments with odd and even fbank frame counts."""
    odd: list[bool] = []
    sizes: list[int] = []
    for name, targets in (("jfk.flac", ["spa", "deu"]), ("silero_test.wav", ["fra"])):
        audio, rate = sf.read(shared_audio / name, dtype="float32", always_2d=True)
        x = audio.mean(axis=1) if rate == 16000 else resample(audio.mean(axis=1), rate, 16000)
        pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
        samples = pcm.astype(np.float32) / 32768.0  # exactly what the server decodes
        before = len(live.batches)
        resp = await live.stub.Translate(raw_request(pcm.tobytes(), pb.LINEAR16, target_languages=targets))
        assert len(resp.segments) == {"jfk.flac": 4, "silero_test.wav": 19}[name]
        assert sum(b.size for b in live.batches[before:]) == len(resp.segments)
        sizes += [b.size for b in live.batches[before:]]
        for seg in resp.segments:
            span = samples[seg.start_ms * 16 : seg.end_ms * 16]
            features = runner.extract_features(span)
            odd.append(bool(features.mask[-1] == 0))  # the processor padded an odd fbank frame count
            label = f"{name} {seg.start_ms}-{seg.end_ms} ms ({len(features.values)} stacked frames)"
            assert [t.target_language for t in seg.translations] == targets
            for tr in seg.translations:
                text, wave = hf_generate(test_model_dir, span, tr.target_language)
                assert tr.text == text, label
                got = pcm16_to_float(np.frombuffer(tr.audio.content, "<i2"))  # the server writes x 32768
                assert got.shape == wave.shape, label
                np.testing.assert_allclose(got, wave, atol=1e-4, err_msg=label)
    assert any(odd) and not all(odd)
    assert max(sizes) > 1  # segments really were batched (padded) by the server


async def test_output_options_text_only_and_resampled_speech(live: LiveServer, shared_audio: Path) -> None:
    pcm = (jfk_16k(shared_audio)[: 16000 * 3] * 32767).astype("<i2")
    text_only = await live.stub.Translate(
        raw_request(pcm.tobytes(), pb.LINEAR16, output=pb.OutputOptions(speech=False), source_language="eng")
    )
    tr = text_only.segments[0].translations[0]
    assert not tr.HasField("audio") and text_only.segments[0].HasField("transcript")  # (its text may be empty)
    at_8k = await live.stub.Translate(
        raw_request(pcm.tobytes(), pb.LINEAR16, output=pb.OutputOptions(speech_sample_rate_hz=8000, transcript=False))
    )
    seg = at_8k.segments[0]
    assert seg.translations[0].audio.sample_rate_hz == 8000 and not seg.HasField("transcript")


@pytest.mark.parametrize("encoding,dtype,scale", [(pb.FLOAT32, "<f4", 1.0), (pb.LINEAR16, "<i2", 32767.0)])
async def test_raw_encodings_stereo_and_other_rates(
    live: LiveServer, shared_audio: Path, encoding, dtype, scale
) -> None:  # type: ignore[no-untyped-def]
    x = resample(jfk_16k(shared_audio)[: 16000 * 3], 16000, 44100)
    stereo = np.stack([x, x], axis=1)
    content = (stereo * scale).astype(dtype).tobytes()
    resp = await live.stub.Translate(raw_request(content, encoding, rate=44100, channels=2))
    assert len(resp.segments) == 1 and resp.audio_duration_ms == 3000


async def _expect(live: LiveServer, request: pb.TranslateRequest, code: grpc.StatusCode, *needles: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await live.stub.Translate(request)
    assert e.value.code() == code, e.value.details()
    for n in needles:
        assert n in e.value.details(), e.value.details()
    return e.value.details()


INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def test_bad_audio_is_rejected_with_what_to_fix(live: LiveServer) -> None:
    tone = (np.sin(np.arange(16000) / 5) * 10000).astype("<i2").tobytes()
    await _expect(live, raw_request(b"", pb.LINEAR16), INVALID, "audio.content is empty")
    await _expect(
        live, raw_request(b"not audio at all" * 10, pb.CONTAINER), INVALID, "not a WAV, FLAC, OGG, MP3 or WebM file"
    )
    await _expect(live, raw_request(tone, pb.LINEAR16, rate=4000), INVALID, "4000", "8000")
    await _expect(live, raw_request(tone, pb.LINEAR16, rate=96000), INVALID, "96000", "48000")
    await _expect(live, raw_request(tone[:-1], pb.LINEAR16), INVALID, "whole number")
    await _expect(live, raw_request(tone[:-2], pb.LINEAR16, channels=2), INVALID, "whole number")
    nan = np.zeros(1600, "<f4")
    nan[7] = np.nan
    await _expect(live, raw_request(nan.tobytes(), pb.FLOAT32), INVALID, "nan", "sample index 7")
    inf = np.zeros(1600, "<f4")
    inf[3] = np.inf
    await _expect(live, raw_request(inf.tobytes(), pb.FLOAT32), INVALID, "inf", "sample index 3")
    await _expect(live, raw_request(tone, pb.AUDIO_ENCODING_UNSPECIFIED), INVALID, "encoding", "LINEAR16")


async def test_bad_languages_are_rejected_with_a_pointer_to_the_valid_ones(live: LiveServer) -> None:
    tone = np.zeros(16000, "<i2").tobytes()
    msg = await _expect(
        live, raw_request(tone, pb.LINEAR16, target_languages=["xxx"]), INVALID, "'xxx'", "ListLanguages"
    )
    assert "8 supported" in msg and "eng" in msg  # the count and examples, not the whole list
    # an unbounded client string is never echoed whole (the status must fit the client's metadata limit)
    long_code = "x" * 7000
    msg = await _expect(live, raw_request(tone, pb.LINEAR16, target_languages=[long_code]), INVALID, "ListLanguages")
    assert len(msg.encode()) < 300 and long_code not in msg
    msg = await _expect(live, raw_request(tone, pb.LINEAR16, source_language=long_code), INVALID, "source language")
    assert len(msg.encode()) < 300
    await _expect(live, raw_request(tone, pb.LINEAR16, target_languages=[]), INVALID, "target_languages is empty")
    await _expect(live, raw_request(tone, pb.LINEAR16, source_language="klingon"), INVALID, "source language")
    await _expect(
        live, raw_request(tone, pb.LINEAR16, target_languages=["spa", "fra", "deu", "ita", "por"]), INVALID, "at most 4"
    )
    await _expect(live, raw_request(tone, pb.LINEAR16, target_languages=["cmn"]), INVALID, "text output only")
    await _expect(live, raw_request(tone, pb.LINEAR16, target_languages=["spa", "spa"]), INVALID, "more than once")
    await _expect(
        live, raw_request(tone, pb.LINEAR16, output=pb.OutputOptions(speaker_id=99)), INVALID, "speaker_id", "0..3"
    )
    bad_vad = raw_request(tone, pb.LINEAR16, vad=pb.VadOptions(threshold=1.5))
    await _expect(live, bad_vad, INVALID, "vad.threshold")


async def test_text_only_language_works_without_speech(live: LiveServer, shared_audio: Path) -> None:
    pcm = (jfk_16k(shared_audio)[: 16000 * 3] * 32767).astype("<i2")
    resp = await live.stub.Translate(
        raw_request(pcm.tobytes(), pb.LINEAR16, target_languages=["cmn"], output=pb.OutputOptions(speech=False))
    )
    assert resp.segments[0].translations[0].target_language == "cmn"


async def test_silence_gives_no_segments(live: LiveServer) -> None:
    resp = await live.stub.Translate(raw_request(np.zeros(16000 * 2, "<i2").tobytes(), pb.LINEAR16))
    assert len(resp.segments) == 0 and resp.audio_duration_ms == 2000


async def test_a_wav_container_gives_the_same_segments_as_raw_pcm(live: LiveServer, shared_audio: Path) -> None:
    pcm = (jfk_16k(shared_audio) * 32767).astype("<i2")
    buf = io.BytesIO()
    sf.write(buf, pcm, 16000, format="WAV", subtype="PCM_16")
    a = await live.stub.Translate(raw_request(buf.getvalue(), pb.CONTAINER, rate=0, target_languages=["fra"]))
    b = await live.stub.Translate(raw_request(pcm.tobytes(), pb.LINEAR16, target_languages=["fra"]))
    assert [(s.start_ms, s.end_ms, s.translations[0].text) for s in a.segments] == [
        (s.start_ms, s.end_ms, s.translations[0].text) for s in b.segments
    ]


async def test_health_is_not_serving_until_the_model_is_warm(test_model_dir: Path) -> None:
    from translate_svc.app import build
    from translate_svc.model.build import build_runner
    from translate_svc.model_api.runner import Runner
    from translate_svc.transport.host import TranslateServer

    release = threading.Event()
    settings = make_settings(test_model_dir)

    def slow_runner() -> Runner:  # the runner the server builds, once the test lets it load
        release.wait(30)
        return build_runner(settings.model)

    server = TranslateServer(build(settings, runner_factory=slow_runner))
    started = asyncio.create_task(server.start())
    try:
        for _ in range(3000):  # start() binds the port before it loads the model
            if server.port:
                break
            await asyncio.sleep(0.01)
        async with channel(f"127.0.0.1:{server.port}") as ch:
            health = health_pb2_grpc.HealthStub(ch)
            req = health_pb2.HealthCheckRequest(service="translate_svc.api.v1.Translator")
            for _ in range(100):  # the port is bound before start() sets the status
                try:
                    status = (await health.Check(req, timeout=5)).status
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.02)
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await pb_grpc.TranslatorStub(ch).ListLanguages(pb.ListLanguagesRequest(), timeout=5)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "loading" in e.value.details()
            release.set()
            await started
            assert (await health.Check(req, timeout=5)).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        release.set()
        await started
        await server.stop(grace=1)


async def test_a_full_queue_refuses_with_resource_exhausted_and_a_retry_hint(
    test_model_dir: Path, shared_audio: Path
) -> None:
    from google.rpc import error_details_pb2

    from translate_svc.app import build
    from translate_svc.transport.host import TranslateServer

    # max_wait_ms 500: the hint is 10 batching waits, 5 s (a Duration of whole seconds, not nanos)
    settings = make_settings(test_model_dir, max_queued_segments=2, max_batch_size=1, max_wait_ms=500)
    batches: list = []  # type: ignore[type-arg]
    server = TranslateServer(build(settings, on_batch=batches.append))
    port = await server.start(warmup=False)
    try:
        async with channel(f"127.0.0.1:{port}") as ch:
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await translate_file(pb_grpc.TranslatorStub(ch), shared_audio / "silero_test.wav", ["spa"])
            assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "retry" in e.value.details()
            status = rpc_status.from_call(e.value)
            assert status is not None and status.details[0].Is(error_details_pb2.RetryInfo.DESCRIPTOR)
            info = error_details_pb2.RetryInfo()
            status.details[0].Unpack(info)
            assert info.retry_delay.ToMilliseconds() == 5000 and info.retry_delay.seconds == 5
        await asyncio.wait_for(server.app.engine.wait_idle(), 30)
        assert server.app.engine.queued == 0 and batches == []  # the refused request left nothing behind
    finally:
        await server.stop(grace=1)
