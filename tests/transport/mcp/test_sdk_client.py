"""``serve --mcp`` driven by the ``mcp`` SDK's own client over streamable HTTP (issue 62): the
2026-07-28 discovery and the older ``initialize`` handshake, the tools listed with their JSON
schemas, each tool called, and a room's captions resource read and watched
(``subscriptions/listen``) while a gRPC speaker talks into the room. The room's keys from
``open_room`` are tried where they are meant to work (a listener's WebSocket) and where not (a
realtime session). Assertions are on structure (counts, ids, spans, sample counts), not words."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import mcp_types as types
import pytest
import pytest_asyncio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.subscriptions import ResourceUpdated

from tests.support.live_server import LiveServer, serving
from tests.support.mcp_door import http_client, mcp_settings, mcp_url
from tests.support.rooms import CHUNK, speaker_config
from tests.support.speech import shared_pcm
from tests.support.tokens import reloaded, replace
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(40)]

TOKEN = "mcp-all-token-5c1e7a"
WATCHER = "mcp-watcher-token-81d2f0"
TOOLS = {"list_languages", "translate_text", "translate_audio", "detect_synthetic_speech", "open_room", "room_status"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{TOKEN} * room=* tenant=agents\n{WATCHER} * room=* tenant=agents\n")
    async with serving(mcp_settings(test_model_dir, tokens)) as server:
        yield server


def client(live: LiveServer, token: str = TOKEN, **kw: Any) -> Client:
    return Client(streamable_http_client(mcp_url(live), http_client=http_client(token)), **kw)


async def test_lists_and_calls_each_tool(live: LiveServer, shared_audio: Path) -> None:
    async with client(live) as c:
        assert c.protocol_version == "2026-07-28"
        listed = (await c.list_tools()).tools
        assert {t.name for t in listed} == TOOLS
        for tool in listed:
            assert tool.input_schema["type"] == "object" and tool.description
        schema = next(t for t in listed if t.name == "translate_audio").input_schema
        assert {"audio_base64", "audio_url", "target_languages", "terms", "glossary"} <= set(schema["properties"])

        langs = await c.call_tool("list_languages", {})
        assert not langs.is_error
        codes = {lang["code"] for lang in langs.structured_content["languages"]}
        assert {"eng", "spa", "fra"} <= codes

        texts = await c.call_tool(
            "translate_text",
            {
                "texts": ["good morning", "the meeting starts at noon"],
                "source_language": "eng",
                "target_languages": ["spa", "fra"],
                "terms": [{"phrase": "noon", "keep": True}],
                "glossary": [{"phrase": "meeting", "translation": "reunión", "target_language": "spa"}],
            },
        )
        assert not texts.is_error, texts.content
        results = texts.structured_content["results"]
        assert [r["index"] for r in results] == [0, 1]
        assert all([t["language"] for t in r["translations"]] == ["spa", "fra"] for r in results)

        clip = (shared_audio / "jfk.flac").read_bytes()
        audio = await c.call_tool(
            "translate_audio",
            {
                "audio_base64": base64.b64encode(clip).decode(),
                "source_language": "eng",
                "target_languages": ["spa"],
                "speech": True,
            },
        )
        assert not audio.is_error, audio.content
        answer = audio.structured_content
        segments = answer["segments"]
        assert segments and answer["audio_duration_ms"] == 11000
        assert all(0 <= s["start_ms"] < s["end_ms"] <= 11000 for s in segments)
        spoken = [s["translations"][0]["speech"] for s in segments if "speech" in s["translations"][0]]
        wavs = [block for block in audio.content if isinstance(block, types.AudioContent)]
        assert len(wavs) == 1 and wavs[0].mime_type == "audio/wav"
        with wave.open(io.BytesIO(base64.b64decode(wavs[0].data))) as w:
            assert w.getnframes() == sum(p["samples"] for p in spoken) > 0
        assert json.loads(audio.content[0].text) == answer  # the same JSON for text-only clients

        opened = await c.call_tool("open_room", {"room": "agent-room", "source_language": "eng"})
        assert not opened.is_error, opened.content
        room = opened.structured_content
        assert room["speaker"]["key"].startswith("ek_") and room["listeners"]["key"].startswith("ek_")
        await _keys_work(room)

        status = await c.call_tool("room_status", {"room": "agent-room"})
        assert status.structured_content["listeners"] == {}


async def _keys_work(room: dict[str, Any]) -> None:
    """The listeners' key opens the room's listen WebSocket (and nothing else: not a realtime
    session); the speaker's key opens a realtime session speaking into the room."""
    url = room["listeners"]["websocket"].replace("<code>", "spa")
    protocols = ("translate-svc.rooms.v1", f"openai-insecure-api-key.{room['listeners']['key']}")
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, protocols=protocols) as ws:
            started = await ws.receive_json(timeout=10)
            assert started["type"] == "room.started" and started["room"] == "agent-room"
        realtime = room["speaker"]["websocket"]
        headers = {"Authorization": f"Bearer {room['listeners']['key']}"}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(realtime, headers=headers)
        assert refused.value.status == 403
        # the speaker's key opens the realtime session that speaks into the room, with the first
        # message open_room gave
        headers = {"Authorization": f"Bearer {room['speaker']['key']}"}
        async with http.ws_connect(realtime, headers=headers) as ws:
            assert (await ws.receive_json(timeout=10))["type"] == "session.created"
            await ws.send_json(room["speaker"]["websocket_first_message"])
            updated = await ws.receive_json(timeout=10)
            while "x_session_id" not in updated:
                assert updated["type"] != "error", updated
                updated = await ws.receive_json(timeout=10)
            assert updated["session"]["x_room"]["name"] == "agent-room"


