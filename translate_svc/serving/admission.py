"""The node's open streams, counted across front-end workers: ``limits.max_streams`` for the node.

A small shared file holds one count per worker slot (memory-mapped); admitting a stream takes an
``flock`` on it, sums the counts and adds one to its own slot. That is a few microseconds on the
event loop, exact (two workers cannot both take the last slot), and needs no round trip to another
process. The supervisor zeroes a dead worker's slot before its replacement starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SLOTS = 256  # the most workers a node runs (settings: server.workers <= 256)


def create(path: Path) -> None:
    """A count file with every slot at zero (the supervisor, before any worker starts)."""
    path.write_bytes(bytes(8 * SLOTS))


class SharedAdmission:
    """Implements the session layer's ``Admission`` for worker ``slot``. Event loop only."""

    def __init__(self, path: Path, slot: int) -> None:
        if not 0 <= slot < SLOTS:
            raise ValueError(f"slot {slot} out of range 0..{SLOTS - 1}")
        self._fd = os.open(path, os.O_RDWR)
        self._map = mmap.mmap(self._fd, 8 * SLOTS)
        self._counts = np.frombuffer(self._map, dtype=np.int64)
        self.slot = slot

    def try_admit(self, limit: int) -> bool:
        with self._locked():
            if int(self._counts.sum()) >= limit:
                return False
            self._counts[self.slot] += 1
            return True

    def release(self) -> None:
        with self._locked():
            self._counts[self.slot] -= 1

    def open_streams(self) -> int:
        """Streams open on the node now."""
        with self._locked():
            return int(self._counts.sum())

    def reset(self) -> None:
        """Zero this slot (its worker is gone: its streams with it)."""
        with self._locked():
            self._counts[self.slot] = 0

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        del self._counts
        self._map.close()
        os.close(self._fd)
