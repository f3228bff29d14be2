"""Faults found from outside, and the published limits, on a real server over loopback."""

from __future__ import annotations

import asyncio
import io
import resource
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import clip_chunks
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(45)]

FMT16 = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)
TEXT_ONLY = pb.OutputOptions(speech=False, transcript=False)


def config(**kw) -> pb.StreamingTranslateRequest:  # type: ignore[no-untyped-def]
    kw.setdefault("format", FMT16)
    kw.setdefault("target_languages", ["spa"])
    kw.setdefault("output", TEXT_ONLY)
    return pb.StreamingTranslateRequest(config=pb.StreamingConfig(**kw))


def audio(b: bytes) -> pb.StreamingTranslateRequest:
    return pb.StreamingTranslateRequest(audio=b)


@pytest.fixture(scope="module")
def speech(shared_audio: Path) -> bytes:
    x, rate = sf.read(shared_audio / "silero_test.wav", dtype="int16")
    assert rate == 16000
    return bytes(x.astype("<i2").tobytes())


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def limited(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    """A server with small limits: 2 streams, 1.5 s idle timeout, 20 s per stream, 4 unread results."""
    s = make_settings(test_model_dir)
    s.limits.max_streams = 2
    s.limits.idle_timeout_s = 1.5
    s.limits.max_stream_seconds = 20
    s.limits.max_unread_results = 4
    s.limits.max_message_bytes = 2 * 1024 * 1024
    s.server.error_drain_s = 2.0
    async with serving(s, warmup=False) as server:
        yield server


async def test_bad_config_then_an_audio_burst_gets_invalid_argument_every_time(live: LiveServer) -> None:
    """grpc-python's asyncio client turns the status into INTERNAL when a write fails after the call
    ended; the server reads the burst to its end before it answers, so the status arrives intact."""
    codes = []
    for _ in range(50):

        async def burst() -> AsyncIterator[pb.StreamingTranslateRequest]:
            yield config(target_languages=["xx"])
            for _ in range(100):
                yield audio(b"\0" * 3200)

        with pytest.raises(grpc.aio.AioRpcError) as e:
            async for _ in live.stub.StreamingTranslate(burst()):
                pass
        codes.append((e.value.code(), "unknown target language" in (e.value.details() or "")))
    assert codes == [(grpc.StatusCode.INVALID_ARGUMENT, True)] * 50


async def test_malformed_protobuf_gets_invalid_argument(live: LiveServer) -> None:
    garbage = b"\x0a\xff\xff\xff\xff\x0f"  # field 1, length-delimited, length beyond the bytes
    for method in ("Translate", "ListLanguages"):
        call = live.channel.unary_unary(f"/translate_svc.api.v1.Translator/{method}")
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await call(garbage)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
        details = e.value.details() or ""
        assert "could not parse" in details and "class" not in details and len(details) < 300

    stream = live.channel.stream_stream("/translate_svc.api.v1.Translator/StreamingTranslate")

    async def gen() -> AsyncIterator[bytes]:
        yield config().SerializeToString()
        yield garbage

    got = []
    with pytest.raises(grpc.aio.AioRpcError) as e:
        async for msg in stream(gen()):
            got.append(pb.StreamingTranslateResponse.FromString(msg))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "StreamingTranslateRequest" in (
        e.value.details() or ""
    )
    assert got and got[0].HasField("started")


async def test_a_flac_bomb_is_refused_before_it_is_decoded(live: LiveServer) -> None:
    """60 minutes of 48 kHz stereo silence compress to well under a MiB; decoded they are 1.4 GB."""
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", 48000, 2, format="FLAC") as f:
        block = np.zeros((48000 * 60, 2), np.float32)
        for _ in range(60):
            f.write(block)
    content = buf.getvalue()
    assert len(content) < 2 * 1024 * 1024
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, whole process (server included)
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=content, format=pb.AudioFormat(encoding=pb.CONTAINER)), target_languages=["spa"]
    )
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await live.stub.Translate(request)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "3600.0 s" in (e.value.details() or "") and "600" in (e.value.details() or "")
    assert grown_mb < 100, f"peak RSS grew by {grown_mb:.0f} MB for a {len(content)}-byte request"


