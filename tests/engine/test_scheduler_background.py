"""The scheduler's background class (a job's segments, issue 73) with plain values: no model, no clock.

A background job is taken only when no live job (final or droppable) is queued or on its way; a
live batch never holds a live final back for it; and its floor (``background_floor_s``) gives an
old one a seat however busy the live queue stays.
"""

from __future__ import annotations

import pytest

from translate_svc.engine.scheduler import BatchScheduler, SchedulerConfig

pytestmark = pytest.mark.unit

FLOOR = 5.0


def sched(**kw) -> BatchScheduler:  # type: ignore[no-untyped-def]
    return BatchScheduler(
        SchedulerConfig(**{"max_batch_size": 4, "max_wait_s": 0.01, "background_floor_s": FLOOR, **kw})
    )


def test_a_background_job_is_never_taken_while_a_live_final_waits() -> None:
    s = sched()
    s.add(1, "job", 1.0, now=0.0, background=True)  # older than the final
    s.add(2, "live", 1.0, now=0.001)
    assert s.next_batch(now=0.02) == [2]
    assert s.next_batch(now=0.02) == [1]
    assert len(s) == 0


def test_a_background_job_waits_for_droppable_work_and_for_live_work_on_its_way() -> None:
    s = sched()
    s.add(1, "job", 1.0, now=0.0, background=True)
    s.add(2, "live", 1.0, now=0.0, droppable=True)
    assert s.next_batch(now=0.02) == [2]
    # a live job computing its features: the background job waits (no deadline for it but its floor)
    assert s.next_batch(now=0.02, live_coming=True) is None
    assert s.next_deadline(live_coming=True) is None
    assert s.next_batch(now=0.02, finals_coming=True) is None
    assert s.next_batch(now=0.02) == [1]


def test_live_rows_are_never_held_back_by_background_rows() -> None:
    s = sched()
    s.add(10, "job", 1.0, now=0.0, background=True)
    s.add(11, "job", 1.0, now=0.0, background=True)
    for j in range(3):
        s.add(j, f"live{j}", 1.0, now=1.0)
    # the finals' batch goes at their own deadline (not the older background jobs'), finals only
    assert s.next_deadline() == pytest.approx(1.01)
    assert s.next_batch(now=1.005) is None
    assert s.next_batch(now=1.01) == [0, 1, 2]
    # then the background jobs, one segment a batch (background_batch_size)
    assert s.next_batch(now=1.02) == [10]
    assert s.next_batch(now=1.02) == [11]


def test_a_full_live_batch_goes_at_once_without_background_rows() -> None:
    s = sched()
    s.add(10, "job", 1.0, now=0.0, background=True)
    for j in range(4):
        s.add(j, f"live{j}", 1.0, now=1.0)
    assert s.next_batch(now=1.0) == [0, 1, 2, 3]


def test_the_floor_gives_an_old_background_job_one_seat_of_a_busy_live_batch_per_floor() -> None:
    s = sched()
    s.add(100, "job", 1.0, now=0.0, background=True)
    s.add(101, "job", 1.0, now=0.0, background=True)
    for j in range(8):
        s.add(j, f"live{j}", 1.0, now=FLOOR - 1)
    assert s.next_batch(now=FLOOR - 1) == [0, 1, 2, 3]  # not yet overdue: live only
    for j in range(8, 12):
        s.add(j, f"live{j}", 1.0, now=FLOOR)
    batch = s.next_batch(now=FLOOR)
    assert batch is not None and len(batch) == 4 and batch[-1] == 100  # three live rows and the floor's seat
    # one seat per floor: 101 waited as long, but a background job just ran, so live rows only
    batch = s.next_batch(now=FLOOR)
    assert batch is not None and len(batch) == 4 and 101 not in batch
    assert s.next_deadline() == pytest.approx(FLOOR + 0.01)  # the live rows left: their own wait
    for j in range(12, 16):
        s.add(j, f"live{j}", 1.0, now=2 * FLOOR)
    batch = s.next_batch(now=2 * FLOOR)
    assert batch is not None and batch[-1] == 101  # a floor later, the next seat


def test_the_floor_puts_an_old_background_job_ahead_of_droppable_work() -> None:
    s = sched()
    s.add(10, "job", 1.0, now=0.0, background=True)
    s.add(1, "live", 1.0, now=FLOOR - 1, droppable=True)
    assert s.next_deadline() == pytest.approx(FLOOR - 1 + 0.01)
    assert s.next_batch(now=FLOOR - 1 + 0.01) == [1]
    s.add(2, "live", 1.0, now=FLOOR - 0.5, droppable=True)
    assert s.next_deadline() == pytest.approx(FLOOR - 0.5 + 0.01)
    s.add(3, "live", 1.0, now=FLOOR - 0.001, droppable=True)
    assert s.next_batch(now=FLOOR) == [10]
    assert s.next_batch(now=FLOOR) == [2, 3]


def test_the_floor_deadline_wakes_the_loop_while_live_work_waits() -> None:
    s = sched(max_wait_s=60.0)
    s.add(10, "job", 1.0, now=0.0, background=True)
    s.add(1, "live", 1.0, now=1.0)
    assert s.next_deadline() == pytest.approx(FLOOR)


def test_background_jobs_leave_with_their_owner() -> None:
    s = sched()
    s.add(10, "job", 1.0, now=0.0, background=True)
    s.add(1, "job", 1.0, now=0.0, droppable=True)
    assert s.background == 1
    assert sorted(s.remove_owner("job")) == [1, 10]
    assert len(s) == 0
    s.add(11, "job", 1.0, now=0.0, background=True)
    assert s.remove(11) and len(s) == 0


def test_a_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="background_floor_s"):
        SchedulerConfig(background_floor_s=0)
    with pytest.raises(ValueError, match="background_batch_size"):
        SchedulerConfig(background_batch_size=0)
