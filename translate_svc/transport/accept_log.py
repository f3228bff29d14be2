"""asyncio's report of a listening socket whose ``accept`` failed for want of a file descriptor
(EMFILE, ENFILE, ENOBUFS, ENOMEM), logged at a bounded rate (security finding H2).

asyncio (3.11) reports each such failure to the loop's exception handler, which logs an ERROR with
a traceback, ~470 bytes; it then goes on trying the rest of its accept backlog in the same tick and
tries again a second later, so one port out of descriptors wrote 74.8 MB in about 40 s (issue
68's review; 86 MB in 40 s when re-run on eb20967). Here the first failure in a window is one
WARNING line (which errno, which port, no traceback), the rest are counted and summed up in the
next window's line; every other report goes to the handler that was there. The caps that keep a
process from running out (``descriptors.py``, the HTTP port's budget, the SIP door's connection
caps) are the fix; this bounds what is written when something else takes the descriptors.
Event loop only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

#: asyncio's message for an accept that failed for want of a resource (``selector_events``)
ACCEPT_FAILED = "socket.accept() out of system resource"
#: at most one line per this many seconds
WINDOW_S = 10.0


class AcceptErrorLog:
    """The loop's exception handler while installed: accept failures at most one line a window,
    the rest to the handler that was there before. Event loop only."""

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s, self._clock = window_s, clock
        self._start = -window_s
        self.suppressed = 0
        self.failures = 0
        self._previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Put this in front of ``loop``'s exception handler, unless an ``AcceptErrorLog`` is there
        already (one server after another on one loop, as in tests, does not stack them)."""
        current = loop.get_exception_handler()
        if isinstance(getattr(current, "__self__", None), AcceptErrorLog):
            return
        self._previous = current
        loop.set_exception_handler(self.handle)

    def handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != ACCEPT_FAILED:
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        self.failures += 1
        now = self._clock()
        if now - self._start < self.window_s:
            self.suppressed += 1
            return
        exc = context.get("exception")
        sock = context.get("socket")
        where = ""
        try:
            where = f" on port {sock.getsockname()[1]}" if sock is not None else ""
        except (OSError, IndexError, TypeError):
            pass
        logger.warning(
            "%s%s (%s): new connections wait in the kernel's queue until a descriptor is free%s",
            ACCEPT_FAILED,
            where,
            exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__,
            f"; {self.suppressed} more failed accepts in the last {now - self._start:.0f} s" if self.suppressed else "",
        )
        self._start, self.suppressed = now, 0
