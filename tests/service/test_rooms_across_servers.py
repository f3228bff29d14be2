"""Rooms across servers (issue 59): three ``serve`` processes (three pods) share one real
``redis-server`` (``cluster.redis_url``), each its own process (``ServerProcess``, its ready file),
on the made-up stable translator; a fourth, without Redis, is the one-process run the room must
equal.

- A speaker on server A, listeners on B and A: every listener gets the speaker's segments with
  the ids and spans of the one-process run (same audio), and a late listener on B or C the same
  backlog as a late listener of the one-process run.
- A speaker drained on A and resumed (by the SDK) on B keeps its room: listeners on C and B get
  every segment once, ids continuing, each with the span the speaker's own stream was given.

Before (1d29514^, rooms in each process's dicts): a listener on another server than the speaker's
got none of its segments and an empty backlog, and its call said nothing was wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support.redis_server import RedisServer, redis_server
from tests.support.rooms import speak, speak_until, speaker_config
from tests.support.server_process import ServerProcess
from tests.support.speech import speech_pcm16
from tests.support.waiting import eventually
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.client import AsyncTranslateClient, Segment

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(90)]

Span = tuple[int, int, int]
ARGS = ["--host", "127.0.0.1", "--port", "0"]
ROOMS = {"TRANSLATE_SVC_MODEL__TEST_TRANSLATOR": "stable", "TRANSLATE_SVC_ROOMS__BACKLOG_S": "600"}


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def start(model: Path, redis: RedisServer | None, **env: str) -> ServerProcess:
    store = {"TRANSLATE_SVC_CLUSTER__REDIS_URL": redis.url} if redis is not None else {}
    return ServerProcess(["--model", str(model), *ARGS], env={**ROOMS, **store, **env})


@pytest.fixture(scope="module")
def servers(test_model_dir: Path, redis: RedisServer) -> Iterator[dict[str, ServerProcess]]:
    """``a``, ``b``, ``c`` share the Redis; ``one`` is a server of its own (no store). Each allows
    two target languages (``limits.max_target_languages``), which the tests of a room's languages
    need; the others' rooms have one. Each test has rooms of its own."""
    two_languages = {"TRANSLATE_SVC_LIMITS__MAX_TARGET_LANGUAGES": "2"}
    started: dict[str, ServerProcess] = {}
    try:
        for name in ("a", "b", "c"):
            started[name] = start(test_model_dir, redis, **two_languages)
        started["one"] = start(test_model_dir, None, **two_languages)
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def narrow(servers: dict[str, ServerProcess]) -> tuple[ServerProcess, ServerProcess, ServerProcess]:
    """Servers that allow two target languages: one of its own, and two sharing the Redis."""
    return servers["one"], servers["a"], servers["b"]


@pytest.fixture(scope="module")
def pcm(shared_audio: Path) -> bytes:
    return speech_pcm16(shared_audio / "silero_test.wav", 20.0, 16000).tobytes()


def alone_then_across(
    narrow: tuple[ServerProcess, ServerProcess, ServerProcess],
) -> list[tuple[ServerProcess, ServerProcess]]:
    """Two parties on the server of its own, then on the two sharing Redis (one on each)."""
    here, a, b = narrow
    return [(here, here), (a, b)]


@contextlib.asynccontextmanager
async def channels(x: ServerProcess, y: ServerProcess) -> AsyncIterator[tuple[grpc.aio.Channel, grpc.aio.Channel]]:
    async with grpc.aio.insecure_channel(x.address) as x_ch, grpc.aio.insecure_channel(y.address) as y_ch:
        yield x_ch, y_ch


def stub(channel: grpc.aio.Channel) -> pb_grpc.TranslatorStub:
    return pb_grpc.TranslatorStub(channel)


async def opened(call: Any) -> pb.ListenStarted:
    first = await asyncio.wait_for(call.read(), 30)
    assert first.WhichOneof("event") == "started", first
    return first.started


async def segments(call: Any, want: int, *, bound_s: float = 60) -> tuple[list[Span], list[Span]]:
    """Read a listen until ``want`` segments came: (backlog, live) spans."""
    backlog: list[Span] = []
    live: list[Span] = []
    while len(backlog) + len(live) < want:
        ev = await asyncio.wait_for(call.read(), bound_s)
        if ev.WhichOneof("event") == "segment":
            s = ev.segment
            (backlog if ev.backlog else live).append((s.segment_id, s.start_ms, s.end_ms))
    return backlog, live


async def one_process_run(one: ServerProcess, room: str, pcm: bytes) -> tuple[list[Span], list[Span]]:
    """The same audio into ``room`` on one server: what its live listener and a late listener got."""
    async with grpc.aio.insecure_channel(one.address) as ch:
        call = stub(ch).Listen(pb.ListenRequest(room=room, language="spa"))
        await opened(call)
        own: list[pb.SegmentResult] = []
        await speak(stub(ch), speaker_config(room, targets=("spa",)), pcm, own)
        _, live = await segments(call, len(own))
        call.cancel()
        late = stub(ch).Listen(pb.ListenRequest(room=room, language="spa"))
        started = await opened(late)
        backlog, _ = await segments(late, started.backlog)
        late.cancel()
    return live, backlog


