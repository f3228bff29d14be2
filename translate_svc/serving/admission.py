"""The node's counters, shared by its front-end workers: ``session.quota.Counters`` across processes.

Every cap is node-wide: ``limits.max_streams``, ``limits.max_translate_calls`` and each tenant's
caps. A small shared file (memory-mapped by every worker) holds a table of counter names, one count
per counter per worker slot, and each tenant's audio budget. Taking a counter ``flock``s the file,
sums the counter's column and adds one to the worker's own slot: a few microseconds on the event
loop, exact (two workers cannot both take the last slot), and no round trip to another process. The
supervisor zeroes a dead worker's slot before its replacement starts. A name keeps its column for
the node's life (a process caches where it is).
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from translate_svc.cluster.store import refill

SLOTS = 256  # the most workers a node runs (settings: server.workers <= 256)
NAMES = 1024  # counters a node can hold: 2 + 3 per tenant (the tokens file's tenants)
_NAME_BYTES = 64
_NAMES_SIZE = NAMES * _NAME_BYTES
_COUNTS_SIZE = SLOTS * NAMES * 8
_BUDGETS_SIZE = NAMES * 2 * 8
SIZE = _NAMES_SIZE + _COUNTS_SIZE + _BUDGETS_SIZE


def create(path: Path) -> None:
    """A counters file with no names and every count at zero (the supervisor, before any worker)."""
    with path.open("wb") as f:
        f.truncate(SIZE)


class SharedCounters:
    """Implements ``session.quota.Counters`` for worker ``slot``. Event loop only."""

    def __init__(self, path: Path, slot: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 <= slot < SLOTS:
            raise ValueError(f"slot {slot} out of range 0..{SLOTS - 1}")
        self._fd = os.open(path, os.O_RDWR)
        self._map = mmap.mmap(self._fd, SIZE)
        self._names = np.frombuffer(self._map, dtype=f"S{_NAME_BYTES}", count=NAMES)
        self._counts = np.frombuffer(self._map, dtype=np.int64, count=SLOTS * NAMES, offset=_NAMES_SIZE).reshape(
            SLOTS, NAMES
        )
        self._budgets = np.frombuffer(
            self._map, dtype=np.float64, count=NAMES * 2, offset=_NAMES_SIZE + _COUNTS_SIZE
        ).reshape(NAMES, 2)
        self._columns: dict[str, int] = {}
        self._clock = clock
        self.slot = slot

    def try_acquire(self, wants: Sequence[tuple[str, int]]) -> str | None:
        with self._locked():
            columns = [self._column(name) for name, _ in wants]
            for (name, limit), col in zip(wants, columns, strict=True):
                if int(self._counts[:, col].sum()) >= limit:
                    return name
            for col in columns:
                self._counts[self.slot, col] += 1
            return None

    def release(self, names: Sequence[str]) -> None:
        with self._locked():
            for name in names:
                self._counts[self.slot, self._column(name)] -= 1

    def count(self, name: str) -> int:
        """The counter's value on the node now."""
        with self._locked():
            return int(self._counts[:, self._column(name)].sum())

    def spend(self, name: str, amount: float, per_minute: float) -> float:
        with self._locked():
            col = self._column(name)
            level, when = self._budgets[col]
            now = self._clock()
            level = per_minute if when == 0.0 else refill(float(level), now - float(when), per_minute)
            level -= amount
            self._budgets[col] = (level, now)
            return level

    def reset(self) -> None:
        """Zero this slot (its worker is gone: its calls with it)."""
        with self._locked():
            self._counts[self.slot, :] = 0

    def _column(self, name: str) -> int:
        """The name's column (under the lock): found in the table, or added to it."""
        col = self._columns.get(name)
        if col is not None:
            return col
        key = name.encode()
        if len(key) >= _NAME_BYTES:
            raise ValueError(f"counter name too long: {name!r}")
        found = np.flatnonzero(self._names == key)
        if len(found):
            col = int(found[0])
        else:
            free = np.flatnonzero(self._names == b"")
            if not len(free):
                raise RuntimeError(f"the node's counters table is full ({NAMES} names)")
            col = int(free[0])
            self._names[col] = key
        self._columns[name] = col
        return col

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        del self._names, self._counts, self._budgets
        self._map.close()
        os.close(self._fd)
