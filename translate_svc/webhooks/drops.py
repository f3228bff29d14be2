"""Webhook deliveries dropped (security finding H6): each counted at once on /metrics by reason and tenant
(``translate_svc_webhook_dropped_total``), and logged at a bounded rate: at most ``burst`` lines a
``window_s``, the rest summed per tenant in one line when the window has passed (at the next drop,
or at the outbox's next heartbeat: ``flush``). A tenant flooding the queue so cannot flood the log
(before: a WARNING line per dropped event). Thread-safe: the store's thread reports its drops here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from translate_svc.observability import webhook_metrics as wm

logger = logging.getLogger(__name__)

#: the tenants a summary line names at most (the most dropped first)
SUMMARY_TENANTS = 10


class DropLog:
    """Counts and logs dropped deliveries (see the module's docstring)."""

    def __init__(self, burst: int = 5, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.window_s, self._clock = burst, window_s, clock
        self._lock = threading.Lock()
        self._start = -window_s
        self._logged = 0
        #: drops not logged one by one in this window: (tenant, reason) -> deliveries
        self.held: Counter[tuple[str, str]] = Counter()

    def __call__(self, reason: str, tenant: str, n: int, why: str) -> None:
        """``n`` deliveries of ``tenant``'s events dropped for ``reason`` (a metric label), ``why``
        saying it in words (naming the setting to change, quoting nothing a caller sent)."""
        wm.dropped(reason, tenant, n)
        with self._lock:
            summary = self._roll()
            logged = self._logged < self.burst
            if logged:
                self._logged += 1
            else:
                self.held[(tenant, reason)] += n
        if summary:
            logger.warning("%s", summary)
        if logged:
            logger.warning("webhook deliveries of tenant %s dropped: %d (%s): %s", tenant, n, reason, why)

    def flush(self) -> None:
        """The held drops' line, if their window has passed (the outbox's heartbeat calls it)."""
        with self._lock:
            summary = self._roll()
        if summary:
            logger.warning("%s", summary)

    def _roll(self) -> str:
        """At a window's end: start the next, and say what the last one held (held by the lock)."""
        now = self._clock()
        if now - self._start < self.window_s:
            return ""
        held, self.held = self.held, Counter()
        self._start, self._logged = now, 0
        if not held:
            return ""
        top = held.most_common(SUMMARY_TENANTS)
        named = ", ".join(f"tenant {tenant} {n} ({reason})" for (tenant, reason), n in top)
        more = f" and {len(held) - len(top)} more" if len(held) > len(top) else ""
        return (
            f"webhook deliveries dropped and not logged one by one in the last {self.window_s:.0f} s: "
            f"{sum(held.values())}: {named}{more}"
        )
