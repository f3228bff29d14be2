"""Resume and drain on a real server: a stream continued in a second call keeps its segment ids
and its timeline; a draining server tells live streams, translates their open speech and ends
them with "resume elsewhere"."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from tests.support.live_server import LiveServer, make_settings, serving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(20)]

FMT = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)
TEXT = pb.OutputOptions(text=True, speech=False, transcript=False)


def cfg(resume: pb.ResumeFrom | None = None) -> pb.StreamingTranslateRequest:
    return pb.StreamingTranslateRequest(
        config=pb.StreamingConfig(format=FMT, target_languages=["spa"], output=TEXT, resume=resume)
    )


def chunks(pcm: np.ndarray, ms: int = 100) -> list[pb.StreamingTranslateRequest]:
    step = 16 * ms
    return [pb.StreamingTranslateRequest(audio=pcm[i : i + step].tobytes()) for i in range(0, len(pcm), step)]


async def call(
    live: LiveServer, msgs: list[pb.StreamingTranslateRequest], pace_s: float = 0.0
) -> list[pb.StreamingTranslateResponse]:
    async def gen() -> AsyncIterator[pb.StreamingTranslateRequest]:
        for m in msgs:
            if pace_s:
                await asyncio.sleep(pace_s)
            yield m

    return [r async for r in live.stub.StreamingTranslate(gen(), timeout=120)]


@pytest.fixture(scope="module")
def speech(shared_audio: Path) -> np.ndarray:
    return load_pcm16k(shared_audio / "silero_test.wav")[: 16000 * 30]


async def test_a_resumed_call_continues_ids_and_timeline(live: LiveServer, speech: np.ndarray) -> None:
    whole = [r.segment for r in await call(live, [cfg(), *chunks(speech)]) if r.HasField("segment")]
    cut = 16000 * 12
    first = await call(live, [cfg(), *chunks(speech[:cut])])
    token = first[0].started.resume_token
    done = [r.segment for r in first if r.HasField("segment")]
    end = first[-1].ended
    assert token and end.resume_offset_ms == 12_000 and end.reason == pb.StreamEnd.HALF_CLOSE
    resume = pb.ResumeFrom(resume_token=token, next_segment_id=len(done), offset_ms=end.resume_offset_ms)
    second = await call(live, [cfg(resume), *chunks(speech[cut:])])
    assert second[0].started.resume_token == token
    assert second[0].started.config.resume.offset_ms == 12_000
    rest = [r.segment for r in second if r.HasField("segment")]
    segs = done + rest
    assert [s.segment_id for s in segs] == list(range(len(segs)))
    assert all(s.start_ms >= 12_000 for s in rest)
    assert all(a.end_ms <= b.start_ms for a, b in itertools.pairwise(segs))
    # the same speech as one call: every one-call segment overlaps a resumed-run segment
    for w in whole:
        assert any(s.start_ms < w.end_ms and w.start_ms < s.end_ms for s in segs), (w.start_ms, w.end_ms)
    assert abs(len(segs) - len(whole)) <= 1
    assert second[-1].ended.audio_received_ms == 30_000 and second[-1].ended.segments_total == len(segs)
    events = [r.speech_event.offset_ms for r in second if r.HasField("speech_event")]
    assert events and min(events) >= 12_000


async def test_a_bad_resume_token_is_refused(live: LiveServer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(live, [cfg(pb.ResumeFrom(resume_token="nope", next_segment_id=1, offset_ms=5))])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "resume_token" in (err.value.details() or "")
    # offsets and ids past any stream's length (int64's largest once ended a stream with INTERNAL)
    token = "0123456789abcdef" * 2
    for offset, next_id in ((2**63 - 1, 1), (5, 2**63 - 1), (4 * 3600 * 1000 + 1, 0)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(live, [cfg(pb.ResumeFrom(resume_token=token, next_segment_id=next_id, offset_ms=offset))])
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (offset, next_id)
        assert "max_stream_seconds" in (err.value.details() or "")


async def test_a_draining_server_tells_live_streams_translates_their_speech_and_ends_them_to_resume(
    test_model_dir: Path, speech: np.ndarray
) -> None:
    settings = make_settings(test_model_dir)
    settings.server.drain_s = 1.0
    async with serving(settings) as live:
        responses: list[pb.StreamingTranslateResponse] = []
        got_started = asyncio.Event()

        async def gen() -> AsyncIterator[pb.StreamingTranslateRequest]:
            yield cfg()
            for m in chunks(speech):  # 30 s at 5x real time: still live when the drain starts
                await asyncio.sleep(0.02)
                yield m

        async def stream() -> None:
            async for r in live.stub.StreamingTranslate(gen(), timeout=60):
                responses.append(r)
                got_started.set()

        task = asyncio.create_task(stream())
        await got_started.wait()
        await asyncio.sleep(2.5)  # about 12 s of audio in
        stopping = asyncio.create_task(live.server.stop(grace=10))
        await asyncio.sleep(0.2)
        with pytest.raises(grpc.aio.AioRpcError) as refused:  # no new streams while draining
            await call(live, [cfg(), *chunks(speech[:1600])])
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await task
        await stopping
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE and "resume" in (ended.value.details() or "")
    kinds = [r.WhichOneof("response") for r in responses]
    assert "draining" in kinds and kinds[-1] == "ended"
    drain = responses[kinds.index("draining")].draining
    assert 900 <= drain.remaining_ms <= 1000 and drain.deadline_unix_ms > 0
    end = responses[-1].ended
    assert end.reason == pb.StreamEnd.DRAINING
    segs = [r.segment for r in responses if r.HasField("segment")]
    # translated up to where the server stopped reading, open speech included; nothing after it. The
    # resume point is that, or where speech the end cut too short to translate began: within
    # min_speech (250 ms), a pause under way (100 ms) and a window of the end (a drain that
    # lands on a speech onset; seen in a fresh-clone run)
    assert 12_000 <= end.resume_offset_ms < 30_000
    assert 0 <= end.audio_received_ms - end.resume_offset_ms <= 250 + 100 + 64
    assert segs and segs[-1].end_ms <= end.resume_offset_ms
    assert [s.segment_id for s in segs] == list(range(len(segs))) and end.segments_total == len(segs)
    assert kinds.index("draining") < len(kinds) - 1 - kinds[::-1].index("segment")  # results after the notice


async def test_fifty_streams_still_sending_all_end_unavailable_with_resume_on_drain(
    test_model_dir: Path, speech: np.ndarray
) -> None:
    """grpc/grpc#36066: a client still writing when its stream ends must get the server's status,
    not INTERNAL. Half of the clients stop sending when they read `ended`; the other half never
    look and send on (at real time) until their audio runs out, seconds after the drain's end."""
    settings = make_settings(test_model_dir)
    settings.server.drain_s = 1.0
    n = 50
    async with serving(settings) as live:
        started = [asyncio.Event() for _ in range(n)]

        async def stream(i: int) -> tuple[grpc.StatusCode, str, list[str]]:
            over = asyncio.Event()
            blind = i % 2 == 1
            audio = speech[: 16000 * (7 if blind else 30)]

            async def gen() -> AsyncIterator[pb.StreamingTranslateRequest]:
                yield cfg()
                for m in chunks(np.roll(audio, 1600 * i)):  # each stream at its own place in the speech
                    if over.is_set() and not blind:
                        return
                    await asyncio.sleep(0.1)
                    yield m

            kinds: list[str] = []
            try:
                async for r in live.stub.StreamingTranslate(gen(), timeout=60):
                    kinds.append(r.WhichOneof("response") or "")
                    started[i].set()
                    if kinds[-1] == "ended":
                        over.set()
            except grpc.aio.AioRpcError as e:
                return e.code(), e.details() or "", kinds
            return grpc.StatusCode.OK, "", kinds

        tasks = [asyncio.create_task(stream(i)) for i in range(n)]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), 60)
        await asyncio.sleep(1.0)  # every stream is live and sending
        await live.server.stop(grace=15)
        ends = await asyncio.gather(*tasks)
    codes = [code for code, _, _ in ends]
    assert codes == [grpc.StatusCode.UNAVAILABLE] * n, [(c, d) for c, d, _ in ends if c != grpc.StatusCode.UNAVAILABLE]
    assert all("resume" in details for _, details, _ in ends)
    assert all("draining" in kinds and kinds[-1] == "ended" for _, _, kinds in ends)
