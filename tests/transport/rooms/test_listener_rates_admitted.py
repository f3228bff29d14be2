"""Listener-chosen speaking rates are admitted and paid for (docs/rooms.md, "A speaking rate per
listener"; docs/security.md, "Hardening 7: listener rates"), against a real server on loopback on
the stable test translator (its speech is a tone of a known length per word, so a rate shows
exactly), through the stock gRPC stub, aiohttp's WebSocket client and the ``mcp`` SDK:

- rates snap to a grid of 0.25: listeners at 0.5, 0.500001, 0.500002 (gRPC) and 0.500003
  (WebSocket) are one rendition, each hearing every segment at 0.5, twice as long as a listener
  at the speaker's rate (before: four renditions, four vocoder rows per segment);
- a room takes a rate only where its owner allows it: a token line's ``rates=`` patterns, an
  ``open_room`` listeners' key only with ``allow_rates``, the demo page's key never (by default):
  PERMISSION_DENIED / 403 naming what to do; the same listens without a rate are admitted;
- a tenant's rates in use are capped (``renditions=1``): a second rate is refused (a listener at
  the rate in use is not), and admitted once the first rate's listeners left;
- the room's tenant pays: each rendition made draws its segment's seconds, counted per tenant; a
  tenant whose audio budget is below half its minute gets none (its listeners hear the speaker's
  rate) while another tenant's listeners in the same run get theirs;
- a speaker's own ``Update`` keeps its listeners' rates: the segments after it still reach a
  listener at 1.25 at 1.25 (before: the task lost its rates and they came at the speaker's rate).

Assertions are on statuses, sample counts, rates and counters, never on words."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
import pytest_asyncio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client import REGISTRY

from tests.support.live_server import LiveServer, serving
from tests.support.mcp_door import http_client, mcp_settings, mcp_url
from tests.support.rooms import CHUNK, listen_url, registry, speaker_config, wait_for
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.model.testing.stable import SAMPLES_PER_WORD
from translate_svc.transport.rooms.protocol import LISTEN_SUBPROTOCOL

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

OPEN = "rates-open-token-4f1e9a"  # listens anywhere in hall-*, rates wherever it listens (unstated)
NARROW = "rates-narrow-token-8c2d0b"  # listens in hall-*, a rate only in hall-open
AGENT = "rates-agent-token-13ab77"  # an agent's token: open_room for hall-*
SMALL = "rates-small-token-6e5f21"  # tenant small: one rate in use at once
RICH = "rates-rich-token-0d9c44"  # tenant rich: no audio budget
POOR = "rates-poor-token-a7b3e8"  # tenant poor: 60 audio seconds a minute
TOKENS = f"""\
{OPEN} stream room=hall-* tenant=acme
{NARROW} stream listen=hall-* rates=hall-open tenant=acme
{AGENT} stream room=hall-* tenant=acme
{SMALL} stream room=* tenant=small renditions=1
{RICH} stream room=* tenant=rich
{POOR} stream room=* tenant=poor audio_seconds_per_minute=60
"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """One server for the module: HTTP port, MCP, the demo page, these tokens; a rendition may wait
    long for the engine (a bound for a hung test, not a timing: the machine may be loaded)."""
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(TOKENS)
    settings = mcp_settings(test_model_dir, tokens)
    settings.server.demo_page = True
    settings.rooms.rendition_wait_s = 120.0
    async with serving(settings) as server:
        yield server


def auth(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def metric(name: str, **labels: str) -> float:
    """A counter of this process's registry (the server runs in it), 0 where never counted."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def samples(segment: pb.SegmentResult) -> int:
    (t,) = segment.translations
    return t.audio.num_samples


async def hear(
    live: LiveServer, room: str, token: str, speed: float | None, got: list[pb.SegmentResult], started: asyncio.Event
) -> None:
    """A gRPC listener of ``room`` in Spanish at ``speed``: its segments, ``started`` once admitted."""
    request = pb.ListenRequest(room=room, language="spa")
    if speed is not None:
        request.speed = speed
    async for ev in live.stub.Listen(request, metadata=auth(token)):
        if ev.WhichOneof("event") == "started":
            started.set()
        elif ev.WhichOneof("event") == "segment" and not ev.backlog:
            got.append(ev.segment)


