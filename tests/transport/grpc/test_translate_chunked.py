"""Large clips in chunks (issue 52 F2): the gRPC port takes in at most
``limits.max_receive_message_bytes`` (4 MiB) per message, so a clip over it travels over
``TranslateChunked`` (the request, then ``audio.content`` continuations), up to
``limits.max_message_bytes``; the SDK's ``translate`` sends every clip that way, and falls back to
one ``Translate`` message against a server from before the method. Real servers on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import clip_chunks
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client import AsyncTranslateClient, TranslateClient
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(30)]

MB = 1024 * 1024
FMT16 = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)
TEXT_ONLY = pb.OutputOptions(speech=False)
CLIP_LIMIT = 8 * MB  # limits.max_message_bytes here
CLIP_READ_S = 2.0  # limits.clip_read_timeout_s here


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chunked(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.limits.max_message_bytes = CLIP_LIMIT
    settings.limits.clip_read_timeout_s = CLIP_READ_S
    async with serving(settings) as live:
        yield live


def long_clip(shared_audio: Path, seconds: float) -> bytes:
    """jfk.flac's speech, then silence, to ``seconds``: raw 16 kHz PCM16."""
    jfk = load_pcm16k(shared_audio / "jfk.flac")
    pcm = np.zeros(int(seconds * 16000), np.int16)
    pcm[: len(jfk)] = jfk
    return pcm.tobytes()


