"""StreamingTranslate over a real server: events, order, chunking, errors, half-close, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf
from google.rpc import code_pb2

from tests.support.live_server import LiveServer, make_settings
from tests.support.raw import channel, stream_pcm, translate_file
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

STARTED, ENDED = pb.SpeechEvent.SPEECH_STARTED, pb.SpeechEvent.SPEECH_ENDED


def config(**kw) -> pb.StreamingTranslateRequest:  # type: ignore[no-untyped-def]
    kw.setdefault("format", pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1))
    kw.setdefault("target_languages", ["spa"])
    return pb.StreamingTranslateRequest(config=pb.StreamingConfig(**kw))


def audio(b: bytes) -> pb.StreamingTranslateRequest:
    return pb.StreamingTranslateRequest(audio=b)


async def run(stub: pb_grpc.TranslatorStub, msgs: list[pb.StreamingTranslateRequest]):  # type: ignore[no-untyped-def]
    async def gen() -> AsyncIterator[pb.StreamingTranslateRequest]:
        for m in msgs:
            yield m

    call = stub.StreamingTranslate(gen())
    return [r async for r in call], call


async def test_event_sequence_on_a_real_file(live: LiveServer, shared_audio: Path) -> None:
    pcm = load_pcm16k(shared_audio / "jfk.flac")
    trace = await stream_pcm(live.stub, pcm, ["spa", "fra"], source="eng", chunk_ms=100)
    kinds = [r.WhichOneof("response") for _, r in trace.responses]
    assert kinds[0] == "started" and kinds[-1] == "ended"
    started = trace.responses[0][1].started
    assert started.session_id and started.model.is_test_model
    assert started.config.vad.threshold == pytest.approx(0.5) and started.config.vad.max_segment_ms == 15000
    assert started.config.output.speech and started.config.output.speech_sample_rate_hz == 16000
    assert list(started.config.target_languages) == ["spa", "fra"]

    events = [r.speech_event for _, r in trace.responses if r.HasField("speech_event")]
    assert [e.type for e in events] == [STARTED, ENDED] * 4
    offsets = [e.offset_ms for e in events]
    assert offsets == sorted(offsets)
    segs = trace.segments
    assert [s.segment_id for s in segs] == [0, 1, 2, 3]
    for s, start_ev, end_ev in zip(segs, events[0::2], events[1::2], strict=True):
        assert abs(s.start_ms - start_ev.offset_ms) <= 1 and abs(s.end_ms - end_ev.offset_ms) <= 1
        assert s.status.code == code_pb2.OK and s.HasField("transcript")  # (a random model's text may be empty)
        assert [t.target_language for t in s.translations] == ["spa", "fra"]
    # each segment comes after the SPEECH_ENDED that closed it
    order = [(r.WhichOneof("response"), r) for _, r in trace.responses]
    for s in segs:
        idx_seg = next(i for i, (k, r) in enumerate(order) if k == "segment" and r.segment.segment_id == s.segment_id)
        idx_end = [i for i, (k, r) in enumerate(order) if k == "speech_event" and r.speech_event.type == ENDED][
            s.segment_id
        ]
        assert idx_end < idx_seg
    end = trace.responses[-1][1].ended
    assert end.segments_total == 4 and end.audio_received_ms == pytest.approx(11_000, abs=50)


@pytest.mark.parametrize("name", ["silero_test.wav", "jfk.flac"])
async def test_chunk_size_does_not_change_the_segments(live: LiveServer, shared_audio: Path, name: str) -> None:
    pcm = load_pcm16k(shared_audio / name)
    whole = await live.stub.Translate(
        pb.TranslateRequest(
            audio=pb.AudioInput(
                content=pcm.tobytes(), format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)
            ),
            target_languages=["spa"],
            output=pb.OutputOptions(speech=False),
        )
    )
    expected = [(s.start_ms, s.end_ms) for s in whole.segments]
    assert len(expected) == (19 if name == "silero_test.wav" else 4)
    container = await translate_file(live.stub, shared_audio / name, ["spa"], speech=False)
    for (a, b), s in zip(expected, container.segments, strict=True):  # the original file: the same spans
        assert abs(a - s.start_ms) <= 32 and abs(b - s.end_ms) <= 32
    for chunk_ms in (20, 100, 1000):
        trace = await stream_pcm(live.stub, pcm, ["spa"], chunk_ms=chunk_ms, speech=False)
        assert [(s.start_ms, s.end_ms) for s in trace.segments] == expected, f"chunks of {chunk_ms} ms"
        assert [s.translations[0].text for s in trace.segments] == [s.translations[0].text for s in whole.segments]


async def test_ten_concurrent_streams_each_get_all_segments_in_order(
    live: LiveServer, shared_audio: Path, tmp_path: Path
) -> None:
    pcm = load_pcm16k(shared_audio / "silero_test.wav")[: 16000 * 30]  # 30 s, 10 speech regions
    sf.write(tmp_path / "first30.wav", pcm, 16000, subtype="PCM_16")
    whole = await translate_file(live.stub, tmp_path / "first30.wav", ["spa"], speech=False)
    expected = [(s.segment_id, s.start_ms, s.end_ms) for s in whole.segments]
    assert len(expected) >= 8
    before = len(live.batches)
    traces = await asyncio.gather(
        *(stream_pcm(live.stub, pcm, ["spa", "fra"][i % 2 :][:1], chunk_ms=200) for i in range(10))
    )
    for trace in traces:
        assert [(s.segment_id, s.start_ms, s.end_ms) for s in trace.segments] == expected
        assert all(s.status.code == code_pb2.OK for s in trace.segments)
        assert trace.responses[-1][1].ended.segments_total == len(expected)
    sizes = [b.size for b in live.batches[before:]]
    assert sum(sizes) == 10 * len(expected) and max(sizes) > 1  # streams shared batches


async def test_silence_only_ends_with_zero_segments(live: LiveServer) -> None:
    resps, call = await run(live.stub, [config(), audio(np.zeros(16000 * 3, "<i2").tobytes())])
    assert [r.WhichOneof("response") for r in resps] == ["started", "ended"]
    assert resps[-1].ended.segments_total == 0 and resps[-1].ended.audio_received_ms == 3000
    assert await call.code() == grpc.StatusCode.OK


async def test_half_close_with_no_audio(live: LiveServer) -> None:
    resps, call = await run(live.stub, [config()])
    assert [r.WhichOneof("response") for r in resps] == ["started", "ended"]
    assert resps[-1].ended.audio_received_ms == 0
    assert await call.code() == grpc.StatusCode.OK


async def test_flush_ends_the_current_segment_now(live: LiveServer, shared_audio: Path) -> None:
    pcm = load_pcm16k(shared_audio / "jfk.flac")
    cut = 16000 * 1  # 1 s into the first phrase (0.3-2.3 s)
    msgs = [config(), audio(pcm[:cut].tobytes()), pb.StreamingTranslateRequest(control=pb.FLUSH)]
    msgs.append(audio(pcm[cut:].tobytes()))
    resps, _ = await run(live.stub, msgs)
    segs = [r.segment for r in resps if r.HasField("segment")]
    assert segs[0].end_ms <= 1000 and segs[0].start_ms < 1000
    assert len(segs) == 5  # the first phrase was cut in two


async def expect_error(live: LiveServer, msgs: list[pb.StreamingTranslateRequest], *needles: str) -> list:  # type: ignore[type-arg]
    got: list = []  # type: ignore[type-arg]
    with pytest.raises(grpc.aio.AioRpcError) as e:

        async def gen() -> AsyncIterator[pb.StreamingTranslateRequest]:
            for m in msgs:
                yield m

        async for r in live.stub.StreamingTranslate(gen()):
            got.append(r)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    for n in needles:
        assert n in e.value.details(), e.value.details()
    return got


async def test_stream_errors_say_what_to_fix(live: LiveServer) -> None:
    tone = (np.sin(np.arange(3200) / 3) * 8000).astype("<i2").tobytes()
    await expect_error(live, [audio(tone)], "first message must be `config`", "got `audio`")
    await expect_error(live, [], "first message")
    got = await expect_error(live, [config(), audio(tone), config()], "`config` was sent twice")
    assert got[0].HasField("started")
    await expect_error(live, [config(), audio(tone[:-1])], "whole number")
    await expect_error(live, [config(), audio(b"\x00" * (live.server.settings.limits.max_chunk_bytes + 2))], "exceeds")
    await expect_error(live, [config(target_languages=["tlh"])], "unknown target language 'tlh'", "ListLanguages")
    await expect_error(live, [config(source_language="xx")], "unknown source language")
    await expect_error(live, [config(target_languages=[])], "target_languages is empty")
    container = pb.AudioFormat(encoding=pb.CONTAINER)
    await expect_error(live, [config(format=container)], "CONTAINER")
    await expect_error(live, [config(format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=7000))], "7000")
    await expect_error(
        live, [config(format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=3))], "channels"
    )
    await expect_error(live, [config(vad=pb.VadOptions(min_silence_ms=-5))], "vad.min_silence_ms")
    await expect_error(live, [config(), pb.StreamingTranslateRequest()], "empty request")


async def test_cancel_drops_the_streams_queued_work(test_model_dir: Path, shared_audio: Path) -> None:
    from translate_svc.app import build
    from translate_svc.transport.host import TranslateServer

    batches: list = []  # type: ignore[type-arg]
    # a long batching wait keeps the segments queued, so the cancel finds them there
    settings = make_settings(test_model_dir, max_wait_ms=5000, max_batch_size=64)
    settings.limits.max_unread_results = 64  # let all 19 segments queue up ahead of the reader
    # and a decode pool (the steps core) with room for all their rows: a unit that fills it would
    # not wait for the batching wait
    settings.model.decode_slots = 64
    server = TranslateServer(build(settings, on_batch=batches.append))
    port = await server.start(warmup=False)
    try:
        pcm = load_pcm16k(shared_audio / "silero_test.wav")
        async with channel(f"127.0.0.1:{port}") as ch:
            stub = pb_grpc.TranslatorStub(ch)
            sent = asyncio.Event()

            async def gen() -> AsyncIterator[pb.StreamingTranslateRequest]:
                yield config()
                for i in range(0, len(pcm), 16000):
                    yield audio(pcm[i : i + 16000].tobytes())
                sent.set()
                await asyncio.sleep(3600)  # keep the stream open

            call = stub.StreamingTranslate(gen())
            reader = asyncio.create_task(_drain(call))
            await asyncio.wait_for(sent.wait(), 30)
            for _ in range(1000):
                if server.app.engine.queued >= 19:
                    break
                await asyncio.sleep(0.01)
            assert server.app.engine.queued >= 19
            call.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            # idle: nothing preparing, queued or in the model, so nothing can still run for it
            await asyncio.wait_for(server.app.engine.wait_idle(), 30)
            assert server.app.engine.queued == 0
            assert batches == []  # nothing was computed for the gone client
    finally:
        await server.stop(grace=1)


async def _drain(call) -> None:  # type: ignore[no-untyped-def]
    async for _ in call:
        pass
