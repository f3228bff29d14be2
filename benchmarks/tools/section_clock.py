"""One thread's CPU time by section, for the host-time benchmarks (``host_costs.py``,
``host_time.py``): every boundary (a section entered or left, a capture region entered or left)
charges the thread time since the previous boundary to what ran: ``regions`` inside a capture
region, else the innermost section (``outside`` when none is open). A ``RegionObserver``
(``translate_svc/model/regions.py``); other threads' regions and sections are not timed, so a
clock made on the model's thread measures that thread alone. Not thread-safe beyond that: one clock,
one thread."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any


class SectionClock:
    def __init__(self, outside: str) -> None:
        #: CPU seconds by section (and ``regions``)
        self.totals: dict[str, float] = defaultdict(float)
        self._thread = threading.get_ident()
        self._sections = [outside]
        self._depth = 0  # capture regions open
        self._last = time.thread_time()

    def _charge(self) -> None:
        now = time.thread_time()
        self.totals["regions" if self._depth else self._sections[-1]] += now - self._last
        self._last = now

    def close(self) -> None:
        """Charge the time since the last boundary (read ``totals`` after it)."""
        self._charge()

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        """The block's time (on this clock's thread) charged to ``name``."""
        if threading.get_ident() != self._thread:
            yield
            return
        self._charge()
        self._sections.append(name)
        try:
            yield
        finally:
            self._charge()
            self._sections.pop()

    def wrap(self, owner: Any, attr: str, name: str, stack: ExitStack) -> None:
        """``owner.attr`` (an instance's method or a class's) timed as section ``name`` until
        ``stack`` closes, when the original is put back."""
        had = attr in owner.__dict__
        original = getattr(owner, attr)
        clock = self

        def timed(*a: Any, **k: Any) -> Any:
            with clock.section(name):
                return original(*a, **k)

        setattr(owner, attr, timed)
        stack.callback(*((setattr, owner, attr, original) if had else (delattr, owner, attr)))

    # RegionObserver
    def entered(self, name: str) -> None:
        if threading.get_ident() == self._thread:
            self._charge()
            self._depth += 1

    def left(self, name: str) -> None:
        if threading.get_ident() == self._thread:
            self._charge()
            self._depth -= 1

    def read(self, what: str) -> None:
        pass