async def test_a_590_s_clip_with_over_200_regions_returns_every_segment(live: LiveServer, shared_audio: Path) -> None:
    x, rate = sf.read(shared_audio / "jfk.flac", dtype="float32", always_2d=True)
    from translate_svc.audio.resample import resample

    jfk = resample(x.mean(axis=1), rate, 16000)
    phrase = jfk[int(0.3 * 16000) : int(2.1 * 16000)]  # 1.8 s, one region to silero
    unit = np.concatenate([phrase, np.zeros(16000, np.float32)])  # + 1 s pause
    n = (590 * 16000) // len(unit)
    clip = np.tile(unit, n)
    pcm = (clip * 32767).astype("<i2").tobytes()
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=pcm, format=FMT16), target_languages=["spa"], output=TEXT_ONLY
    )
    # 18.9 MB: over the port's 4 MiB receive limit, so in chunks (TranslateChunked)
    resp = await asyncio.wait_for(live.stub.TranslateChunked(clip_chunks(request), timeout=300), 300)
    assert n >= 200 and resp.audio_duration_ms == pytest.approx(len(clip) / 16, abs=1)
    assert [s.segment_id for s in resp.segments] == list(range(len(resp.segments)))
    assert len(resp.segments) == n
    unit_ms = len(unit) / 16
    for k, seg in enumerate(resp.segments):  # one segment per phrase, on its phrase
        assert k * unit_ms - 50 <= seg.start_ms and seg.end_ms <= k * unit_ms + 1800 + 150
        assert seg.status.code == 0


async def test_limits_are_reported_to_clients(limited: LiveServer) -> None:
    langs = await limited.stub.ListLanguages(pb.ListLanguagesRequest())
    assert langs.limits.max_streams == 2 and langs.limits.idle_timeout_seconds == 1.5
    assert langs.limits.max_unread_results == 4 and langs.limits.max_message_bytes == 2 * 1024 * 1024
    assert langs.model.num_speakers >= 1

    async def one() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield config()

    call = limited.stub.StreamingTranslate(one())
    first = await call.read()
    assert first.started.limits == langs.limits and first.started.model.num_speakers == langs.model.num_speakers
    while await call.read() is not grpc.aio.EOF:  # to its end: its slot is free for the next test
        pass
    assert await call.code() == grpc.StatusCode.OK


async def no_open_streams(server: LiveServer) -> None:
    """Until the server counts no open stream: an earlier test's stream frees its slot as its
    handler ends, after its client saw the end (the server's count, not a log line)."""
    for _ in range(500):
        if server.server.app.sessions.open_streams == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{server.server.app.sessions.open_streams} streams still open after 10 s")


async def test_stream_capacity_refuses_the_next_stream_with_a_retry_hint(limited: LiveServer, speech: bytes) -> None:
    release = asyncio.Event()

    async def held() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield config()
        yield audio(speech[: 16000 * 2])
        await release.wait()

    await no_open_streams(limited)  # the capacity is all this test's
    calls = [limited.stub.StreamingTranslate(held()) for _ in range(2)]
    for c in calls:
        assert (await c.read()).HasField("started")

    async def third() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield config()

    with pytest.raises(grpc.aio.AioRpcError) as e:
        async for _ in limited.stub.StreamingTranslate(third()):
            pass
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "capacity" in (e.value.details() or "")
    status = rpc_status.from_call(e.value)
    assert status is not None
    info = error_details_pb2.RetryInfo()
    status.details[0].Unpack(info)
    assert info.retry_delay.ToMilliseconds() == 1000
    release.set()
    for c in calls:  # the admitted streams still complete normally
        msgs = []
        while (m := await c.read()) is not grpc.aio.EOF:
            msgs.append(m)
        assert msgs[-1].HasField("ended") and await c.code() == grpc.StatusCode.OK