@contextlib.asynccontextmanager
async def listening(
    live: LiveServer, room: str, token: str, speed: float | None
) -> AsyncIterator[list[pb.SegmentResult]]:
    """A gRPC listener admitted for the block (its admission awaited), cancelled after it."""
    got: list[pb.SegmentResult] = []
    started = asyncio.Event()
    task = asyncio.ensure_future(hear(live, room, token, speed, got, started))
    admitted = asyncio.ensure_future(started.wait())
    try:
        done, _ = await asyncio.wait({task, admitted}, return_when="FIRST_COMPLETED")
        if task in done:
            task.result()  # refused: its error
        yield got
    finally:
        for t in (task, admitted):
            t.cancel()
        await asyncio.gather(task, admitted, return_exceptions=True)


async def refused(live: LiveServer, room: str, token: str, speed: float | None) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        async with listening(live, room, token, speed):
            pass
    return e.value


async def socket_status(live: LiveServer, room: str, key: str, **query: str) -> tuple[int, str]:
    """A room listener's WebSocket with ``key``: 101 (its first event read, then closed) or the
    refusal's status and its body's message (every refusal comes before the upgrade)."""
    protocols = (LISTEN_SUBPROTOCOL, f"openai-insecure-api-key.{key}")
    url = listen_url(live, room, "spa", **query)
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(url, protocols=protocols) as ws:
                first = await ws.receive_json(timeout=60)
                assert first["type"] == "room.started"
                return 101, ""
        except aiohttp.WSServerHandshakeError:
            pass
        headers = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Protocol": ", ".join(protocols),
        }
        async with http.get(url.replace("ws://", "http://"), headers=headers) as r:
            assert r.status != 101
            return r.status, (await r.json())["error"]["message"]


async def talk(
    live: LiveServer, token: str, room: str, pcm: bytes, *, real_time: bool = False
) -> list[pb.SegmentResult]:
    """A speaker streaming ``pcm`` into ``room`` (as fast as flow control lets it, or at real time),
    then FLUSH: its own segments."""

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=speaker_config(room))
        loop = asyncio.get_running_loop()
        start = loop.time()
        for k in range(0, len(pcm), CHUNK):
            yield pb.StreamingTranslateRequest(audio=pcm[k : k + CHUNK])
            if real_time:
                await asyncio.sleep(max(0.0, start + (k + CHUNK) / 32000 - loop.time()))
        yield pb.StreamingTranslateRequest(control=pb.FLUSH)

    own = []
    async for msg in live.stub.StreamingTranslate(requests(), metadata=auth(token)):
        if msg.WhichOneof("response") == "segment":
            own.append(msg.segment)
    return own


async def heard_all(got: list[pb.SegmentResult], own: list[pb.SegmentResult]) -> None:
    ids = {s.segment_id for s in own}
    await wait_for(lambda: {s.segment_id for s in got} >= ids, 180.0)


async def test_near_rates_are_one_rendition(live: LiveServer, shared_audio: Path) -> None:
    pcm = speech_pcm16(shared_audio / "jfk.flac", 6.0, 16000).tobytes()
    made = metric("translate_svc_room_renditions_total", outcome="made")
    socket: list[dict[str, Any]] = []
    async with (
        listening(live, "hall-near", OPEN, None) as plain,
        listening(live, "hall-near", OPEN, 0.5) as a,
        listening(live, "hall-near", OPEN, 0.500001) as b,
        listening(live, "hall-near", OPEN, 0.500002) as c,
        aiohttp.ClientSession() as http,
        http.ws_connect(
            listen_url(live, "hall-near", "spa", speed="0.500003"),
            protocols=(LISTEN_SUBPROTOCOL, f"openai-insecure-api-key.{OPEN}"),
        ) as ws,
    ):
        reading = asyncio.ensure_future(_read_socket(ws, socket))
        (room,) = [r for (t, name), r in registry(live).rooms.items() if (t, name) == ("acme", "hall-near")]
        await wait_for(lambda: sum(len(g) for g in room.listeners.values()) == 5)
        speaking = asyncio.ensure_future(talk(live, OPEN, "hall-near", pcm, real_time=True))
        await wait_for(lambda: bool(room.speakers))
        (speaker,) = room.speakers.values()
        assert speaker.renditions == (("spa", 0.5),)  # one rendition, not four
        assert set(room.rates_held) == {("spa", 0.5)}  # one rate in use, counted once for the tenant
        own = await speaking
        assert len(own) >= 2, own
        for got in (plain, a, b, c):
            await heard_all(got, own)
        await wait_for(lambda: {e["segment_id"] for e in socket} >= {s.segment_id for s in own}, 180.0)
        reading.cancel()
    base = {s.segment_id: samples(s) for s in plain}
    for got in (a, b, c):
        for s in got:
            assert s.translations[0].speech_rate == 0.5, s.segment_id  # the rate each gets, said
            assert samples(s) == 2 * base[s.segment_id] > 0, s.segment_id
    for e in socket:
        assert e["audio"]["speech_rate"] == 0.5 and e["audio"]["samples"] == 2 * base[e["segment_id"]]
    # one vocoder row a segment for the four of them
    assert metric("translate_svc_room_renditions_total", outcome="made") - made == len(own)


