"""A conversation speaking into a room (issue 99 item 5): a gRPC speaker whose turns are identified
among English and Spanish, on a real server of the test checkpoint and its test identifier (its
choice is noise: the test follows whichever language it chose for each segment). Listeners in
English (the rooms door's WebSocket, aiohttp), Spanish and French (gRPC ``Listen``, the stock
stub) each hear every segment in their language: translated and spoken where it was heard in
another language, as said (its transcript, no speech) where it was heard in theirs; a Spanish
listener who asked for the original (``original_audio``) gets those in the speaker's own voice (the
segment's own audio, its text the transcript); the French listener, whose language is not the
conversation's, gets every segment translated. The speaker's own client sees only the
conversation's own languages."""

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

TALK = ("eng", "spa")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    async with serving_identified_rooms(test_model_dir, tmp_path_factory.mktemp("lid") / "plain") as server:
        yield server


async def test_each_listener_hears_the_conversation_in_its_language(live: LiveServer, shared_audio: Path) -> None:
    pcm = speech_pcm16(shared_audio / "jfk.flac", 11.0, 16000).tobytes()
    by_socket: list[dict[str, Any]] = []
    socket_audio: list[int] = []  # the samples of each binary frame (a live segment's speech)
    by_grpc: dict[str, list[pb.SegmentResult]] = {"spa": [], "fra": [], "spa+original": []}

    async def socket(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                by_socket.append(json.loads(msg.data))
            elif msg.type == aiohttp.WSMsgType.BINARY:
                socket_audio.append(len(msg.data) // 2)

    async def grpc_listen(key: str) -> None:
        language, _, original = key.partition("+")
        request = pb.ListenRequest(room="talk", language=language, original_audio=bool(original))
        async for ev in live.stub.Listen(request):
            if ev.WhichOneof("event") == "segment":
                by_grpc[key].append(ev.segment)

    config = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1),
        conversation=pb.Conversation(languages=TALK),
        room=pb.RoomSpeaking(name="talk"),
    )
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(listen_url(live, "talk", "eng"), protocols=(LISTEN_SUBPROTOCOL,)) as ws:
            tasks = [asyncio.create_task(socket(ws))] + [asyncio.create_task(grpc_listen(lang)) for lang in by_grpc]
            await wait_for(lambda: sum(registry(live).listener_counts().values()) == 4)
            own: list[pb.SegmentResult] = []
            ended = await speak(live.stub, config, pcm, own)
            assert ended.reason == pb.StreamEnd.HALF_CLOSE and len(own) >= 2, ended
            ids = {s.segment_id for s in own}

            def heard() -> bool:
                socket_ids = {e["segment_id"] for e in by_socket if e["type"] == "room.segment"}
                return socket_ids >= ids and all({s.segment_id for s in got} >= ids for got in by_grpc.values())

            await wait_for(heard, 120.0)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    chosen = {s.segment_id: s.detected_language.language for s in own}
    assert set(chosen.values()) <= set(TALK), chosen
    # the speaker's own client: translated into the conversation's other language only, never French
    for s in own:
        assert [t.target_language for t in s.translations] == [x for x in TALK if x != chosen[s.segment_id]], s
        assert s.transcript.language == chosen[s.segment_id]
    said = {s.segment_id: s.transcript.text for s in own}
    into = {(s.segment_id, t.target_language): t.text for s in own for t in s.translations}

    # French, not the conversation's: every segment translated, whichever language it was heard in
    for seg in by_grpc["fra"]:
        assert [t.target_language for t in seg.translations] == ["fra"], seg
        assert seg.translations[0].audio.num_samples > 0  # spoken
    # Spanish (gRPC): a turn heard in Spanish as said, a turn heard in English translated and spoken
    for seg in by_grpc["spa"]:
        if chosen[seg.segment_id] == "spa":
            assert not seg.translations, seg
            assert (seg.transcript.language, seg.transcript.text) == ("spa", said[seg.segment_id])
        else:
            assert [t.target_language for t in seg.translations] == ["spa"], seg
            assert seg.translations[0].text == into[(seg.segment_id, "spa")]
            assert seg.translations[0].audio.num_samples > 0
    # Spanish with the original: a turn heard in Spanish in the speaker's own voice, its own length
    spans = {s.segment_id: s.end_ms - s.start_ms for s in own}
    for seg in by_grpc["spa+original"]:
        (t,) = seg.translations
        assert t.target_language == "spa", seg
        if chosen[seg.segment_id] == "spa":
            assert t.text == said[seg.segment_id] and t.audio.sample_rate_hz == 16000
            assert t.audio.num_samples == spans[seg.segment_id] * 16, (t.audio.num_samples, spans[seg.segment_id])
        else:
            assert t.text == into[(seg.segment_id, "spa")]
    # English (WebSocket): the same, in the door's JSON
    live_segments = [e for e in by_socket if e["type"] == "room.segment" and not e["backlog"]]
    assert {e["segment_id"] for e in live_segments} == ids
    for e in live_segments:
        assert e["language"] == "eng" and e["detected"]["language"] == chosen[e["segment_id"]], e
        if chosen[e["segment_id"]] == "eng":
            assert e["text"] == said[e["segment_id"]] and e["audio"] is None, e  # as said: not re-spoken
        else:
            assert e["text"] == into[(e["segment_id"], "eng")] and e["audio"]["samples"] > 0, e
    spoken = sum(1 for e in live_segments if e["audio"] is not None)
    assert len(socket_audio) == spoken  # one binary frame per spoken segment, none for one as said
