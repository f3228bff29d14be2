"""A room whose speaker's language is detected (issue 99): a gRPC speaker whose language is
identified among English and French, on a real server of the test checkpoint and its test
identifier; its Spanish listeners, over the rooms door's WebSocket (aiohttp) and gRPC ``Listen``
(the stock stub), hear every segment with the language it was heard in and what chose it, as the
speaker's own results say. (A conversation speaking into a room: test_conversation_room.py; what
chose a conversation's language crosses processes: tests/session/rooms/test_wire_confidence.py.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer
from tests.support.rooms import listen_url, registry, serving_identified_rooms, speak, wait_for
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.transport.rooms.protocol import LISTEN_SUBPROTOCOL

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(30)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    async with serving_identified_rooms(test_model_dir, tmp_path_factory.mktemp("lid") / "plain") as server:
        yield server


async def test_listeners_hear_what_chose_each_segment_s_language(live: LiveServer, shared_audio: Path) -> None:
    pcm = speech_pcm16(shared_audio / "jfk.flac", 11.0, 16000).tobytes()
    by_socket: list[dict[str, Any]] = []
    by_grpc: list[pb.ListenEvent] = []

    async def socket(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                by_socket.append(json.loads(msg.data))

    async def grpc_listen() -> None:
        async for ev in live.stub.Listen(pb.ListenRequest(room="talk", language="spa")):
            by_grpc.append(ev)

    config = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1),
        language_detection=pb.LanguageDetection(enabled=True, candidates=["eng", "fra"]),
        room=pb.RoomSpeaking(name="talk"),
    )
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(listen_url(live, "talk", "spa"), protocols=(LISTEN_SUBPROTOCOL,)) as ws:
            tasks = [asyncio.create_task(socket(ws)), asyncio.create_task(grpc_listen())]
            await wait_for(lambda: sum(registry(live).listener_counts().values()) == 2)
            own: list[pb.SegmentResult] = []
            ended = await speak(live.stub, config, pcm, own)
            assert ended.reason == pb.StreamEnd.HALF_CLOSE and own, ended
            ids = {s.segment_id for s in own}

            def heard() -> bool:
                socket_ids = {e["segment_id"] for e in by_socket if e["type"] == "room.segment"}
                grpc_ids = {e.segment.segment_id for e in by_grpc if e.WhichOneof("event") == "segment"}
                return socket_ids >= ids and grpc_ids >= ids

            await wait_for(heard, 120.0)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    chosen = {s.segment_id: s.detected_language.language for s in own}
    assert set(chosen.values()) <= {"eng", "fra"}
    assert all(s.detected_language.source == pb.DetectedLanguage.IDENTIFIED for s in own)
    for e in by_socket:
        if e["type"] == "room.segment":
            assert e["detected"] == {"language": chosen[e["segment_id"]], "source": "identified"}, e
    for ev in by_grpc:
        if ev.WhichOneof("event") == "segment":
            d = ev.segment.detected_language
            assert (d.language, d.source) == (chosen[ev.segment.segment_id], pb.DetectedLanguage.IDENTIFIED), ev
