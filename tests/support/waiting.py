"""Waiting for what a server does on its own time: poll a check until it holds, or fail saying what
did not happen within the deadline (never a fixed sleep that hopes it was long enough). ``eventually``
awaits its check (a reload, a metric read over HTTP); ``until`` asks a plain predicate every
millisecond (a state the engine reaches on its own threads)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, deadline_s: float = 15.0, poll_s: float = 0.1
) -> None:
    """Poll ``check`` every ``poll_s`` until it is true; fail with ``what`` after ``deadline_s``
    (the default: generous for a tokens file's reload, seen at most a second after a change)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not await check():
        if loop.time() > end:
            raise AssertionError(f"not within {deadline_s} s: {what}")
        await asyncio.sleep(poll_s)


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for a state the engine reaches on its own threads (features, model) -- never a fixed sleep."""
    for _ in range(int(timeout_s * 1000)):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached in time")
