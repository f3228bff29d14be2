"""The room core (``session/rooms/``: the registry, the room, the listener) with plain values: a speaker
whose stream is a fake (its ``retarget`` records the targets and answers the first segment id that
uses them, as ``StreamDriver.retarget`` does), a fake clock, no server. What docs/rooms.md promises:
a language joining mid-talk gets output from the segment named in ``started``; targets follow the
listeners as they come and go; backlog, bounded queues with their ``dropped`` notices, the drain,
and the metrics' values."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from tests.support.room_fakes import CARD, Clock, FakeStream, speaker
from translate_svc.errors import InvalidInput, NotReady, Overloaded, ShuttingDown
from translate_svc.session.events import Draining
from translate_svc.session.rooms.config import RoomConfig
from translate_svc.session.rooms.listener import Listener, ListenStarted, OutputDropped, RoomOutput
from translate_svc.session.rooms.registry import RoomRegistry
from translate_svc.session.tenants.counters import LocalCounters
from translate_svc.session.tenants.tenant import ALL_ROOMS, DEFAULT_TENANT
from translate_svc.types import (
    InterimResult,
    SegmentError,
    SegmentResult,
    Transcript,
    Translation,
)

pytestmark = pytest.mark.unit


def make(**config: float) -> tuple[RoomRegistry, LocalCounters, Clock]:
    counters, clock = LocalCounters(), Clock()
    registry = RoomRegistry(RoomConfig(**{"idle_s": 0.0, **config}), counters, lambda: CARD, clock=clock)  # type: ignore[arg-type]
    return registry, counters, clock


async def listen(registry: RoomRegistry, language: str, room: str = "talk", participant: str = "") -> Listener:
    return await registry.listen(room, language, participant=participant, tenant=DEFAULT_TENANT, rights=ALL_ROOMS)


def final(segment_id: int, *langs: str, error: bool = False) -> SegmentResult:
    return SegmentResult(
        segment_id,
        start_ms=1000 * segment_id,
        end_ms=1000 * segment_id + 800,
        transcript=Transcript("eng", f"said {segment_id}"),
        translations=tuple(Translation(lang, f"{lang} {segment_id}") for lang in langs),
        error=SegmentError("INTERNAL", "it failed") if error else None,
    )


def caption(segment_id: int, *langs: str) -> InterimResult:
    return InterimResult(
        segment_id, 1000 * segment_id, 1000 * segment_id + 300, translations=tuple(Translation(lg, "x") for lg in langs)
    )


async def queued(listener: Listener) -> list[object]:
    """What the listener's reader gets now, without waiting (``events`` would wait for more)."""
    out: list[object] = []

    async def take() -> None:
        it: AsyncIterator[object] = listener.events()
        while listener._first or listener._queue or listener._untold:
            out.append(await anext(it))

    await take()
    return out


async def outputs(listener: Listener) -> list[tuple[int, tuple[str, ...]]]:
    """(segment id, its translations' languages) of each room output now queued."""
    return [
        (ev.event.segment_id, tuple(t.target_language for t in ev.event.translations))
        for ev in await queued(listener)
        if isinstance(ev, RoomOutput)
    ]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- a language joining mid-talk ------------------------------------------------------------------


async def test_a_language_joining_mid_talk_gets_output_from_the_segment_named_in_started() -> None:
    registry, _, _ = make()
    stream = FakeStream()
    spk = await speaker(registry, stream)
    spa = await listen(registry, "spa")
    assert stream.calls == [("spa",)]  # ASR only while nobody listened (no retarget); then Spanish
    for i in range(3):
        spk.output(final(i, "spa"))
    # segment 3 is under way with the old targets: French is on from segment 4
    stream.next_id = 4
    fra = await listen(registry, "fra")
    assert stream.calls[-1] == ("fra", "spa")
    (started,) = [ev for ev in await queued(fra) if isinstance(ev, ListenStarted)]
    assert started.speakers == ((spk.speaker_id, 4),) and started.language == "fra" and started.backlog == 0
    spk.output(final(3, "spa"))
    spk.output(final(4, "fra", "spa"))
    spk.output(final(5, "fra", "spa"))
    assert await outputs(fra) == [(4, ("fra",)), (5, ("fra",))]
    # the Spanish listener: every segment since its join, cut to Spanish
    assert await outputs(spa) == [(i, ("spa",)) for i in range(6)]


