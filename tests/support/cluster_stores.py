"""The cluster store's implementations as the contract tests meet them (tests/cluster/): one backend
per implementation, and as many holders (clients) of it as a test asks for.

- ``memory``: ``MemoryStore``s of one ``ClusterState`` (one process: holders never expire);
- ``hub``: a real ``HubServer`` on a real Unix socket, each holder a ``HubStore`` connected to it;
- ``redis``: a real ``redis-server`` on a free loopback port (``redis_server.py``), each holder a
  ``RedisStore`` of its own.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.redis_server import redis_server
from translate_svc.cluster.hub_client import HubStore
from translate_svc.cluster.hub_server import HubServer
from translate_svc.cluster.memory import MemoryStore
from translate_svc.cluster.redis_store import RedisStore
from translate_svc.cluster.state import ClusterState
from translate_svc.cluster.store import ClusterStore

#: the implementations, as the contract suite's parameter
KINDS = ("memory", "hub", "redis")


@dataclass
class Backend:
    kind: str
    #: a new holder of the backend, started
    connect: Callable[[], Awaitable[ClusterStore]]
    #: the lease time its holders run with (None: holders never expire, one process)
    lease_s: float | None
    #: where another process reaches it: the hub's socket, Redis's URL (None: in this process only)
    address: str | None = None
    holders: list[ClusterStore] = field(default_factory=list)

    async def client(self) -> ClusterStore:
        store = await self.connect()
        self.holders.append(store)
        return store


@contextlib.asynccontextmanager
async def backend(kind: str, *, lease_s: float = 1.0) -> AsyncIterator[Backend]:
    """A fresh backend of ``kind``; every holder it made is closed at the end."""
    names = (f"h{i}" for i in itertools.count())
    stack = contextlib.AsyncExitStack()
    async with stack:
        if kind == "memory":
            state = ClusterState()

            async def memory() -> ClusterStore:
                return MemoryStore(state, holder=next(names))

            found = Backend(kind, memory, None)
        elif kind == "hub":
            hub_at = await stack.enter_async_context(hub_server(lease_s))
            assert hub_at.path is not None
            socket = hub_at.path

            async def hub() -> ClusterStore:
                store = HubStore(socket, next(names))
                await store.start()
                return store

            found = Backend(kind, hub, lease_s, str(socket))
        elif kind == "redis":
            server = stack.enter_context(redis_server())

            async def redis() -> ClusterStore:
                store = RedisStore(server.url, lease_s=lease_s)
                await store.start()
                return store

            found = Backend(kind, redis, lease_s, server.url)
        else:
            raise ValueError(f"no cluster store of kind {kind!r}")
        try:
            yield found
        finally:
            for store in found.holders:
                with contextlib.suppress(Exception):
                    await store.close()


@contextlib.asynccontextmanager
async def hub_server(lease_s: float, **bounds: int) -> AsyncIterator[HubServer]:
    """A node's hub on a real Unix socket (``HubServer.path``, in a short temp dir: a socket path
    holds 107 bytes); ``bounds``: its ``drop_above`` and ``max_buffered_bytes``."""
    folder = Path(tempfile.mkdtemp(prefix="hub-"))
    server = HubServer(lease_s=lease_s, **bounds)  # type: ignore[arg-type]
    await server.start(folder / "cluster.sock")
    try:
        yield server
    finally:
        await server.stop()
        shutil.rmtree(folder, ignore_errors=True)
