"""Issue 59: a room across processes through the cluster store (``session/rooms/link.py``), with two
registries standing for two processes, each with its own ``MemoryStore`` holder over one shared
``ClusterState`` (as a node's workers share its hub): a speaker in one, listeners in the other.
Before, each registry kept its rooms in its own dicts: the other's listeners got nothing, and their
language never reached the speaker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.room_fakes import CARD, FakeStream
from tests.support.rooms import wait_for
from translate_svc.cluster.memory import MemoryStore
from translate_svc.cluster.state import ClusterState
from translate_svc.cluster.store import StoreUnavailable
from translate_svc.errors import NotReady
from translate_svc.session.rooms.config import RoomConfig
from translate_svc.session.rooms.listener import Listener, ListenStarted, RoomOutput
from translate_svc.session.rooms.registry import RoomRegistry
from translate_svc.session.rooms.room import Speaker
from translate_svc.session.tenants.counters import LocalCounters
from translate_svc.session.tenants.tenant import ALL_ROOMS, DEFAULT_TENANT
from translate_svc.types import SegmentResult, Transcript, Translation

pytestmark = pytest.mark.unit


class FlakyStore(MemoryStore):
    """A ``MemoryStore`` that can be made unreachable (every call raises ``StoreUnavailable``)."""

    down = False

    def __getattribute__(self, name: str) -> object:
        attr = super().__getattribute__(name)
        if name in {"publish", "subscribe", "append", "read", "join", "leave", "members", "watch"} and self.down:

            async def unavailable(*args: object, **kwargs: object) -> None:
                raise StoreUnavailable("the cluster store is unreachable (test)")

            return unavailable
        return attr


#: the registries a test made, closed after it (as a stopping server closes its own): no task of
#: theirs outlives the test
_MADE: list[RoomRegistry] = []


@pytest.fixture(autouse=True)
async def _closed() -> AsyncIterator[None]:
    yield
    while _MADE:
        await _MADE.pop().close(timeout_s=5.0)


def process(state: ClusterState, name: str, **config: float | str) -> tuple[RoomRegistry, LocalCounters, FlakyStore]:
    counters, store = LocalCounters(), FlakyStore(state, holder=name)
    registry = RoomRegistry(RoomConfig(**config), counters, lambda: CARD, store=store)  # type: ignore[arg-type]
    _MADE.append(registry)
    return registry, counters, store


async def join(registry: RoomRegistry, language: str, participant: str = "") -> Listener:
    return await registry.join("hall", language, participant=participant, tenant=DEFAULT_TENANT, rights=ALL_ROOMS)


async def speak(registry: RoomRegistry, stream: FakeStream, participant: str = "") -> Speaker:
    return await registry.speak(
        "hall",
        session_id=f"s-{id(stream)}",
        participant=participant,
        tenant=DEFAULT_TENANT,
        rights=ALL_ROOMS,
        own=(),
        retarget=stream.retarget,
    )


def final(k: int, *langs: str) -> SegmentResult:
    return SegmentResult(
        k, 1000 * k, 1000 * k + 700, Transcript("eng", f"said {k}"), tuple(Translation(lg, f"{lg} {k}") for lg in langs)
    )


async def take(listener: Listener, n: int) -> list[object]:
    """The listener's next ``n`` events."""
    got: list[object] = []
    events = listener.events()
    async with asyncio.timeout(5):
        while len(got) < n:
            got.append(await anext(events))
    return got


def spans(events: list[object]) -> list[tuple[int, int, int, bool]]:
    return [
        (ev.event.segment_id, ev.event.start_ms, ev.event.end_ms, ev.backlog)
        for ev in events
        if isinstance(ev, RoomOutput)
    ]


async def test_a_listener_of_another_process_drives_the_retarget_and_gets_backlog_then_live_once() -> None:
    state = ClusterState()
    a, _, _ = process(state, "a", idle_s=0.0)
    b, _, _ = process(state, "b", idle_s=0.0)
    stream = FakeStream()
    spk = await speak(a, stream)
    early = await join(b, "spa")
    await wait_for(lambda: stream.calls == [("spa",)])  # b's Spanish reached a's speaker
    for k in range(3):
        spk.output(final(k, "spa"))
    got = await take(early, 4)
    # a's speaker is present; its Spanish came on after b's listener joined (not known then: -1)
    assert isinstance(got[0], ListenStarted) and got[0].speakers == ((spk.speaker_id, -1),)
    assert spans(got) == [(k, 1000 * k, 1000 * k + 700, False) for k in range(3)]
    late = await join(b, "spa")  # b reads already: its backlog holds a's three
    first = await take(late, 4)
    assert isinstance(first[0], ListenStarted) and first[0].backlog == 3
    assert spans(first) == [(k, 1000 * k, 1000 * k + 700, True) for k in range(3)]
    for k in range(3, 5):
        spk.output(final(k, "spa"))
    assert spans(await take(late, 2)) == [(3, 3000, 3700, False), (4, 4000, 4700, False)]
    assert spans(await take(early, 2)) == [(3, 3000, 3700, False), (4, 4000, 4700, False)]
    assert late.queued == 0 and early.queued == 0  # nothing twice
    # every listener of b leaves: a's speaker drops Spanish; one joining later reads the store's backlog
    early.close()
    late.close()
    await wait_for(lambda: stream.calls[-1] == ())
    again = await join(b, "spa")
    replay = await take(again, 6)
    assert spans(replay) == [(k, 1000 * k, 1000 * k + 700, True) for k in range(5)]
    again.close()
    spk.leave()


