"""The cluster store's implementations as the contract tests meet them (tests/cluster/): one backend
per implementation, and as many holders (clients) of it as a test asks for.

- ``memory``: ``MemoryStore``s of one ``ClusterState`` (one process: holders never expire);
- ``hub``: a real ``HubServer`` on a real Unix socket, each holder a ``HubStore`` connected to it;
- ``redis``: a real ``redis-server`` on a free loopback port (``redis_server.py``), each holder a
  ``RedisStore`` of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from translate_svc.cluster.memory import MemoryStore
from translate_svc.cluster.state import ClusterState
from translate_svc.cluster.store import ClusterStore

#: the implementations, as the contract suite's parameter
KINDS = ("memory",)


@dataclass
class Backend:
    kind: str
    #: a new holder of the backend, started
    connect: Callable[[], Awaitable[ClusterStore]]
    #: the lease time its holders run with (None: holders never expire, one process)
    lease_s: float | None
    holders: list[ClusterStore] = field(default_factory=list)

    async def client(self) -> ClusterStore:
        store = await self.connect()
        self.holders.append(store)
        return store


@contextlib.asynccontextmanager
async def backend(kind: str, tmp: Path, *, lease_s: float = 1.0) -> AsyncIterator[Backend]:
    """A fresh backend of ``kind``; every holder it made is closed at the end."""
    del tmp, lease_s
    if kind != "memory":
        raise ValueError(kind)
    state = ClusterState()
    names = iter(range(1_000_000))

    async def memory() -> ClusterStore:
        return MemoryStore(state, holder=f"m{next(names)}")

    found = Backend(kind, memory, None)
    try:
        yield found
    finally:
        for store in found.holders:
            with contextlib.suppress(Exception):
                await store.close()
