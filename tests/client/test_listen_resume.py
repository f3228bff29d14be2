"""A listen that the SDK continues by itself (issue 59, docs/client.md "Rooms"): when its call
reaches the server's longest listen (``rooms.max_listen_s``: OUT_OF_RANGE) it listens again, and
the backlog the new call repeats is dropped, so the caller gets every segment once; when its server
drains it moves to the next address. With ``resume=False`` such an end is told instead.

Real servers on loopback (port 0) with the stable test translator (model/testing/stable.py); asserted are
ids, spans and counts, never words.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from tests.support.live_server import LiveServer, serving
from tests.support.rooms import registry, room_settings, speak_through_sdk, wait_for
from tests.support.speech import speech_pcm16
from translate_svc.client import (
    AsyncTranslateClient,
    Draining,
    ListenEnd,
    ListenEndedError,
    ListenEndReason,
    ListenEvent,
    ListenStarted,
    RoomSegment,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow(30)]

LONGEST_S = 3.0  # rooms.max_listen_s in these tests


def address(live: LiveServer) -> str:
    return f"127.0.0.1:{live.port}"


def keys(events: list[ListenEvent]) -> list[tuple[str, int, int, int]]:
    return [(e.speaker, e.segment_id, e.start_ms, e.end_ms) for e in events if isinstance(e, RoomSegment)]


async def test_a_listen_at_its_longest_is_listened_again_and_gets_nothing_twice(
    test_model_dir: Path, shared_audio: Path
) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 20.0, 16000).tobytes()
    async with serving(room_settings(test_model_dir, max_listen_s=LONGEST_S)) as live:
        heard: list[ListenEvent] = []
        async with AsyncTranslateClient(address(live)) as client, client.listen("talk", "spa") as room:

            async def read() -> None:
                async for ev in room:
                    heard.append(ev)

            reader = asyncio.create_task(read())
            await wait_for(lambda: registry(live).listener_counts().get("spa", 0) == 1)
            first = await speak_through_sdk(client, "talk", pcm[: len(pcm) // 2], participant="ann")
            # the call ends at its longest; the SDK listens again and the new call's backlog (all of
            # the first half) is what the caller already had
            await wait_for(lambda: room.resumes >= 1)
            second = await speak_through_sdk(client, "talk", pcm[len(pcm) // 2 :], participant="bob")
            await wait_for(lambda: len(keys(heard)) >= len(first) + len(second))
        await reader

    want = [("ann", s.segment_id, s.start_ms, s.end_ms) for s in first]
    want += [("bob", s.segment_id, s.start_ms, s.end_ms) for s in second]
    assert keys(heard) == want  # every segment once, in order
    starts = [e for e in heard if isinstance(e, ListenStarted)]
    assert starts[0].resumes == 0 and starts[1].resumes == 1 and room.resumes == len(starts) - 1
    assert starts[1].backlog >= len(first)  # the new call sent the first half again ...
    assert room.repeats_dropped >= len(first)  # ... and the SDK dropped it
    assert not any(isinstance(e, ListenEnd) for e in heard) and room.ended is None


async def test_without_resume_the_longest_listen_is_told_with_its_reason(test_model_dir: Path) -> None:
    async with serving(room_settings(test_model_dir, max_listen_s=1.0)) as live:
        async with AsyncTranslateClient(address(live)) as client:
            room = client.listen("talk", "spa", resume=False)
            heard: list[ListenEvent] = []
            with pytest.raises(ListenEndedError) as err:
                async with room:
                    async for ev in room:
                        heard.append(ev)
    assert [type(e) for e in heard] == [ListenStarted, ListenEnd]
    end = heard[-1]
    assert isinstance(end, ListenEnd) and end.reason is ListenEndReason.MAX_LISTEN_DURATION
    assert end.code is grpc.StatusCode.OUT_OF_RANGE and "listen again" in end.message
    assert err.value.end is end


async def test_a_drained_servers_listen_moves_to_the_next_address(test_model_dir: Path, shared_audio: Path) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 10.0, 16000).tobytes()
    drained = room_settings(test_model_dir)
    drained.server.drain_s = 0.5
    async with serving(drained) as a, serving(room_settings(test_model_dir)) as b:
        heard: list[ListenEvent] = []
        async with (
            AsyncTranslateClient([address(a), address(b)]) as client,
            AsyncTranslateClient(address(b)) as speaker,
        ):
            room = client.listen("hall", "spa")
            await room.start()
            assert room.info is not None and room.info.address == address(a)

            async def read() -> None:
                async for ev in room:
                    heard.append(ev)

            reader = asyncio.create_task(read())
            await a.server.stop(grace=5)  # SIGTERM's path: drain, then stop
            await wait_for(lambda: room.resumes == 1)
            assert room.info.address == address(b)
            await wait_for(lambda: registry(b).listener_counts().get("spa", 0) == 1)
            own = await speak_through_sdk(speaker, "hall", pcm, participant="mayor")
            await wait_for(lambda: len(keys(heard)) >= len(own))
            await room.aclose()
            await reader

    kinds = [type(e) for e in heard]
    assert kinds[:3] == [ListenStarted, Draining, ListenStarted], kinds
    moved = heard[2]
    assert isinstance(moved, ListenStarted) and moved.resumes == 1 and moved.address == address(b)
    assert keys(heard) == [("mayor", s.segment_id, s.start_ms, s.end_ms) for s in own]