async def test_listeners_on_other_servers_get_what_one_server_gives(
    servers: dict[str, ServerProcess], pcm: bytes
) -> None:
    reference_live, reference_backlog = await one_process_run(servers["one"], "hall", pcm)
    assert len(reference_live) >= 5 and reference_backlog == reference_live, (reference_live, reference_backlog)
    a, b, c = (grpc.aio.insecure_channel(servers[k].address) for k in "abc")
    try:
        early = {
            where: stub(ch).Listen(pb.ListenRequest(room="hall", language="spa"))
            for where, ch in (("b1", b), ("b2", b), ("a", a))
        }
        for call in early.values():
            started = await opened(call)
            assert started.backlog == 0
        own: list[pb.SegmentResult] = []
        ended = await speak(stub(a), speaker_config("hall", targets=("spa",)), pcm, own)
        spans = [(s.segment_id, s.start_ms, s.end_ms) for s in own]
        assert spans == reference_live and ended is not None
        for where, call in early.items():
            backlog, live = await segments(call, len(spans))
            assert backlog == [] and live == reference_live, (where, live)
            call.cancel()
        for where, ch in (("b", b), ("c", c)):
            late = stub(ch).Listen(pb.ListenRequest(room="hall", language="spa"))
            started = await opened(late)
            assert started.backlog == len(reference_backlog), (where, started)
            backlog, live = await segments(late, len(reference_backlog))
            assert backlog == reference_backlog and live == [], (where, backlog)
            late.cancel()
    finally:
        for ch in (a, b, c):
            await ch.close()


async def test_a_speaker_drained_on_one_server_and_resumed_on_another_keeps_its_room(
    servers: dict[str, ServerProcess], test_model_dir: Path, redis: RedisServer, pcm: bytes
) -> None:
    """The speaker (the SDK, addresses [A', B]) starts on A', a server of its own that is then
    drained (SIGTERM): the SDK resumes the stream on B. Listeners on C and B get each of the
    speaker's segments once, in order, ids continuing across the move, with the spans the
    speaker's own stream got."""
    drained = start(test_model_dir, redis, TRANSLATE_SVC_SERVER__DRAIN_S="1")
    b, c = servers["b"], servers["c"]
    try:
        chans = [grpc.aio.insecure_channel(s.address) for s in (c, b)]
        calls = [stub(ch).Listen(pb.ListenRequest(room="moving", language="spa")) for ch in chans]
        for call in calls:
            await opened(call)
        heard: list[list[Span]] = [[], []]
        voices: list[set[str]] = [set(), set()]

        async def hear(i: int) -> None:
            while (ev := await calls[i].read()) is not grpc.aio.EOF:
                if ev.WhichOneof("event") == "segment":
                    s = ev.segment
                    heard[i].append((s.segment_id, s.start_ms, s.end_ms))
                    voices[i].add(ev.speaker)

        hearing = [asyncio.create_task(hear(i)) for i in range(2)]
        own: list[Segment] = []
        async with AsyncTranslateClient([drained.address, b.address]) as client:
            async with client.stream(targets="spa", source="eng", room="moving", speech=False) as s:

                async def send() -> None:
                    for k in range(0, len(pcm), 3200):
                        await s.send(pcm[k : k + 3200])
                        await asyncio.sleep(0.02)  # 5x real time: the drain comes mid-stream
                    await s.close()

                sender = asyncio.create_task(send())
                async for ev in s:
                    if isinstance(ev, Segment):
                        own.append(ev)
                        if len(own) == 2:
                            drained.proc.send_signal(signal.SIGTERM)
                await sender
                assert s.resumes == 1 and s.info is not None and s.info.address == b.address, (s.resumes, s.info)
        spans = [(e.segment_id, e.start_ms, e.end_ms) for e in own]
        assert [i for i, _, _ in spans] == list(range(len(spans))) and len(spans) >= 5, spans

        async def all_heard() -> bool:
            return all(len(h) >= len(spans) for h in heard)

        await eventually(all_heard, f"the listeners did not hear {len(spans)} segments: {heard}", deadline_s=60)
        # the room's backlog (the store's stream, as C read it) holds each segment once too
        late = stub(chans[0]).Listen(pb.ListenRequest(room="moving", language="spa"))
        started = await opened(late)
        backlog, _ = await segments(late, started.backlog)
        assert backlog == spans, (backlog, spans)
        late.cancel()
        for h in hearing:
            assert not h.done(), h  # still listening: nothing ended it
            h.cancel()
        for where, got, speakers in zip(("c", "b"), heard, voices, strict=True):
            assert got == spans, (where, got, spans)
            # one speaker throughout: the stream is named by its resume token, not by each call's session
            assert len(speakers) == 1, (where, speakers)
        for ch in chans:
            await ch.close()
    finally:
        drained.stop()


