"""Issue 68 H4: the keys ``open_room`` mints grant no more than the agent's token. Driven by the
``mcp`` SDK's client over streamable HTTP against a real server on loopback; a speaker streams into
the room over gRPC and the room's listeners use its WebSocket, as a browser would.

- A ``publish=town-*`` token (it may not listen) gets no listeners' key: a listener with what
  ``open_room`` gives it (the key, else the token itself) is refused (403) and hears nothing. Before,
  it got a listen key and heard every segment (4 of 4).
- The speaker's key opens a realtime session only to speak into its room: a session that names no
  room, or another room, is refused (``permission_denied``); before, a session without a room ran
  as the tenant's.
- A token that may listen still gets both keys (the listeners' key hears the room).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.live_server import LiveServer, serving
from tests.support.mcp_door import http_client, mcp_settings, mcp_url
from tests.support.rooms import CHUNK, speaker_config
from tests.support.speech import shared_pcm

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(40)]

PUBLISHER = "mcp-keys-publish-only-7e21c9"
BOTH = "mcp-keys-both-0b4d6a"
SUBPROTOCOL = "translate-svc.rooms.v1"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{PUBLISHER} stream publish=town-* tenant=town\n{BOTH} stream room=town-* tenant=town\n")
    async with serving(mcp_settings(test_model_dir, tokens)) as server:
        yield server


async def open_room(live: LiveServer, token: str, room: str) -> dict[str, Any]:
    async with Client(streamable_http_client(mcp_url(live), http_client=http_client(token))) as c:
        opened = await c.call_tool("open_room", {"room": room, "source_language": "eng", "listen_languages": ["spa"]})
    assert not opened.is_error, opened.content
    answer: dict[str, Any] = opened.structured_content
    return answer


async def speak_until_heard(live: LiveServer, room: str, pcm: bytes, heard: asyncio.Event) -> int:
    """A gRPC speaker with the token that may publish streams ``pcm`` into ``room`` again and again
    until ``heard`` is set (or 4 times); the segments it was answered."""

    async def requests() -> AsyncIterator[Any]:
        from translate_svc.api.v1 import translate_pb2 as pb

        yield pb.StreamingTranslateRequest(config=speaker_config(room))
        for _ in range(4):
            for k in range(0, len(pcm), CHUNK):
                yield pb.StreamingTranslateRequest(audio=pcm[k : k + CHUNK])
                await asyncio.sleep(0.01)
            if heard.is_set():
                return

    said = 0
    call = live.stub.StreamingTranslate(requests(), metadata=(("authorization", f"Bearer {PUBLISHER}"),))
    async for msg in call:
        said += msg.WhichOneof("response") == "segment"
    return said


async def listen(url: str, key: str, heard: list[dict[str, Any]], opened: asyncio.Event) -> int | None:
    """A room listener's WebSocket with ``key``: None once it ran (its segments in ``heard``), or
    the HTTP status it was refused with."""
    async with aiohttp.ClientSession() as http:
        try:
            ws = await http.ws_connect(url, protocols=(SUBPROTOCOL, f"openai-insecure-api-key.{key}"))
        except aiohttp.WSServerHandshakeError as e:
            opened.set()
            return e.status
        async with ws:
            opened.set()
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue  # speech
                event = msg.json()
                if event["type"] == "room.segment":
                    heard.append(event)
                if len(heard) >= 4:
                    return None
    return None


async def test_a_publish_only_token_gets_no_key_that_listens(live: LiveServer, shared_audio: Path) -> None:
    room = await open_room(live, PUBLISHER, "town-hall")
    listeners = room["listeners"]
    assert room["speaker"]["key"].startswith("ek_")
    # what open_room gave the agent for its listeners (the key, else its own token): refused, unheard
    key = listeners["key"] or PUBLISHER
    pcm, _ = shared_pcm(shared_audio, "jfk.flac")
    heard: list[dict[str, Any]] = []
    opened, done = asyncio.Event(), asyncio.Event()
    url = listeners["websocket"].replace("<code>", "spa")
    listener = asyncio.ensure_future(listen(url, key, heard, opened))
    await asyncio.wait_for(opened.wait(), 30)
    speaker = asyncio.ensure_future(speak_until_heard(live, "town-hall", pcm, done))
    refused = await asyncio.wait_for(listener, 120)
    done.set()
    said = await asyncio.wait_for(speaker, 120)
    print(f"H4: a publish-only token's listener heard {len(heard)} segments ({said} said); refused {refused}")
    assert refused == 403 and heard == []
    assert said > 0
    assert listeners["key"] is None and "may not listen" in listeners["key_note"]
    assert "#key=" not in listeners["page"]


async def test_a_token_that_may_listen_gets_a_listeners_key_that_hears(live: LiveServer, shared_audio: Path) -> None:
    room = await open_room(live, BOTH, "town-square")
    key = room["listeners"]["key"]
    assert key.startswith("ek_") and "key_note" not in room["listeners"]
    pcm, _ = shared_pcm(shared_audio, "jfk.flac")
    heard: list[dict[str, Any]] = []
    opened, done = asyncio.Event(), asyncio.Event()
    url = room["listeners"]["websocket"].replace("<code>", "spa")
    listener = asyncio.ensure_future(listen(url, key, heard, opened))
    await asyncio.wait_for(opened.wait(), 30)
    speaker = asyncio.ensure_future(speak_until_heard(live, "town-square", pcm, done))
    try:
        assert await asyncio.wait_for(listener, 120) is None
    finally:
        done.set()
        await asyncio.wait_for(speaker, 120)
    assert len(heard) == 4


async def realtime(url: str, key: str, first: dict[str, Any]) -> dict[str, Any]:
    """A realtime session opened with ``key`` and its update ``first``: the first answer that is an
    error or the session's own update (the session opened)."""
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, headers={"Authorization": f"Bearer {key}"}) as ws:
            assert (await ws.receive_json(timeout=10))["type"] == "session.created"
            await ws.send_json(first)
            while True:
                event: dict[str, Any] = await ws.receive_json(timeout=30)
                if event["type"] == "error" or "x_session_id" in event:
                    return event


async def test_the_speakers_key_opens_only_a_session_into_its_room(live: LiveServer) -> None:
    room = await open_room(live, PUBLISHER, "town-council")
    speaker = room["speaker"]
    url, key, update = speaker["websocket"], speaker["key"], speaker["websocket_first_message"]

    ok = await realtime(url, key, update)  # as open_room says: into its room
    assert ok["session"]["x_room"]["name"] == "town-council", ok

    no_room = {**update, "session": {k: v for k, v in update["session"].items() if k != "x_room"}}
    other = {**update, "session": {**update["session"], "x_room": {"name": "town-hall"}}}
    for first in (no_room, other):
        refused = await realtime(url, key, first)
        print(f"H4: the speaker's key, x_room {first['session'].get('x_room')}: {refused.get('error', refused)}")
        assert refused["type"] == "error", refused
        assert refused["error"]["code"] == "permission_denied", refused
        assert "only open a session that speaks into room 'town-council'" in refused["error"]["message"]
