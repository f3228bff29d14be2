"""Refusals logged at most ``burst`` per window, the rest counted and summed up in one line, so a
flood of bad calls cannot flood the log (unbounded, 12.6 MB of AudioSocket refusals came in 10 s): the
gRPC port's (token refusals, call slots, health), the HTTP port's (requests aiohttp could not read,
clients gone mid-request: ``http/site.py``) and AudioSocket's.
Wire-neutral: a refusal's reason is a name (a status code's) or a short sentence.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum

logger = logging.getLogger(__name__)


class RefusalLog:
    """Refusals logged at most ``burst`` per ``window_s``; the rest are counted and summed up in
    the next line, so a flood of bad calls cannot flood the log. Event loop only."""

    def __init__(self, burst: int = 10, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.window_s, self._clock = burst, window_s, clock
        self._start = -window_s
        self._logged = 0
        self.suppressed = 0

    def __call__(self, what: str, peer: str, why: str | Enum) -> None:
        """``what`` (a call, a request...) from ``peer`` was refused for ``why`` (a status code, or
        a short sentence that quotes nothing the client sent)."""
        now = self._clock()
        if now - self._start >= self.window_s:
            if self.suppressed:
                logger.info(
                    "refused %d more calls in the last %.0f s (not logged one by one)",
                    self.suppressed,
                    now - self._start,
                )
            self._start, self._logged, self.suppressed = now, 0, 0
        if self._logged < self.burst:
            self._logged += 1
            logger.info("refused a %s from %s: %s", what, peer, why.name if isinstance(why, Enum) else why)
        else:
            self.suppressed += 1
