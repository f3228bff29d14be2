"""Caps as leases in the cluster store: ``counters.Counters`` for a node's workers and for
several pods.

Where each cap is counted (docs/decisions.md, "Caps: per node or per tenant"):

- the node's own caps (names without ``/``: ``limits.max_streams``, ``max_translate_calls``, the
  rooms' node limits, AudioSocket calls) protect this server (its GPU's queue, its memory, its
  ports): per node by nature, in the **node store**, the node's hub under ``serve --workers N``
  (every worker of the node) or this process's memory;
- a tenant's caps (``<tenant>/<kind>``: streams, Translate calls, unary calls, rooms, listeners)
  and its audio budget (``<tenant>/audio``) are the tenant's wherever its calls land: in the
  **cluster store**, Redis when ``cluster.redis_url`` is set (every pod), else the node store.

Every count is a lease that its holder renews (the store does it) and that frees itself ``lease_s``
after its holder dies (a ``kill -9``: no reset needed); the hub's leases go at once when a worker's
connection closes. Names cost nothing when no call holds them, so no number of tenants can fill a
table.

The cluster store lost mid-run (``cluster.on_redis_loss``):

- ``node``: a tenant's caps and budget are counted in the node store (node-local counts: the node
  store counts every hold of the node's tenants all along, uncapped while the cluster store is up)
  until the cluster store is up again; logged once per change. When it is up, every hold taken
  meanwhile is taken there too (counted even over its cap: nothing admitted is cut), so
  cluster-wide caps hold again without a restart;
- ``refuse``: a call that needs the cluster store is refused with its ``StoreUnavailable``
  (UNAVAILABLE with RetryInfo).

Either way a release or a draw that fails never raises into a call; what the cluster store held
before it was lost it writes back itself when it rejoins (``RedisStore``). Event loop only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from translate_svc.cluster.store import ClusterStore, Full, Lease, StoreState, StoreUnavailable
from translate_svc.session.tenants.counters import UNCAPPED, Held

#: the logger name operators' log queries already use for caps (kept when the module moved)
logger = logging.getLogger("translate_svc.session.caps")

#: the stores' names of caps and budgets (other jobs share the store: ``room/...``)
PREFIX = "cap/"


class StoreCounters:
    """Implements ``counters.Counters`` over a node store and a cluster store (the same store when the
    node is on its own). Event loop only."""

    def __init__(
        self,
        node: ClusterStore,
        cluster: ClusterStore | None = None,
        *,
        on_loss: Literal["node", "refuse"] = "node",
        own_node: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``own_node``: ``start`` and ``close`` the node store too (it is not the application's
        cluster store, which the application starts and closes)."""
        self._node = node
        self._cluster = cluster if cluster is not None else node
        self._on_loss = on_loss
        self._own_node = own_node
        self._clock = clock
        #: holds taken while the cluster store was lost, and their tenant caps (for the cluster store
        #: once it is back)
        self._fallback: dict[Held, tuple[str, ...]] = {}
        #: each budget's level as this process last knew it, and when (``draw``)
        self._levels: dict[str, tuple[float, float]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._retaking: asyncio.Task[None] | None = None

    @property
    def split(self) -> bool:
        """Whether tenants' caps are counted elsewhere than the node's (Redis)."""
        return self._cluster is not self._node

    async def start(self) -> None:
        if self._own_node:
            await self._node.start()
        if self.split:
            self._cluster.on_state(self._changed)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own_node:
            await self._node.close()

    # -- caps

    async def acquire(self, wants: Sequence[tuple[str, int]]) -> Held | str:
        names = [name for name, _ in wants]
        if not self.split:
            got = await self._node.acquire([(PREFIX + name, limit) for name, limit in wants])
            return _full(got) if isinstance(got, Full) else Held(names, [(self._node, got)])
        own = [(PREFIX + name, limit) for name, limit in wants if "/" not in name]
        tenants = [(PREFIX + name, limit) for name, limit in wants if "/" in name]
        if not tenants:
            got = await self._node.acquire(own)
            return _full(got) if isinstance(got, Full) else Held(names, [(self._node, got)])
        if self._cluster.state is StoreState.UP or self._on_loss == "refuse":
            # the node counts its tenants' holds too (uncapped): its own counts if the cluster store is lost
            got = await self._node.acquire(own + [(name, UNCAPPED) for name, _ in tenants])
            if isinstance(got, Full):
                return _full(got)
            try:
                there = await self._cluster.acquire(tenants)
            except StoreUnavailable as e:
                self._give_back([(self._node, got)])
                if self._on_loss == "refuse":
                    raise refused(e) from None
            except BaseException:
                self._give_back([(self._node, got)])
                raise
            else:
                if isinstance(there, Full):
                    self._give_back([(self._node, got)])
                    return _full(there)
                return Held(names, [(self._node, got), (self._cluster, there)])
        # the cluster store is lost (cluster.on_redis_loss=node): the node's own counts, capped
        got = await self._node.acquire(own + tenants)
        if isinstance(got, Full):
            return _full(got)
        held = Held(names, [(self._node, got)])
        self._fallback[held] = tuple(name for name, _ in tenants)
        return held

    def release(self, held: Held) -> None:
        self._fallback.pop(held, None)
        self._give_back(held.parts)
        held.parts = []

    def _give_back(self, parts: list[tuple[ClusterStore, Lease]]) -> None:
        for store, lease in parts:
            self._spawn(store.release(lease), "cap-release")

    # -- budgets

    async def spend(self, name: str, amount: float, per_minute: float) -> float:
        key = PREFIX + name
        try:
            level = await self._cluster.spend(key, amount, per_minute)
        except StoreUnavailable as e:
            if not self.split:
                raise
            if self._on_loss == "refuse":
                raise refused(e) from None
            level = await self._node.spend(key, amount, per_minute)
        self._levels[name] = (level, self._clock())
        return level

    def draw(self, name: str, amount: float, per_minute: float) -> float:
        now = self._clock()
        level, when = self._levels.get(name, (per_minute, now))
        level = level + max(0.0, now - when) * per_minute / 60.0
        level = min(per_minute, level) - amount
        self._levels[name] = (level, now)
        self._spawn(self._drawn(name, amount, per_minute), "cap-draw")
        return level

    async def _drawn(self, name: str, amount: float, per_minute: float) -> None:
        try:
            await self.spend(name, amount, per_minute)
        except StoreUnavailable as e:  # refuse: a call in progress is never cut for it
            logger.debug("audio drawn by %s not counted in the cluster store: %s", name, e.message)

    # -- the cluster store's state

    def _changed(self, state: StoreState) -> None:
        if state is StoreState.DOWN:
            if self._on_loss == "node":
                logger.warning(
                    "the cluster store is down: tenants' caps and audio budgets are counted on this node only "
                    "until it is back (cluster.on_redis_loss=node)"
                )
            else:
                logger.warning(
                    "the cluster store is down: new calls are refused until it is back (cluster.on_redis_loss=refuse); "
                    "calls in progress go on"
                )
            return
        logger.warning("the cluster store is up again: tenants' caps are cluster-wide again")
        if self._fallback and (self._retaking is None or self._retaking.done()):
            self._retaking = self._spawn(self._retake(), "cap-retake")

    async def _retake(self) -> None:
        """Each hold taken while the cluster store was lost, taken there too (over its cap if it
        must: it is admitted); its node lease stays (the node's own counts)."""
        moved = 0
        for held, tenants in list(self._fallback.items()):
            if self._fallback.get(held) is not tenants:
                continue  # released meanwhile
            try:
                got = await self._cluster.acquire([(name, UNCAPPED) for name in tenants])
            except StoreUnavailable:
                return  # lost again: the next UP takes them
            assert not isinstance(got, Full)  # nothing is at UNCAPPED
            if self._fallback.pop(held, None) is not tenants:
                self._spawn(self._cluster.release(got), "cap-release")  # released while it was taken
                continue
            held.parts.append((self._cluster, got))
            moved += 1
        logger.info("%d calls' tenant caps re-taken in the cluster store", moved)

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(_logged(coro, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _full(full: Full) -> str:
    return full.name.removeprefix(PREFIX)


async def _logged(coro: Awaitable[Any], name: str) -> Any:
    """A background step whose failure is logged, never raised into a call."""
    try:
        return await coro
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("%s failed", name)
        return None


def refused(error: StoreUnavailable) -> StoreUnavailable:
    """A new call refused while the cluster store is lost (``cluster.on_redis_loss`` "refuse"): the
    store's own words (never its password), its retry kept, and the setting that chose it."""
    return StoreUnavailable(
        f"a tenant's caps are counted in the cluster store, which cannot answer now ({error.message}): "
        "call again shortly (cluster.on_redis_loss=refuse)",
        retry_after_ms=error.retry_after_ms,
    )
