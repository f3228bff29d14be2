"""The C allocator's policy for a serving process: large blocks come from ``mmap``, always.

Why (docs/decisions.md): glibc serves a block of at least ``M_MMAP_THRESHOLD`` (128 KiB)
with its own ``mmap`` and gives it back when it is freed, but its *dynamic* threshold rises to the
size of every such block freed (up to 32 MiB). After the first segment's audio (a 15 s segment is
960 KB of float32) is freed, every later segment array, resampled chunk, speech output and encoded
message of that size is carved from the heap instead, between small long-lived blocks: the heap
only grows. Under a steady soak the brk heap kept growing and RSS never came back after the load
stopped, while the bytes in use (``mallinfo2``) and Python's live objects did not grow; with the
threshold fixed at 128 KiB the heap stayed flat and RSS fell back after the load
(docs/performance.md, "Soak", has the runs).

Setting the threshold also turns the dynamic adjustment off. An operator's own choice wins: with
``MALLOC_MMAP_THRESHOLD_`` in the environment (glibc's variable, read when a process starts)
nothing is changed. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import MutableMapping

logger = logging.getLogger(__name__)

#: glibc's variable for the threshold, read by every process at its start (the node's children too)
ENV = "MALLOC_MMAP_THRESHOLD_"
#: glibc's default threshold, kept fixed
MMAP_THRESHOLD_BYTES = 128 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


def fix_mmap_threshold(environ: MutableMapping[str, str] | None = None) -> bool:
    """Fix the mmap threshold of this process (``mallopt``) and of the processes it starts (the
    environment), unless the environment already sets it. True when this call set it."""
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    if ENV in env:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) != 1:
        logger.warning("could not fix the allocator's mmap threshold (mallopt refused)")
        return False
    env[ENV] = str(MMAP_THRESHOLD_BYTES)
    return True