async def error_of(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call
    return e.value


async def test_a_clip_over_the_receive_limit_goes_in_chunks_and_not_in_one_message(
    chunked: LiveServer, shared_audio: Path
) -> None:
    """A 160 s clip (5.1 MB): one Translate message is refused by the transport at the 4 MiB receive
    limit (RESOURCE_EXHAUSTED, as ServerLimits says); in chunks it gives the segments the same
    speech gives in a short clip."""
    content = long_clip(shared_audio, 160)
    assert len(content) > 4 * MB
    request = pb.TranslateRequest(audio=pb.AudioInput(content=content, format=FMT16), target_languages=["spa"])
    request.output.CopyFrom(TEXT_ONLY)
    limits = (await chunked.stub.ListLanguages(pb.ListLanguagesRequest())).limits
    assert limits.max_receive_message_bytes == 4 * MB and limits.max_message_bytes == CLIP_LIMIT

    err = await error_of(chunked.stub.Translate(request, timeout=60))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in (err.details() or ""), err

    whole = await chunked.stub.TranslateChunked(clip_chunks(request, 256 * 1024), timeout=120)
    short = pb.TranslateRequest()
    short.CopyFrom(request)
    short.audio.content = content[: 12 * 32000]
    alone = await chunked.stub.Translate(short, timeout=60)
    assert whole.audio_duration_ms == 160_000
    assert [(s.start_ms, s.end_ms) for s in whole.segments] == [(s.start_ms, s.end_ms) for s in alone.segments]
    assert len(whole.segments) == 4


async def test_later_messages_carry_only_the_clips_next_bytes(chunked: LiveServer) -> None:
    first = pb.TranslateRequest(audio=pb.AudioInput(content=bytes(32000), format=FMT16), target_languages=["spa"])
    for later in [
        pb.TranslateRequest(audio=pb.AudioInput(content=bytes(100)), target_languages=["fra"]),
        pb.TranslateRequest(audio=pb.AudioInput(content=bytes(100), format=FMT16)),
    ]:
        err = await error_of(chunked.stub.TranslateChunked(iter([first, later]), timeout=30))
        message = err.details() or ""
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        assert "after the first carries only audio.content" in message, message
        assert ("target_languages" in message) or ("audio.format" in message), message


async def test_the_clip_limit_and_the_message_limit_hold_as_chunks_arrive(chunked: LiveServer) -> None:
    """All the chunks together at most max_message_bytes (8 MiB here): the call is refused at the
    chunk that passes it (INVALID_ARGUMENT naming the limit); one message at most
    max_stream_message_bytes (a config and an audio chunk).

    The client holds its next chunk once the clip has passed the limit: a server that refuses at
    that chunk ends the call while the client waits (a server that waited for the whole clip would
    end it only after the hold, with every chunk sent). Holding also keeps the client from writing
    as the call ends, whose failure grpc-python reports as INTERNAL (grpc/grpc#36066)."""
    request = pb.TranslateRequest(audio=pb.AudioInput(format=FMT16), target_languages=["spa"])
    chunk = pb.TranslateRequest(audio=pb.AudioInput(content=bytes(MB)))
    sent = 0

    async def messages() -> AsyncIterator[pb.TranslateRequest]:
        nonlocal sent
        yield request
        for _ in range(20):
            sent += 1
            yield chunk
            if sent * MB > CLIP_LIMIT:
                await asyncio.sleep(20)

    err = await error_of(chunked.stub.TranslateChunked(messages(), timeout=30))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert "ServerLimits.max_message_bytes" in (err.details() or ""), err
    assert sent == CLIP_LIMIT // MB + 1  # refused as it passed the limit, not once everything came

    big = pb.TranslateRequest(audio=pb.AudioInput(content=bytes(2 * MB), format=FMT16), target_languages=["spa"])
    err = await error_of(chunked.stub.TranslateChunked(iter([big]), timeout=30))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "over this method's" in (err.details() or ""), err


async def test_a_trickled_clip_ends_at_the_clip_read_deadline(chunked: LiveServer) -> None:
    async def trickle() -> AsyncIterator[pb.TranslateRequest]:
        yield pb.TranslateRequest(audio=pb.AudioInput(content=bytes(3200), format=FMT16), target_languages=["spa"])
        for _ in range(100):
            await asyncio.sleep(0.1)
            yield pb.TranslateRequest(audio=pb.AudioInput(content=bytes(3200)))

    err = await error_of(chunked.stub.TranslateChunked(trickle(), timeout=30))
    assert err.code() == grpc.StatusCode.OUT_OF_RANGE and "clip_read_timeout_ms" in (err.details() or ""), err


async def test_the_sdk_sends_a_long_clip_in_chunks(chunked: LiveServer, shared_audio: Path) -> None:
    content = long_clip(shared_audio, 160)
    async with AsyncTranslateClient(f"127.0.0.1:{chunked.port}") as c:
        result = await c.translate(content, targets="spa", sample_rate=16000, encoding="linear16", speech=False)
        limits = (await c.languages()).limits
    assert result.audio_duration_ms == 160_000 and len(result.segments) == 4
    assert limits.max_receive_message_bytes == 4 * MB and limits.request_read_timeout_ms == 5000


class OlderServer:
    """A server from before TranslateChunked: Translate only (it took a whole clip in one message),
    answering with the clip's length; its receive window as such a server set it (9eed122's
    transport/grpc/door.py: no BDP probe, 256 KiB lookahead), under which a chunked clip in flight
    is reset and its UNIMPLEMENTED reaches the client as INTERNAL."""

    def __init__(self) -> None:
        options = [
            ("grpc.max_receive_message_length", 64 * MB),
            ("grpc.http2.bdp_probe", 0),
            ("grpc.http2.lookahead_bytes", 256 * 1024),
        ]
        self.server = grpc.aio.server(options=options)
        self.calls: list[int] = []

        async def translate(raw: bytes, context: Any) -> pb.TranslateResponse:
            request = pb.TranslateRequest.FromString(raw)
            self.calls.append(len(request.audio.content))
            return pb.TranslateResponse(audio_duration_ms=len(request.audio.content) // 32)

        handler = grpc.unary_unary_rpc_method_handler(
            translate, response_serializer=pb.TranslateResponse.SerializeToString
        )
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("translate_svc.api.v1.Translator", {"Translate": handler}),)
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")


async def test_the_sdk_falls_back_to_one_translate_message_on_an_older_server(shared_audio: Path) -> None:
    older = OlderServer()
    await older.server.start()
    content = long_clip(shared_audio, 160)
    try:
        async with AsyncTranslateClient(f"127.0.0.1:{older.port}") as c:
            result = await c.translate(content, targets="spa", sample_rate=16000, encoding="linear16")

        def blocking() -> Any:  # the blocking client is the same call, on its own thread
            with TranslateClient(f"127.0.0.1:{older.port}") as b:
                return b.translate(content[:32000], targets="spa", sample_rate=16000, encoding="linear16")

        sync = await asyncio.to_thread(blocking)
    finally:
        await older.server.stop(0)
    assert older.calls == [len(content), 32000]
    assert result.audio_duration_ms == 160_000 and sync.audio_duration_ms == 1000