async def _read_socket(ws: aiohttp.ClientWebSocketResponse, got: list[dict[str, Any]]) -> None:
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            event = msg.json()
            if event["type"] == "room.segment" and not event["backlog"]:
                got.append(event)


async def test_a_rate_only_where_the_rooms_owner_allows_it(live: LiveServer) -> None:
    # a token line's rates= patterns: a rate in hall-open, none in hall-closed (listening is fine)
    denied = await refused(live, "hall-closed", NARROW, 1.25)
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "takes no speaking rate" in (denied.details() or "") and "without speed" in (denied.details() or "")
    async with listening(live, "hall-closed", NARROW, None), listening(live, "hall-open", NARROW, 1.25):
        pass
    # an agent's open_room: its listeners' key takes no rate unless asked with allow_rates
    plain = await open_room(live, "hall-agent", allow_rates=False)
    rated = await open_room(live, "hall-agent", allow_rates=True)
    assert (plain["listeners"]["rates_allowed"], rated["listeners"]["rates_allowed"]) == (False, True)
    status, message = await socket_status(live, "hall-agent", plain["listeners"]["key"], speed="1.25")
    assert status == 403 and "takes no speaking rate" in message
    assert await socket_status(live, "hall-agent", plain["listeners"]["key"]) == (101, "")
    assert await socket_status(live, "hall-agent", rated["listeners"]["key"], speed="1.25") == (101, "")
    # the demo page's key (anyone who opens the page gets one): no rate by default
    async with aiohttp.ClientSession() as http:
        assert live.server.http is not None
        async with http.post(f"http://127.0.0.1:{live.server.http.port}/demo/client_secret") as r:
            assert r.status == 200
            demo = (await r.json())["value"]
    status, message = await socket_status(live, "demo-room", demo, speed="0.75")
    assert status == 403 and "rooms.demo_rates" in message
    assert await socket_status(live, "demo-room", demo) == (101, "")


async def open_room(live: LiveServer, room: str, *, allow_rates: bool) -> dict[str, Any]:
    async with Client(streamable_http_client(mcp_url(live), http_client=http_client(AGENT))) as c:
        opened = await c.call_tool(
            "open_room",
            {"room": room, "source_language": "eng", "listen_languages": ["spa"], "allow_rates": allow_rates},
        )
    assert not opened.is_error, opened.content
    answer: dict[str, Any] = opened.structured_content
    return answer


async def test_a_tenants_rates_in_use_are_capped(live: LiveServer) -> None:
    async with listening(live, "one", SMALL, 1.25), listening(live, "one", SMALL, 1.3):  # 1.3: the same 1.25
        for room, speed in (("one", 1.5), ("two", 0.75)):
            e = await refused(live, room, SMALL, speed)
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "cap of 1 speaking rates in use (renditions=1 in the tokens file" in (e.details() or "")
            assert "spa at 1.25 in 'one'" in (e.details() or "")  # the rate it may join instead
        async with listening(live, "two", SMALL, None):  # without a rate: admitted
            pass
    rooms = registry(live).rooms
    await wait_for(lambda: not any(r.rates_held for (t, _), r in rooms.items() if t == "small"))
    async with listening(live, "two", SMALL, 0.75):  # the first rate's listeners left: its count is back
        pass


