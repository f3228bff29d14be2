"""Rooms on the HTTP port (issue 47, docs/rooms.md): listeners over a WebSocket with real clients
(aiohttp's and the ``websockets`` library's), publishing from the OpenAI-compatible door, and who
may do which.

The server runs the stable test translator (model/testing/stable.py): every segment has words and speech,
and what is asserted is structure (ids, spans, languages, counts, sample counts), never words. The
wire is the one docs/rooms.md "Listening over a WebSocket" publishes; a listener "on time" is read
from the server's counters (nothing dropped for a reader; a non-reader bounded and told).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.live_server import LiveServer, serving
from tests.support.rooms import QUEUE, listen_url, room_settings, speak, speaker_config, wait_for
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.transport.rooms.protocol import LISTEN_SUBPROTOCOL

pytestmark = [pytest.mark.integration, pytest.mark.slow(40)]

KEY_PREFIX = "openai-insecure-api-key."  # docs/openai-compat.md: a browser's key entry


def http_settings(test_model_dir: Path, tokens: Path | None = None, **rooms: float):  # type: ignore[no-untyped-def]
    s = room_settings(test_model_dir, **rooms)
    s.server.http_port = 0
    if tokens is not None:
        s.auth.tokens_file = tokens
    return s


class WsHeard:
    """What one WebSocket listener received: JSON events, and each segment's speech frame."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.speech: dict[int, int] = {}  # segment id -> samples in its binary frame
        self.started = asyncio.Event()

    def segments(self, *, backlog: bool | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "room.segment" and (backlog is None or e["backlog"] == backlog)]


async def ws_listen(ws: aiohttp.ClientWebSocketResponse, heard: WsHeard, until: asyncio.Event) -> None:
    pending: dict[str, Any] | None = None
    while not until.is_set():
        try:
            msg = await asyncio.wait_for(ws.receive(), 0.2)
        except TimeoutError:
            continue
        if msg.type == aiohttp.WSMsgType.TEXT:
            ev = json.loads(msg.data)
            heard.events.append(ev)
            if ev["type"] == "room.started":
                heard.started.set()
            pending = ev if ev["type"] == "room.segment" and ev["audio"] else None
        elif msg.type == aiohttp.WSMsgType.BINARY:
            assert pending is not None, "a binary frame that no room.segment announced"
            assert len(msg.data) == 2 * pending["audio"]["samples"], pending
            heard.speech[pending["segment_id"]] = len(msg.data) // 2
            pending = None
        else:
            return


async def test_a_websocket_listener_gets_live_results_with_speech_and_a_late_one_the_backlog(
    test_model_dir: Path, shared_audio: Path
) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 40.0, 16000).tobytes()
    async with serving(http_settings(test_model_dir)) as live, aiohttp.ClientSession() as http:
        done = asyncio.Event()
        early = WsHeard()
        async with http.ws_connect(listen_url(live, "talk-1", "spa"), protocols=(LISTEN_SUBPROTOCOL,)) as ws:
            assert ws.protocol == LISTEN_SUBPROTOCOL  # the offered subprotocol is selected (pitfall 27)
            reader = asyncio.create_task(ws_listen(ws, early, done))
            await asyncio.wait_for(early.started.wait(), 30)
            config = speaker_config("talk-1", "mayor")
            config.interim_interval_ms = 500
            own: list[pb.SegmentResult] = []
            await speak(live.stub, config, pcm, own)
            assert len(own) >= 3, "the talk should have several segments"
            await wait_for(lambda: len(early.segments()) >= len(own))
            # the late listener: the backlog at once (text only), in order, then live
            late = WsHeard()
            async with http.ws_connect(listen_url(live, "talk-1", "spa")) as ws2:
                late_reader = asyncio.create_task(ws_listen(ws2, late, done))
                await wait_for(lambda: len(late.segments()) >= len(own))
                done.set()
                await asyncio.gather(reader, late_reader)
        started = early.events[0]
        assert started["type"] == "room.started" and started["backlog"] == 0 and started["language"] == "spa"
        live_segs = early.segments(backlog=False)
        # every segment, with the speaker's own ids and spans, in this language, each with speech
        assert [(e["segment_id"], e["start_ms"], e["end_ms"]) for e in live_segs] == [
            (s.segment_id, s.start_ms, s.end_ms) for s in own
        ]
        assert all(e["speaker"] == "mayor" and e["language"] == "spa" and e["text"] for e in live_segs)
        assert all(e["audio"]["format"] == "pcm16" and e["audio"]["sample_rate"] == 16000 for e in live_segs)
        assert set(early.speech) == {s.segment_id for s in own} and all(n > 0 for n in early.speech.values())
        assert any(e["type"] == "room.caption" and e["language"] == "spa" for e in early.events)
        first = late.events[0]
        assert first["type"] == "room.started" and first["backlog"] == len(own), first
        backlog = late.events[1 : 1 + len(own)]
        assert all(e["type"] == "room.segment" and e["backlog"] for e in backlog)
        assert [(e["segment_id"], e["text"]) for e in backlog] == [(e["segment_id"], e["text"]) for e in live_segs]
        assert all(e["audio"] is None for e in backlog) and not late.speech  # a backlog is read, not played
        rooms = live.server.app.sessions.rooms
        await wait_for(lambda: not any(True for _ in rooms.all_listeners()))  # both left with their sockets


