"""Full garbage collections on a clock, for a serving process.

A stream's own state is freed by reference counting when its call ends (no cycles:
tests/service/test_leaks.py), but libraries make cycles per call that only the cyclic
collector frees: aiohttp's per-connection objects (a WebSocket session's request handler,
response and zlib state, about 300 KB), grpc's per-call handler lookup. CPython runs a full
collection only after ten of its middle-generation ones *and* once a quarter as many objects as
there are long-lived ones are new: under a steady load of streams that is minutes apart, and the
garbage of every session of those minutes waits for it.

So a serving process, once warm, moves what it holds for good (the model, the modules, the doors)
out of the collector's sight (``gc.freeze``) and runs a full collection every ``EVERY_S``: it then
walks only what came after (milliseconds, where a full collection of a warm server walks ~100k
objects, ~200k with torch: 70-110 ms on one core of a loaded 2-core machine). Event loop only.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

logger = logging.getLogger(__name__)

#: how often the full collection runs
EVERY_S = 30.0


def freeze() -> None:
    """Once the server is warm: collect, then move every object alive now to the permanent
    generation (never collected: what a warm server holds lives as long as it does)."""
    gc.collect()
    gc.freeze()


async def collect_every(seconds: float = EVERY_S) -> None:
    """A full collection every ``seconds`` until cancelled."""
    while True:
        await asyncio.sleep(seconds)
        started = time.perf_counter()
        found = gc.collect()
        logger.debug("full collection: %d unreachable objects, %.1f ms", found, (time.perf_counter() - started) * 1000)