async def test_a_listener_in_a_language_the_speaker_cannot_add_is_refused_as_on_one_server(
    narrow: tuple[ServerProcess, ServerProcess, ServerProcess], pcm: bytes
) -> None:
    """Every server allows two target languages (``limits.max_target_languages`` 2); a speaker with
    its own target (German) and a listener in Spanish. A listener in French: on one server it is
    refused INVALID_ARGUMENT (the speaker cannot add a third language); on another server than the
    speaker's it was admitted and heard nothing, an OK that delivered nothing. Now it is ended with
    the same status and reason, and the Spanish listener goes on."""
    refusals = []
    for speaker_at, listener_at in alone_then_across(narrow):
        async with channels(speaker_at, listener_at) as (s_ch, l_ch):
            room = f"narrow-{len(refusals)}"
            spoken: list[pb.SegmentResult] = []
            speaking = asyncio.create_task(speak(stub(s_ch), speaker_config(room, targets=("deu",)), pcm * 3, spoken))
            spanish = stub(l_ch).Listen(pb.ListenRequest(room=room, language="spa"))
            await opened(spanish)
            await segments(spanish, 1)  # the speaker is on, in Spanish
            french = stub(l_ch).Listen(pb.ListenRequest(room=room, language="fra"))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                while True:
                    ev = await asyncio.wait_for(french.read(), 30)
                    assert ev.WhichOneof("event") in ("started", None), ev
            refusals.append(refused.value)
            await segments(spanish, 1)  # the Spanish listener goes on
            spanish.cancel()
            speaking.cancel()
    (alone, across) = refusals
    assert alone.code() == grpc.StatusCode.INVALID_ARGUMENT, alone
    assert across.code() == alone.code(), (across.code(), across.details())
    assert "target languages" in (across.details() or ""), across.details()


async def test_a_speaker_that_cannot_carry_the_languages_listened_elsewhere_is_refused_as_on_one_server(
    narrow: tuple[ServerProcess, ServerProcess, ServerProcess], pcm: bytes
) -> None:
    """Two target languages at most; Spanish and French listeners hear a first speaker (no targets
    of its own). A second speaker with a target of its own (German) would need three: on one
    server it is refused INVALID_ARGUMENT and the listeners go on. On another server than the
    listeners' it was admitted and they heard nothing of it; now it is refused the same way, and
    the listeners are not cut for it."""
    refusals = []
    for late_at, room_at in alone_then_across(narrow):
        async with channels(late_at, room_at) as (late_ch, room_ch):
            room = f"full-{len(refusals)}"
            listens = [stub(room_ch).Listen(pb.ListenRequest(room=room, language=x)) for x in ("spa", "fra")]
            for listen in listens:
                await opened(listen)
            first: list[pb.SegmentResult] = []
            speaking = asyncio.create_task(speak(stub(room_ch), speaker_config(room), pcm * 3, first))
            for listen in listens:
                await segments(listen, 1)
            second: list[pb.SegmentResult] = []
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await speak(stub(late_ch), speaker_config(room, targets=("deu",)), pcm, second)
            refusals.append(refused.value)
            assert second == []
            for listen in listens:  # not cut for it
                await segments(listen, 1)
                listen.cancel()
            speaking.cancel()
    (alone, across) = refusals
    assert alone.code() == grpc.StatusCode.INVALID_ARGUMENT, alone
    assert across.code() == alone.code() and across.details() == alone.details(), (across, alone)


async def test_a_refusal_holds_for_the_listeners_it_named_not_for_a_later_one(
    narrow: tuple[ServerProcess, ServerProcess, ServerProcess], pcm: bytes
) -> None:
    """Two target languages at most, a speaker on A with its own target (German). A French
    listener on B while a Spanish one listens is refused (above); once the Spanish one left, the
    speaker can add French, and a French listener on B then hears it: the earlier refusal, still
    in the store's French stream, names the listener it was for."""
    _, a, b = narrow
    async with grpc.aio.insecure_channel(a.address) as a_ch, grpc.aio.insecure_channel(b.address) as b_ch:
        stop = asyncio.Event()  # the speaker talks at real time until the later listener heard it
        speaking = asyncio.create_task(speak_until(stub(a_ch), speaker_config("later", targets=("deu",)), pcm, stop))
        spanish = stub(b_ch).Listen(pb.ListenRequest(room="later", language="spa"))
        await opened(spanish)
        await segments(spanish, 1)
        first = stub(b_ch).Listen(pb.ListenRequest(room="later", language="fra"))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            while True:
                await asyncio.wait_for(first.read(), 30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value
        spanish.cancel()
        # until the Spanish listener's leave reached A a French one is refused again (for itself);
        # once it did, one is admitted and hears French (with the old refusal read as its own: never)
        for _ in range(20):
            later = stub(b_ch).Listen(pb.ListenRequest(room="later", language="fra"))
            try:
                await opened(later)
                _, live = await segments(later, 1)
                break
            except grpc.aio.AioRpcError as again:
                assert again.code() == grpc.StatusCode.INVALID_ARGUMENT, again
                await asyncio.sleep(0.5)
        else:
            raise AssertionError("every later French listener was refused")
        assert live, "the later French listener heard nothing"
        later.cancel()
        stop.set()
        speaking.cancel()