async def test_the_rooms_tenant_pays_for_its_renditions(live: LiveServer, shared_audio: Path) -> None:
    speech = speech_pcm16(shared_audio / "jfk.flac", 6.0, 16000).tobytes()
    # tenant poor spends most of its 60 s a minute first (55 s of audio as fast as it is taken): well
    # below half its minute (the budget refills 1 s a second: 25 s of slack for a slow machine), it
    # pays for no rendition while its speaker speaks in real time (drawing what refills)
    await talk(live, POOR, "poor-prelude", speech_pcm16(shared_audio / "jfk.flac", 11.0, 16000).tobytes() * 5)
    charged = {t: metric("translate_svc_tenant_rendition_seconds_total", tenant=t) for t in ("rich", "poor")}
    unpaid = metric("translate_svc_room_renditions_total", outcome="budget")
    async with listening(live, "pay", RICH, 1.5) as rich, listening(live, "pay", POOR, 1.5) as poor:
        own_rich, own_poor = await asyncio.gather(
            talk(live, RICH, "pay", speech, real_time=True), talk(live, POOR, "pay", speech, real_time=True)
        )
        await heard_all(rich, own_rich)
        await heard_all(poor, own_poor)
    assert rich and poor
    assert all(s.translations[0].speech_rate == 1.5 for s in rich)
    assert not any(s.translations[0].speech_rate == 1.5 for s in poor)  # the speaker's rate: unpaid
    assert all(samples(s) % SAMPLES_PER_WORD == 0 for s in poor)
    seconds = sum((s.end_ms - s.start_ms) / 1000 for s in own_rich)
    got = metric("translate_svc_tenant_rendition_seconds_total", tenant="rich") - charged["rich"]
    assert got == pytest.approx(seconds)  # each rendition: its segment's seconds, to the room's tenant
    assert metric("translate_svc_tenant_rendition_seconds_total", tenant="poor") == charged["poor"]
    assert metric("translate_svc_room_renditions_total", outcome="budget") - unpaid == len(own_poor)


async def test_a_speakers_update_keeps_its_listeners_rates(live: LiveServer, shared_audio: Path) -> None:
    pcm = speech_pcm16(shared_audio / "jfk.flac", 11.0, 16000).tobytes()
    half = (len(pcm) // 2) // CHUNK * CHUNK
    to_send: asyncio.Queue[pb.StreamingTranslateRequest | None] = asyncio.Queue()

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        while (req := await to_send.get()) is not None:
            yield req

    def send(*reqs: pb.StreamingTranslateRequest) -> None:
        for req in reqs:
            to_send.put_nowait(req)

    own: list[pb.SegmentResult] = []
    updated: list[pb.StreamUpdated] = []
    async with listening(live, "hall-update", OPEN, 1.25) as heard:
        call = live.stub.StreamingTranslate(requests(), metadata=auth(OPEN))
        send(pb.StreamingTranslateRequest(config=speaker_config("hall-update")))
        send(*(pb.StreamingTranslateRequest(audio=pcm[k : k + CHUNK]) for k in range(0, half, CHUNK)))
        send(pb.StreamingTranslateRequest(control=pb.FLUSH))
        async for msg in call:
            kind = msg.WhichOneof("response")
            if kind == "segment":
                own.append(msg.segment)
                if len(own) == 1:  # a result at the room's rate is out: now the speaker's own Update
                    send(pb.StreamingTranslateRequest(update=pb.StreamUpdate(speaker_id=1)))
            elif kind == "updated":
                updated.append(msg.updated)
                send(*(pb.StreamingTranslateRequest(audio=pcm[k : k + CHUNK]) for k in range(half, len(pcm), CHUNK)))
                send(pb.StreamingTranslateRequest(control=pb.FLUSH), None)
        await heard_all(heard, own)
    (answer,) = updated
    assert answer.status.code == 0 and answer.config.output.speaker_id == 1
    after = [s for s in heard if s.segment_id >= answer.first_segment_id]
    assert after, (answer.first_segment_id, [s.segment_id for s in heard])
    for s in after:  # still at the rate its listener chose
        assert s.translations[0].speech_rate == 1.25, s.segment_id
        assert samples(s) % round(SAMPLES_PER_WORD / 1.25) == 0 and samples(s) > 0
    assert all(s.translations[0].speech_rate == 1.25 for s in heard)
