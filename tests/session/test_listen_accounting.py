"""Issue 58: a listen is a call like any other, on both doors: it writes its access line
(``translate_svc.access``: its tenant, room, language and code) and counts as its tenant's call
(``translate_svc_tenant_calls_total{method="listen"}``), whether it ends because its client left or
because it was refused. Before issue 58 neither the gRPC door's ``Listen`` nor the rooms'
WebSocket wrote either (read-admit-iterate-close was written in each door, with no accounting).

Real server on loopback, real clients (grpc.aio's and aiohttp's WebSocket client); what is
asserted is the lines' fields and the counter, never a model's words."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.phone_carriers import AccessLines, access_lines
from tests.support.rooms import speak, speaker_config, wait_for
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(15)]


def listens(tenant: str, code: str) -> float:
    labels = {"tenant": tenant, "method": "listen", "code": code}
    return REGISTRY.get_sample_value("translate_svc_tenant_calls_total", labels) or 0.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    async with serving(settings) as srv:
        yield srv


async def lines_of(access: AccessLines, method: str, n: int = 1) -> list[dict[str, object]]:
    """The access lines of ``method`` once there are ``n`` (a listen's is written as its call ends)."""
    await wait_for(lambda: len(access.of(method)) >= n, 10)
    return access.of(method)


async def test_a_grpc_listen_writes_its_access_line_and_counts_for_its_tenant(live: LiveServer) -> None:
    before = listens("default", "CANCELLED")
    with access_lines() as access:
        call = pb_grpc.TranslatorStub(live.channel).Listen(pb.ListenRequest(room="hall", language="spa"))
        first = await call.read()
        assert isinstance(first, pb.ListenEvent) and first.WhichOneof("event") == "started"
        call.cancel()  # the listener leaves
        (line,) = await lines_of(access, "Listen")
    assert line["code"] == "CANCELLED" and line["tenant"] == "default"
    assert line["room"] == "hall" and line["targets"] == "spa" and line["request_id"]
    assert listens("default", "CANCELLED") == before + 1


async def test_a_refused_grpc_listen_writes_its_access_line_with_the_refusal(live: LiveServer) -> None:
    before = listens("default", "INVALID_ARGUMENT")
    with access_lines() as access:
        call = pb_grpc.TranslatorStub(live.channel).Listen(pb.ListenRequest(room="hall", language="xx-nope"))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call.read()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        (line,) = await lines_of(access, "Listen")
    assert line["code"] == "INVALID_ARGUMENT" and line["tenant"] == "default"
    assert listens("default", "INVALID_ARGUMENT") == before + 1


async def test_a_websocket_listen_writes_its_access_line_and_counts_for_its_tenant(live: LiveServer) -> None:
    before = listens("default", "OK")
    url = f"ws://127.0.0.1:{live.server.ports()['http_port']}/v1/rooms/hall/listen?language=es"
    with access_lines() as access:
        async with aiohttp.ClientSession() as http, http.ws_connect(url, headers={"x-request-id": "ws-l1"}) as ws:
            started = json.loads((await ws.receive()).data)
            assert started["type"] == "room.started"
        (line,) = await lines_of(access, "listen")  # the client closed: the listen is over
    assert line["code"] == "OK" and line["tenant"] == "default" and line["request_id"] == "ws-l1"
    assert line["room"] == "hall" and line["targets"] == "spa"
    assert listens("default", "OK") == before + 1


async def test_a_refused_websocket_listen_writes_its_access_line_with_the_refusal(live: LiveServer) -> None:
    before = listens("default", "INVALID_ARGUMENT")
    url = f"ws://127.0.0.1:{live.server.ports()['http_port']}/v1/rooms/hall/listen?language=es&color=red"
    with access_lines() as access:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(url)
        assert refused.value.status == 400
        (line,) = await lines_of(access, "listen")
    assert line["code"] == "INVALID_ARGUMENT" and line["tenant"] == "default"
    assert listens("default", "INVALID_ARGUMENT") == before + 1


async def test_a_listens_access_line_counts_the_segments_it_was_sent_and_their_speech(
    live: LiveServer, shared_audio: Path
) -> None:
    """Issue 73: the line of a listener that got segments said ``audio_s=0.0 segments_total=0``."""
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 20.0, 16000).tobytes()
    with access_lines() as access:
        call = pb_grpc.TranslatorStub(live.channel).Listen(pb.ListenRequest(room="counted", language="spa"))
        assert (await call.read()).WhichOneof("event") == "started"
        own: list[pb.SegmentResult] = []
        await speak(live.stub, speaker_config("counted"), pcm, own)
        heard: list[pb.SegmentResult] = []
        while len(heard) < len(own):
            ev = await asyncio.wait_for(call.read(), 60)
            if ev.WhichOneof("event") == "segment":
                heard.append(ev.segment)
        call.cancel()
        (line,) = await lines_of(access, "Listen")
    assert len(own) >= 2, "the speech made too few segments for this test"
    assert line["segments_total"] == len(heard) == len(own)
    assert line["segments"] == {"OK": len(heard)}
    assert line["audio_s"] == pytest.approx(sum(s.end_ms - s.start_ms for s in heard) / 1000, abs=0.002)
