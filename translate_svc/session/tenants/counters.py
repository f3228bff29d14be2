"""The counters that hold the node and its tenants to their caps.

``Counters`` is what a manager counts with: ``acquire`` takes one of several counters at once, or
none if one is full (a ``Held`` that ``release`` gives back), and ``spend``/``draw`` draw audio from
a tenant's per-minute budget (``budget.py`` says what a spent one refuses). One process on its own
uses ``LocalCounters``; the workers of a node and several pods use ``leases.StoreCounters``: leases
in the cluster store (the node's caps node-wide, the tenants' cluster-wide with Redis). Names of
counters: ``streams``, ``translate``, ``<tenant>/streams``, ``<tenant>/translate``,
``<tenant>/audio``: a name without ``/`` is the node's, one with ``/`` a tenant's. ``refusal`` words
the RESOURCE_EXHAUSTED of a full one. Event loop only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from translate_svc.cluster.store import refill
from translate_svc.errors import Overloaded
from translate_svc.session.tenants.tenant import Tenant

#: a counter with no cap still counts (usage shows per tenant); this is its "limit"
UNCAPPED = 1 << 62


class Held:
    """What one ``Counters.acquire`` took: one count on each cap of ``names``, given back once by
    ``Counters.release``. ``parts``: the implementation's own (a store's leases). Event loop only."""

    __slots__ = ("names", "parts")

    def __init__(self, names: Sequence[str], parts: list[Any] | None = None) -> None:
        self.names = names
        self.parts: list[Any] = parts if parts is not None else []


class Counters(Protocol):
    """The caps of the node and of its tenants: ``LocalCounters`` in one process, ``leases.StoreCounters``
    over the cluster store (the node's workers, several pods). Event loop only."""

    async def start(self) -> None:
        """Connect what it counts in (a store it owns); before the first call."""
        ...

    async def close(self) -> None:
        """Give back what it holds (best effort), after the last call."""
        ...

    async def acquire(self, wants: Sequence[tuple[str, int]]) -> Held | str:
        """One count on every cap of ``wants`` (name, limit), unless one is at its limit: then
        nothing is taken and that cap's name is returned. Names without ``/`` are the node's own
        caps, ``<tenant>/<kind>`` a tenant's."""
        ...

    def release(self, held: Held) -> None:
        """Give back what ``acquire`` took (once). Never raises and never waits: a store that cannot
        answer now lets it expire."""
        ...

    async def spend(self, name: str, amount: float, per_minute: float) -> float:
        """Draw ``amount`` from the budget ``name`` (``per_minute`` a minute, up to a minute's worth
        banked; it may go below zero) and return what is left (admission: the exact level)."""
        ...

    def draw(self, name: str, amount: float, per_minute: float) -> float:
        """``spend`` without waiting (a call in progress): what is left as far as this process
        knows now; the draw reaches a shared budget in the background."""
        ...


class LocalCounters:
    """``Counters`` for one process: plain counts, exactly the single-process behaviour."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._counts: dict[str, int] = {}
        self._budgets: dict[str, tuple[float, float]] = {}  # name -> (level, when)
        self._clock = clock

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def acquire(self, wants: Sequence[tuple[str, int]]) -> Held | str:
        return self.take(wants)

    def take(self, wants: Sequence[tuple[str, int]]) -> Held | str:
        """``acquire``, synchronously (this process's counts answer at once)."""
        counts = self._counts
        for name, limit in wants:
            if counts.get(name, 0) >= limit:
                return name
        for name, _ in wants:
            counts[name] = counts.get(name, 0) + 1
        return Held([name for name, _ in wants])

    def release(self, held: Held) -> None:
        counts = self._counts
        for name in held.names:
            counts[name] -= 1

    def count(self, name: str) -> int:
        return self._counts.get(name, 0)

    async def spend(self, name: str, amount: float, per_minute: float) -> float:
        return self.draw(name, amount, per_minute)

    def draw(self, name: str, amount: float, per_minute: float) -> float:
        now = self._clock()
        level, when = self._budgets.get(name, (per_minute, now))
        level = refill(level, now - when, per_minute) - amount
        self._budgets[name] = (level, now)
        return level


#: what each counter is, for the refusal's message
_WHAT = {
    "streams": "open streams",
    "translate": "concurrent Translate calls",
    "unary": "unary calls in progress",
    "clip_reads": "Translate calls still receiving their clip",
    "held": "HTTP requests holding their connection (long polls, uploads, downloads)",
    "ear_streams": "streams with noise suppression or speaker labels",
}
#: the tokens file's cap of each tenant counter; None: a setting only (``limits.<name>``)
_CAP_OF = {
    "streams": "streams",
    "translate": "translate_calls",
    "unary": "unary_calls",
    "clip_reads": None,
    "held": None,
    "ear_streams": "ear_streams",
}
_SETTING_OF = {
    "unary": "max_unary_calls_per_tenant",
    "clip_reads": "max_clip_reads_per_tenant",
    "held": "http_max_held_requests_per_tenant",
    "ear_streams": "demo_ear_streams",  # the one tenant capped by a setting alone: the demo page's
}


def refusal(full: str, tenant: Tenant, wants: Sequence[tuple[str, int]]) -> Overloaded:
    """The RESOURCE_EXHAUSTED for a full counter, naming the cap and what to do."""
    limit = dict(wants)[full]
    tenant_name, _, kind = full.rpartition("/")
    if tenant_name:
        cap = _CAP_OF[kind]
        if cap is not None and getattr(tenant.caps, cap) is not None:
            where = f"{cap}={limit} in the tokens file"
        else:
            where = f"limits.{_SETTING_OF[kind]}"
        return Overloaded(
            f"tenant {tenant.name!r} is at its cap of {limit} {_WHAT[kind]} ({where}); end one of them or retry "
            "shortly",
            retry_after_ms=1000,
        )
    setting = "max_streams" if kind == "streams" else "max_translate_calls"
    return Overloaded(
        f"this server is at its capacity of {limit} {_WHAT[kind]} (limits.{setting}); retry shortly or on "
        "another server",
        retry_after_ms=1000,
    )