async def test_a_websocket_listener_that_never_reads_is_bounded_and_told_what_it_lost(
    test_model_dir: Path, shared_audio: Path
) -> None:
    import websockets

    pcm = speech_pcm16(shared_audio / "silero_test.wav", 60.0, 16000).tobytes()
    settings = http_settings(test_model_dir, backlog_s=0.0)
    settings.limits.ws_send_buffer_bytes = 4096  # the server's side of the socket holds little too
    async with serving(settings) as live:
        rooms = live.server.app.sessions.rooms
        # a client whose kernel buffer is small and that reads nothing until the talk is over
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert live.server.http is not None
        sock.connect(("127.0.0.1", live.server.http.port))
        sock.setblocking(False)
        async with websockets.connect(listen_url(live, "talk-2", "fra"), sock=sock, max_queue=1) as slow:
            await wait_for(lambda: any(True for _ in rooms.all_listeners()))
            (listener,) = rooms.all_listeners()
            own: list[pb.SegmentResult] = []
            ended = await speak(live.stub, speaker_config("talk-2"), pcm, own)
            assert ended.segments_total == len(own) >= 6
            await wait_for(lambda: listener.dropped > 0, 10)
            assert listener.queued <= QUEUE  # what it can make the server hold
            dropped_before = listener.dropped
            # now read: started, what was in flight, the notice, then the rest, in order
            events: list[dict[str, Any]] = []
            while not any(e["type"] == "room.segment" and e["segment_id"] == own[-1].segment_id for e in events):
                msg = await asyncio.wait_for(slow.recv(), 30)
                if isinstance(msg, str):
                    events.append(json.loads(msg))
        notices = [e for e in events if e["type"] == "room.dropped"]
        assert notices and sum(n["count"] for n in notices) == notices[-1]["total"] == dropped_before
        ids = [e["segment_id"] for e in events if e["type"] == "room.segment"]
        assert ids == sorted(ids) and len(ids) + dropped_before == len(own), (ids, dropped_before)
        at = events.index(notices[0])
        assert events[at + 1]["type"] == "room.segment"  # the notice comes before its next event


def realtime_url(live: LiveServer) -> str:
    assert live.server.http is not None
    return f"ws://127.0.0.1:{live.server.http.port}/v1/realtime/translations?model=m"


async def openai_speaker(
    http: aiohttp.ClientSession, live: LiveServer, token: str, session: dict[str, Any], pcm24: bytes | None
) -> list[dict[str, Any]]:
    """A realtime session (docs/openai-compat.md's events) with ``session``; its audio, if any, then
    ``session.close``; every event it was sent until ``session.closed`` or an error that ends it."""
    events: list[dict[str, Any]] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with http.ws_connect(realtime_url(live), headers=headers) as ws:
        await ws.send_str(json.dumps({"type": "session.update", "session": session}))
        while True:
            ev = json.loads((await asyncio.wait_for(ws.receive(), 30)).data)
            events.append(ev)
            if ev["type"] == "error" or ev.get("x_session_id"):
                break
        if pcm24 is not None and events[-1]["type"] != "error":
            for k in range(0, len(pcm24), 48000):
                chunk = base64.b64encode(pcm24[k : k + 48000]).decode()
                await ws.send_str(json.dumps({"type": "session.input_audio_buffer.append", "audio": chunk}))
            await ws.send_str(json.dumps({"type": "session.close"}))
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            ev = json.loads(msg.data)
            events.append(ev)
            if ev["type"] == "session.closed":
                break
    return events


TOKENS = """\
tok-listen-only listen=talk-*
tok-publish-only stream publish=talk-*
tok-other-rooms room=other-*
tok-both stream room=talk-*
"""