async def test_a_participant_of_another_process_adds_no_language_to_its_own_stream() -> None:
    state = ClusterState()
    a, _, _ = process(state, "a", idle_s=0.0)
    b, _, _ = process(state, "b", idle_s=0.0)
    ann_stream, bob_stream = FakeStream(), FakeStream()
    ann = await speak(a, ann_stream, participant="ann")
    await speak(a, bob_stream, participant="bob")
    ears = await join(b, "fra", participant="ann")
    await wait_for(lambda: bob_stream.calls == [("fra",)])
    assert ann_stream.calls == []
    ann.output(final(0, "fra"))  # not to ann's own ears, on whichever process they are
    await asyncio.sleep(0.05)
    assert [ev for ev in await take(ears, 1) if isinstance(ev, ListenStarted)]
    assert ears.queued == 0


async def test_the_store_down_refuses_new_parties_unavailable_and_cuts_no_admitted_one() -> None:
    state = ClusterState()
    a, counters, store = process(state, "a", idle_s=0.0, on_store_loss="refuse")
    stream = FakeStream()
    spk = await speak(a, stream)
    here = await join(a, "spa")
    store.down = True
    with pytest.raises(NotReady):
        await join(a, "spa")
    with pytest.raises(NotReady):
        await speak(a, FakeStream())
    assert counters.count("room_listeners") == 1 and counters.count("room_speakers") == 0
    # the admitted speaker goes on: its listener here hears it; what the store did not take is counted
    for k in range(3):
        spk.output(final(k, "spa"))
    assert spans(await take(here, 4)) == [(k, 1000 * k, 1000 * k + 700, False) for k in range(3)]
    assert spk.relay is not None
    await wait_for(lambda: spk.relay is not None and spk.relay.dropped >= 3)
    store.down = False
    spk.output(final(3, "spa"))
    assert spans(await take(here, 1)) == [(3, 3000, 3700, False)]
    here.close()
    spk.leave()


async def test_under_node_new_parties_meet_on_their_process_while_the_store_is_down_and_rejoin_after() -> None:
    """``cluster.on_redis_loss = "node"``: with the store down, a new listener on the speaker's
    process hears it at once (directly) and a new listener on another process is admitted alone;
    once the store answers it joins (no restart): the speaker's next results reach it, once each."""
    state = ClusterState()
    a, _, store_a = process(state, "a", idle_s=0.0)
    b, _, store_b = process(state, "b", idle_s=0.0)
    stream = FakeStream()
    spk = await speak(a, stream, participant="p1")
    store_a.down = store_b.down = True
    here = await join(a, "spa")
    there = await join(b, "spa")
    newcomer = await speak(b, FakeStream(), participant="p2")  # a speaker too, alone on b
    spk.output(final(0, "spa"))
    got = await take(here, 2)
    assert spans(got) == [(0, 0, 700, False)]
    assert there.queued == 0
    # the store refused segment 0 (the relay tried while it was down): only then is it back, so the
    # rejoined listener's first segment does not depend on when the relay's task ran
    await wait_for(lambda: spk.relay is not None and spk.relay.dropped >= 1)
    store_a.down = store_b.down = False
    await wait_for(lambda: any(m.startswith(b.link.origin) for m in state.members("room/default/hall/ears")))
    await wait_for(lambda: len(state.members("room/default/hall/speakers")) == 2)
    for k in range(1, 3):
        spk.output(final(k, "spa"))
    first = await take(there, 3)
    assert isinstance(first[0], ListenStarted)
    assert spans(first) == [(1, 1000, 1700, False), (2, 2000, 2700, False)]
    assert spans(await take(here, 2)) == [(1, 1000, 1700, False), (2, 2000, 2700, False)]
    assert there.queued == 0 and here.queued == 0
    for party in (here, there):
        party.close()
    newcomer.leave()
    spk.leave()