async def test_an_idle_stream_is_closed_after_its_speech_is_translated(limited: LiveServer, speech: bytes) -> None:
    async def goes_quiet() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield config()
        yield audio(speech[: 16000 * 2 * 5])  # 5 s: the first speech regions
        await asyncio.sleep(30)  # then nothing, without half-closing

    msgs = []
    with pytest.raises(grpc.aio.AioRpcError) as e:
        async for m in limited.stub.StreamingTranslate(goes_quiet()):
            msgs.append(m)
    assert (e.value.code() == grpc.StatusCode.OUT_OF_RANGE and "idle" in (e.value.details() or "").lower()) or (
        "no message" in (e.value.details() or "")
    )
    ended = msgs[-1].ended
    assert msgs[-1].HasField("ended") and ended.reason == pb.StreamEnd.IDLE_TIMEOUT
    segments = [m.segment for m in msgs if m.HasField("segment")]
    assert len(segments) == ended.segments_total >= 2  # the open speech was closed and translated too


async def test_a_stream_past_its_maximum_duration_is_told_where_it_stopped(limited: LiveServer, speech: bytes) -> None:
    async def long() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield config()
        for i in range(0, len(speech), 32000):  # 60 s in 1 s chunks, past the 20 s limit
            yield audio(speech[i : i + 32000])

    msgs = []
    with pytest.raises(grpc.aio.AioRpcError) as e:
        async for m in limited.stub.StreamingTranslate(long()):
            msgs.append(m)
    assert e.value.code() == grpc.StatusCode.OUT_OF_RANGE and "20000 ms" in (e.value.details() or "")
    assert msgs[-1].ended.reason == pb.StreamEnd.MAX_STREAM_DURATION
    assert msgs[-1].ended.audio_received_ms == 20_000
    assert all(m.segment.end_ms <= 20_000 for m in msgs if m.HasField("segment"))


async def test_a_client_that_stops_reading_gets_no_more_computed(limited: LiveServer, speech: bytes) -> None:
    limited.batches.clear()
    sent = 0

    async def fast() -> AsyncIterator[pb.StreamingTranslateRequest]:
        nonlocal sent
        yield config(output=pb.OutputOptions(speech=True))
        for i in range(0, len(speech), 3200):
            yield audio(speech[i : i + 3200])
            sent = i

    call = limited.stub.StreamingTranslate(fast())
    assert (await call.read()).HasField("started")  # then never reads again
    stalled = 0
    for _ in range(600):
        before = sent
        await asyncio.sleep(0.05)
        stalled = stalled + 1 if sent == before else 0
        if stalled >= 20:  # a second without progress
            break
    computed = sum(b.size for b in limited.batches)
    call.cancel()
    # 19 segments in the file; a non-reader gets its unread bound (4) plus what fits in the
    # transport's buffers (results already written, about two with speech)
    assert computed <= 4 + 4, computed
    await no_open_streams(limited)
    assert limited.server.app.engine.queued == 0


async def test_translate_answers_that_could_not_fit_a_message_are_refused_up_front(
    limited: LiveServer, speech: bytes
) -> None:
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=speech, format=FMT16),  # 60 s
        target_languages=["spa", "fra"],
        output=pb.OutputOptions(speech=True, speech_sample_rate_hz=16000),
    )
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await limited.stub.Translate(request)
    details = e.value.details() or ""
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "may not fit" in details and len(details) < 300
    request.output.speech = False
    resp = await limited.stub.Translate(request)  # text only fits
    assert len(resp.segments) == 19


async def test_health_and_a_new_stream_still_work_afterwards(limited: LiveServer) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(limited.channel)
    assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING
    _ = pb_grpc  # the stubs module is what clients use; the checks above go through it
