"""What the usage records say of one session (``session_data``: what a job's next run reads to
charge its audio once, ``jobs/billing.py``), in both stores (SQLite; Redis on a real
``redis-server``, two stores playing two pods): its checkpoint while it is open (each heartbeat's
replacing the last), its ``session.ended`` once its process ended it, the lost one's checkpoint
once another process's sweep ended it, nothing for a session the records never had."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.redis_server import RedisServer, redis_server
from translate_svc.webhooks.events import SESSION_ENDED, SESSION_STARTED, Event
from translate_svc.webhooks.redis_queue import RedisEventStore
from translate_svc.webhooks.store import EventStore

pytestmark = [pytest.mark.integration]

URL = "http://127.0.0.1:9/hooks"
Store = EventStore | RedisEventStore


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def said(session_id: str, audio_s: float, ending: str) -> dict[str, Any]:
    return {"session_id": session_id, "door": "job", "ending": ending, "usage": {"audio_in_s": audio_s}}


def check(one: Store, other: Store) -> None:
    """``one`` and ``other``: two processes on the same records."""
    now = time.time()
    one.beat("one", 1, now, [])
    other.beat("other", 2, now, [])
    one.add(Event(SESSION_STARTED, "acme", {}, session_id="s1"), "one", said("s1", 0.0, "lost"))
    assert other.session_data("s1") == said("s1", 0.0, "lost")
    one.beat("one", 1, now + 1, [("s1", '{"usage": {"audio_in_s": 2.5}}')])
    assert other.session_data("s1") == {"usage": {"audio_in_s": 2.5}}  # the last checkpoint
    one.add(Event(SESSION_ENDED, "acme", said("s1", 4.0, "completed"), session_id="s1"), "one")
    assert other.session_data("s1") == said("s1", 4.0, "completed")  # its own end
    # a session whose process stopped beating: ended by the other's sweep from its checkpoint
    one.add(Event(SESSION_STARTED, "acme", {}, session_id="s2"), "one", said("s2", 0.0, "lost"))
    one.beat("one", 1, now + 2, [("s2", '{"ending": "lost", "usage": {"audio_in_s": 1.25}}')])
    other.beat("other", 2, now + 60, [])
    assert other.sweep(now + 60, 30) == 1
    assert one.session_data("s2") == {"ending": "lost", "usage": {"audio_in_s": 1.25}}
    assert other.session_data("s3") is None


def test_sqlite_records_say_a_sessions_checkpoint_then_its_end(tmp_path: Path) -> None:
    one, other = (EventStore(tmp_path, lambda e: [URL], max_queued=100) for _ in range(2))
    one.open()
    other.open()
    check(one, other)


def test_redis_records_say_a_sessions_checkpoint_then_its_end(redis: RedisServer) -> None:
    one, other = (RedisEventStore(redis.url, None, lambda e: [URL], max_queued=100) for _ in range(2))
    one.open()
    other.open()
    check(one, other)
