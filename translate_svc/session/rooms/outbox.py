"""A party's store calls, made in order by a task of their own (``link.py``): the speaker's
output path never awaits the cluster store. Each speaker has a bounded ``Outbox`` (and the link
one for the calls of leaving parties); what it drops (full, or the store unavailable) is counted
(``translate_svc_room_relay_dropped_total``) and logged. When the server stops, ``drain`` makes what
is waiting within a bound (what it cannot make is dropped, counted: reason ``shutdown``).

Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from translate_svc.cluster.store import StoreUnavailable
from translate_svc.observability import metrics

logger = logging.getLogger(__name__)

#: a speaker's store calls waiting (beyond: its oldest are dropped, counted)
OUTBOX = 256

#: one store call
Op = Callable[[], Awaitable[object]]


class Outbox:
    """Store calls made in order by one task, never awaited by who puts them (see the module)."""

    def __init__(self, what: str, limit: int = OUTBOX) -> None:
        self._what = what
        self._limit = limit
        self._ops: deque[Op] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self.dropped = 0
        self._down = False
        self._task: asyncio.Task[None] | None = None
        #: a call being made (``drain`` counts it if it must stop it)
        self._busy = False

    @property
    def done(self) -> bool:
        """Closed, and every call it took made (or dropped)."""
        return self._closing and (self._task is None or self._task.done())

    def put(self, op: Op) -> None:
        if self._closing:  # its party is gone, or the server stops: counted, never silently lost
            self._drop("closed")
            return
        if len(self._ops) >= self._limit:
            self._ops.popleft()
            self._drop("full")
        self._ops.append(op)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"room outbox {self._what}")

    def close(self) -> None:
        """No more calls; those waiting are still made."""
        self._closing = True
        self._wake.set()

    async def drain(self, timeout_s: float) -> None:
        """Closed, then until every call waiting is made, or ``timeout_s`` has passed: those left
        (the one being made included) are dropped, counted (reason ``shutdown``)."""
        self.close()
        task = self._task
        if task is None or task.done():
            return
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(task)
        except TimeoutError:
            for _ in range(len(self._ops) + self._busy):
                self._drop("shutdown")
            self._ops.clear()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _drop(self, reason: str) -> None:
        self.dropped += 1
        metrics.room_relay_dropped(reason)
        if self.dropped == 1 or self.dropped % 100 == 0:
            logger.warning("a room's outbox dropped a call (%s; %d so far): %s", reason, self.dropped, self._what)

    async def _run(self) -> None:
        while True:
            while not self._ops:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
            op = self._ops.popleft()
            self._busy = True
            try:
                await op()
                if self._down:
                    self._down = False
                    logger.info("a room's outbox reaches the cluster store again: %s", self._what)
            except StoreUnavailable:
                self._down = True
                self._drop("store_unavailable")
            except Exception:
                logger.exception("a room's store call failed: %s", self._what)
                self._drop("error")
            finally:
                self._busy = False
