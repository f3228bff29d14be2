"""The queue's fair share (``engine/shares.py``): the pure policy with plain values, then the engine
that enforces it and its remote workers, which count every session of the node in one share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.fake_runner import FakeRunner
from translate_svc.engine.engine import TranslationEngine
from translate_svc.engine.remote.client import RemoteEngine
from translate_svc.engine.remote.server import EngineServer
from translate_svc.engine.scheduler import SchedulerConfig
from translate_svc.engine.shares import Place, QueueShares
from translate_svc.errors import Overloaded
from translate_svc.model_api.requests import ModelInput

pytestmark = pytest.mark.unit

# -- the policy -------------------------------------------------------------------------------------


def shares(max_queued: int, *owners: str) -> QueueShares:
    q = QueueShares(max_queued)
    for o in owners:
        q.join(o)
    return q


def test_the_share_is_the_queue_split_between_the_sessions_that_joined() -> None:
    q = shares(10)
    assert q.share == 10 and q.sessions == 0
    for o in "abc":
        q.join(o)
    assert q.share == 3 and q.sessions == 3
    q.join("a")  # once per session
    assert q.share == 3
    q.leave("a")
    q.leave("gone")  # never joined: nothing changes
    assert q.share == 5 and q.sessions == 2
    assert shares(4, *"abcdefgh").share == 1  # never less than one place


def test_with_room_every_job_gets_a_place() -> None:
    q = shares(3, "a")
    assert q.place("a") == Place(True)
    q.add(0, "a")
    assert q.place("stranger") == Place(True)  # an owner that never joined: while there is room
    q.add(1, "stranger")
    assert q.place("a", droppable=True) == Place(True)
    q.add(2, "a", droppable=True)
    assert q.total == 3 and q.waiting("a") == 1


def test_a_full_queue_refuses_jobs_beyond_a_share_and_makes_room_for_one_within() -> None:
    q = shares(6, "flood", "victim")  # 3 places each
    for j in range(6):
        q.add(j, "flood")  # the flood took the whole queue while it had room
    assert q.place("flood") == Place(False)  # beyond its share: refused
    assert q.place("stranger") == Place(False)  # never joined: a share of nothing
    assert q.place("victim", droppable=True) == Place(False)  # a caption takes only a free place
    assert q.place("victim") == Place(True, evict=5)  # within its share: the flood's newest leaves
    q.remove(5)
    q.add(6, "victim")
    assert q.place("victim") == Place(True, evict=4)
    q.remove(4)
    q.add(7, "victim")
    q.remove(3)
    q.add(8, "victim")
    # the victim has its 3, the flood its 3: neither is beyond its share, so the victim's 4th waits
    assert q.waiting("victim") == 3 and q.place("victim") == Place(False)


def test_what_leaves_first_is_a_caption_then_the_newest_final_of_whoever_is_furthest_beyond() -> None:
    q = shares(8, "a", "b", "c", "d")  # 2 places each
    q.add(0, "a")
    q.add(1, "b")
    q.add(2, "b")
    q.add(3, "b")  # b: 1 beyond
    q.add(4, "c")
    q.add(5, "c")
    q.add(6, "c")  # c: 1 beyond, newer than b's
    q.add(7, "a", droppable=True)
    assert q.place("d") == Place(True, evict=7)  # the caption first
    q.remove(7)
    q.add(8, "d")
    assert q.place("d") == Place(True, evict=6)  # b and c are 1 beyond each: the newest job
    q.remove(6)
    q.add(9, "c")  # c is back to 1 beyond, now with the newest
    q.leave("b")  # b's 3 jobs are beyond any share now (a session that left counts as a stranger)
    assert q.place("a") == Place(True, evict=3)


def test_more_sessions_than_places_keeps_the_bound() -> None:
    q = shares(2, "a", "b", "c")  # a share of 1 each, but only 2 places
    q.add(0, "a")
    q.add(1, "b")
    assert q.place("c") == Place(False)  # nobody is beyond a share: nothing to make room with


def test_remove_and_clear_give_places_back() -> None:
    q = shares(2, "a")
    q.add(0, "a")
    q.add(1, "a", droppable=True)
    assert q.remove(0) and q.remove(1) and not q.remove(1)
    assert q.total == 0 and q.waiting("a") == 0
    q.add(2, "a")
    q.clear()
    assert q.total == 0 and q.sessions == 1


OWNERS = ("a", "b", "c", "d", "e")
op = st.one_of(
    st.tuples(st.just("join"), st.sampled_from(OWNERS)),
    st.tuples(st.just("leave"), st.sampled_from(OWNERS)),
    st.tuples(st.just("submit"), st.sampled_from(OWNERS), st.booleans()),
    st.tuples(st.just("done"), st.integers(0, 200)),
)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 12), st.lists(op, max_size=120))
def test_the_queue_never_overflows_and_a_session_within_its_share_is_never_refused(
    max_queued: int, ops: list[tuple[object, ...]]
) -> None:
    q = QueueShares(max_queued)
    waiting: list[int] = []
    joined: set[str] = set()
    for j, (kind, *args) in enumerate(ops):
        if kind == "join":
            q.join(str(args[0]))
            joined.add(str(args[0]))
        elif kind == "leave":
            q.leave(str(args[0]))
            joined.discard(str(args[0]))
        elif kind == "done" and waiting:
            assert q.remove(waiting.pop(int(args[0]) % len(waiting)))  # type: ignore[call-overload]
        elif kind == "submit":
            owner, droppable = str(args[0]), bool(args[1])
            within = owner in joined and q.waiting(owner) < q.share and not droppable
            place = q.place(owner, droppable=droppable)
            if within and q.sessions <= max_queued:
                assert place.admit, (owner, q)
            if place.evict is not None:
                assert place.admit and q.total >= max_queued
                assert q.remove(place.evict)
                waiting.remove(place.evict)
            if place.admit:
                q.add(j, owner, droppable=droppable)
                waiting.append(j)
        assert q.total == len(waiting) <= max_queued and q.sessions == len(joined)


# -- the engine enforces it -------------------------------------------------------------------------


def item(n: int) -> ModelInput:
    return ModelInput(np.zeros(n, np.float32), ("spa",), None, speech=False)


async def test_the_engine_makes_room_for_a_session_within_its_share() -> None:
    runner = FakeRunner()
    engine = TranslationEngine(lambda: runner, SchedulerConfig(max_batch_size=1, max_wait_s=0.0, max_queued=4))
    await engine.start(warmup=False)
    try:
        engine.join("flood")
        engine.join("victim")
        assert (engine.stats().share, engine.stats().sessions) == (2, 2)
        runner.gate.clear()
        running = engine.submit("flood", item(1600))
        await asyncio.to_thread(runner.started.wait, 5)
        flood = [engine.submit("flood", item(1601 + i)) for i in range(4)]  # its 2, and 2 more while room
        with pytest.raises(Overloaded):
            engine.submit("flood", item(1700))
        assert engine.submit_droppable("victim", item(800)) is None  # a caption takes only a free place
        mine = [engine.submit("victim", item(1800 + i)) for i in range(2)]  # within its share
        assert engine.queued == 4
        for evicted in flood[2:]:
            with pytest.raises(Overloaded, match="its share"):
                await evicted
        with pytest.raises(Overloaded):  # the victim's 3rd is beyond its share, and nobody else is
            engine.submit("victim", item(1900))
        engine.leave("flood")  # its jobs are dropped, and the victim's share is the whole queue
        assert all(f.cancelled() for f in flood[:2]) and engine.stats().share == 4
        runner.gate.set()
        results = await asyncio.gather(running, *mine)
        assert all(r.error is None for r in results)
        await engine.wait_idle()
        assert engine.queued == 0
    finally:
        runner.gate.set()
        await engine.stop()


# -- across workers ---------------------------------------------------------------------------------


class Node:
    def __init__(self, runner: FakeRunner, engine: TranslationEngine, server: EngineServer, path: Path) -> None:
        self.runner, self.engine, self.server, self.path = runner, engine, server, path

    async def worker(self, name: str) -> RemoteEngine:
        remote = RemoteEngine(name)
        await remote.connect(self.path)
        return remote


@pytest_asyncio.fixture(loop_scope="session")
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    runner = FakeRunner()
    engine = TranslationEngine(lambda: runner, SchedulerConfig(max_batch_size=1, max_wait_s=0.0, max_queued=6))
    await engine.start(warmup=False)
    server = EngineServer(engine)
    path = tmp_path / "engine.sock"
    await server.start(path)
    yield Node(runner, engine, server, path)
    runner.gate.set()
    await server.stop()
    await engine.stop()


async def heard(remote: RemoteEngine, sessions: int) -> None:
    """Until ``remote`` hears that the node has ``sessions`` sessions."""
    for _ in range(500):
        if remote.stats().sessions == sessions:
            return
        await asyncio.sleep(0.002)
    raise AssertionError(f"{remote.worker} still hears {remote.stats().sessions} sessions")


@pytest.mark.asyncio(loop_scope="session")
async def test_every_worker_shares_the_queue_by_the_sessions_of_the_whole_node(node: Node) -> None:
    a, b = await node.worker("a"), await node.worker("b")
    for i in range(2):
        a.join(f"flood{i}")
    b.join("victim")
    await heard(a, 3)
    await heard(b, 3)
    assert a.stats().share == b.stats().share == 2  # 6 places, 3 sessions of the node
    node.runner.gate.clear()
    running = a.submit("flood0", item(1600))
    await asyncio.to_thread(node.runner.started.wait, 5)
    flood = [a.submit(f"flood{i % 2}", item(1601 + i)) for i in range(6)]  # 4 within, 2 while room
    for _ in range(500):
        if b.stats().queued == 6:
            break
        await asyncio.sleep(0.002)
    assert b.stats().queued == 6  # worker b's view: the queue is full
    mine = [b.submit("victim", item(1800 + i)) for i in range(2)]  # sent anyway: within its share
    with pytest.raises(Overloaded):  # its 3rd is refused at once: beyond its share, and the queue full
        b.submit("victim", item(1900))
    evicted = await asyncio.gather(*flood[4:], return_exceptions=True)
    assert all(isinstance(e, Overloaded) for e in evicted), evicted
    node.runner.gate.set()
    results = await asyncio.gather(running, *flood[:4], *mine)
    assert all(r.error is None for r in results)
    await a.close()  # worker a is gone: its sessions no longer count
    await heard(b, 1)
    assert b.stats().share == 6
    b.leave("victim")
    await heard(b, 0)
    await b.wait_idle()
    await b.close()