def room_session(room: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "audio": {"input": {"language": "en"}, "output": {"language": "es"}},
        "x_room": room,
        **extra,
    }


async def test_publishing_from_the_openai_door_and_who_may_listen_or_publish(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKENS)
    pcm24 = speech_pcm16(shared_audio / "silero_test.wav", 20.0, 24000).tobytes()
    async with serving(http_settings(test_model_dir, tokens)) as live, aiohttp.ClientSession() as http:

        async def refused(token: str | None, room: str = "talk-3", language: str = "fra") -> int:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                async with http.ws_connect(listen_url(live, room, language), headers=headers):
                    pass
            return e.value.status

        # refused before the upgrade, each with its status
        assert await refused(None) == 401
        assert await refused("tok-publish-only") == 403  # may publish, not listen
        assert await refused("tok-other-rooms") == 403  # another room pattern
        assert await refused("tok-listen-only", room="-bad") == 400
        assert await refused("tok-listen-only", language="not-a-language") == 400
        # a listen-only token cannot publish through the OpenAI door
        events = await openai_speaker(http, live, "tok-listen-only", room_session({"name": "talk-3"}), None)
        assert events[-1]["type"] == "error" and events[-1]["error"]["code"] == "permission_denied", events[-1]
        # nor may a room speaker run simultaneous mode (refused, not ignored)
        session = room_session({"name": "talk-3"}, x_simultaneous_step_ms=1000)
        events = await openai_speaker(http, live, "tok-both", session, None)
        assert events[-1]["type"] == "error" and "simultaneous" in events[-1]["error"]["message"], events[-1]

        # a listener with a listen-only token, its key in the browser's subprotocol entry
        done = asyncio.Event()
        heard = WsHeard()
        protocols = (LISTEN_SUBPROTOCOL, KEY_PREFIX + "tok-listen-only")
        async with http.ws_connect(listen_url(live, "talk-3", "fra"), protocols=protocols) as ws:
            assert ws.protocol == LISTEN_SUBPROTOCOL
            reader = asyncio.create_task(ws_listen(ws, heard, done))
            await asyncio.wait_for(heard.started.wait(), 30)
            # a publish-only token speaks into the room over the OpenAI door, its own target Spanish
            speaker = room_session({"name": "talk-3", "participant": "host"})
            events = await openai_speaker(http, live, "tok-publish-only", speaker, pcm24)
            assert events[-1]["type"] == "session.closed", events[-1]
            assert not any(e["type"] == "error" for e in events), [e for e in events if e["type"] == "error"]
            updated = next(e for e in events if e.get("x_session_id"))
            assert updated["session"]["x_room"] == {"name": "talk-3", "participant": "host"}
            own = {
                e["x_segment"]["segment_id"]: e["x_segment"]
                for e in events
                if e["type"] == "session.output_transcript.delta"
            }
            # its own stream carries its own target only (the room's French is not sent to it)
            assert {e["x_language"] for e in events if e["type"] == "session.output_transcript.delta"} == {"es"}
            assert own, events
            await wait_for(lambda: len(heard.segments()) >= len(own))
            done.set()
            await reader
        segs = heard.segments()
        assert [(e["segment_id"], e["start_ms"], e["end_ms"]) for e in segs] == [
            (s["segment_id"], s["start_ms"], s["end_ms"]) for s in own.values()
        ]
        assert all(e["speaker"] == "host" and e["language"] == "fra" for e in segs)
        assert set(heard.speech) == set(own)  # the OpenAI door's speaker has speech: listeners hear it


async def test_a_listener_socket_takes_no_messages_and_ends_with_its_client(test_model_dir: Path) -> None:
    async with serving(http_settings(test_model_dir), warmup=True) as live, aiohttp.ClientSession() as http:
        rooms = live.server.app.sessions.rooms
        async with http.ws_connect(listen_url(live, "quiet", "spa")) as ws:
            assert json.loads((await ws.receive()).data)["type"] == "room.started"
            await ws.send_str("hello")
            msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1003, msg
        await wait_for(lambda: not any(True for _ in rooms.all_listeners()))
        # a client that just leaves a quiet room is let go at once too
        async with http.ws_connect(listen_url(live, "quiet", "spa")) as ws:
            assert json.loads((await ws.receive()).data)["type"] == "room.started"
            assert sum(1 for _ in rooms.all_listeners()) == 1
        await wait_for(lambda: not any(True for _ in rooms.all_listeners()))
