"""The batching policy with plain values: no model, no clock."""

from __future__ import annotations

import pytest

from translate_svc.engine.scheduler import BatchScheduler, QueueFull, SchedulerConfig

pytestmark = pytest.mark.unit


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
    s.add(2, "b", 6.0, now=0.0)  # closer in length, but 2 x 6 = 12 > 10
    s.add(3, "c", 1.0, now=0.0)  # 2 x 4 = 8 fits
    assert s.next_batch(now=0.0) == [1, 3]


def test_within_one_stream_jobs_go_oldest_first_even_past_the_budget() -> None:
    s = sched(max_batch_audio_s=10.0)
    s.add(1, "a", 4.0, now=0.0)
    s.add(2, "a", 6.0, now=0.0)  # does not fit: 2 x 6 > 10
    s.add(3, "a", 1.0, now=0.0)  # would fit, but must not overtake job 2 of its own stream
    s.add(4, "b", 1.0, now=0.0)
    assert s.next_batch(now=0.0) == [1, 4]
    assert s.next_batch(now=1.0) == [2]  # 2 x 6 s is over the budget: job 3 goes next
    assert s.next_batch(now=1.0) == [3]


def test_a_flooding_stream_gets_one_place_per_round() -> None:
    """One stream queues 40 jobs at once; 8 real-time streams each add one job per batch. Every
    real-time job goes in the first batch formed after it arrives, and the flood still drains."""
    s = sched(max_batch_size=16, max_batch_audio_s=1000.0)
    for j in range(40):
        s.add(j, "flood", 2.0, now=0.0)
    next_id, t = 100, 0.0
    for _ in range(5):
        t += 0.001
        mine = []
        for k in range(8):
            s.add(next_id, f"rt{k}", 2.0 + k / 10, now=t)
            mine.append(next_id)
            next_id += 1
        batch = s.next_batch(now=t)
        assert batch is not None and set(mine) <= set(batch)  # none waits behind the flood
        assert len(batch) == 16 and sum(1 for j in batch if j < 40) == 8
        flood = [j for j in batch if j < 40]
        assert flood == sorted(flood)  # the flood's own order is kept
    assert len(s) == 0  # and the flood drained meanwhile (8 of its jobs per batch)


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


def test_droppable_jobs_never_go_before_or_with_finals() -> None:
    s = sched()
    s.add(1, "a", 2.0, now=0.0, droppable=True)
    s.add(2, "b", 2.0, now=0.001, droppable=True)
    s.add(3, "c", 2.0, now=0.002)  # a final arrives after both captions
    assert s.finals == 1 and len(s) == 3
    assert s.next_deadline() == pytest.approx(0.012)  # the final's wait counts, not the older captions'
    assert s.next_batch(now=0.02) == [3]  # the final alone, though older droppable jobs wait
    assert s.next_batch(now=0.02) == [1, 2]  # then the captions, together
    assert len(s) == 0


def test_droppable_jobs_wait_for_finals_on_their_way() -> None:
    """A final whose features are still being computed is not queued yet, but captions queued
    before it must not take the model first: no droppable batch, and no deadline to wake for."""
    s = sched()
    s.add(1, "a", 2.0, now=0.0, droppable=True)
    assert s.next_batch(now=1.0, finals_coming=True) is None
    assert s.next_deadline(finals_coming=True) is None
    s.add(2, "b", 2.0, now=1.0)  # the final is queued
    assert s.next_batch(now=1.02, finals_coming=False) == [2]
    assert s.next_batch(now=1.02, finals_coming=False) == [1]
    s.add(3, "c", 1.0, now=2.0)  # finals on their way never hold finals back
    assert s.next_batch(now=2.02, finals_coming=True) == [3]


def test_a_cancelled_job_leaves_the_queue() -> None:
    s = sched()
    s.add(1, "a", 1.0, now=0.0, droppable=True)
    s.add(2, "a", 1.0, now=0.0)
    assert s.remove(1) and not s.remove(1) and s.remove(2)
    assert len(s) == 0 and s.next_batch(now=1.0) is None


