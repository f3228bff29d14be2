"""Rooms (issue 47) on a real server: one speaker, many listeners over gRPC, each in a language.

The server runs the stable test translator (model/testing/stable.py), so every segment has words and
speech; what is asserted is structure (ids, spans, languages, counts), never words. Delivery "on
time" is asserted with the server's counters: the reading listeners had nothing dropped, the
speaker was never held, while a listener that never reads lost its oldest output and holds at most
``rooms.listener_queue`` events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from tests.support.live_server import serving
from tests.support.rooms import QUEUE, registry, room_settings, speak, speaker_config, wait_for
from tests.support.speech import speech_pcm16
from tests.support.tokens import bearer
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.observability import metrics

pytestmark = [pytest.mark.integration, pytest.mark.slow(40)]

LANGS = ("spa", "fra", "deu")


class Heard:
    """What one listener received, in order."""

    def __init__(self, language: str) -> None:
        self.language = language
        self.events: list[pb.ListenEvent] = []
        self.started = asyncio.Event()

    @property
    def segments(self) -> list[pb.ListenEvent]:
        return [e for e in self.events if e.WhichOneof("event") == "segment"]

    def ids(self) -> list[int]:
        return [e.segment.segment_id for e in self.segments]


async def listen(
    stub: pb_grpc.TranslatorStub, room: str, heard: Heard, until: asyncio.Event, participant: str = ""
) -> None:
    call = stub.Listen(pb.ListenRequest(room=room, language=heard.language, participant=participant))
    try:
        async for ev in call:
            heard.events.append(ev)
            if ev.WhichOneof("event") == "started":
                heard.started.set()
            if until.is_set():
                break
    finally:
        call.cancel()


async def test_one_speaker_thirty_listeners_in_three_languages(test_model_dir: Path, shared_audio: Path) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 60.0, 16000).tobytes()
    async with serving(room_settings(test_model_dir)) as live:
        rooms = registry(live)
        # a listener that never reads, on a channel with a small fixed receive window
        slow_channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{live.port}",
            options=[
                ("grpc.max_receive_message_length", 64 << 20),
                ("grpc.http2.bdp_probe", 0),
                ("grpc.http2.lookahead_bytes", 16384),
            ],
        )
        slow_call = pb_grpc.TranslatorStub(slow_channel).Listen(pb.ListenRequest(room="talk", language="spa"))
        await wait_for(lambda: sum(rooms.listener_counts().values()) == 1)
        (slow,) = rooms.all_listeners()

        done = asyncio.Event()
        early = [Heard(LANGS[i % 3]) for i in range(12)]
        tasks = [asyncio.create_task(listen(live.stub, "talk", h, done)) for h in early]
        await wait_for(lambda: all(h.started.is_set() for h in early))
        held_before = metrics.UNREAD_HELD._value.get()
        batches_before = len(live.batches)

        own: list[pb.SegmentResult] = []
        speaker = asyncio.create_task(speak(live.stub, speaker_config("talk"), pcm, own))
        await wait_for(lambda: len(own) >= 5)
        late = [Heard(LANGS[i % 3]) for i in range(17)]  # 1 + 12 + 17 = 30 listeners
        tasks += [asyncio.create_task(listen(live.stub, "talk", h, done)) for h in late]
        ended = await speaker
        last = own[-1].segment_id
        readers = early + late
        await wait_for(lambda: all(h.ids() and h.ids()[-1] == last for h in readers))
        batches = live.batches[batches_before:]
        done.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        slow_call.cancel()
        await slow_channel.close()

    assert ended.segments_total == len(own) and len(own) >= 10
    spans = {s.segment_id: (s.start_ms, s.end_ms) for s in own}
    for s in own:  # the speaker's own stream: its own targets only (none), its transcript
        assert s.transcript.text and not s.translations, s
    for h in readers:
        kinds = [e.WhichOneof("event") for e in h.events]
        assert kinds[0] == "started" and "dropped" not in kinds, kinds
        started = h.events[0].started
        backlog = [e for e in h.segments if e.backlog]
        assert h.segments[: len(backlog)] == backlog and started.backlog == len(backlog)  # backlog first
        # every segment of the talk, each once, in order, with the speaker's ids and spans, in its language
        assert h.ids() == sorted(spans), (h.language, h.ids())
        for e in h.segments:
            seg = e.segment
            assert (seg.start_ms, seg.end_ms) == spans[seg.segment_id]
            assert [t.target_language for t in seg.translations] == [h.language]
            assert seg.translations[0].text
            # live results carry speech; the backlog is kept and sent as text only (issue 57)
            assert bool(seg.translations[0].audio.content) != e.backlog, e
    assert all(not h.segments[0].backlog for h in early)
    assert all(h.events[0].started.backlog >= 1 for h in late)  # late joiners got the backlog first
    # work per language, not per listener: 3 targets and the transcript per segment, not 30
    assert sum(b.text_rows for b in batches) == len(own) * (len(LANGS) + 1)
    # the non-reader is bounded and lost its oldest; nobody else lost anything; the speaker never waited
    assert slow.dropped > 0 and slow.queued <= QUEUE
    assert metrics.UNREAD_HELD._value.get() == held_before


async def test_two_speakers_each_listening_to_the_other_hear_only_the_other(
    test_model_dir: Path, shared_audio: Path
) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 20.0, 16000).tobytes()
    async with serving(room_settings(test_model_dir)) as live:
        done = asyncio.Event()
        ann, bob = Heard("fra"), Heard("spa")  # ann listens in French, bob in Spanish
        tasks = [
            asyncio.create_task(listen(live.stub, "meet", ann, done, participant="ann")),
            asyncio.create_task(listen(live.stub, "meet", bob, done, participant="bob")),
        ]
        await wait_for(lambda: ann.started.is_set() and bob.started.is_set())
        ann_own: list[pb.SegmentResult] = []
        bob_own: list[pb.SegmentResult] = []
        await asyncio.gather(
            speak(live.stub, speaker_config("meet", "ann", ("eng",)), pcm, ann_own),
            speak(live.stub, speaker_config("meet", "bob"), pcm, bob_own),
        )
        await wait_for(lambda: len(ann.segments) == len(bob_own) and len(bob.segments) == len(ann_own))
        done.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    assert ann_own and bob_own
    assert {e.speaker for e in ann.segments} == {"bob"} and {e.speaker for e in bob.segments} == {"ann"}
    assert all([t.target_language for t in e.segment.translations] == ["fra"] for e in ann.segments)
    assert all([t.target_language for t in e.segment.translations] == ["spa"] for e in bob.segments)
    # each speaker's own stream: its own targets only (ann asked for eng; bob for none), never
    # the language its own listener hears (its speech is not translated for itself)
    assert all([t.target_language for t in s.translations] == ["eng"] for s in ann_own)
    assert all(not s.translations for s in bob_own)


async def test_listen_refusals_say_what_to_fix(test_model_dir: Path) -> None:
    async with serving(room_settings(test_model_dir)) as live:
        for request, code, words in [
            (pb.ListenRequest(room="bad room", language="spa"), grpc.StatusCode.INVALID_ARGUMENT, "room name"),
            (pb.ListenRequest(room="talk", language="xxx"), grpc.StatusCode.INVALID_ARGUMENT, "unknown language"),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in live.stub.Listen(request):
                    pass
            assert err.value.code() == code and words in (err.value.details() or ""), err.value
        with contextlib.suppress(Exception):
            pass


async def refused(call) -> grpc.aio.AioRpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in call:
            pass
    return err.value


async def test_room_rights_and_caps_from_the_tokens_file(test_model_dir: Path, tmp_path: Path) -> None:
    """docs/security.md and docs/rooms.md: ``listen=``, ``publish=``, ``room=`` patterns per token;
    a tenant's ``rooms=`` and ``listeners=`` caps; an empty room goes away after ``idle_room_s``."""
    tokens = tmp_path / "tokens"
    tokens.write_text(
        "lis listen=talk-*\n"  # listen only (every other permission: none listed)
        "pub stream publish=talk-*\n"  # publish only
        "oth room=other-*\n"  # both, another room pattern
        "cap room=* tenant=small rooms=1 listeners=2\n"
    )
    settings = room_settings(test_model_dir, idle_room_s=0.2)
    settings.auth.tokens_file = tokens
    async with serving(settings) as live:
        stub = live.stub

        def listen_call(token: str, room: str, language: str = "spa"):  # type: ignore[no-untyped-def]
            return stub.Listen(pb.ListenRequest(room=room, language=language), metadata=bearer(token))

        async def publish(token: str, room: str) -> grpc.aio.AioRpcError:
            async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
                yield pb.StreamingTranslateRequest(config=speaker_config(room))
                await asyncio.Event().wait()  # held open: the refusal must come without more

            return await refused(stub.StreamingTranslate(requests(), metadata=bearer(token)))

        err = await publish("lis", "talk-1")
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "may not publish" in err.details(), err
        err = await refused(listen_call("pub", "talk-1"))  # no listen right at all: refused as the call opens
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "may listen to no room" in err.details(), err
        for err in (await refused(listen_call("oth", "talk-1")), await publish("oth", "talk-1")):
            assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "talk-1" in err.details(), err

        # the allowed ones: a listener (lis) hears a speaker (pub)
        first = listen_call("lis", "talk-1")
        assert (await first.read()).WhichOneof("event") == "started"

        # caps: tenant "small" may hold 1 room and 2 listeners
        rooms = registry(live)
        a1 = listen_call("cap", "a")
        assert (await a1.read()).WhichOneof("event") == "started"
        err = await refused(listen_call("cap", "b"))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "rooms=1" in err.details(), err
        a2 = listen_call("cap", "a", "fra")
        assert (await a2.read()).WhichOneof("event") == "started"
        err = await refused(listen_call("cap", "a"))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "listeners=2" in err.details(), err
        # an empty room goes away after idle_room_s, and its slot with it
        a1.cancel()
        a2.cancel()
        await wait_for(lambda: ("small", "a") not in rooms.rooms)
        b = listen_call("cap", "b")
        assert (await b.read()).WhichOneof("event") == "started"
        b.cancel()
        first.cancel()


