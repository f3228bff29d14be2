"""The SIP door's timers (RFC 3261 §17): a response or request sent again over UDP until its
answer comes (Timer G for an INVITE's final response, Timer E for our BYE: T1, doubling, at most
T2), given up after a deadline (Timer H, 64*T1: the call then ends with a logged reason); and a
bounded table of what was answered, so a retransmitted request gets the same answer and no new
state (Timer J). Event loop only."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

#: RFC 3261's T1 and T2 (§17.1.1.1)
T1_S = 0.5
T2_S = 4.0
#: how long an answered request's response is kept for its retransmissions (64*T1)
KEEP_S = 32.0
#: answered requests kept, at most (the oldest forgotten first)
MAX_KEPT = 8192

V = TypeVar("V")


class Retransmit:
    """Sends ``send()`` now and again at T1, 2*T1, ... (at most T2 apart) while ``repeat``, until
    ``stop`` or ``timeout_s`` (then ``on_timeout``)."""

    def __init__(
        self, send: Callable[[], None], *, repeat: bool, timeout_s: float, on_timeout: Callable[[], None] | None = None
    ) -> None:
        self._send = send
        self._repeat = repeat
        self._on_timeout = on_timeout
        self._interval = T1_S
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + timeout_s
        self.done = False
        send()
        self._timer: asyncio.TimerHandle | None = loop.call_later(
            min(T1_S, timeout_s) if repeat else timeout_s, self._fire
        )

    def _fire(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() >= self._deadline - 0.001:
            self._timer = None
            self.done = True
            if self._on_timeout is not None:
                self._on_timeout()
            return
        if self._repeat:
            self._send()
            self._interval = min(2 * self._interval, T2_S)
        wait = min(self._interval, self._deadline - loop.time()) if self._repeat else self._deadline - loop.time()
        self._timer = loop.call_later(max(0.0, wait), self._fire)

    def stop(self) -> None:
        self.done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Kept(Generic[V]):
    """Entries kept ``keep_s`` after they were put, at most ``max_entries`` (the oldest out first)."""

    def __init__(self, keep_s: float = KEEP_S, max_entries: int = MAX_KEPT) -> None:
        self._keep_s = keep_s
        self._max = max_entries
        self._items: OrderedDict[object, tuple[float, V]] = OrderedDict()

    def put(self, key: object, value: V, now: float) -> None:
        self._items.pop(key, None)
        self._items[key] = (now + self._keep_s, value)
        self._purge(now)

    def get(self, key: object, now: float) -> V | None:
        item = self._items.get(key)
        if item is None or item[0] < now:
            return None
        return item[1]

    def pop(self, key: object) -> V | None:
        item = self._items.pop(key, None)
        return item[1] if item is not None else None

    def _purge(self, now: float) -> None:
        while self._items:
            key, (expiry, _) = next(iter(self._items.items()))
            if expiry >= now and len(self._items) <= self._max:
                break
            self._items.pop(key)

    def __len__(self) -> int:
        return len(self._items)
