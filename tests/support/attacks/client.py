"""How the attack probes talk gRPC: each channel its own connection, a token's metadata, a status
by its name, a request stream that never sends (a call's HEADERS only), and how many such calls a
server holds at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc

OWN = [("grpc.use_local_subchannel_pool", 1)]  # each channel its own connection


def metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def code_name(e: BaseException) -> str:
    return e.code().name if isinstance(e, grpc.aio.AioRpcError) else type(e).__name__


async def silent(release: asyncio.Event) -> AsyncIterator[bytes]:
    """A request stream that sends nothing until ``release`` (the call's HEADERS only)."""
    await release.wait()
    return
    yield


async def most_held(opened_at: dict[int, float], end: float, started: Callable[[], None]) -> int:
    """Once the calls had a second to open, ``started()``; then, until ``end`` (loop time), the most
    calls at once that had been open for over a second (``opened_at``: when each open call began,
    kept by the callers): those the server admitted and holds."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(1.0)
    started()
    most = 0
    while loop.time() < end:
        now = loop.time()
        most = max(most, sum(now - t > 1.0 for t in opened_at.values()))
        await asyncio.sleep(0.2)
    return most
