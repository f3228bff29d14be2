"""Issue 90: a room's listener chooses a speaking rate (``speed``). The room core with plain values
(a fake stream that records its retargets, as ``tests/session/rooms/test_room_core.py``), and two
registries over one store for another process's listener (``test_room_link.py``'s way).

A listener at a rate adds a (language, rate) rendition to each speaker's task (one more vocoder row,
not a decoder row), dropped when its last listener leaves; each listener hears the translation's
speech at its own rate where the speaker made it, else as made (its ``speech_rate`` says); the
renditions never reach a listener as such, nor the backlog; ``rooms.max_rates`` bounds the pairs in
use; a rate out of range is refused naming ``speed``; a rate chosen on another process reaches the
speaker through the store, and its speech crosses back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from tests.support.room_fakes import CARD, Clock, FakeStream, speaker
from tests.support.rooms import wait_for
from translate_svc.cluster.memory import MemoryStore
from translate_svc.cluster.state import ClusterState
from translate_svc.errors import InvalidInput, Overloaded
from translate_svc.session.rooms import wire
from translate_svc.session.rooms.config import RoomConfig
from translate_svc.session.rooms.listener import Listener, ListenStarted, RoomOutput
from translate_svc.session.rooms.registry import RoomRegistry
from translate_svc.session.tenants.counters import LocalCounters
from translate_svc.session.tenants.tenant import ALL_ROOMS, DEFAULT_TENANT
from translate_svc.types import SegmentResult, Transcript, Translation

pytestmark = pytest.mark.unit

_MADE: list[RoomRegistry] = []


@pytest.fixture(autouse=True)
async def _closed() -> AsyncIterator[None]:
    yield
    while _MADE:
        await _MADE.pop().close(timeout_s=5.0)


def make(store: MemoryStore | None = None, **config: float) -> RoomRegistry:
    registry = RoomRegistry(
        RoomConfig(**{"idle_s": 0.0, **config}),  # type: ignore[arg-type]
        LocalCounters(),
        lambda: CARD,
        clock=Clock(),
        store=store,
    )
    _MADE.append(registry)
    return registry


async def listen(registry: RoomRegistry, language: str, speed: float | None = None, participant: str = "") -> Listener:
    return await registry.join(
        "talk", language, participant=participant, tenant=DEFAULT_TENANT, rights=ALL_ROOMS, speed=speed
    )


def samples(seconds: float) -> int:
    return round(16000 * seconds)


def speech(seconds: float, rate: float | None) -> Translation:
    """A Spanish translation with ``seconds`` of speech (a tone) said to be at ``rate``."""
    n = samples(seconds)
    wave = (0.3 * np.sin(np.arange(n) * 0.05)).astype(np.float32)
    return Translation("spa", "hola", wave, 16000, speech_rate=rate)


def final(k: int, renditions: tuple[float, ...] = ()) -> SegmentResult:
    """Segment ``k`` in Spanish and French at the speaker's rate 1, Spanish again at ``renditions``."""
    return SegmentResult(
        k,
        1000 * k,
        1000 * k + 900,
        Transcript("eng", f"said {k}"),
        (speech(1.2, 1.0), Translation("fra", "salut")),
        renditions=tuple(speech(1.2 / r, r) for r in renditions),
    )


def outs(listener: Listener) -> list[RoomOutput]:
    got: list[RoomOutput] = []
    while listener._first or listener._queue:
        ev = (listener._first or listener._queue).popleft()
        if isinstance(ev, RoomOutput):
            got.append(ev)
    return got


async def test_a_listeners_rate_becomes_a_rendition_of_each_speaker_while_someone_listens_at_it() -> None:
    registry = make()
    stream = FakeStream()
    await speaker(registry, stream)
    plain = await listen(registry, "spa")
    assert stream.rates[-1] == ()  # a listener who chose no rate: no rendition
    fast = await listen(registry, "spa", 1.5)
    assert (stream.calls[-1], stream.rates[-1]) == (("spa",), (("spa", 1.5),))
    calls = len(stream.calls)
    again = await listen(registry, "spa", 1.5)
    assert len(stream.calls) == calls  # the same rate: nothing more to make
    slow = await listen(registry, "fra", 0.75)
    assert (stream.calls[-1], stream.rates[-1]) == (("fra", "spa"), (("fra", 0.75), ("spa", 1.5)))
    for one in (fast, again):
        one.close()
    assert stream.rates[-1] == (("fra", 0.75),)
    slow.close()
    assert (stream.calls[-1], stream.rates[-1]) == (("spa",), ())
    plain.close()


