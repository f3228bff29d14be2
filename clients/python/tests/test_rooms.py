"""Rooms through the client distribution alone (issue 59), under this environment's protobuf and
grpcio: a speaker's stream names a room, listeners follow it with the async client's ``listen``
and the sync client's, each getting the speaker's segments with its ids and spans; a late listener
gets the backlog first, marked and as text; a refused listen raises the server's status and
message, and the client command's ``listen`` exits 4 saying so.

The client only (no server module, none of the repository's tests/ helpers): one ``translate-svc
serve`` process of this checkout (conftest.py) with the stable translator (model/testing/stable.py: every
segment has words and speech) and a tokens file. Nothing here reads the words.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import Server, launch, ready, stop

from translate_svc.client import (
    AsyncTranslateClient,
    ListenEvent,
    ListenStarted,
    RetryPolicy,
    Room,
    RoomSegment,
    Segment,
    TranslateClient,
    TranslateError,
)
from translate_svc.client_cli.decode import load_pcm16k

EVERY = "rooms-every-6b1d3f5a"
STREAM_ONLY = "rooms-stream-2c4e6a8b"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tokens = tmp_path_factory.mktemp("room-tokens") / "tokens"
    tokens.write_text(f"{EVERY}\n{STREAM_ONLY} stream\n")
    srv = launch({"AUTH__TOKENS_FILE": str(tokens), "ROOMS__BACKLOG_S": "600"}, stable=True)
    try:
        yield ready(srv)
    finally:
        stop(srv)


@pytest.fixture(scope="module")
def talk(jfk_path: Path) -> np.ndarray:
    return load_pcm16k(jfk_path.parent / "silero_test.wav")[: 16000 * 20]  # 20 s, int16 at 16 kHz


async def speak(address: str, room: Room, pcm: np.ndarray) -> list[Segment]:
    async with (
        AsyncTranslateClient(address, token=EVERY) as c,
        c.stream(targets=(), source="eng", room=room) as s,
    ):

        async def send() -> None:
            for i in range(0, len(pcm), 1600):
                await s.send(pcm[i : i + 1600])
            await s.close()

        sender = asyncio.create_task(send())
        own = [ev async for ev in s if isinstance(ev, Segment)]
        await sender
    assert own
    return own


def ids_spans(events: list[ListenEvent]) -> list[tuple[int, int, int]]:
    return [(e.segment_id, e.start_ms, e.end_ms) for e in events if isinstance(e, RoomSegment)]


async def until(check: Callable[[], bool], what: str, bound_s: float = 120.0) -> None:
    end = asyncio.get_running_loop().time() + bound_s
    while not check():
        assert asyncio.get_running_loop().time() < end, f"gave up waiting: {what}"
        await asyncio.sleep(0.05)


async def test_async_and_sync_listeners_and_a_late_one_hear_the_speaker(server: Server, talk: np.ndarray) -> None:
    heard: list[ListenEvent] = []
    heard_sync: list[ListenEvent] = []
    with TranslateClient(server.address, token=EVERY) as sync:
        sync_room = sync.listen("hall", "fra")
        await asyncio.to_thread(sync_room.start)
        thread = threading.Thread(target=lambda: heard_sync.extend(sync_room))
        thread.start()
        async with AsyncTranslateClient(server.address, token=EVERY) as c:
            async with c.listen("hall", "spa") as room:

                async def read() -> None:
                    async for ev in room:
                        heard.append(ev)

                reader = asyncio.create_task(read())
                own = await speak(server.address, Room("hall", "mayor"), talk)
                want = [(s.segment_id, s.start_ms, s.end_ms) for s in own]
                await until(lambda: ids_spans(heard) == want and ids_spans(heard_sync) == want, "both listeners")
            await reader
            async with c.listen("hall", "spa") as late:
                started = await anext(late)
                backlog = [await anext(late) for _ in range(len(own))]
        await asyncio.to_thread(sync_room.close)
        await asyncio.to_thread(thread.join, 30)

    for events, language in ((heard, "spa"), (heard_sync, "fra")):
        assert isinstance(events[0], ListenStarted) and events[0].language == language
        for e in events:
            if isinstance(e, RoomSegment):
                assert e.speaker == "mayor" and not e.backlog
                assert e.translation is not None and e.translation.target == language
                assert e.translation.audio is not None and len(e.translation.audio) > 0
    assert isinstance(started, ListenStarted) and started.backlog == len(own)
    assert ids_spans(backlog) == [(s.segment_id, s.start_ms, s.end_ms) for s in own]
    for e in backlog:  # text only
        assert isinstance(e, RoomSegment) and e.backlog and e.translation is not None and e.translation.audio is None


async def test_a_refused_listen_raises_the_servers_status_and_the_command_exits_4(server: Server) -> None:
    async with AsyncTranslateClient(server.address, token=STREAM_ONLY, retry=RetryPolicy(max_attempts=1)) as c:
        with pytest.raises(TranslateError) as err:
            async with c.listen("hall", "spa"):
                pass
    assert err.value.code is grpc.StatusCode.PERMISSION_DENIED and "may listen to no room" in err.value.message

    script = Path(sys.executable).parent / "translate-svc-client"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRANSLATE_SVC_")}
    p = await asyncio.to_thread(
        subprocess.run,
        [str(script), "listen", "hall", "-l", "spa", "--server", server.address],
        capture_output=True,
        text=True,
        env={**env, "TRANSLATE_SVC_TOKEN": STREAM_ONLY},
        timeout=120,
    )
    assert p.returncode == 4, p.stderr
    assert "PERMISSION_DENIED" in p.stderr and "may listen to no room" in p.stderr and "Traceback" not in p.stderr
