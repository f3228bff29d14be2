"""A stream's clock with plain values: no loop, no driver, no session (``session/calls/clock.py``).

Each verdict, when it is due and what comes before what, and the wake-ups the driver arms its timer at.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from translate_svc.session.calls.clock import ClockConfig, StreamClock, Verdict, clock_config
from translate_svc.settings import LimitsSettings

pytestmark = pytest.mark.unit

CONFIG = ClockConfig(config_timeout_s=5.0, idle_timeout_s=10.0, stall_close_s=1.0, max_stream_s=60.0)


def opened(at: float = 0.0, config: ClockConfig = CONFIG) -> StreamClock:
    """A clock whose call opened and whose config came at ``at``."""
    c = StreamClock(config)
    c.called(at)
    c.opened(at)
    return c


def test_before_the_call_opens_nothing_is_due_and_nothing_wakes() -> None:
    c = StreamClock(CONFIG)
    assert c.wake() is None
    assert c.due(1e9) is Verdict.NONE


def test_a_call_without_its_config_times_out_at_its_deadline() -> None:
    c = StreamClock(CONFIG)
    c.called(100.0)
    assert c.wake() == c.config_deadline == 105.0
    assert c.due(104.9) is Verdict.NONE
    assert c.due(105.0) is Verdict.CONFIG_TIMEOUT
    assert c.due(104.9995) is Verdict.CONFIG_TIMEOUT  # a timer a moment early still counts


def test_once_configured_the_config_timeout_is_over() -> None:
    c = StreamClock(CONFIG)
    c.called(0.0)
    c.opened(1.0)
    assert c.wake() is None  # the reader is not waiting yet
    assert c.due(1000.0) is Verdict.NONE


def test_a_silent_client_is_idle_after_idle_timeout_from_its_last_message() -> None:
    c = opened()
    c.waits(3.0)
    assert c.wake() == 13.0
    assert c.due(12.9) is Verdict.NONE
    assert c.due(13.0) is Verdict.IDLE


def test_nothing_is_due_while_the_reader_is_busy_with_a_message() -> None:
    c = opened()
    c.waits(0.0)
    c.took()
    assert c.wake() is None
    assert c.due(1000.0, holds_speech=True) is Verdict.NONE
    c.waits(20.0)  # the idle count starts again at the next wait
    assert c.wake() == 30.0


def test_a_client_seen_alive_is_kept_each_idle_timeout_and_the_count_starts_again() -> None:
    c = opened()
    c.waits(0.0)
    assert c.due(10.0, alive=True) is Verdict.KEEP
    assert c.wake() == 20.0  # kept at 10: idle again at 20
    assert c.due(15.0, alive=True) is Verdict.NONE
    assert c.due(20.0, alive=True) is Verdict.KEEP
    assert c.due(30.0, alive=False) is Verdict.IDLE  # stopped answering: idle


def test_a_kept_client_ends_at_its_longest_life_counted_from_its_config() -> None:
    c = opened(at=5.0)
    c.waits(5.0)
    for now in (15.0, 25.0, 35.0, 45.0, 55.0):
        assert c.due(now, alive=True) is Verdict.KEEP
    assert c.due(65.0, alive=True) is Verdict.MAX_DURATION  # 60 s after its config at 5
    assert c.due(65.0, alive=False) is Verdict.IDLE


def test_a_sender_that_stops_with_speech_open_is_stalled_once_a_wait() -> None:
    c = opened()
    c.carried(0.2)  # its last message carried 200 ms: played out 200 ms after it came
    c.waits(4.0)
    assert c.wake(holds_speech=True) == pytest.approx(5.2)
    assert c.due(5.1, holds_speech=True) is Verdict.NONE
    assert c.due(5.2, holds_speech=True) is Verdict.STALL
    # given once: the next wake-up is the idle limit, and the stall is not due again this wait
    assert c.wake(holds_speech=True) == 14.0
    assert c.due(6.0, holds_speech=True) is Verdict.NONE
    c.took()
    c.waits(7.0)  # a new wait: a new stall close
    assert c.wake(holds_speech=True) == pytest.approx(8.2)


def test_no_stall_without_open_speech_or_with_the_stall_close_off() -> None:
    c = opened()
    c.waits(0.0)
    assert c.wake(holds_speech=False) == 10.0
    assert c.due(2.0, holds_speech=False) is Verdict.NONE
    off = opened(config=ClockConfig(config_timeout_s=5.0, idle_timeout_s=10.0, stall_close_s=0.0))
    off.waits(0.0)
    assert off.wake(holds_speech=True) == 10.0
    assert off.due(2.0, holds_speech=True) is Verdict.NONE


def test_the_idle_limit_comes_before_a_stall_due_at_the_same_time() -> None:
    c = opened(config=ClockConfig(idle_timeout_s=1.0, stall_close_s=5.0))
    c.waits(0.0)
    assert c.wake(holds_speech=True) == 1.0
    assert c.due(6.0, holds_speech=True) is Verdict.IDLE
    assert c.due(6.0, alive=True, holds_speech=True) is Verdict.KEEP


def test_a_drains_deadline_wakes_the_reader_and_comes_before_everything() -> None:
    c = opened()
    c.waits(0.0)
    c.drain(3.0)
    assert c.wake(holds_speech=True) == 1.0  # the stall first
    assert c.wake() == 3.0  # then the drain, before the idle limit
    assert c.due(2.9) is Verdict.NONE
    assert c.due(3.0, alive=True, holds_speech=True) is Verdict.DRAIN
    assert c.due(50.0, alive=True, holds_speech=True) is Verdict.DRAIN  # over idle, keep and stall


def test_a_drains_deadline_is_read_between_messages_never_under_one() -> None:
    c = opened()
    c.drain(3.0)
    assert not c.drain_passed(2.9)
    assert c.drain_passed(3.0) and c.drain_passed(2.9995)
    c.waits(0.0)
    c.took()
    assert c.due(4.0) is Verdict.NONE  # busy with a message: the driver checks ``drain_passed`` after it


def test_the_config_maps_the_limits_and_refuses_what_cannot_run() -> None:
    limits = LimitsSettings(config_timeout_ms=250, idle_timeout_s=30.0, stall_close_ms=700, max_stream_seconds=90.0)
    assert clock_config(limits) == ClockConfig(
        config_timeout_s=0.25, idle_timeout_s=30.0, stall_close_s=0.7, max_stream_s=90.0
    )
    for bad in ({"idle_timeout_s": 0.0}, {"config_timeout_s": -1.0}, {"max_stream_s": 0.0}, {"stall_close_s": -0.1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ClockConfig(**bad)  # type: ignore[arg-type]


@given(
    stall_close_s=st.sampled_from([0.0, 0.4, 1.0, 30.0]),
    chunk_s=st.floats(0.0, 0.5),
    kept_at=st.floats(0.0, 40.0) | st.none(),
    drain_at=st.floats(0.0, 60.0) | st.none(),
    now=st.floats(0.0, 50.0),
    holds_speech=st.booleans(),
)
def test_no_wake_up_comes_before_the_earliest_one_the_driver_keeps_its_timer_for(
    stall_close_s: float,
    chunk_s: float,
    kept_at: float | None,
    drain_at: float | None,
    now: float,
    holds_speech: bool,
) -> None:
    """The driver leaves a timer armed by ``earliest_wake`` (it does not recompute the wake-up per
    message): whatever the stream holds, the wait's wake-up may not come before it."""
    c = opened(config=ClockConfig(config_timeout_s=5.0, idle_timeout_s=10.0, stall_close_s=stall_close_s))
    if kept_at is not None:  # a muted client kept alive at ``kept_at``
        c.waits(kept_at)
        assert c.due(kept_at + 10.0, alive=True) is Verdict.KEEP
        c.took()
    if drain_at is not None:
        c.drain(drain_at)
    c.waits(now - chunk_s)
    c.took()
    c.carried(chunk_s)
    c.waits(now)
    wake = c.wake(holds_speech=holds_speech)
    assert wake is not None and wake >= c.earliest_wake(now)
    if drain_at is not None and drain_at < now + min(10.0, stall_close_s or 10.0):
        assert c.earliest_wake(now) == drain_at  # a drain's deadline before the rest is the earliest
