"""How many sandbox processes run at once: ``most`` in all, ``per_tenant`` of one tenant.

A tenant's share is counted from its request, waiting or running, so a tenant over it is refused
at once (``Overloaded``: 429 / RESOURCE_EXHAUSTED with a retry delay) and never queues ahead of
the others; a request within its share waits for a free process in order of arrival, for at most
its ``wait_s`` (None: as long as it takes), then is refused the same way. Event loop only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

from translate_svc.errors import Overloaded

#: how soon a refused request is asked to try again
RETRY_MS = 2000


class Slots:
    """The processes of one sandbox: ``most`` at once, ``per_tenant`` of one tenant (None: a
    request of no tenant, counted in ``most`` only). ``what`` names them in a refusal, ``settings``
    the settings that bound them."""

    def __init__(self, most: int, per_tenant: int, *, what: str, settings: tuple[str, str]) -> None:
        self.most = most
        self.per_tenant = per_tenant
        self.held = 0
        self._what = what
        self._settings = settings
        self._tenants: dict[str, int] = {}
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    def of(self, tenant: str) -> int:
        """The tenant's requests now, waiting or running."""
        return self._tenants.get(tenant, 0)

    @contextlib.asynccontextmanager
    async def taken(self, tenant: str | None, wait_s: float | None) -> AsyncIterator[None]:
        """One slot in the block (see the module)."""
        if tenant is not None:
            mine = self._tenants.get(tenant, 0)
            if mine >= self.per_tenant:
                raise Overloaded(
                    f"this tenant has {mine} {self._what} at once on this server process ({self._settings[1]}): "
                    "wait for one to finish",
                    retry_after_ms=RETRY_MS,
                )
            self._tenants[tenant] = mine + 1
        try:
            await self._take(wait_s)
            try:
                yield
            finally:
                self._give()
        finally:
            if tenant is not None:
                left = self._tenants[tenant] - 1
                if left:
                    self._tenants[tenant] = left
                else:
                    del self._tenants[tenant]

    async def _take(self, wait_s: float | None) -> None:
        if self.held < self.most and not self._waiting:
            self.held += 1
            return
        if wait_s is not None and wait_s <= 0:
            raise self._full()
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            async with asyncio.timeout(wait_s):
                await asyncio.shield(turn)
        except BaseException as e:
            if turn.done() and not turn.cancelled():
                self._give()  # given to us as we left: pass it on
            else:
                turn.cancel()
                with contextlib.suppress(ValueError):
                    self._waiting.remove(turn)
            if isinstance(e, TimeoutError):
                raise self._full() from None
            raise

    def _give(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes to it: ``held`` stays
                return
        self.held -= 1

    def _full(self) -> Overloaded:
        return Overloaded(
            f"this server process runs {self.most} {self._what} at once ({self._settings[0]}): retry in a moment",
            retry_after_ms=RETRY_MS,
        )
