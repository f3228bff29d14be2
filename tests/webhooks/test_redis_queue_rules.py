"""The rules of the webhooks' queue in Redis (``webhooks/redis_queue.py``), on a real
``redis-server``, with two stores playing two pods:

- bounded: past ``max_queued`` deliveries, new ones are dropped and reported as such (the outbox
  counts them on /metrics and logs them);
- a delivery one pod took is held from every pod until its hold ends, then any pod takes it again
  (a pod killed mid-send); a settled one is gone for all;
- a session is ended once: the sweep of a stale owner's session skips its late ``session.ended``,
  and two sweeping pods end it once; a ``session.ended`` whose open entry Redis lost (a restart
  without persistence) is still queued, not skipped;
- usage records past their retention are deleted, the rest summed by ``usage_report_redis``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer, redis_server
from translate_svc.webhooks.events import SESSION_ENDED, SESSION_STARTED, Event
from translate_svc.webhooks.redis_queue import RedisEventStore, client, usage_report_redis

pytestmark = [pytest.mark.integration]

URL = "http://127.0.0.1:9/hooks"


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def pod(redis: RedisServer, max_queued: int = 100) -> RedisEventStore:
    store = RedisEventStore(redis.url, None, lambda event: [URL], max_queued=max_queued)
    store.open()
    return store


def note(i: int) -> Event:
    return Event("quota.exceeded", "acme", {"n": i})


def test_past_max_queued_new_deliveries_are_dropped_and_reported(redis: RedisServer) -> None:
    a, b = pod(redis, max_queued=3), pod(redis, max_queued=3)
    assert [a.add(note(0)), b.add(note(1)), a.add(note(2))] == [0, 0, 0]
    assert [b.add(note(3)), a.add(note(4))] == [1, 1]  # one delivery dropped each time
    assert len(a.take_due(URL, time.time(), 10, 60)) == 3


def test_a_taken_delivery_is_held_from_every_pod_until_its_hold_ends(redis: RedisServer) -> None:
    a, b = pod(redis), pod(redis)
    event = note(0)
    a.add(event)
    now = time.time()
    (taken,) = a.take_due(URL, now, 10, 30)
    assert taken.msg_id == event.id and taken.attempts == 0
    assert b.take_due(URL, now + 29, 10, 30) == []  # held: a is sending it
    (again,) = b.take_due(URL, now + 31, 10, 30)  # a died mid-send: b takes it
    assert again.msg_id == event.id and again.body == taken.body
    b.retry(again.seq, now + 40)
    assert a.take_due(URL, now + 39, 10, 30) == []
    (third,) = a.take_due(URL, now + 41, 10, 30)
    assert third.attempts == 1
    a.delivered(third.seq)
    assert b.take_due(URL, now + 1000, 10, 30) == [] and b.next_due(URL) is None


def test_a_session_is_ended_once_and_an_end_whose_record_redis_lost_is_kept(redis: RedisServer) -> None:
    a, b, c = pod(redis), pod(redis), pod(redis)
    now = time.time()
    a.beat("pod-a", 1, now, [])
    lost = {"session_id": "s1", "ending": "lost", "usage": {"audio_in_s": 1.5}}
    a.add(Event(SESSION_STARTED, "acme", {}, session_id="s1"), "pod-a", lost)
    a.add(Event(SESSION_STARTED, "acme", {}, session_id="s2"), "pod-a", lost)
    starts = a.take_due(URL, now + 1, 10, 1)
    assert len(starts) == 2
    for d in starts:  # leave the queue to the ends
        a.delivered(d.seq)
    b.beat("pod-b", 2, now + 10, [])
    assert b.sweep(now + 10, 5) == 2 and c.sweep(now + 10, 5) == 0  # pod-a is stale: ended once
    assert a.add(Event(SESSION_ENDED, "acme", {}, session_id="s1")) == 0  # its late end: skipped
    ends = b.take_due(URL, now + 20, 10, 30)
    assert len(ends) == 2 and all(b'"ending": "lost"' in d.body for d in ends)
    # Redis restarted empty (no persistence): a session's end is queued though its record is gone
    client(redis.url, None).flushall()
    a.add(Event(SESSION_ENDED, "acme", {"usage": {"audio_in_s": 2.0}}, session_id="s3"))
    (end,) = b.take_due(URL, time.time(), 10, 30)
    assert b'"audio_in_s": 2.0' in end.body


def test_usage_records_are_summed_and_expire(redis: RedisServer) -> None:
    a = pod(redis)
    for at, tenant in ((1000.0, "acme"), (2000.0, "acme"), (2000.0, "beta")):
        data = {"usage": {"audio_in_s": 1.0, "speech_out_s": {"spa": 0.5}, "segments_total": 2}}
        a.add(Event(SESSION_ENDED, tenant, data, at=at, session_id=f"{tenant}{at}"))
    (acme,) = usage_report_redis(redis.url, None, "acme", 0, 3000)
    assert (acme["sessions"], acme["audio_in_s"], acme["speech_out_s"], acme["segments"]) == (2, 2.0, {"spa": 1.0}, 4)
    a.expire_usage(1500.0)
    assert [(r["tenant"], r["sessions"]) for r in usage_report_redis(redis.url, None, None, 0, 3000)] == [
        ("acme", 1),
        ("beta", 1),
    ]


def test_events_made_while_redis_is_unreachable_wait_in_order_and_are_queued_when_it_is_back(
    redis: RedisServer,
) -> None:
    a = pod(redis)
    redis.kill()
    started = Event(SESSION_STARTED, "acme", {}, session_id="s1")
    ended = Event(SESSION_ENDED, "acme", {"usage": {"audio_in_s": 1.0}}, session_id="s1")
    assert [a.add(started, "pod-a", {}), a.add(ended)] == [0, 0]  # kept, not raised (not dropped)
    assert len(a.spilled) == 2
    redis.start()  # back, empty
    a.beat("pod-a", 1, time.time(), [])
    assert not a.spilled
    taken = a.take_due(URL, time.time() + 1, 10, 30)
    assert [d.msg_id for d in taken] == [started.id, ended.id]
    # written in order: the session is not left open (its end closed it)
    assert a.sweep(time.time() + 100, 1) == 0
    assert [r["sessions"] for r in usage_report_redis(redis.url, None, "acme", 0, time.time() + 1)] == [1]
