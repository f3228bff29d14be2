"""The cluster store's state made visible (``cluster/watch.py``, issue 59): ``/metrics`` has
``translate_svc_cluster_store_up`` and the transitions after the start, and the log has one line per
loss and one per return, saying what ``cluster.on_redis_loss`` does, never a flood when the store
flaps. A store whose state the test sets stands for Redis (``StateReport``, as ``RedisStore`` keeps
its own); the clock is the test's.

Before (2fed573): no metric and no line said the store was lost, whatever the choice."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from tests.support.cluster_stores import hub_server
from translate_svc.cluster.hub_client import HubStore
from translate_svc.cluster.memory import MemoryStore
from translate_svc.cluster.store import StateReport, StoreState
from translate_svc.cluster.watch import QUIET_S, StoreWatch, watch_store

pytestmark = pytest.mark.unit


class SetStore(MemoryStore):
    """A ``MemoryStore`` whose state the test sets (``report.set``); listeners told as Redis's are."""

    def __init__(self) -> None:
        super().__init__()
        self.report = StateReport()

    @property
    def state(self) -> StoreState:
        return self.report.state

    def on_state(self, listener):  # type: ignore[no-untyped-def]
        self.report.on_state(listener)


def up() -> float | None:
    return REGISTRY.get_sample_value("translate_svc_cluster_store_up")


def changes(state: str) -> float:
    return REGISTRY.get_sample_value("translate_svc_cluster_store_transitions_total", {"state": state}) or 0.0


def test_the_state_is_on_metrics_and_each_loss_and_return_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    store = SetStore()
    StoreWatch(store, "refuse", clock=lambda: now[0])
    assert up() == 0  # not started yet
    downs, ups = changes("down"), changes("up")
    caplog.set_level(logging.INFO, logger="translate_svc.cluster.watch")
    store.report.set(StoreState.UP)  # the start: not a transition
    assert up() == 1 and (changes("down"), changes("up")) == (downs, ups)
    store.report.set(StoreState.DOWN)
    assert up() == 0 and changes("down") == downs + 1
    now[0] += 3.0
    store.report.set(StoreState.UP)
    assert up() == 1 and changes("up") == ups + 1
    lines = [r.getMessage() for r in watched(caplog)]
    assert len(lines) == 2, lines
    assert lines[0].startswith("the cluster store is lost: on_redis_loss=refuse: new room parties")
    assert lines[1] == "the cluster store is back after 3.0 s: this server rejoined"
    # flapping within QUIET_S: counted every time, logged not once more; the next line says how many
    caplog.clear()
    for _ in range(5):
        now[0] += 0.5
        store.report.set(StoreState.DOWN)
        now[0] += 0.5
        store.report.set(StoreState.UP)
    assert changes("down") == downs + 6 and changes("up") == ups + 6
    assert watched(caplog) == []
    now[0] += QUIET_S
    store.report.set(StoreState.DOWN)
    (line,) = [r.getMessage() for r in watched(caplog)]
    assert line.startswith("the cluster store is lost: on_redis_loss=refuse") and "(5 more losses since" in line
    store.report.set(StoreState.UP)


def watched(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The watch's own records: not another test's leftovers in this process (a gRPC poller of a
    closed loop logged "Event loop is closed" through asyncio in a loaded run, 2026-12-01)."""
    return [r for r in caplog.records if r.name == "translate_svc.cluster.watch"]


async def test_a_servers_own_close_of_its_store_is_no_loss(caplog: pytest.LogCaptureFixture) -> None:
    """A server's stop closes its store (Redis's connection, the node's hub's), which then reports
    itself down: before, every stop of a worker logged "the cluster store is lost" at ERROR and
    counted a transition. ``serve --workers 2`` over the node's hub, stopped, as the server does it."""
    caplog.set_level(logging.INFO, logger="translate_svc.cluster.watch")
    async with hub_server(lease_s=5.0) as hub:
        assert hub.path is not None
        store = HubStore(hub.path, "w0")
        await store.start()
        watch = watch_store(store, "node")
        downs = changes("down")
        watch.closing()
        await store.close()
        assert store.state is StoreState.DOWN  # it did report itself down
    assert changes("down") == downs and watched(caplog) == []
