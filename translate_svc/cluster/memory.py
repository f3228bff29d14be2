"""``MemoryStore``: the cluster store of one process (``serve`` with one process, and the tests).

Exactly the single-process behaviour: the state is this process's own (``state.py``), every call
answers at once, nothing runs on a thread or a timer. Its one holder is the process itself, so its
leases and memberships never expire (they go when released, left, or with the process). Event
loop only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from translate_svc.cluster.state import ClusterState
from translate_svc.cluster.store import FIRST, Entry, Full, Inbox, Lease, StoreState

if TYPE_CHECKING:
    from translate_svc.cluster.store import ClusterStore


class MemoryStore:
    """Implements ``ClusterStore`` (store.py) in this process. Event loop only."""

    def __init__(self, state: ClusterState | None = None, *, holder: str = "local") -> None:
        """``state``: another store's, to be a second holder of the same state (tests)."""
        self._state = state if state is not None else ClusterState()
        self._holder = holder
        self._state.holder(holder, None)

    @property
    def state(self) -> StoreState:
        return StoreState.UP

    def on_state(self, listener: Callable[[StoreState], None]) -> None:
        """It never changes: one process's memory is there while the process is."""

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._state.drop(self._holder)
        self._state.holder(self._holder, None)

    # -- pub/sub

    async def publish(self, channel: str, data: bytes) -> None:
        self._state.publish(channel, data)

    async def subscribe(self, channel: str, *, limit: int) -> Inbox:
        inbox = Inbox(limit, lambda box: self._state.unsubscribe(channel, box.put))
        self._state.subscribe(channel, inbox.put)
        return inbox

    # -- streams

    async def append(self, key: str, data: bytes, *, keep_s: float, max_len: int) -> str:
        return self._state.append(key, data, keep_s=keep_s, max_len=max_len)

    async def read(
        self, key: str, after: str = FIRST, *, within_s: float | None = None, count: int = 256, block_s: float = 0.0
    ) -> list[Entry]:
        return await self._state.read(key, after, within_s=within_s, count=count, block_s=block_s)

    # -- presence

    async def join(self, group: str, member: str, value: bytes = b"") -> dict[str, bytes]:
        return self._state.join(self._holder, group, member, value)

    async def leave(self, group: str, member: str) -> int | None:
        return self._state.leave(self._holder, group, member)

    async def members(self, group: str) -> dict[str, bytes]:
        return self._state.members(group)

    async def watch(self, group: str) -> Inbox:
        inbox = Inbox(1, lambda box: self._state.unwatch(group, box.put))
        self._state.watch(group, inbox.put)
        return inbox

    # -- leases

    async def acquire(self, wants: Sequence[tuple[str, int]]) -> Lease | Full:
        return self._state.acquire(self._holder, wants)

    async def release(self, lease: Lease) -> None:
        self._state.release(self._holder, lease.id)

    async def renew(self) -> None:
        self._state.renew(self._holder)

    async def count(self, name: str) -> int:
        return self._state.count(name)

    # -- budgets

    async def spend(self, name: str, amount: float, per_minute: float) -> float:
        return self._state.spend(name, amount, per_minute)


if TYPE_CHECKING:  # mypy proves that the class implements the Protocol

    def _implements(store: MemoryStore) -> ClusterStore:
        return store
