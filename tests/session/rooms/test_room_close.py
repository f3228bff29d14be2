"""A stopping server makes what its rooms owe the cluster store and the room events
(``RoomRegistry.close``, called by ``Application.stop`` before the store and the webhooks' outbox
close).

Before, the calls of parties that left (their membership left, a speaker's last output appended)
and the herald's leave (which tells ``room.ended``) waited in outboxes whose tasks nobody awaited:
a server that stopped right after a room's last party left on its drain closed the store under
them, and the room never ended for the webhooks. Two registries over one ``ClusterState`` stand
for two processes; the store's ``leave`` is held at a gate so that the close is seen waiting for it.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.support.room_fakes import CARD, FakeStream
from tests.support.waiting import until
from translate_svc.cluster.memory import MemoryStore
from translate_svc.cluster.state import ClusterState
from translate_svc.session.rooms.config import RoomConfig
from translate_svc.session.rooms.registry import RoomRegistry
from translate_svc.session.tenants.counters import LocalCounters
from translate_svc.session.tenants.tenant import ALL_ROOMS, DEFAULT_TENANT
from translate_svc.webhooks.events import Event

pytestmark = pytest.mark.unit

EARS = "room/default/hall/ears"
SPEAKERS = "room/default/hall/speakers"


class GatedStore(MemoryStore):
    """A ``MemoryStore`` whose ``leave`` waits for ``gate`` (a slow or hung store)."""

    def __init__(self, state: ClusterState, holder: str) -> None:
        super().__init__(state, holder=holder)
        self.gate = asyncio.Event()
        self.gate.set()
        self.leaving = 0

    async def leave(self, group: str, member: str) -> int | None:
        self.leaving += 1
        await self.gate.wait()
        return await super().leave(group, member)


class Events:
    """An ``EventSink`` that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.type for e in self.events]


def process(state: ClusterState, name: str) -> tuple[RoomRegistry, GatedStore, Events]:
    store = GatedStore(state, name)
    registry = RoomRegistry(RoomConfig(idle_s=60.0), LocalCounters(), lambda: CARD, store=store)
    events = Events()
    registry.events = events  # type: ignore[assignment]
    return registry, store, events


async def test_close_makes_the_leaving_parties_store_calls_and_tells_the_room_ended() -> None:
    state = ClusterState()
    a, store, events = process(state, "a")
    other = MemoryStore(state, holder="b")
    stream = FakeStream()
    speaker = await a.speak(
        "hall",
        session_id="s1",
        participant="",
        tenant=DEFAULT_TENANT,
        rights=ALL_ROOMS,
        own=(),
        retarget=stream.retarget,
    )
    listener = await a.join("hall", "spa", tenant=DEFAULT_TENANT, rights=ALL_ROOMS)
    assert await other.members(EARS) and await other.members(SPEAKERS)
    await until(lambda: events.kinds() == ["room.started"])  # the herald's join: a task of its own

    store.gate.clear()  # the store answers the leaves only when the test says
    listener.close()
    speaker.leave()  # the room's last party: its slots given back, the herald told
    closing = asyncio.create_task(a.close(timeout_s=60.0))
    await until(lambda: store.leaving == 3)  # the listener's, the speaker's and the herald's leave, under way
    assert not closing.done()  # close waits for the calls owed
    store.gate.set()
    await closing
    # when close returns, the other processes see nobody here, and the room ended once
    assert await other.members(EARS) == {} and await other.members(SPEAKERS) == {}
    assert events.kinds() == ["room.started", "room.ended"]
    assert {e.data["room_id"] for e in events.events} == {events.events[0].data["room_id"]}


async def test_close_gives_up_on_a_hung_store_within_its_bound_and_counts_what_it_dropped() -> None:
    state = ClusterState()
    a, store, _ = process(state, "a")
    listener = await a.join("hall", "spa", tenant=DEFAULT_TENANT, rights=ALL_ROOMS)
    store.gate.clear()  # the store never answers a leave
    listener.close()
    assert a.link is not None
    chores = a.link._chores
    await asyncio.wait_for(a.close(timeout_s=0.2), 30)  # (the bound of a hung test, not a timing assertion)
    # the listener's leave (being made when the bound passed) is dropped, counted; nothing is pending
    assert chores.dropped == 1 and chores.done
    chores.put(lambda: store.members(EARS))  # a call after the close: counted, not silently lost
    assert chores.dropped == 2
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and "room" in t.get_name()]
