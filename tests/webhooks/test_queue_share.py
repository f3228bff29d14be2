"""The queue's share rule (issue 68 H6) in both stores, as plain calls: the SQLite file of one node
(``store.EventStore``) and a real ``redis-server`` (``redis_queue.RedisEventStore``, two stores
playing two pods). At ``max_queued``, a new delivery takes the place of the oldest of the tenant
with the most waiting (its own tenant's when that has as many), each reported to ``on_drop`` by
tenant; a file made before tenants were kept takes the new column. And ``DropLog``: drops counted
per tenant, logged a few lines a window, the rest summed in one line."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tests.support.redis_server import RedisServer, redis_server
from translate_svc.webhooks.drops import DropLog
from translate_svc.webhooks.events import Event
from translate_svc.webhooks.redis_queue import RedisEventStore
from translate_svc.webhooks.store import EventStore

pytestmark = [pytest.mark.integration]

URL = "https://hooks.example.com/h"


def note(tenant: str, i: int) -> Event:
    return Event("quota.exceeded", tenant, {"tenant": tenant, "n": i}, at=1000.0 + i)


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def kept(store: EventStore | RedisEventStore) -> list[tuple[str, int]]:
    """What waits: (tenant, n) of each delivery."""
    datas = [json.loads(d.body)["data"] for d in store.take_due(URL, time.time(), 100, 60)]
    return [(data["tenant"], data["n"]) for data in datas]


def fill(store: EventStore | RedisEventStore) -> None:
    for i in range(4):
        store.add(note("flood", i))
    store.add(note("quiet", 10))
    for i in range(4, 8):
        store.add(note("flood", i))


def check(store: EventStore | RedisEventStore, dropped: Counter[str]) -> None:
    assert dropped == {"flood": 4}  # its 4 oldest made room: for the quiet one and its own newest
    assert sorted(kept(store)) == [("flood", 4), ("flood", 5), ("flood", 6), ("flood", 7), ("quiet", 10)]


def test_sqlite_a_full_queue_pushes_out_the_largest_tenants_oldest(tmp_path: Path) -> None:
    dropped: Counter[str] = Counter()
    store = EventStore(tmp_path, lambda e: [URL], max_queued=5, on_drop=lambda t, n: dropped.update({t: n}))
    store.open()
    fill(store)
    check(store, dropped)
    assert store.queued == 5 and store.tenants == {"flood": 4, "quiet": 1}


def test_redis_a_full_queue_pushes_out_the_largest_tenants_oldest(redis: RedisServer) -> None:
    dropped: Counter[str] = Counter()

    def pod() -> RedisEventStore:
        store = RedisEventStore(
            redis.url, None, lambda e: [URL], max_queued=5, on_drop=lambda t, n: dropped.update({t: n})
        )
        store.open()
        return store

    a, b = pod(), pod()
    for i in range(4):
        (a if i % 2 else b).add(note("flood", i))
    a.add(note("quiet", 10))
    for i in range(4, 8):
        (a if i % 2 else b).add(note("flood", i))
    check(a, dropped)


def test_a_delivered_one_leaves_its_tenants_count(tmp_path: Path, redis: RedisServer) -> None:
    for store in (
        EventStore(tmp_path, lambda e: [URL], max_queued=2),
        RedisEventStore(redis.url, None, lambda e: [URL], max_queued=2),
    ):
        store.open()
        store.add(note("quiet", 1))
        store.add(note("flood", 2))
        (first, _) = store.take_due(URL, time.time(), 10, 0)
        store.delivered(first.seq)  # quiet's: flood is now the largest, with 1
        store.add(note("quiet", 3))
        store.add(note("quiet", 4))  # full: quiet has 1 as flood has: its own oldest goes
        assert sorted(kept(store)) == [("flood", 2), ("quiet", 4)], type(store)


def test_a_file_from_before_tenants_takes_the_column(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "events.sqlite3")
    db.executescript(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, endpoint TEXT NOT NULL, msg_id TEXT NOT NULL, "
        "type TEXT NOT NULL, body BLOB NOT NULL, created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
        "next_at REAL NOT NULL);"
    )
    db.execute(
        "INSERT INTO outbox (endpoint, msg_id, type, body, created, next_at) VALUES (?, 'm', 't', x'7b7d', 1, 1)",
        (URL,),
    )
    db.commit()
    db.close()
    store = EventStore(tmp_path, lambda e: [URL], max_queued=10)
    store.open()
    assert store.queued == 1 and store.tenants == {"": 1}
    store.add(note("acme", 1))
    assert store.tenants == {"": 1, "acme": 1}


def test_drops_are_counted_per_tenant_and_logged_a_few_lines_a_window(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = DropLog(burst=3, window_s=10.0, clock=lambda: now[0])

    def counted(tenant: str) -> float:
        return (
            REGISTRY.get_sample_value("translate_svc_webhook_dropped_total", {"reason": "queue_full", "tenant": tenant})
            or 0.0
        )

    before = counted("drop-log-flood")
    with caplog.at_level(logging.WARNING, logger="translate_svc.webhooks.drops"):
        for _ in range(1000):
            log("queue_full", "drop-log-flood", 1, "the queue is full")
        log("queue_full", "drop-log-quiet", 2, "the queue is full")
        assert len(caplog.records) == 3
        log.flush()  # the window has not passed: nothing yet
        now[0] = 10.0
        log.flush()
    assert counted("drop-log-flood") - before == 1000
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines
    assert "999" in lines[3] and "tenant drop-log-flood 997" in lines[3] and "tenant drop-log-quiet 2" in lines[3]
