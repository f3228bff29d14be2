"""The batching policy with plain values: no model, no clock."""

from __future__ import annotations

import pytest

from translate_svc.engine.scheduler import BatchScheduler, QueueFull, SchedulerConfig


def sched(**kw) -> BatchScheduler:  # type: ignore[no-untyped-def]
    return BatchScheduler(SchedulerConfig(**{"max_batch_size": 4, "max_wait_s": 0.01, **kw}))


def test_waits_until_the_oldest_job_expires_then_dispatches() -> None:
    s = sched()
    s.add(1, "a", 2.0, now=0.0)
    s.add(2, "b", 2.0, now=0.004)
    assert s.next_batch(now=0.005) is None
    assert s.next_deadline() == pytest.approx(0.01)
    assert s.next_batch(now=0.01) == [1, 2]
    assert len(s) == 0 and s.next_deadline() is None


def test_a_full_batch_goes_at_once() -> None:
    s = sched()
    for j in range(6):
        s.add(j, "a", 1.0, now=0.0)
    assert s.next_batch(now=0.0) == [0, 1, 2, 3]
    assert s.next_batch(now=0.0) is None  # two left, not full, not expired
    assert s.next_batch(now=0.02) == [4, 5]


def test_padded_audio_budget_caps_the_batch_and_counts_as_full() -> None:
    s = sched(max_batch_audio_s=10.0)
    s.add(1, "a", 4.0, now=0.0)
    s.add(2, "a", 4.0, now=0.0)
    s.add(3, "a", 4.0, now=0.0)  # 3 x 4 s = 12 s > 10 s
    assert s.next_batch(now=0.0) == [1, 2]


def test_length_bucketing_prefers_similar_lengths_but_keeps_the_oldest() -> None:
    s = sched(max_batch_size=3)
    s.add(1, "a", 10.0, now=0.0)  # oldest, long
    s.add(2, "b", 1.0, now=0.001)
    s.add(3, "c", 9.5, now=0.002)
    s.add(4, "d", 1.2, now=0.003)
    s.add(5, "e", 10.5, now=0.004)
    assert s.next_batch(now=0.05) == [1, 3, 5]
    assert s.next_batch(now=0.05) == [2, 4]


def test_no_starvation_a_long_job_goes_when_it_is_the_oldest() -> None:
    s = sched(max_batch_size=2)
    s.add(0, "x", 14.0, now=0.0)
    for j in range(1, 20):
        s.add(j, "y", 1.0, now=0.001 * j)
    first = s.next_batch(now=0.0)
    assert first is not None and first[0] == 0


def test_a_shorter_job_still_fits_when_a_closer_one_blows_the_budget() -> None:
    s = sched(max_batch_audio_s=10.0)
    s.add(1, "a", 4.0, now=0.0)
    s.add(2, "a", 6.0, now=0.0)  # closer in length, but 2 x 6 = 12 > 10
    s.add(3, "a", 1.0, now=0.0)  # 2 x 4 = 8 fits
    assert s.next_batch(now=0.0) == [1, 3]


def test_remove_owner_drops_only_that_owners_jobs() -> None:
    s = sched()
    s.add(1, "a", 1.0, now=0.0)
    s.add(2, "b", 1.0, now=0.0)
    s.add(3, "a", 1.0, now=0.0)
    assert s.remove_owner("a") == [1, 3]
    assert s.next_batch(now=1.0) == [2]


def test_bounded_queue_refuses_when_full() -> None:
    s = sched(max_queued=2)
    s.add(1, "a", 1.0, now=0.0)
    s.add(2, "a", 1.0, now=0.0)
    with pytest.raises(QueueFull):
        s.add(3, "a", 1.0, now=0.0)
