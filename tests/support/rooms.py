"""Rooms as the rooms tests drive them on a real server (docs/rooms.md): settings on the stable
test translator, a speaker's config and its speech streamed into a room over gRPC (raw, or through
the SDK), the server's room registry, a listener's WebSocket address, and waiting for what the
rooms do on their own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from tests.support.live_server import LiveServer, make_settings, serving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.client import AsyncTranslateClient, Room, Segment
from translate_svc.settings import RoomSettings

CHUNK = 3200  # 100 ms of 16 kHz LINEAR16
QUEUE = 4  # rooms.listener_queue in these tests


def room_settings(test_model_dir: Path, **rooms: float):  # type: ignore[no-untyped-def]
    """The tests' settings on the stable translator, with a long backlog, a ``QUEUE``-deep listener
    queue and ``rooms`` (``RoomSettings``' fields)."""
    s = make_settings(test_model_dir)
    s.model.test_translator = "stable"
    s.rooms = RoomSettings(**{"backlog_s": 600.0, "listener_queue": QUEUE, **rooms})
    return s


@contextlib.asynccontextmanager
async def serving_rooms(test_model_dir: Path, tokens: Path) -> AsyncIterator[LiveServer]:
    """A server on ``room_settings`` whose callers are those of the tokens file ``tokens``."""
    settings = room_settings(test_model_dir)
    settings.auth.tokens_file = tokens
    async with serving(settings) as live:
        yield live


@contextlib.asynccontextmanager
async def serving_identified_rooms(test_model_dir: Path, lid_dir: Path) -> AsyncIterator[LiveServer]:
    """A server of the test checkpoint with the test identifier (its choices are noise; built in
    ``lid_dir``), a long backlog and the rooms door's WebSocket: rooms whose speakers' languages are
    detected, or a conversation's."""
    from translate_svc.app import build_lid_test_checkpoint

    settings = make_settings(test_model_dir)
    settings.model.lid_path = build_lid_test_checkpoint(lid_dir)
    settings.rooms = RoomSettings(backlog_s=600.0)
    settings.server.http_port = 0
    async with serving(settings, warmup=False) as server:
        yield server


def speaker_config(room: str, participant: str = "", targets: tuple[str, ...] = ()) -> pb.StreamingConfig:
    """A speaker's config: English LINEAR16 at 16 kHz into ``room`` (and ``targets`` of its own)."""
    return pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1),
        source_language="eng",
        target_languages=targets,
        room=pb.RoomSpeaking(name=room, participant=participant),
    )


async def speak(
    stub: pb_grpc.TranslatorStub, config: pb.StreamingConfig, pcm: bytes, segments: list[pb.SegmentResult]
) -> pb.StreamEnd:
    """Stream ``pcm`` into the room as fast as flow control lets it; the speaker's own results."""

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=config)
        for k in range(0, len(pcm), CHUNK):
            yield pb.StreamingTranslateRequest(audio=pcm[k : k + CHUNK])

    ended = None
    async for msg in stub.StreamingTranslate(requests()):
        if msg.WhichOneof("response") == "segment":
            segments.append(msg.segment)
        elif msg.WhichOneof("response") == "ended":
            ended = msg.ended
    assert ended is not None
    return ended


async def speak_until(
    stub: pb_grpc.TranslatorStub, config: pb.StreamingConfig, pcm: bytes, stop: asyncio.Event
) -> None:
    """Stream ``pcm`` into the room again and again, at real time, until ``stop`` is set: a speaker
    that is still talking whenever a listener joins, however slow the machine (``speak`` sends as
    fast as flow control lets it and may be done before a late listener comes)."""

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=config)
        loop = asyncio.get_running_loop()
        sent_s, start = 0.0, loop.time()
        while not stop.is_set():
            for k in range(0, len(pcm), CHUNK):
                if stop.is_set():
                    return
                yield pb.StreamingTranslateRequest(audio=pcm[k : k + CHUNK])
                sent_s += len(pcm[k : k + CHUNK]) / 32000
                await asyncio.sleep(max(0.0, start + sent_s - loop.time()))

    async for _ in stub.StreamingTranslate(requests()):
        pass


async def speak_through_sdk(
    client: AsyncTranslateClient,
    room: str | Room,
    pcm: bytes,
    participant: str | None = None,
    interim_ms: int = 0,
) -> list[Segment]:
    """A speaker through the SDK: ``pcm`` (16 kHz LINEAR16) streamed into ``room`` as fast as flow
    control lets it, in English with no targets of its own (ASR only); its own segments."""
    own: list[Segment] = []
    async with client.stream(targets=(), source="eng", room=room, participant=participant, interim_ms=interim_ms) as s:

        async def send() -> None:
            for k in range(0, len(pcm), CHUNK):
                await s.send(pcm[k : k + CHUNK])
            await s.close()

        sender = asyncio.create_task(send())
        own += [ev async for ev in s if isinstance(ev, Segment)]
        await sender
    assert own, "the speaker got no segment"
    return own


def registry(live: LiveServer):  # type: ignore[no-untyped-def]
    """The server's rooms (``session/rooms/registry.py``'s ``RoomRegistry``)."""
    return live.server.app.sessions.rooms


async def wait_for(predicate, bound_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """Until ``predicate()`` (a safety bound on a hung test, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + bound_s
    while not predicate():
        assert loop.time() < end, "gave up waiting"
        await asyncio.sleep(0.05)


def listen_url(live: LiveServer, room: str, language: str, **query: str) -> str:
    """The rooms door's WebSocket address to listen to ``room`` in ``language`` (and ``query``)."""
    assert live.server.http is not None
    q = "&".join(f"{k}={v}" for k, v in {"language": language, **query}.items())
    return f"ws://127.0.0.1:{live.server.http.port}/v1/rooms/{room}/listen?{q}"