async def test_a_failed_segment_reaches_only_the_languages_that_waited_for_it() -> None:
    registry, _, _ = make()
    stream = FakeStream()
    spk = await speaker(registry, stream)
    spa = await listen(registry, "spa")
    stream.next_id = 2
    fra = await listen(registry, "fra")
    spk.output(final(1, error=True))  # before French was on: Spanish only
    spk.output(final(2, error=True))  # both
    got_spa = [ev.event for ev in await queued(spa) if isinstance(ev, RoomOutput)]
    got_fra = [ev.event for ev in await queued(fra) if isinstance(ev, RoomOutput)]
    assert [(e.segment_id, e.error is not None, e.translations) for e in got_spa] == [(1, True, ()), (2, True, ())]
    assert [(e.segment_id, e.error is not None) for e in got_fra] == [(2, True)]


async def test_a_caption_its_final_already_superseded_is_not_published() -> None:
    registry, _, _ = make()
    spk = await speaker(registry, FakeStream())
    spa = await listen(registry, "spa")
    spk.output(caption(0, "spa"))
    spk.output(final(0, "spa"))
    spk.output(caption(0, "spa"))  # late: segment 0's final is out
    spk.output(caption(1, "spa"))
    kinds = [(type(ev.event).__name__, ev.event.segment_id) for ev in await queued(spa) if isinstance(ev, RoomOutput)]
    assert kinds == [("InterimResult", 0), ("SegmentResult", 0), ("InterimResult", 1)]


# -- targets follow the listeners -----------------------------------------------------------------


async def test_targets_follow_listeners_as_they_join_and_leave() -> None:
    registry, counters, _ = make()
    stream = FakeStream()
    spk = await speaker(registry, stream, own=("eng",))
    a, b, c = await listen(registry, "spa"), await listen(registry, "spa"), await listen(registry, "fra")
    assert stream.calls == [("eng", "spa"), ("eng", "fra", "spa")]  # a second Spanish listener: no retarget
    assert counters.count("room_listeners") == 3
    stream.next_id = 7
    c.close()
    assert stream.calls[-1] == ("eng", "spa") and set(spk.since) == {"eng", "spa"}
    a.close()
    assert stream.calls[-1] == ("eng", "spa")  # b still listens in Spanish
    b.close()
    assert stream.calls[-1] == ("eng",)  # its own target stays
    assert spk.targets == ("eng",) and counters.count("room_listeners") == 0
    b.close()  # idempotent: nothing released twice
    assert counters.count("room_listeners") == 0
    assert ("default", "talk") in registry.rooms  # the speaker still holds the room
    spk.leave()
    assert not registry.rooms and counters.count("rooms") == 0


async def test_a_participant_is_not_sent_its_own_speech_nor_adds_its_language() -> None:
    registry, _, _ = make()
    ann_stream, bob_stream = FakeStream(), FakeStream()
    ann = await speaker(registry, ann_stream, room="meet", participant="ann")
    bob = await speaker(registry, bob_stream, room="meet", participant="bob")
    ann_ears = await listen(registry, "fra", room="meet", participant="ann")
    assert ann_stream.calls == [] and bob_stream.calls == [("fra",)]  # only bob speaks into French
    (started,) = [ev for ev in await queued(ann_ears) if isinstance(ev, ListenStarted)]
    assert [s for s, _ in started.speakers] == ["bob"]
    ann.output(final(0, "fra"))  # (ann's stream would carry no French; even if it did: not to ann)
    bob.output(final(0, "fra"))
    assert [ev.speaker for ev in await queued(ann_ears) if isinstance(ev, RoomOutput)] == ["bob"]


async def test_a_listener_whose_language_a_speaker_cannot_take_is_refused_and_holds_nothing() -> None:
    registry, counters, _ = make()
    stream = FakeStream()
    await speaker(registry, stream)
    await listen(registry, "spa")
    stream.refuse = "deu"
    with pytest.raises(InvalidInput):
        await listen(registry, "deu")
    assert counters.count("room_listeners") == 1 and registry.listener_counts() == {"spa": 1}
    assert stream.calls[-1] == ("spa",)


async def test_a_room_is_listened_in_at_most_max_languages() -> None:
    registry, _, _ = make(max_languages=2)
    await listen(registry, "spa")
    await listen(registry, "fra")
    await listen(registry, "fra")  # a language in use: fine
    with pytest.raises(Overloaded, match=r"listened in 2 languages already.*\(fra, spa\)"):
        await listen(registry, "deu")


# -- backlog and slow listeners -------------------------------------------------------------------


