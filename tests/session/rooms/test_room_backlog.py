"""Issue 57: a room's backlog (``session/rooms/backlog.py``) and the registry's room and listener
bounds, with plain values: the backlog keeps text only, bounded by entries and bytes per room and
per tenant (the oldest go); a tenant's rooms and listeners are capped by default; a room whose last
party leaves gives its slot back at once and its backlog waits; a listen ended at once hears
nothing more, and a door stuck sending to a client that reads nothing is cut."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.support.room_fakes import CARD, Clock, FakeStream, speaker
from translate_svc.errors import Overloaded, Revoked
from translate_svc.session.rooms.backlog import ENTRY_BYTES, BacklogConfig, Backlogs, entry_bytes
from translate_svc.session.rooms.config import RoomConfig
from translate_svc.session.rooms.listener import ListenCut, RoomOutput, until_ended
from translate_svc.session.rooms.registry import ListenTooLong, RoomRegistry
from translate_svc.session.tenants.counters import LocalCounters
from translate_svc.session.tenants.tenant import ALL_ROOMS, DEFAULT_TENANT, Tenant, TenantCaps
from translate_svc.types import SegmentResult, Transcript, Translation

pytestmark = pytest.mark.unit


def result(k: int, text: str = "hola", lang: str = "spa") -> SegmentResult:
    speech = Translation(lang, text, audio=np.ones(48000, np.float32), sample_rate_hz=48000)
    return SegmentResult(k, 1000 * k, 1000 * k + 900, Transcript("eng", "hello"), (speech,))


def test_the_backlog_keeps_text_only() -> None:
    room = Backlogs(BacklogConfig()).room("t")
    room.keep("spa", 0.0, RoomOutput("s", result(0)))
    (replayed,) = room.replay("spa", "", 1.0)
    assert isinstance(replayed.event, SegmentResult) and replayed.backlog
    (t,) = replayed.event.translations
    assert t.text == "hola" and t.audio is None and t.opus is None and replayed.event.transcript is not None
    assert room.bytes == entry_bytes(replayed.event) < ENTRY_BYTES + 32


def test_a_rooms_backlog_is_bounded_by_entries_and_bytes_its_oldest_going_first() -> None:
    room = Backlogs(BacklogConfig(seconds=600, room_entries=3, room_bytes=10_000)).room("t")
    for k in range(5):
        room.keep("spa" if k % 2 else "fra", float(k), RoomOutput("s", result(k)))
    assert room.entries == 3
    assert [o.event.segment_id for o in room.replay("fra", "", 5.0)] == [2, 4]
    assert [o.event.segment_id for o in room.replay("spa", "", 5.0)] == [3]
    big = Backlogs(BacklogConfig(seconds=600, room_entries=100, room_bytes=3 * (ENTRY_BYTES + 100)))
    room = big.room("t")
    for k in range(10):
        room.keep("spa", float(k), RoomOutput("s", result(k, "x" * 90)))
    assert room.bytes <= 3 * (ENTRY_BYTES + 100) and room.entries == 3  # 354 B each
    assert [o.event.segment_id for o in room.replay("spa", "", 10.0)] == [7, 8, 9]


def test_a_tenants_backlog_is_bounded_over_its_rooms_other_tenants_untouched() -> None:
    backlogs = Backlogs(BacklogConfig(seconds=600, tenant_entries=4, tenant_bytes=1 << 20))
    a, b, other = backlogs.room("t"), backlogs.room("t"), backlogs.room("u")
    for k in range(3):
        a.keep("spa", float(k), RoomOutput("s", result(k)))
        other.keep("spa", float(k), RoomOutput("s", result(k)))
    for k in range(3, 6):
        b.keep("spa", float(k), RoomOutput("s", result(k)))
    # the tenant's 4 newest stay, whatever their room: a lost its oldest two
    assert [o.event.segment_id for o in a.replay("spa", "", 6.0)] == [2]
    assert [o.event.segment_id for o in b.replay("spa", "", 6.0)] == [3, 4, 5]
    assert backlogs.tenant_entries("t") == 4 and backlogs.tenant_entries("u") == 3
    a.clear()
    b.clear()
    assert backlogs.tenant_entries("t") == 0 and backlogs.tenant_bytes("t") == 0


def test_the_backlog_keeps_the_last_backlog_s_only() -> None:
    room = Backlogs(BacklogConfig(seconds=10)).room("t")
    for k in range(5):
        room.keep("spa", 4.0 * k, RoomOutput("s", result(k)))
    assert [o.event.segment_id for o in room.replay("spa", "", 16.0)] == [2, 3, 4]
    assert room.entries == 3  # the older ones were dropped as the newest came


def make(**config: float) -> tuple[RoomRegistry, LocalCounters]:
    counters = LocalCounters()
    return RoomRegistry(RoomConfig(**config), counters, lambda: CARD, clock=Clock()), counters  # type: ignore[arg-type]


async def test_a_tenant_without_stated_caps_gets_the_default_caps() -> None:
    registry, _ = make(idle_s=0.0, max_rooms_per_tenant=2, max_listeners_per_tenant=3)
    acme = Tenant("acme")
    held = [await registry.listen(f"r{k}", "spa", tenant=acme, rights=ALL_ROOMS) for k in range(2)]
    with pytest.raises(Overloaded) as e:
        await registry.listen("r2", "spa", tenant=acme, rights=ALL_ROOMS)
    assert "rooms.max_rooms_per_tenant" in e.value.message
    held.append(await registry.listen("r0", "fra", tenant=acme, rights=ALL_ROOMS))
    with pytest.raises(Overloaded) as e:
        await registry.listen("r0", "spa", tenant=acme, rights=ALL_ROOMS)
    assert "tenant 'acme' is at its cap of 3 room listeners (rooms.max_listeners_per_tenant)" in e.value.message
    await registry.listen("r9", "spa", tenant=Tenant("other"), rights=ALL_ROOMS)  # another tenant
    # the tokens file's caps replace them
    stated = Tenant("big", TenantCaps(rooms=3))
    for k in range(3):
        await registry.listen(f"r{k}", "spa", tenant=stated, rights=ALL_ROOMS)
    for listener in held:
        listener.close()


async def test_a_room_whose_last_party_leaves_gives_its_slot_back_and_its_backlog_waits() -> None:
    registry, counters = make(idle_s=60.0, max_rooms=1, backlog_s=600.0)
    stream = FakeStream()
    talk = await speaker(registry, stream, room="talk")
    talk.output(result(0))
    talk.leave()
    assert counters.count("rooms") == 0 and ("default", "talk") in registry.rooms  # waiting, holding nothing
    quiet = await registry.listen("quiet", "spa", tenant=DEFAULT_TENANT, rights=ALL_ROOMS)  # the node's one room
    quiet.close()  # no backlog: gone at once
    assert ("default", "quiet") not in registry.rooms
    late = await registry.listen("talk", "spa", tenant=DEFAULT_TENANT, rights=ALL_ROOMS)
    assert late._first[0].backlog == 1  # type: ignore[union-attr]
    late.close()
    # at most a tenant's room cap of empty rooms wait: the oldest go
    registry2, _ = make(idle_s=60.0, max_rooms_per_tenant=2, backlog_s=600.0)
    for name in ("a", "b", "c"):
        s = await speaker(registry2, FakeStream(), room=name)
        s.output(result(0))
        s.leave()
    assert sorted(n for _, n in registry2.rooms) == ["b", "c"]


async def test_a_listen_ended_at_once_hears_nothing_more_and_a_stuck_door_is_cut() -> None:
    registry, _ = make(idle_s=0.0, max_listen_s=0.05, listener_queue=8)
    listener = await registry.listen("talk", "spa", tenant=DEFAULT_TENANT, rights=ALL_ROOMS)
    talk = await speaker(registry, FakeStream(), room="talk")
    talk.output(result(0))
    events = listener.events()
    assert type(await anext(events)).__name__ == "ListenStarted"
    stuck = asyncio.Event()

    async def sending() -> None:  # a door whose write never completes
        async for _ in events:
            await stuck.wait()

    with pytest.raises(ListenCut) as cut:
        await until_ended(sending(), listener, grace_s=0.05)
    assert isinstance(cut.value.error, ListenTooLong) and "rooms.max_listen_s" in cut.value.error.message
    talk.output(result(1))
    assert listener.queued == 0  # an ended listen takes nothing more
    listener.close()
    # revoked at once: whatever was queued is not sent, the error comes next
    listener = await registry.listen("talk", "spa", tenant=DEFAULT_TENANT, rights=ALL_ROOMS)
    talk.output(result(2))
    listener.end(Revoked("gone"))
    with pytest.raises(Revoked):
        async for _ in listener.events():
            pass
    listener.close()
    talk.leave()
