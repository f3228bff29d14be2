"""A ``MemoryStore`` that a test takes down and brings back (``down``): while down, every operation
raises ``StoreUnavailable`` and ``state`` says DOWN, as a real store that lost its hub or Redis
does (``cluster/store.py``'s contract). What it holds stays, as Redis's data does across a
network cut."""

from __future__ import annotations

from collections.abc import Sequence

from translate_svc.cluster.memory import MemoryStore
from translate_svc.cluster.store import FIRST, Entry, Full, Inbox, Lease, StoreState, StoreUnavailable


class SwitchableStore(MemoryStore):
    """Implements ``ClusterStore`` (a ``MemoryStore``), down while ``down`` is set. Event loop only."""

    down = False

    @property
    def state(self) -> StoreState:
        return StoreState.DOWN if self.down else StoreState.UP

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("the test's cluster store is down (a test switched it off): retry shortly")

    async def publish(self, channel: str, data: bytes) -> None:
        self._check()
        await super().publish(channel, data)

    async def subscribe(self, channel: str, *, limit: int) -> Inbox:
        self._check()
        return await super().subscribe(channel, limit=limit)

    async def append(self, key: str, data: bytes, *, keep_s: float, max_len: int) -> str:
        self._check()
        return await super().append(key, data, keep_s=keep_s, max_len=max_len)

    async def read(
        self, key: str, after: str = FIRST, *, within_s: float | None = None, count: int = 256, block_s: float = 0.0
    ) -> list[Entry]:
        self._check()
        return await super().read(key, after, within_s=within_s, count=count, block_s=block_s)

    async def join(self, group: str, member: str, value: bytes = b"") -> dict[str, bytes]:
        self._check()
        return await super().join(group, member, value)

    async def leave(self, group: str, member: str) -> int | None:
        self._check()
        return await super().leave(group, member)

    async def members(self, group: str) -> dict[str, bytes]:
        self._check()
        return await super().members(group)

    async def watch(self, group: str) -> Inbox:
        self._check()
        return await super().watch(group)

    async def acquire(self, wants: Sequence[tuple[str, int]]) -> Lease | Full:
        self._check()
        return await super().acquire(wants)

    async def release(self, lease: Lease) -> None:
        self._check()
        await super().release(lease)

    async def count(self, name: str) -> int:
        self._check()
        return await super().count(name)

    async def spend(self, name: str, amount: float, per_minute: float) -> float:
        self._check()
        return await super().spend(name, amount, per_minute)
