"""A room's listeners choose their speaking rate (issue 90 item 1, "rooms' listeners"): gRPC
``ListenRequest.speed`` through the stock stub and the rooms WebSocket's ``?speed=`` through
aiohttp's client, against a real server on loopback running the test checkpoint (the real model
code, whose vocoder applies the rate).

One speaker streams jfk.flac into a room (word timings on) while five listeners hear Spanish: over
gRPC at the speaker's rate, at 1.5 and at 0.75, through the Python SDK at 0.75, and over the
WebSocket at 1.5. Every segment's
speech reaches each at its own rate (1/speed as long as the speaker's within two vocoder frames
and 5 %: ``tests/support/speaking_rate.py``), says that rate, and its words lie inside it: the
three rates made in the same batches, from one text-to-unit pass. A rate out of 0.5..2.0 is
INVALID_ARGUMENT naming ``speed`` (gRPC) or refused at the handshake (WebSocket). Assertions are on
lengths, spans, rates and statuses, never on words."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from tests.support.live_server import make_settings, serving
from tests.support.rooms import listen_url, registry, speak, speaker_config, wait_for
from tests.support.speaking_rate import at_rate, long_enough, rate_failure, words_inside
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.client import AsyncTranslateClient, RoomSegment
from translate_svc.settings import RoomSettings
from translate_svc.transport.rooms.protocol import LISTEN_RATE, LISTEN_SUBPROTOCOL

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

RATE = 16000


async def grpc_listen(stub: pb_grpc.TranslatorStub, speed: float | None, got: list[pb.ListenEvent]) -> None:
    request = pb.ListenRequest(room="talk", language="spa")
    if speed is not None:
        request.speed = speed
    async for ev in stub.Listen(request):
        got.append(ev)


async def ws_listen(ws: aiohttp.ClientWebSocketResponse, got: list[dict[str, Any]]) -> None:
    """The socket's events; each segment's binary frame's sample count is put in it as ``heard``."""
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            got.append(json.loads(msg.data))
        elif msg.type == aiohttp.WSMsgType.BINARY:
            assert got and got[-1]["type"] == "room.segment" and got[-1]["audio"], got[-1:]
            got[-1]["heard"] = len(msg.data) // 2


async def sdk_listen(address: str, speed: float, got: list[RoomSegment]) -> None:
    async with AsyncTranslateClient(address) as client, client.listen("talk", "spa", speed=speed) as room:
        async for ev in room:
            if isinstance(ev, RoomSegment):
                got.append(ev)


def segments(events: list[pb.ListenEvent]) -> dict[int, pb.SegmentResult]:
    return {e.segment.segment_id: e.segment for e in events if e.WhichOneof("event") == "segment"}


async def test_each_listener_hears_the_room_at_its_own_rate(test_model_dir: Path, shared_audio: Path) -> None:
    settings = make_settings(test_model_dir)
    # a rendition is optional work behind every final: on a loaded machine it may wait long (a
    # bound for a hung test, not a timing)
    settings.rooms = RoomSettings(backlog_s=600.0, rendition_wait_s=120.0)
    settings.server.http_port = 0
    pcm = speech_pcm16(shared_audio / "jfk.flac", 11.0, RATE).tobytes()
    heard: dict[float | None, list[pb.ListenEvent]] = {None: [], 1.5: [], 0.75: []}
    socket_events: list[dict[str, Any]] = []
    by_sdk: list[RoomSegment] = []
    async with serving(settings) as live, aiohttp.ClientSession() as http:
        for bad in (2.5, 0.25):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await grpc_listen(live.stub, bad, [])
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "speed must be a number from 0.5 to 2.0" in (refused.value.details() or "")
        with pytest.raises(aiohttp.WSServerHandshakeError) as bad_socket:
            await http.ws_connect(listen_url(live, "talk", "spa", speed="3"), protocols=(LISTEN_SUBPROTOCOL,))
        assert bad_socket.value.status == 400

        tasks = [asyncio.create_task(grpc_listen(live.stub, speed, got)) for speed, got in heard.items()]
        tasks.append(asyncio.create_task(sdk_listen(f"127.0.0.1:{live.port}", 0.75, by_sdk)))
        async with http.ws_connect(listen_url(live, "talk", "spa", speed="1.5"), protocols=(LISTEN_SUBPROTOCOL,)) as ws:
            tasks.append(asyncio.create_task(ws_listen(ws, socket_events)))
            rooms = registry(live)
            await wait_for(lambda: sum(rooms.listener_counts().values()) == 5)
            config = speaker_config("talk")
            config.output.word_timings = True
            own: list[pb.SegmentResult] = []
            await speak(live.stub, config, pcm, own)
            ids = sorted(s.segment_id for s in own)
            assert len(ids) >= 2, ids

            def all_heard() -> bool:
                by_socket = {e["segment_id"] for e in socket_events if e["type"] == "room.segment"}
                return (
                    by_socket >= set(ids)
                    and {s.segment_id for s in by_sdk} >= set(ids)
                    and all(segments(got).keys() >= set(ids) for got in heard.values())
                )

            await wait_for(all_heard, 120.0)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    for s in own:  # the speaker's own stream: its own targets (none), never the room's renditions
        assert not s.translations
    plain = segments(heard[None])
    shown = 0
    for speed in (1.5, 0.75):
        at_speed = segments(heard[speed])
        for k in ids:
            (one,), (other,) = plain[k].translations, at_speed[k].translations
            assert (one.speech_rate, other.speech_rate) == (1.0, speed), k
            n1, n = one.audio.num_samples, other.audio.num_samples
            assert at_rate(n1, n, speed, RATE), (k, rate_failure(n1, n, speed, RATE))
            for t in (one, other):
                spans = [(w.start_ms, w.end_ms) for w in t.words]
                assert words_inside(spans, t.audio.num_samples, t.audio.sample_rate_hz), (k, spans)
            shown += long_enough(n1, RATE)
    assert shown > 0  # some speech long enough that the rate shows past the slack
    by_socket = {e["segment_id"]: e for e in socket_events if e["type"] == "room.segment"}
    for k in ids:
        ev = by_socket[k]
        assert ev["audio"]["speech_rate"] == 1.5 and ev["heard"] == ev["audio"]["samples"]
        n1 = round(plain[k].translations[0].audio.num_samples * LISTEN_RATE / RATE)
        assert at_rate(n1, ev["heard"], 1.5, LISTEN_RATE), (k, rate_failure(n1, ev["heard"], 1.5, LISTEN_RATE))
    slow = segments(heard[0.75])
    for ev in by_sdk:  # the SDK hears what the stock stub hears at the same rate, and says the rate
        (t,) = ev.segment.translations
        want = slow[ev.segment_id].translations[0]
        assert (t.speech_rate, t.num_samples, len(t.words)) == (0.75, want.audio.num_samples, len(want.words))
