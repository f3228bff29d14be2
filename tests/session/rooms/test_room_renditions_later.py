"""A speaker's results spoken again at its listeners' rates after they are out (the room core with
plain values: a fake stream, and a ``render`` whose renditions the test makes by hand).

The speaker's own result reaches its listeners at the speaker's rate at once; a listener at a rate
gets each result once its speech at that rate is made, in order (a later result whose speech came
first waits for the earlier one), the events behind it waiting too; a rendition given up (the
engine busy past ``rooms.rendition_wait_s``) reaches it at the speaker's rate, its ``speech_rate``
saying so; a result whose rate nobody chose is not waited for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from tests.support.room_fakes import CARD, Clock, FakeStream
from translate_svc.session.rooms.config import RoomConfig
from translate_svc.session.rooms.listener import Listener, ListenStarted, Rendering, RoomOutput
from translate_svc.session.rooms.registry import RoomRegistry
from translate_svc.session.tenants.counters import LocalCounters
from translate_svc.session.tenants.tenant import ALL_ROOMS, DEFAULT_TENANT
from translate_svc.types import SegmentResult, SpokenUnits, Translation

pytestmark = pytest.mark.unit

UNITS = SpokenUnits("spa", 0, np.arange(60, dtype=np.int64), np.full(6, 10, np.int64), (3, 9, 3))


def speech(seconds: float, rate: float) -> Translation:
    wave = np.zeros(round(16000 * seconds), np.float32)
    return Translation("spa", "hola", wave, 16000, speech_rate=rate)


def final(k: int) -> SegmentResult:
    """Segment ``k`` in Spanish at the speaker's rate 1, its units kept (its task had renditions)."""
    return SegmentResult(k, 1000 * k, 1000 * k + 900, translations=(speech(1.2, 1.0),), spoken=(UNITS,))


@pytest.fixture
async def registry() -> AsyncIterator[RoomRegistry]:
    made = RoomRegistry(RoomConfig(idle_s=0.0), LocalCounters(), lambda: CARD, clock=Clock())
    yield made
    await made.close(timeout_s=5.0)


async def next_output(events: AsyncIterator[object]) -> RoomOutput:
    while True:
        ev = await asyncio.wait_for(anext(events), 30)  # a bound for a hung test, not a timing
        if isinstance(ev, RoomOutput):
            return ev
        assert isinstance(ev, ListenStarted)


def rate_of(out: RoomOutput) -> tuple[int, float | None]:
    assert isinstance(out.event, SegmentResult)
    (t,) = out.event.translations
    return out.event.segment_id, t.speech_rate


async def test_a_listener_at_a_rate_gets_each_result_once_its_speech_is_made_in_order(registry: RoomRegistry) -> None:
    made: list[asyncio.Future[tuple[Translation, ...]]] = []
    asked: list[tuple[tuple[str, float], ...]] = []

    def render(result: SegmentResult, pairs: tuple[tuple[str, float], ...]) -> Rendering:
        asked.append(pairs)
        made.append(asyncio.get_running_loop().create_future())
        return Rendering(frozenset(pairs), made[-1])

    stream = FakeStream()
    speaker = await registry.publish(
        "talk", session_id="s", tenant=DEFAULT_TENANT, rights=ALL_ROOMS, own=(), retarget=stream.retarget, render=render
    )
    plain: Listener = await registry.join("talk", "spa", tenant=DEFAULT_TENANT, rights=ALL_ROOMS)
    fast: Listener = await registry.join("talk", "spa", tenant=DEFAULT_TENANT, rights=ALL_ROOMS, speed=1.5)
    assert speaker.renditions == (("spa", 1.5),)
    heard_plain, heard_fast = plain.events(), fast.events()
    speaker.output(final(0))
    speaker.output(final(1))
    speaker.output(final(2))
    assert asked == [(("spa", 1.5),)] * 3
    # the listener at the speaker's rate: each result at once
    assert [rate_of(await next_output(heard_plain)) for _ in range(3)] == [(0, 1.0), (1, 1.0), (2, 1.0)]
    # the listener at 1.5: the second result's speech is made first; it still waits for the first
    made[1].set_result((speech(0.8, 1.5),))
    waiting = asyncio.ensure_future(next_output(heard_fast))
    await asyncio.sleep(0)
    assert not waiting.done() and fast.queued == 3
    made[0].set_result((speech(0.8, 1.5),))
    assert rate_of(await waiting) == (0, 1.5)
    assert rate_of(await next_output(heard_fast)) == (1, 1.5)
    made[2].set_result(())  # given up: the speaker's rate, said
    assert rate_of(await next_output(heard_fast)) == (2, 1.0)
    # every result the renditions were asked for: its units never reach a listener
    for listener in (plain, fast):
        listener.close()
    speaker.leave()


async def test_a_result_no_listener_waits_for_is_not_held(registry: RoomRegistry) -> None:
    stream = FakeStream()
    rendered: list[SegmentResult] = []

    def render(result: SegmentResult, pairs: tuple[tuple[str, float], ...]) -> Rendering | None:
        rendered.append(result)
        return None  # the engine's queue had no place, or the budget could not pay

    speaker = await registry.publish(
        "talk", session_id="s", tenant=DEFAULT_TENANT, rights=ALL_ROOMS, own=(), retarget=stream.retarget, render=render
    )
    fast = await registry.join("talk", "spa", tenant=DEFAULT_TENANT, rights=ALL_ROOMS, speed=0.75)
    speaker.output(final(0))
    out = await next_output(fast.events())
    assert rate_of(out) == (0, 1.0) and len(rendered) == 1
    assert isinstance(out.event, SegmentResult) and out.event.spoken == ()
    fast.close()
    speaker.leave()