async def test_initialize_handshake_of_older_clients(live: LiveServer) -> None:
    async with client(live, mode="legacy") as c:
        assert c.protocol_version == "2025-11-25"
        assert {t.name for t in (await c.list_tools()).tools} == TOOLS
        texts = await c.call_tool(
            "translate_text", {"texts": ["hello"], "source_language": "eng", "target_languages": ["spa"]}
        )
        assert not texts.is_error and len(texts.structured_content["results"]) == 1


async def test_room_captions_read_and_watched(live: LiveServer, shared_audio: Path) -> None:
    uri = "translate-svc://rooms/captioned/captions/spa"
    pcm, _ = shared_pcm(shared_audio, "jfk.flac")
    async with client(live) as c:
        templates = (await c.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["translate-svc://rooms/{room}/captions/{language}"]
        before = json.loads((await c.read_resource(uri)).contents[0].text)
        assert before == {"room": "captioned", "language": "spa", "captions": []}

        async with c.listen(resource_subscriptions=[uri]) as sub:
            status = await c.call_tool("room_status", {"room": "captioned"})
            assert status.structured_content["listeners"] == {"spa": 1}  # the watch holds a listener
            said: list[pb.SegmentResult] = []
            speaking = asyncio.ensure_future(_speak(live, "captioned", pcm, said))
            event = await asyncio.wait_for(anext(aiter(sub)), 60)
            assert event == ResourceUpdated(uri=uri)
            await asyncio.wait_for(speaking, 120)

        captions = json.loads((await c.read_resource(uri)).contents[0].text)["captions"]
        assert said and len(captions) == len(said)
        assert [(e["segment_id"], e["start_ms"], e["end_ms"]) for e in captions] == [
            (s.segment_id, s.start_ms, s.end_ms) for s in said
        ]
        assert all(e["language"] == "spa" and e["transcript"]["language"] == "eng" for e in captions)


async def _speak(live: LiveServer, room: str, pcm: bytes, said: list[pb.SegmentResult]) -> None:
    """A gRPC speaker with the same token streams ``pcm`` into ``room``; its own results kept."""

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=speaker_config(room))
        for k in range(0, len(pcm), CHUNK):
            yield pb.StreamingTranslateRequest(audio=pcm[k : k + CHUNK])

    call = live.stub.StreamingTranslate(requests(), metadata=(("authorization", f"Bearer {TOKEN}"),))
    async for msg in call:
        if msg.WhichOneof("response") == "segment":
            said.append(msg.segment)


async def test_a_watch_ends_with_its_listener(live: LiveServer) -> None:
    """The watch's room listener ends (here: its token is removed from the tokens file): the
    listen stream ends too, so the client knows to listen again, and the listener is gone."""
    uri = "translate-svc://rooms/revoked-watch/captions/fra"
    async with client(live, WATCHER) as c, c.listen(resource_subscriptions=[uri]) as sub:
        assert live.server.tokens is not None
        before = live.server.tokens.reloads
        replace(live.server.tokens.path, f"{TOKEN} * room=* tenant=agents\n")
        await reloaded(live, before)
        events = await asyncio.wait_for(_rest(sub), 30)
        assert events == []  # ended, without an update
    async with client(live) as c:
        status = await c.call_tool("room_status", {"room": "revoked-watch"})
        assert status.structured_content["listeners"] == {}


async def _rest(sub: Any) -> list[Any]:
    return [event async for event in sub]
