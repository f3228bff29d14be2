"""Issue 34's N3 (gRPC) and N7, over a real server on loopback: calls that open and never send what
they must (a stream's config, a Translate clip) hold a slot only until a published deadline, and
the slot is counted from the call's first byte.

Before: a tenant capped at 2 streams held any number of unconfigured calls, none counted, none
timed out; 4 Translate calls that never sent their clip held all 4 node-wide slots with no deadline
(every other tenant's Translate locked out for 120+ s).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from tests.support.calls import retry_ms
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.tokens import bearer
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.slow(15)]

X, Y = "tenant-x-token-7e21c4", "tenant-y-token-d03a9b"
FMT = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)
TRANSLATE = "/translate_svc.api.v1.Translator/Translate"


async def silent(stop: asyncio.Event) -> AsyncIterator[pb.StreamingTranslateRequest]:
    """A client that opens its call and sends nothing until ``stop``."""
    await stop.wait()
    return
    yield  # an async generator


async def config_only() -> AsyncIterator[pb.StreamingTranslateRequest]:
    """A config, then half-close (a refused call's status then comes at once)."""
    yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=FMT, target_languages=["spa"]))


async def streams_held(live: LiveServer, name: str, n: int) -> None:
    """Until the node's counter ``name`` holds ``n`` (the server took the slots)."""
    counters = live.server.app.sessions.counters
    loop = asyncio.get_running_loop()
    end = loop.time() + 10
    while counters.count(name) != n:
        assert loop.time() < end, f"{name}: {counters.count(name)}, not {n}"
        await asyncio.sleep(0.01)


async def test_unconfigured_streams_count_against_the_caps_and_end_at_the_config_deadline(
    test_model_dir: Path, tmp_path: Path, shared_audio: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{X} stream tenant=x streams=2\n{Y} stream tenant=y\n")
    settings = make_settings(test_model_dir)
    settings.auth.tokens_file = tokens
    settings.limits.config_timeout_ms = 4000
    settings.limits.max_streams = 3
    stop = asyncio.Event()
    async with serving(settings) as live:
        # tenant x opens two calls and never configures them: both count at once
        idle = [live.stub.StreamingTranslate(silent(stop), metadata=bearer(X)) for _ in range(2)]
        await streams_held(live, "x/streams", 2)
        third = live.stub.StreamingTranslate(config_only(), metadata=bearer(X))
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await third.read()
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value.details()
        assert "tenant 'x'" in (e.value.details() or "") and retry_ms(e.value) == 1000
        # the node's cap (3) counts them too: one more unconfigured call of y fills it
        other = live.stub.StreamingTranslate(silent(stop), metadata=bearer(Y))
        await streams_held(live, "streams", 3)
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await live.stub.StreamingTranslate(config_only(), metadata=bearer(Y)).read()
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value.details()
        # the deadline ends all three, each with its reason, and frees their slots
        for call in [*idle, other]:
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await asyncio.wait_for(call.read(), 20)
            assert e.value.code() == grpc.StatusCode.OUT_OF_RANGE, e.value.details()
            assert "no config came within 4000 ms" in (e.value.details() or "")
        await streams_held(live, "streams", 0)
        # the victim, a configured stream of x, is served in full
        speech = load_pcm16k(shared_audio / "jfk.flac")[: 16000 * 4].tobytes()

        async def talk() -> AsyncIterator[pb.StreamingTranslateRequest]:
            yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=FMT, target_languages=["spa"]))
            for i in range(0, len(speech), 32000):
                yield pb.StreamingTranslateRequest(audio=speech[i : i + 32000])

        call = live.stub.StreamingTranslate(talk(), metadata=bearer(X))
        kinds = [r.WhichOneof("response") async for r in call]
        assert await call.code() == grpc.StatusCode.OK
        assert kinds[0] == "started" and kinds[-1] == "ended" and "segment" in kinds
        stop.set()


async def test_translate_calls_that_never_send_their_clip_end_at_the_clip_deadline(
    test_model_dir: Path, shared_audio: Path
) -> None:
    settings = make_settings(test_model_dir)
    settings.limits.max_translate_calls = 2
    settings.limits.clip_read_timeout_s = 1.5
    stop = asyncio.Event()
    clip = load_pcm16k(shared_audio / "jfk.flac")[: 16000 * 3].tobytes()
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=clip, format=FMT), target_languages=["spa"], output=pb.OutputOptions(speech=False)
    )
    async with serving(settings) as live:
        # the same method, with the clip never sent (what a client stalled mid-upload looks like)
        hang = live.channel.stream_unary(
            TRANSLATE,
            request_serializer=pb.TranslateRequest.SerializeToString,
            response_deserializer=pb.TranslateResponse.FromString,
        )
        hung = [asyncio.ensure_future(hang(silent(stop))) for _ in range(2)]
        await streams_held(live, "translate", 2)
        with pytest.raises(grpc.aio.AioRpcError) as e:  # both slots are held: the victim waits
            await live.stub.Translate(request)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value.details()
        for call in hung:
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await asyncio.wait_for(call, 20)
            assert e.value.code() == grpc.StatusCode.OUT_OF_RANGE, e.value.details()
            assert "the clip did not arrive within 1.5 s" in (e.value.details() or "")
        await streams_held(live, "translate", 0)
        answer = await live.stub.Translate(request)
        assert answer.segments and all(len(s.translations) == 1 for s in answer.segments)
        stop.set()
