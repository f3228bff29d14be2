"""Rooms through the SDK (issue 59, docs/client.md "Rooms"): a speaker's stream names a room
(``stream(room=..., participant=...)``) and listeners follow it with ``listen(room, language)``, on
the async client and the sync one, each getting the speaker's segments with the same ids and spans
as the speaker's own stream, the backlog first and marked so, and an end or a refusal told with
the server's status and message.

One real server on loopback (port 0) runs the stable test translator (model/testing/stable.py: every
segment has words and speech), so what is asserted is structure (ids, spans, languages, speech or
none), never words.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, serving
from tests.support.rooms import registry, room_settings, speak_through_sdk, wait_for
from tests.support.speech import speech_pcm16
from tests.support.tokens import replace
from translate_svc.client import (
    AsyncTranslateClient,
    Draining,
    ListenEnd,
    ListenEndedError,
    ListenEndReason,
    ListenEvent,
    ListenStarted,
    RetryPolicy,
    Room,
    RoomCaption,
    RoomSegment,
    Segment,
    TranslateClient,
    TranslateError,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

TOKENS = "every-room-4d1c7a2e\nlisten-talk-8e3b1f0c listen=talk-*\nstream-only-5a9d2c7e stream\n"
EVERY, TALK_ONLY, STREAM_ONLY = "every-room-4d1c7a2e", "listen-talk-8e3b1f0c", "stream-only-5a9d2c7e"


def with_tokens(test_model_dir: Path, tokens: Path, lines: str):  # type: ignore[no-untyped-def]
    """The rooms tests' settings with ``lines`` as the tokens file (written at ``tokens``)."""
    tokens.write_text(lines)
    settings = room_settings(test_model_dir)
    settings.auth.tokens_file = tokens
    return settings


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def room_server(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    async with serving(with_tokens(test_model_dir, tmp_path_factory.mktemp("room-tokens") / "tokens", TOKENS)) as live:
        yield live


@pytest.fixture(scope="module")
def pcm(shared_audio: Path) -> bytes:
    return bytes(speech_pcm16(shared_audio / "silero_test.wav", 30.0, 16000).tobytes())


def address(live: LiveServer) -> str:
    return f"127.0.0.1:{live.port}"


def check_heard(heard: list[ListenEvent], own: list[Segment], language: str, speaker: str) -> None:
    """A listener that joined before the speaker spoke: started, then every one of the speaker's
    segments, live (with speech), in order, with the speaker's ids and spans, in its language."""
    assert isinstance(heard[0], ListenStarted) and heard[0].backlog == 0, heard[0]
    assert heard[0].language == language
    segs = [e for e in heard if isinstance(e, RoomSegment)]
    assert [(e.segment_id, e.start_ms, e.end_ms) for e in segs] == [(s.segment_id, s.start_ms, s.end_ms) for s in own]
    for e in segs:
        assert e.speaker == speaker and not e.backlog
        assert e.translation is not None and e.translation.target == language
        assert [t.target for t in e.segment.translations] == [language]
        assert e.translation.audio is not None and len(e.translation.audio) > 0  # live: with its speech
        assert e.segment.transcript is not None


async def test_async_and_sync_listeners_get_the_speakers_segments_with_its_ids_and_spans(
    room_server: LiveServer, pcm: bytes
) -> None:
    def ids(heard: list[ListenEvent]) -> list[int]:
        return [e.segment_id for e in heard if isinstance(e, RoomSegment)]

    heard_async: list[ListenEvent] = []
    heard_sync: list[ListenEvent] = []
    # the blocking client is used from threads: this one's loop serves the server
    with TranslateClient(address(room_server), token=EVERY) as sync:
        sync_room = sync.listen("talk-1", "fra")
        await asyncio.to_thread(sync_room.start)

        def sync_listener() -> None:  # reads until closed from another thread
            heard_sync.extend(sync_room)

        thread = threading.Thread(target=sync_listener)
        thread.start()
        async with AsyncTranslateClient(address(room_server), token=EVERY) as client:
            async with client.listen("talk-1", "spa") as room:

                async def async_listener() -> None:
                    async for ev in room:
                        heard_async.append(ev)

                reader = asyncio.create_task(async_listener())
                await wait_for(lambda: sum(registry(room_server).listener_counts().values()) == 2)
                own = await speak_through_sdk(client, Room("talk-1", "mayor"), pcm, interim_ms=500)
                last = own[-1].segment_id
                await wait_for(lambda: last in ids(heard_async) and last in ids(heard_sync))
            await reader  # leaving ``async with`` closed the listen: its iteration stopped quietly
        await asyncio.to_thread(sync_room.close)
        await asyncio.to_thread(thread.join, 60)
        assert not thread.is_alive()

    check_heard(heard_async, own, "spa", "mayor")
    check_heard(heard_sync, own, "fra", "mayor")
    # the speaker asked for live captions: the listeners get them, each of one of its segments
    for heard, language in ((heard_async, "spa"), (heard_sync, "fra")):
        captions = [e for e in heard if isinstance(e, RoomCaption)]
        assert captions and all(e.speaker == "mayor" for e in captions)
        assert {e.caption.segment_id for e in captions} <= {s.segment_id for s in own}
        assert all([t.target for t in e.caption.translations] == [language] for e in captions)
    # both closed: the server holds no listener of theirs
    await wait_for(lambda: sum(registry(room_server).listener_counts().values()) == 0)


async def test_a_late_listener_gets_the_backlog_first_marked_and_as_text_then_live_results(
    room_server: LiveServer, pcm: bytes
) -> None:
    async with AsyncTranslateClient(address(room_server), token=EVERY) as client:
        # the backlog keeps what was translated: someone listens in German while the first half is said
        async with client.listen("talk-2", "deu"):
            await wait_for(lambda: registry(room_server).listener_counts().get("deu", 0) == 1)
            first = await speak_through_sdk(client, "talk-2", pcm[: len(pcm) // 2], participant="ann")
        async with client.listen("talk-2", "deu") as room:
            started = await anext(room)
            assert isinstance(started, ListenStarted) and started.backlog == len(first), started
            backlog = [await anext(room) for _ in range(started.backlog)]
            second = await speak_through_sdk(client, "talk-2", pcm[len(pcm) // 2 :], participant="ann")
            live_part: list[RoomSegment] = []
            async for ev in room:
                assert isinstance(ev, RoomSegment), ev
                live_part.append(ev)
                if len(live_part) == len(second):
                    break
    assert all(isinstance(e, RoomSegment) and e.backlog for e in backlog)
    got = [(e.segment_id, e.start_ms, e.end_ms) for e in backlog if isinstance(e, RoomSegment)]
    assert got == [(s.segment_id, s.start_ms, s.end_ms) for s in first]
    for e in backlog:  # the backlog is text only: no speech
        assert isinstance(e, RoomSegment) and e.translation is not None and e.translation.audio is None
    assert [(e.segment_id, e.start_ms, e.end_ms, e.backlog) for e in live_part] == [
        (s.segment_id, s.start_ms, s.end_ms, False) for s in second
    ]
    assert all(e.translation is not None and e.translation.audio is not None for e in live_part)


async def test_refused_listens_raise_the_servers_status_and_message(room_server: LiveServer) -> None:
    once = RetryPolicy(max_attempts=1)
    cases = [
        (STREAM_ONLY, "talk-3", "spa", grpc.StatusCode.PERMISSION_DENIED, "may listen to no room"),
        (TALK_ONLY, "hall", "spa", grpc.StatusCode.PERMISSION_DENIED, "may not listen to room 'hall'"),
        ("no-such-token-00000000", "talk-3", "spa", grpc.StatusCode.UNAUTHENTICATED, "token"),
        (EVERY, "bad room", "spa", grpc.StatusCode.INVALID_ARGUMENT, "room name"),
        (EVERY, "talk-3", "xxx", grpc.StatusCode.INVALID_ARGUMENT, "unknown language"),
    ]
    for token, room, language, code, words in cases:
        async with AsyncTranslateClient(address(room_server), token=token, retry=once) as client:
            with pytest.raises(TranslateError) as err:
                async with client.listen(room, language):
                    pass
        assert err.value.code is code and words in err.value.message, (token, room, err.value)
        assert err.value.request_id and err.value.address == address(room_server)

        def sync_refused(token: str = token, room: str = room, language: str = language) -> TranslateError:
            with (
                TranslateClient(address(room_server), token=token, retry=once) as sync,
                pytest.raises(TranslateError) as e,
            ):
                with sync.listen(room, language):
                    pass
            return e.value

        e = await asyncio.to_thread(sync_refused)
        assert e.code is code and words in e.message, (token, room, e)
    assert sum(registry(room_server).listener_counts().values()) == 0


async def test_a_full_tenant_is_refused_resource_exhausted_with_its_retry_delay(
    test_model_dir: Path, tmp_path: Path
) -> None:
    async with serving(
        with_tokens(test_model_dir, tmp_path / "tokens", "small room=* tenant=small listeners=1\n")
    ) as live:
        async with AsyncTranslateClient(address(live), token="small", retry=RetryPolicy(max_attempts=1)) as client:
            async with client.listen("a", "spa") as first:
                assert isinstance(await anext(first), ListenStarted)
                with pytest.raises(TranslateError) as err:
                    async with client.listen("a", "fra"):
                        pass
    assert err.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED and "listeners=1" in err.value.message, err.value
    assert err.value.retry_delay_s is not None and err.value.retry_delay_s > 0


async def test_a_revoked_token_ends_the_listen_with_its_reason_then_raises(
    test_model_dir: Path, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    async with serving(with_tokens(test_model_dir, tokens, "keep-9f1e2d3c\ngoes-7b6a5c4d listen=*\n")) as live:
        async with AsyncTranslateClient(address(live), token="goes-7b6a5c4d") as client:
            room = client.listen("talk", "spa")
            seen: list[ListenEvent] = []
            with pytest.raises(ListenEndedError) as err:
                async with room:
                    async for ev in room:
                        seen.append(ev)
                        if isinstance(ev, ListenStarted):
                            replace(tokens, "keep-9f1e2d3c\n")
    assert isinstance(seen[0], ListenStarted) and isinstance(seen[-1], ListenEnd), seen
    end = seen[-1]
    assert end.reason is ListenEndReason.REVOKED and end.code is grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in end.message and err.value.end is end and room.ended is end
    assert end.request_id == room.request_id and end.address == address(live)


async def test_a_drained_server_is_told_then_the_listen_ends_draining_without_resume(
    test_model_dir: Path,
) -> None:
    settings = room_settings(test_model_dir)
    settings.server.drain_s = 0.5
    async with serving(settings) as live:
        async with AsyncTranslateClient(address(live)) as client:
            room = client.listen("hall", "spa", resume=False)
            seen: list[ListenEvent] = []
            with pytest.raises(ListenEndedError) as err:
                async with room:
                    async for ev in room:
                        seen.append(ev)
                        if isinstance(ev, ListenStarted):
                            stopping = asyncio.create_task(live.server.stop(grace=5))
            await stopping
    assert [type(e) for e in seen] == [ListenStarted, Draining, ListenEnd], seen
    end = seen[-1]
    assert isinstance(end, ListenEnd) and end.reason is ListenEndReason.DRAINING
    assert end.code is grpc.StatusCode.UNAVAILABLE and err.value.reason is ListenEndReason.DRAINING


async def test_a_closed_or_cancelled_listen_stops_quietly_and_leaves_the_room(room_server: LiveServer) -> None:
    rooms = registry(room_server)
    async with AsyncTranslateClient(address(room_server), token=EVERY) as client:
        room = client.listen("talk-4", "spa")
        await room.start()
        await wait_for(lambda: rooms.listener_counts().get("spa", 0) == 1)
        assert isinstance(await anext(room), ListenStarted)
        # a step cancelled by a timeout (a quiet room) leaves the listen going
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(room), 0.3)
        assert rooms.listener_counts().get("spa", 0) == 1 and room.ended is None
        await room.aclose()
        assert [ev async for ev in room] == []  # nothing more, no error
        assert room.ended is None
        await wait_for(lambda: rooms.listener_counts().get("spa", 0) == 0)

        # a task iterating a listen, cancelled: the call is cancelled with it
        async def follow() -> None:
            async with client.listen("talk-4", "fra") as r:
                async for _ in r:
                    pass

        task = asyncio.create_task(follow())
        await wait_for(lambda: rooms.listener_counts().get("fra", 0) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_for(lambda: rooms.listener_counts().get("fra", 0) == 0)

    def sync_listen() -> tuple[list[ListenEvent], list[ListenEvent], list[ListenEvent]]:
        with TranslateClient(address(room_server), token=EVERY) as sync, sync.listen("talk-4", "deu") as listener:
            first = listener.poll(None)  # waits for the first event
            quiet = listener.poll(0.2)  # a quiet room: nothing within the wait
            listener.close()
            return first, quiet, list(listener)  # closed: the iteration stops at once

    first, quiet, after = await asyncio.to_thread(sync_listen)
    assert [type(e) for e in first] == [ListenStarted] and quiet == [] and after == []
    await wait_for(lambda: rooms.listener_counts().get("deu", 0) == 0)

    # closing the blocking client ends a listen that another thread is iterating (it returns)
    sync = TranslateClient(address(room_server), token=EVERY)
    listener = sync.listen("talk-4", "eng")
    await asyncio.to_thread(listener.start)
    got: list[ListenEvent] = []
    thread = threading.Thread(target=lambda: got.extend(listener), daemon=True)
    thread.start()
    await wait_for(lambda: len(got) == 1)  # started; then it waits in a quiet room
    await asyncio.to_thread(sync.close)
    await asyncio.to_thread(thread.join, 10)
    assert not thread.is_alive() and [type(e) for e in got] == [ListenStarted]
    await wait_for(lambda: rooms.listener_counts().get("eng", 0) == 0)


async def test_room_options_are_checked_before_any_call() -> None:
    client = AsyncTranslateClient("127.0.0.1:1")
    with pytest.raises(ValueError, match="give room= too"):
        client.stream(targets="spa", source="eng", participant="ann")
    with pytest.raises(ValueError, match="not both"):
        client.stream(targets="spa", source="eng", room=Room("a", "b"), participant="c")
    with pytest.raises(ValueError, match="name the room"):
        Room("")
    with pytest.raises(ValueError, match="max_buffered_events"):
        client.listen("a", "spa", max_buffered_events=0)
