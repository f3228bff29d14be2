"""The pools of work a caller sizes (``session/work.py``): a tenant's calls never hold every thread
(its cap), another tenant's call goes next whatever one tenant has queued (round robin), a call
cancelled while it waits never runs, and one cancelled while it runs keeps its tenant's slot until
it ends. Threads gated by events the test opens: no timing."""

from __future__ import annotations

import asyncio
import threading

import pytest

from translate_svc.errors import NotReady
from translate_svc.session.work import WorkPool

pytestmark = [pytest.mark.unit, pytest.mark.asyncio(loop_scope="session")]

#: a safety net so that a broken test fails instead of hanging; never a measured bound
WAIT_S = 30.0


class Gates:
    """Calls that record that they started, then wait for their gate."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.gates: dict[str, threading.Event] = {}
        self._all = False
        self._lock = threading.Lock()

    def _gate(self, name: str) -> threading.Event:
        gate = self.gates.setdefault(name, threading.Event())
        if self._all:
            gate.set()
        return gate

    def call(self, name: str) -> str:
        with self._lock:
            self.started.append(name)
            gate = self._gate(name)
        gate.wait(WAIT_S)
        return name

    def open(self, name: str) -> None:
        with self._lock:
            self._gate(name).set()

    def open_all(self) -> None:
        """Every gate, those of calls not started yet too."""
        with self._lock:
            self._all = True
            for gate in self.gates.values():
                gate.set()


async def test_a_tenant_at_its_cap_leaves_a_thread_to_another_tenant() -> None:
    pool, g = WorkPool("test", threads=2, per_tenant=1), Gates()
    try:
        a = [asyncio.ensure_future(pool.run("a", g.call, f"a{n}")) for n in range(3)]
        await asyncio.sleep(0)
        assert (pool.running, pool.waiting("a")) == (1, 2)  # a's first runs; its others wait their turn
        g.open("b0")
        async with asyncio.timeout(WAIT_S):
            assert await pool.run("b", g.call, "b0") == "b0"  # on the thread a may not take
        assert g.started == ["a0", "b0"] and not any(f.done() for f in a)
        g.open_all()
        async with asyncio.timeout(WAIT_S):
            assert await asyncio.gather(*a) == ["a0", "a1", "a2"]
        assert g.started == ["a0", "b0", "a1", "a2"]
    finally:
        g.open_all()
        pool.close()


async def test_another_tenant_goes_next_whatever_one_tenant_has_queued() -> None:
    pool, g = WorkPool("test", threads=1, per_tenant=1), Gates()
    try:
        a = [asyncio.ensure_future(pool.run("a", g.call, f"a{n}")) for n in range(3)]
        await asyncio.sleep(0)
        b = asyncio.ensure_future(pool.run("b", g.call, "b0"))  # after a's three
        await asyncio.sleep(0)
        g.open_all()
        async with asyncio.timeout(WAIT_S):
            await asyncio.gather(*a, b)
        assert g.started == ["a0", "b0", "a1", "a2"]  # b's one call went before a's backlog
    finally:
        g.open_all()
        pool.close()


async def test_a_call_cancelled_while_it_waits_never_runs_and_one_running_keeps_its_slot() -> None:
    pool, g = WorkPool("test", threads=2, per_tenant=1), Gates()
    try:
        first = asyncio.ensure_future(pool.run("a", g.call, "a0"))
        waiting = asyncio.ensure_future(pool.run("a", g.call, "a1"))
        await asyncio.sleep(0)
        waiting.cancel()
        first.cancel()  # running: it runs to its end, and holds a's slot until then
        await asyncio.gather(first, waiting, return_exceptions=True)
        last = asyncio.ensure_future(pool.run("a", g.call, "a2"))
        await asyncio.sleep(0)
        assert (pool.running, pool.waiting("a")) == (1, 1) and g.started == ["a0"]
        g.open_all()
        async with asyncio.timeout(WAIT_S):
            assert await last == "a2"
        assert g.started == ["a0", "a2"]  # a1 never ran
    finally:
        g.open_all()
        pool.close()


async def test_a_closed_pool_fails_what_waits_and_takes_nothing_more() -> None:
    pool, g = WorkPool("test", threads=1, per_tenant=1), Gates()
    try:
        running = asyncio.ensure_future(pool.run("a", g.call, "a0"))
        waiting = asyncio.ensure_future(pool.run("b", g.call, "b0"))
        await asyncio.sleep(0)
        pool.close()
        with pytest.raises(NotReady):
            await waiting
        with pytest.raises(NotReady):
            await pool.run("c", g.call, "c0")
        g.open_all()
        async with asyncio.timeout(WAIT_S):
            assert await running == "a0"  # what ran goes on to its end
        assert g.started == ["a0"]
    finally:
        g.open_all()
