"""The node's counters, shared by its front-end workers: ``session.quota.Counters`` across processes.

Every cap is node-wide: ``limits.max_streams``, ``limits.max_translate_calls`` and each tenant's
caps. A small shared file (memory-mapped by every worker) holds a table of counter names, one count
per counter per worker slot, and each budget's audio level. Taking a counter ``flock``s the file,
sums the counter's column and adds one to the worker's own slot: a few microseconds on the event
loop, exact (two workers cannot both take the last slot), and no round trip to another process. The
supervisor zeroes a dead worker's slot before its replacement starts.

The table has a fixed number of columns and a node meets any number of tenants over its life, so
columns are reused: when a new name finds no free column, every column that no slot counts and whose
budget is full again (as a new one would be) is freed at once, under the lock. A process remembers
where each name is, and checks under the lock that the column still holds that name before it
counts there (another worker may have freed it and given it to another name since). A column in use
is never freed: a worker releases only what it holds, so a name it holds keeps its column. The
node's own counters (names without ``/``) have columns of their own, so a crowd of tenants can never
leave ``max_streams`` without a column. When every tenant column holds a live count or a budget spent
in the last minute, a new tenant name is refused with RESOURCE_EXHAUSTED (``TableFull``), never a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from translate_svc.cluster.store import refill
from translate_svc.errors import Overloaded

logger = logging.getLogger(__name__)

SLOTS = 256  # the most workers a node runs (settings: server.workers <= 256)
NAMES = 1024  # counters the node holds at once; a column whose counts are all zero is reused
#: the first columns hold the node's own counters (``streams``, ``translate``, ``rooms``, ...: a few
#: names fixed in the code, never a tenant's), the rest tenants' (``<tenant>/<kind>``)
NODE_NAMES = 64
_NAME_BYTES = 64
_NAMES_SIZE = NAMES * _NAME_BYTES
_COUNTS_SIZE = SLOTS * NAMES * 8
_BUDGET_FIELDS = 3  # level, when it was drawn (0: never), its refill per minute
_BUDGETS_SIZE = NAMES * _BUDGET_FIELDS * 8
SIZE = _NAMES_SIZE + _COUNTS_SIZE + _BUDGETS_SIZE


class TableFull(Overloaded):
    """Every column of the node's counters table holds a name in use: a call that needs a new name
    is refused (RESOURCE_EXHAUSTED) until one is free."""

    def __init__(self, names: int) -> None:
        super().__init__(
            f"this server counts at most {names} tenant counters at once, and every one is held by a call in "
            "progress or an audio budget drawn from in the last minute: retry shortly or on another server",
            retry_after_ms=1000,
        )


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
            self._map, dtype=np.float64, count=NAMES * _BUDGET_FIELDS, offset=_NAMES_SIZE + _COUNTS_SIZE
        ).reshape(NAMES, _BUDGET_FIELDS)
        #: where this process last found each name (checked under the lock before use), and the
        #: name it last found in each column: at most one remembered name per column
        self._columns: dict[str, int] = {}
        self._named: dict[int, str] = {}
        self._clock = clock
        self.slot = slot

    def try_acquire(self, wants: Sequence[tuple[str, int]]) -> str | None:
        """``Counters.try_acquire``; ``TableFull`` (RESOURCE_EXHAUSTED) when a name has no column."""
        with self._locked():
            columns: list[int] = []
            for name, _ in wants:
                col = self._column(name, keep=columns)
                if col is None:
                    raise TableFull(NAMES - NODE_NAMES if "/" in name else NODE_NAMES)
                columns.append(col)
            for (name, limit), col in zip(wants, columns, strict=True):
                if int(self._counts[:, col].sum()) >= limit:
                    return name
            for col in columns:
                self._counts[self.slot, col] += 1
            return None

    def release(self, names: Sequence[str]) -> None:
        with self._locked():
            for name in names:
                col = self._find(name)
                if col is None or self._counts[self.slot, col] <= 0:  # a bug: never below zero
                    logger.error("worker slot %d released %r, which it does not hold", self.slot, name)
                    continue
                self._counts[self.slot, col] -= 1

    def count(self, name: str) -> int:
        """The counter's value on the node now."""
        with self._locked():
            col = self._find(name)
            return 0 if col is None else int(self._counts[:, col].sum())

    def spend(self, name: str, amount: float, per_minute: float) -> float:
        """``Counters.spend``. A budget without a column is a full one (a new name, or one freed
        because it was full again), so a draw of nothing takes no column; if no column is free for
        a draw, it is answered from a full budget and not kept (logged): the table is then full of
        live names, and new calls are refused."""
        with self._locked():
            col = self._find(name)
            if col is None and amount > 0:
                col = self._column(name)
            if col is None:
                if amount > 0:
                    logger.warning("the counters table is full: %s's audio drawn now is not counted", name)
                return per_minute - amount
            now = self._clock()
            level, when, _ = self._budgets[col]
            level = per_minute if when == 0.0 else refill(float(level), now - float(when), per_minute)
            level -= amount
            self._budgets[col] = (level, now, per_minute)
            return level

    def reset(self) -> None:
        """Zero this slot (its worker is gone: its calls with it)."""
        with self._locked():
            self._counts[self.slot, :] = 0

    def _column(self, name: str, keep: Sequence[int] = ()) -> int | None:
        """The name's column (under the lock): found in the table, or given a free one (freeing the
        idle ones but ``keep`` first if none is); None if every column of its part of the table is
        in use."""
        col = self._find(name)
        if col is not None:
            return col
        key = name.encode()
        if len(key) >= _NAME_BYTES:
            raise ValueError(f"counter name too long: {name!r}")
        lo, hi = (NODE_NAMES, NAMES) if "/" in name else (0, NODE_NAMES)
        free = np.flatnonzero(self._names[lo:hi] == b"")
        if not len(free):
            self._free_idle(lo, hi, keep)
            free = np.flatnonzero(self._names[lo:hi] == b"")
            if not len(free):
                return None
        col = lo + int(free[0])
        self._names[col] = key
        self._remember(name, col)
        return col

    def _find(self, name: str) -> int | None:
        """The name's column if the table holds it (under the lock), checking what this process
        remembers against the table: another worker may have freed the column since."""
        key = name.encode()
        col = self._columns.get(name)
        if col is not None and self._names[col] == key:
            return col
        found = np.flatnonzero(self._names == key)
        if not len(found):
            return None
        col = int(found[0])
        self._remember(name, col)
        return col

    def _remember(self, name: str, col: int) -> None:
        old = self._named.get(col)
        if old is not None and old != name:
            del self._columns[old]
        stale = self._columns.get(name)
        if stale is not None and stale != col:
            del self._named[stale]
        self._columns[name] = col
        self._named[col] = name

    def _free_idle(self, lo: int, hi: int, keep: Sequence[int]) -> None:
        """Free every column of ``lo:hi`` that no slot counts and whose budget is full again, but
        ``keep`` (the call's own, found before; under the lock): a freed column is the same as a new
        one, so nothing a caller sees changes."""
        in_use = np.zeros(hi - lo, dtype=bool)
        in_use[[c - lo for c in keep if lo <= c < hi]] = True
        in_use |= self._counts[:, lo:hi].any(axis=0)
        level, when, per_minute = self._budgets[lo:hi].T
        elapsed = np.maximum(0.0, self._clock() - when)
        refilled = (when == 0.0) | (level + elapsed * per_minute / 60.0 >= per_minute)
        idle = np.flatnonzero(~in_use & refilled & (self._names[lo:hi] != b""))
        self._names[lo + idle] = b""
        self._budgets[lo + idle] = 0.0
        logger.debug("counters table: %d idle names freed in columns %d..%d", len(idle), lo, hi - 1)

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