async def test_a_draining_server_tells_its_listeners_then_ends_them_unavailable(
    test_model_dir: Path, shared_audio: Path
) -> None:
    """docs/rooms.md, Listening 5: ``draining``, then UNAVAILABLE after ``server.drain_s`` (no new
    listener meanwhile: tests/session/rooms/test_room_core.py; here gRPC has already closed the port). And
    ``translate_svc_room_fanout_bytes_total{door="grpc"}`` counts the bytes of every room output
    written (here: one listener's segments)."""
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 10.0, 16000).tobytes()
    settings = room_settings(test_model_dir)
    settings.server.drain_s = 1.0
    fanout = metrics.ROOM_FANOUT_BYTES.labels("grpc")
    async with serving(settings) as live:
        heard: list[pb.ListenEvent] = []
        started = asyncio.Event()

        async def listener() -> None:
            async for ev in live.stub.Listen(pb.ListenRequest(room="hall", language="spa")):
                heard.append(ev)
                started.set()

        task = asyncio.create_task(listener())
        await started.wait()
        bytes_before = fanout._value.get()
        own: list[pb.SegmentResult] = []
        await speak(live.stub, speaker_config("hall"), pcm, own)
        await wait_for(lambda: sum(e.WhichOneof("event") == "segment" for e in heard) == len(own))
        written = sum(e.ByteSize() for e in heard if e.WhichOneof("event") == "segment")
        assert own and fanout._value.get() - bytes_before == written

        stopping = asyncio.create_task(live.server.stop(grace=10))
        await wait_for(lambda: heard[-1].WhichOneof("event") == "draining")
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await task
        await stopping
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE and "listen again" in (ended.value.details() or "")
    kinds = [e.WhichOneof("event") for e in heard]
    assert kinds == ["started", *["segment"] * len(own), "draining"], kinds
    assert 0 < heard[-1].draining.remaining_ms <= 1000