def test_an_optional_batch_is_held_to_its_row_seconds_budget() -> None:
    """Droppable jobs (captions, steps) go in batches of at most ``optional_batch_audio_s``
    row-seconds: text rows x the longest input. The rest wait for the next optional batch."""
    s = sched(max_batch_size=16, optional_batch_audio_s=24.0)
    for j in range(5):
        s.add(j, f"s{j}", 6.0, now=0.0, droppable=True, rows=2)  # 12 row-seconds each
    assert s.next_batch(now=0.0) == [0, 1]  # 2 x 2 rows x 6 s = 24: full, goes at once
    assert s.next_batch(now=0.0) == [2, 3]
    assert s.next_batch(now=0.0) is None  # one left: not full, not expired
    assert s.next_batch(now=0.02) == [4]


def test_the_optional_budget_counts_rows_and_pads_to_the_longest() -> None:
    s = sched(max_batch_size=16, optional_batch_audio_s=20.0)
    s.add(1, "a", 2.0, now=0.0, droppable=True, rows=4)  # 8 row-seconds alone
    s.add(2, "b", 5.0, now=0.0, droppable=True, rows=1)  # with 1: 5 rows x 5 s = 25 > 20
    s.add(3, "c", 2.0, now=0.0, droppable=True, rows=5)  # with 1: 9 rows x 2 s = 18 fits
    assert s.next_batch(now=0.0) == [1, 3]
    assert s.next_batch(now=0.02) == [2]


def test_finals_are_not_held_to_the_optional_budget() -> None:
    s = sched(max_batch_size=16, optional_batch_audio_s=10.0)
    for j in range(4):
        s.add(j, f"s{j}", 6.0, now=0.0, rows=3)  # 72 row-seconds together
    assert s.next_batch(now=0.02) == [0, 1, 2, 3]


def test_a_droppable_job_over_the_budget_alone_does_not_fit() -> None:
    s = sched(optional_batch_audio_s=30.0)
    assert s.fits_optional(6.0, rows=5) and s.fits_optional(15.0, rows=2)
    assert not s.fits_optional(15.0, rows=3) and not s.fits_optional(31.0)


def test_the_optional_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="optional_batch_audio_s"):
        SchedulerConfig(optional_batch_audio_s=0.0)


# -- the steps core's two facts: the decode's room and each owner's rows in it ------------------


def test_with_room_and_running_the_stream_with_fewest_rows_in_the_decode_goes_first() -> None:
    s = sched()
    for j in range(5):  # a flood's segments, all older than the live stream's
        s.add(j, "flood", 2.0, now=0.0)
    s.add(10, "live", 2.0, now=0.5)
    # the flood has 4 rows decoding, the live stream none: one slot frees, the live final takes it
    assert s.next_batch(now=1.0, room=1, running={"flood": 4}) == [10]
    # the same rows in the decode for both (none): the oldest goes first, as in a batch
    s.add(11, "live", 2.0, now=0.6)
    assert s.next_batch(now=1.0, room=1, running={}) == [0]
    # room for three: the live stream's one (rank 1), then the flood's (ranks 4, 5: it has 3 in)
    assert s.next_batch(now=1.0, room=3, running={"flood": 3, "live": 1}) == [1, 2, 11]


def test_room_caps_the_rows_but_the_first_job_goes_whatever_its_rows() -> None:
    s = sched()
    s.add(1, "a", 1.0, now=0.0, rows=3)  # three targets
    s.add(2, "b", 1.0, now=0.0, rows=1)
    assert s.next_batch(now=0.0, room=0, running={}) is None  # no room: everything waits here
    assert len(s) == 2
    assert s.next_batch(now=0.0, room=2, running={}) == [1]  # full at once: no wait for more
    assert s.next_batch(now=0.0, room=2, running={}) is None  # room left: it waits for company
    assert s.next_batch(now=0.02, room=2, running={}) == [2]


def test_no_owner_starves_under_room_its_rank_falls_as_its_rows_end() -> None:
    s = sched()
    for j in range(3):
        s.add(j, "flood", 1.0, now=0.0)
    s.add(9, "live", 1.0, now=0.1)
    s.add(8, "live2", 1.0, now=0.2)
    assert s.next_batch(now=1.0, room=1, running={"flood": 2, "live": 1}) == [8]  # live2 has none in
    assert s.next_batch(now=1.0, room=1, running={"flood": 2, "live": 1, "live2": 1}) == [9]
    # once the flood's rows in the decode are no more than the others', its oldest goes first again
    s.add(7, "live", 1.0, now=0.3)
    assert s.next_batch(now=1.0, room=1, running={"flood": 1, "live": 2}) == [0]
