"""Issue 87 J1: a stream's noise suppression runs on the ear's pool, off the event loop, and its
chunks stay in order there (``session/stream/ear.py``'s ``EarLane``): one call of a stream at a time, in
the order made, even when the await of one was cancelled; other streams' calls run beside it."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from translate_svc.session.stream.ear import EarLane

pytestmark = [pytest.mark.unit, pytest.mark.asyncio(loop_scope="session")]


class Recorder:
    """A stream's state that must never be used by two threads at once: each call notes its
    number, its thread, and whether another call of the same stream was running."""

    def __init__(self) -> None:
        self.order: list[int] = []
        self.threads: set[str] = set()
        self.overlaps = 0
        self._busy = threading.Lock()

    def call(self, n: int, seconds: float = 0.002) -> int:
        if not self._busy.acquire(blocking=False):
            self.overlaps += 1
            self._busy.acquire()
        try:
            self.threads.add(threading.current_thread().name)
            time.sleep(seconds)
            self.order.append(n)
            return n
        finally:
            self._busy.release()


async def test_a_streams_calls_run_off_the_loop_one_at_a_time_in_order() -> None:
    pool = ThreadPoolExecutor(4, thread_name_prefix="ear-test")
    try:
        streams = [Recorder() for _ in range(3)]
        lanes = [EarLane(pool) for _ in streams]

        async def feed(lane: EarLane, rec: Recorder) -> list[int]:
            return [await lane.run(lambda n=n: rec.call(n)) for n in range(20)]  # type: ignore[misc]

        got = await asyncio.gather(*(feed(lane, rec) for lane, rec in zip(lanes, streams, strict=True)))
        for rec, results in zip(streams, got, strict=True):
            assert results == list(range(20)) and rec.order == list(range(20))
            assert rec.overlaps == 0
            assert rec.threads and all(t.startswith("ear-test") for t in rec.threads)
    finally:
        pool.shutdown()


async def test_a_call_whose_await_was_cancelled_ends_before_the_next_one_starts() -> None:
    pool = ThreadPoolExecutor(4, thread_name_prefix="ear-test")
    try:
        rec = Recorder()
        lane = EarLane(pool)
        slow = asyncio.ensure_future(lane.run(lambda: rec.call(0, 0.3)))
        await asyncio.sleep(0.05)  # it runs on a thread now
        slow.cancel()
        assert await lane.run(lambda: rec.call(1)) == 1
        assert rec.order == [0, 1] and rec.overlaps == 0
    finally:
        pool.shutdown()