async def test_each_listener_hears_the_speech_at_its_rate_and_no_one_hears_the_renditions() -> None:
    registry = make()
    stream = FakeStream()
    spk = await speaker(registry, stream, participant="ann", own=("eng",))
    plain, fast, also_fast, slow = [
        await listen(registry, "spa", speed)
        for speed in (None, 1.5, 1.5, 0.5)  # 0.5: not made
    ]
    spk.output(final(0, renditions=(1.5,)))
    spk.output(final(1))  # under way before the rates were asked for: as made, for everyone
    got = {name: outs(one) for name, one in (("plain", plain), ("fast", fast), ("also", also_fast), ("slow", slow))}
    for name, (first, second) in got.items():
        for out in (first, second):
            assert isinstance(out.event, SegmentResult) and out.event.renditions == ()
            assert [t.target_language for t in out.event.translations] == ["spa"]
        assert second.event.translations[0].speech_rate == 1.0  # segment 1: said as made
        (t,) = first.event.translations
        want = 1.5 if name in ("fast", "also") else 1.0
        assert t.speech_rate == want and t.audio is not None, name
        assert len(t.audio) == samples(1.2 / want), name
    assert got["fast"][0] is got["also"][0]  # one object per rate: a door encodes it once
    assert got["plain"][0] is not got["fast"][0]
    # the speaker's own client never sees the renditions, and the backlog keeps text only
    own = spk.own_view(final(2, renditions=(1.5,)))
    assert isinstance(own, SegmentResult) and own.renditions == ()
    late = await listen(registry, "spa", 1.5)
    backlog = [ev for ev in outs(late) if ev.backlog]
    assert len(backlog) == 2 and all(
        isinstance(ev.event, SegmentResult) and not ev.event.renditions and ev.event.translations[0].audio is None
        for ev in backlog
    )


async def test_a_rate_out_of_range_is_refused_naming_speed_and_the_rates_in_use_are_bounded() -> None:
    registry = make(max_rates=2)
    await speaker(registry, FakeStream())
    for bad in (0.25, 2.5, float("nan")):
        with pytest.raises(InvalidInput, match=r"speed must be a number from 0.5 to 2.0"):
            await listen(registry, "spa", bad)
    await listen(registry, "spa", 1.5)
    await listen(registry, "fra", 1.5)
    await listen(registry, "spa", 1.5)  # a pair in use: let in
    await listen(registry, "spa")  # no rate: let in
    with pytest.raises(Overloaded, match=r"rooms.max_rates\): listen at one of them \(fra at 1.5, spa at 1.5\)"):
        await listen(registry, "spa", 1.25)
    none = make(max_rates=0)
    with pytest.raises(InvalidInput, match=r"rooms\.max_rates is 0"):
        await none.join("other", "spa", tenant=DEFAULT_TENANT, rights=ALL_ROOMS, speed=1.5)


async def test_a_rate_chosen_on_another_process_reaches_the_speaker_and_its_speech_crosses_back() -> None:
    state = ClusterState()
    a = make(MemoryStore(state, holder="a"))
    b = make(MemoryStore(state, holder="b"))
    stream = FakeStream()
    spk = await speaker_linked(a, stream)
    there = await listen(b, "spa", 1.5)
    plain = await listen(b, "spa")
    await wait_for(lambda: stream.rates and stream.rates[-1] == (("spa", 1.5),))
    spk.output(final(0, renditions=(1.5,)))
    got: dict[str, RoomOutput] = {}
    for name, one in (("fast", there), ("plain", plain)):
        events = one.events()
        async with asyncio.timeout(5):
            while name not in got:
                ev = await anext(events)
                if isinstance(ev, RoomOutput):
                    got[name] = ev
                else:
                    assert isinstance(ev, ListenStarted)
    fast, slow = got["fast"].event.translations[0], got["plain"].event.translations[0]
    assert (fast.speech_rate, slow.speech_rate) == (1.5, 1.0)
    assert fast.audio is not None and slow.audio is not None
    # Opus across the store: the lengths as sent, the rate's ratio kept
    assert (len(fast.audio), len(slow.audio)) == (samples(1.2 / 1.5), samples(1.2))
    there.close()
    plain.close()
    await wait_for(lambda: stream.rates[-1] == ())


async def speaker_linked(registry: RoomRegistry, stream: FakeStream):  # type: ignore[no-untyped-def]
    return await registry.speak(
        "talk",
        session_id=f"s-{id(stream)}",
        tenant=DEFAULT_TENANT,
        rights=ALL_ROOMS,
        own=(),
        retarget=stream.retarget,
    )


def test_the_wire_carries_the_renditions_and_each_speechs_rate_with_the_speech_only() -> None:
    out = RoomOutput("ann", final(3, renditions=(1.5, 0.75)))
    _, back = wire.decode(wire.encode("o", out, "ann", speech=True))
    assert isinstance(back.event, SegmentResult)
    assert back.event.translations[0].speech_rate == 1.0
    assert [(r.speech_rate, len(r.audio) if r.audio is not None else 0) for r in back.event.renditions] == [
        (1.5, samples(1.2 / 1.5)),
        (0.75, samples(1.2 / 0.75)),
    ]
    _, text = wire.decode(wire.encode("o", out, "ann", speech=False))
    assert isinstance(text.event, SegmentResult) and text.event.renditions == ()


async def test_a_rate_from_a_float32_wire_and_the_same_rate_as_a_double_share_one_rendition() -> None:
    registry = make()
    stream = FakeStream()
    await speaker(registry, stream)
    wire32 = float(np.float32(1.3))  # gRPC's float: 1.2999999523162842
    assert wire32 != 1.3
    one = await listen(registry, "spa", wire32)
    two = await listen(registry, "spa", 1.3)  # a WebSocket's ?speed=1.3
    assert stream.rates[-1] == (("spa", 1.25),) and one.speed == two.speed == 1.25  # the grid's nearest step