async def test_a_late_joiner_gets_the_backlog_of_the_last_backlog_s_first() -> None:
    registry, _, clock = make(backlog_s=10.0)
    spk = await speaker(registry, FakeStream())
    await listen(registry, "spa")  # so that Spanish is on
    for i in range(4):
        spk.output(final(i, "spa"))
        spk.output(caption(i + 1, "spa"))  # captions are never kept
        clock.now += 4.0  # results at 0, 4, 8, 12 s
    late = await listen(registry, "spa")  # at 16 s: the last 10 s hold segments 2 (8 s) and 3 (12 s)
    spk.output(final(4, "spa"))
    events = await queued(late)
    assert isinstance(events[0], ListenStarted) and events[0].backlog == 2
    got = [(ev.event.segment_id, ev.backlog) for ev in events[1:] if isinstance(ev, RoomOutput)]
    assert got == [(2, True), (3, True), (4, False)]


async def test_a_slow_listener_loses_its_oldest_and_is_told_how_many_before_its_next_event() -> None:
    registry, _, _ = make(listener_queue=3)
    spk = await speaker(registry, FakeStream())
    slow = await listen(registry, "ita")
    dropped_before = sample("translate_svc_room_dropped_total", language="ita")
    for i in range(8):
        spk.output(final(i, "ita"))
    assert slow.queued == 3 and slow.dropped == 5
    events = await queued(slow)
    assert isinstance(events[0], ListenStarted)
    assert events[1] == OutputDropped(count=5, total=5)
    assert [ev.event.segment_id for ev in events[2:] if isinstance(ev, RoomOutput)] == [5, 6, 7]
    spk.output(final(8, "ita"))
    spk.output(final(9, "ita"))
    assert await outputs(slow) == [(8, ("ita",)), (9, ("ita",))]  # told once: nothing more was lost
    for i in range(10, 15):
        spk.output(final(i, "ita"))
    assert (await queued(slow))[0] == OutputDropped(count=2, total=7)
    assert sample("translate_svc_room_dropped_total", language="ita") - dropped_before == 7


# -- the drain ------------------------------------------------------------------------------------


async def test_a_drain_tells_every_listener_in_line_then_ends_it_shutting_down() -> None:
    registry, _, _ = make()
    spk = await speaker(registry, FakeStream())
    a, b = await listen(registry, "spa"), await listen(registry, "fra")
    spk.output(final(0, "spa", "fra"))
    notice = Draining(deadline_unix_ms=123, remaining_ms=50)
    registry.drain(notice, 0.05)
    with pytest.raises(NotReady, match="shutting down"):
        await listen(registry, "spa")  # no new listener (UNAVAILABLE on the wire)
    for listener in (a, b):
        got: list[object] = []
        with pytest.raises(ShuttingDown, match="listen again"):
            async with asyncio.timeout(10):  # a bound on a hung test; the ending comes after 0.05 s
                async for ev in listener.events():
                    got.append(ev)
        assert [type(ev).__name__ for ev in got] == ["ListenStarted", "RoomOutput", "Draining"]
        assert got[-1] is notice
        listener.close()
    assert not registry.rooms or all(not r.listeners for r in registry.rooms.values())


# -- metrics --------------------------------------------------------------------------------------


async def test_the_room_metrics_count_rooms_listeners_by_language_and_drops_per_leaving_listener() -> None:
    registry, _, _ = make(listener_queue=2)
    rooms0 = sample("translate_svc_rooms")
    deu0, ita0 = (
        sample("translate_svc_room_listeners", language="deu"),
        sample("translate_svc_room_listeners", language="ita"),
    )
    hist_count0 = sample("translate_svc_room_listener_dropped_count")
    hist_sum0 = sample("translate_svc_room_listener_dropped_sum")
    spk = await speaker(registry, FakeStream(), room="m1")
    x = await listen(registry, "deu", room="m1")
    y = await listen(registry, "deu", room="m2")
    z = await listen(registry, "ita", room="m2")
    assert sample("translate_svc_rooms") - rooms0 == 2
    assert sample("translate_svc_room_listeners", language="deu") - deu0 == 2
    assert sample("translate_svc_room_listeners", language="ita") - ita0 == 1
    for i in range(5):
        spk.output(final(i, "deu"))  # x holds 2 of 5: 3 dropped
    x.close()
    y.close()
    assert sample("translate_svc_room_listeners", language="deu") - deu0 == 0
    assert sample("translate_svc_room_listener_dropped_count") - hist_count0 == 2
    assert sample("translate_svc_room_listener_dropped_sum") - hist_sum0 == 3
    assert sample("translate_svc_rooms") - rooms0 == 2  # m1 has its speaker, m2 its Italian listener
    z.close()
    spk.leave()
    assert sample("translate_svc_rooms") - rooms0 == 0  # idle_s 0: gone at once
    assert sample("translate_svc_room_listeners", language="ita") - ita0 == 0
