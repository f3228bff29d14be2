"""``tenants.leases.StoreCounters`` over one store: every cap of a call or none, a full one named,
what a call held given back to the store (its leases), and a budget spent there."""

from __future__ import annotations

import asyncio

import pytest

from translate_svc.cluster.memory import MemoryStore
from translate_svc.session.tenants.leases import PREFIX, StoreCounters

pytestmark = pytest.mark.unit


async def test_caps_are_leases_in_the_store_taken_together_and_given_back() -> None:
    store = MemoryStore()
    counters = StoreCounters(store, own_node=True)
    await counters.start()
    try:
        wants = [("streams", 2), ("acme/streams", 1)]
        held = await counters.acquire(wants)
        assert not isinstance(held, str)
        assert await counters.acquire(wants) == "acme/streams"
        assert await counters.acquire([("streams", 1)]) == "streams"
        counters.release(held)
        for _ in range(100):  # the release reaches the store in the background
            if await store.count(PREFIX + "acme/streams") == 0:
                break
            await asyncio.sleep(0)
        again = await counters.acquire(wants)
        assert not isinstance(again, str)
        assert await counters.spend("acme/audio", 30.0, 60.0) == pytest.approx(30.0, abs=0.5)
    finally:
        await counters.close()
