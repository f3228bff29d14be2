"""Refusals logged at a bounded rate, for every door: a caller that is refused costs us one log
line at most ``burst`` times a window, so strangers cannot write the log without bound (issue 57:
12.6 MB of AudioSocket refusals in 10 s). Door-neutral: a door names what it refused and why in
its own words (a gRPC status code, a reason)."""

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

    def __call__(self, what: str, peer: str, why: Enum | str) -> None:
        """A ``what`` (a call, a stream) from ``peer`` was refused: ``why`` (an enum's name is logged)."""
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
