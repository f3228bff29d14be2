"""The model worker dying under live streams (issue 24), on a real server whose runner is the fake
one (``FakeRunner.die``: the model thread raises as a crashed worker would).

Nothing the client sent is dropped silently: the segment in the model and the open speech come
back with status UNAVAILABLE and their spans, then ``ended{ENGINE_FAILED}`` and UNAVAILABLE; health
turns NOT_SERVING; and the SDK resumes on another server, where those spans are translated again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import LiveServer, make_settings
from tests.support.raw import run_stream, segment_spans, stream_config
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client import AsyncTranslateClient, Segment, StreamEnd
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(20)]

PCM = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)
CHUNK = 320  # 20 ms at 16 kHz
TOLERANCE_MS = 64  # two VAD windows: a resumed call's VAD starts afresh at the resume point


@contextlib.asynccontextmanager
async def fake_server(model_dir: Path, runner: FakeRunner) -> AsyncIterator[LiveServer]:
    """A real server on loopback whose model is ``runner`` (warmed: one batch has run)."""
    from tests.support.raw import channel
    from translate_svc.app import build
    from translate_svc.transport.host import TranslateServer

    server = TranslateServer(build(make_settings(model_dir), runner_factory=lambda: runner))
    port = await server.start(warmup=True)
    runner.started.clear()  # set by the warm-up batch
    ch = channel(f"127.0.0.1:{port}")
    try:
        yield LiveServer(server, port, ch)
    finally:
        await ch.close()
        await server.stop(grace=1)


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> np.ndarray:
    return load_pcm16k(shared_audio / "jfk.flac")


def audio(pcm: np.ndarray) -> list[pb.StreamingTranslateRequest]:
    return [pb.StreamingTranslateRequest(audio=pcm[i : i + CHUNK].tobytes()) for i in range(0, len(pcm), CHUNK)]


async def test_engine_death_returns_the_segment_in_the_model_and_the_open_speech_unavailable(
    test_model_dir: Path, jfk: np.ndarray
) -> None:
    runner = FakeRunner()
    async with fake_server(test_model_dir, runner) as live:
        clean = segment_spans(await run_stream(live.stub, [stream_config(PCM), *audio(jfk)]))
        assert len(clean) >= 3, clean
        # the model holds the first segment; the client is in the middle of the second one's speech
        cut_ms = (clean[1][0] + clean[1][1]) // 2
        runner.gate.clear()
        got: list[pb.StreamingTranslateResponse] = []
        second_started = asyncio.Event()
        hold = asyncio.Event()

        async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
            yield stream_config(PCM)
            for m in audio(jfk[: cut_ms * 16]):
                yield m
            await hold.wait()  # the client is still there, sending nothing more

        async def read(call: grpc.aio.StreamStreamCall) -> None:
            async for r in call:
                got.append(r)
                started = [r for r in got if r.speech_event.type == pb.SpeechEvent.SPEECH_STARTED]
                if len(started) == 2:
                    second_started.set()
                if r.HasField("ended"):
                    hold.set()  # half-close: the status follows

        health = health_pb2_grpc.HealthStub(live.channel).Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await health.read()).status == health_pb2.HealthCheckResponse.SERVING
        call = live.stub.StreamingTranslate(requests(), timeout=60)
        reader = asyncio.create_task(read(call))
        await asyncio.wait_for(second_started.wait(), 30)
        assert await asyncio.to_thread(runner.started.wait, 30)  # segment 0 is in the model
        runner.die = True
        runner.gate.set()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await asyncio.wait_for(reader, 30)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "resume" in (err.value.details() or "")

        segs = [r.segment for r in got if r.HasField("segment")]
        assert [s.segment_id for s in segs] == [0, 1]
        assert all(s.status.code == code_pb2.UNAVAILABLE for s in segs), segs
        assert (segs[0].start_ms, segs[0].end_ms) == clean[0]
        end = got[-1]
        assert end.HasField("ended") and end.ended.reason == pb.StreamEnd.ENGINE_FAILED
        assert end.ended.segments_total == 2
        # the open speech is closed where the server's audio ends (what it had read of the client's
        # when the engine died: audio still in flight after that is not taken, and the SDK resends it)
        received = end.ended.audio_received_ms
        assert clean[1][0] < received <= cut_ms, (received, cut_ms)
        assert abs(segs[1].start_ms - clean[1][0]) <= 40 and abs(segs[1].end_ms - received) <= 40, (segs[1], received)

        statuses = []
        while (r := await health.read()) is not grpc.aio.EOF:
            statuses.append(r.status)
            if r.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
        assert statuses[-1] == health_pb2.HealthCheckResponse.NOT_SERVING, statuses
        health.cancel()

        with pytest.raises(grpc.aio.AioRpcError) as refused:  # a new stream: resume elsewhere
            await run_stream(live.stub, [stream_config(PCM), *audio(jfk[:16000])])
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_the_sdk_resumes_elsewhere_and_has_the_unavailable_spans_translated_again(
    test_model_dir: Path, shared_audio: Path
) -> None:
    """Two servers: the first one's model dies in the middle of the stream. Every speech region of
    the clean stream comes back translated once (on one server or the other); the spans that came
    back UNAVAILABLE are delivered, and their audio is translated again after the resume."""
    pcm = load_pcm16k(shared_audio / "silero_test.wav")[: 16000 * 30]
    healthy = FakeRunner()
    dying = FakeRunner()
    async with fake_server(test_model_dir, dying) as first, fake_server(test_model_dir, healthy) as second:
        clean = segment_spans(await run_stream(second.stub, [stream_config(PCM), *audio(pcm)]))
        assert len(clean) >= 6, clean
        events: list[object] = []
        async with AsyncTranslateClient([f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]) as client:
            async with client.stream(targets="spa", source="eng", speech=False) as s:

                async def read() -> None:
                    async for ev in s:
                        events.append(ev)

                reader = asyncio.create_task(read())
                kill_at = (clean[3][0] + clean[3][1]) // 2 * 16  # in the middle of the fourth region
                for i in range(0, len(pcm), CHUNK):
                    if i == kill_at // CHUNK * CHUNK:
                        dying.gate.clear()
                        dying.die = True
                    if i == (kill_at // CHUNK + 25) * CHUNK:
                        dying.gate.set()  # the next batch kills the model thread
                    await s.send(pcm[i : i + CHUNK].tobytes())
                await s.close()
                await asyncio.wait_for(reader, 60)
        assert s.info is not None and s.info.address == f"127.0.0.1:{second.port}", "the stream did not move"
        segs = [e for e in events if isinstance(e, Segment)]
        assert isinstance(events[-1], StreamEnd)
        failed = [g for g in segs if not g.ok]
        assert failed and all(g.error is not None and g.error.code == "UNAVAILABLE" for g in failed), failed
        ids = [g.segment_id for g in segs]
        assert ids == sorted(set(ids)), ids  # every id once, in order
        ok = [(g.start_ms, g.end_ms) for g in segs if g.ok]
        # each clean region translated exactly once (spans within two VAD windows), nothing extra
        assert len(ok) == len(clean), (ok, clean, failed)
        for (a0, a1), (b0, b1) in zip(ok, clean, strict=True):
            assert abs(a0 - b0) <= TOLERANCE_MS and abs(a1 - b1) <= TOLERANCE_MS, (ok, clean)
        # each failed span's speech is among the OK ones, translated after the resume
        for g in failed:
            assert any(a0 <= g.start_ms + TOLERANCE_MS and g.start_ms < a1 for a0, a1 in ok), (g, ok)
