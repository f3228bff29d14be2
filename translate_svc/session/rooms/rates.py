"""The speaking rates a room's listeners choose (``registry.py`` asks, ``room.py`` keeps them): who
may choose one (``check_rate_allowed``: the room's owner, through the key), and the caps, a room's
(``rooms.max_rates`` (language, rate) pairs over every process) and its tenant's
(``renditions=``, else ``rooms.max_renditions_per_tenant``: (room, language, rate) renditions in
use on the node, each a vocoder row in every segment of the room's speakers).

A tenant's count is held per (language, rate) of a room on this process (``Room.rates_held``):
taken by its first listener here, given back when its last one here leaves, so listeners at one
rate cost the tenant one count however many they are. Event loop only (no locks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from translate_svc.errors import InvalidInput, Overloaded, PermissionDenied, shown
from translate_svc.session.rooms.config import RoomConfig
from translate_svc.session.rooms.listener import Listener
from translate_svc.session.rooms.room import Room
from translate_svc.session.tenants.counters import Counters, Held
from translate_svc.session.tenants.tenant import RoomRights, Tenant


def check_rate_allowed(rights: RoomRights, name: str, speed: float | None) -> None:
    """A listen of room ``name`` at ``speed`` with a key of ``rights`` (PERMISSION_DENIED where the
    room's owner lets that key choose no rate: ``RoomRights.rates``)."""
    if speed is not None and not rights.may_rate(name):
        raise PermissionDenied(
            f"room {shown(name)} takes no speaking rate from this key: its owner did not let its listeners "
            "choose one (a token's rates= patterns; open_room's allow_rates for its listeners' key; "
            "rooms.demo_rates for the demo page): listen without speed, at each speaker's own rate"
        )


class RoomRates:
    """The rooms' and tenants' caps on speaking rates, over a registry's rooms (``rooms``, by
    (tenant, name)); ``tenant_cap(tenant, "renditions")``: a tenant's cap and where it comes from."""

    def __init__(
        self,
        config: RoomConfig,
        counters: Counters,
        rooms: Mapping[tuple[str, str], Room],
        tenant_cap: Callable[[Tenant, str], tuple[int, str]],
    ) -> None:
        self._config = config
        self._counters = counters
        self._rooms = rooms
        self._tenant_cap = tenant_cap

    def check(self, room: Room, language: str, speed: float | None, without: Listener | None = None) -> None:
        """A listener at ``speed`` in ``language`` would not take the room past ``max_rates``
        (language, rate) pairs (``without``: itself, already counted), else RESOURCE_EXHAUSTED
        naming those in use."""
        if speed is None:
            return
        pairs = {
            (lang, listener.speed)
            for lang, group in room.listeners.items()
            for listener in group
            if listener.speed is not None and listener is not without
        } | {(lang, rate) for lang, _, rate in room.remote_ears if rate is not None}
        most = self._config.max_rates
        if (language, speed) in pairs or len(pairs) < most:
            return
        if not most:
            raise InvalidInput("this server's rooms take no speaking rate (rooms.max_rates is 0): listen without speed")
        used = ", ".join(f"{lang} at {rate:g}" for lang, rate in sorted(pairs))
        raise Overloaded(
            f"room {shown(room.name)} is listened at {most} speaking rates already "
            f"(rooms.max_rates): listen at one of them ({used}) or without speed"
        )

    async def take(self, tenant: Tenant, name: str, language: str, speed: float | None) -> Held | None:
        """The tenant's count of one more rendition for a listener at ``speed`` in ``language``
        whose rate room ``name`` has no listener at here yet (None: none needed), or
        RESOURCE_EXHAUSTED naming the cap and the rates the tenant has in use (a listener may
        join one of them). The caller hands it to ``keep`` once the listener is in (it waits
        here: another listener at that rate may come first)."""
        room = self._rooms.get((tenant.name, name))
        if speed is None or (room is not None and (language, speed) in room.rates_held):
            return None
        cap, where = self._tenant_cap(tenant, "renditions")
        full = await self._counters.acquire([(f"{tenant.name}/renditions", cap)])
        if not isinstance(full, str):
            return full
        if not cap:
            raise Overloaded(f"tenant {tenant.name!r} may choose no speaking rate ({where}): listen without speed")
        used = sorted(
            f"{lang} at {rate:g} in {shown(r.name)}"
            for (t, _), r in self._rooms.items()
            if t == tenant.name
            for lang, rate in r.rates_held
        )
        raise Overloaded(
            f"tenant {tenant.name!r} is at its cap of {cap} speaking rates in use ({where}; each is a vocoder "
            f"row in every segment of its room's speakers): listen at one in use"
            + (f" ({', '.join(used[:8])})" if used else " (on another server)")
            + " or without speed, or retry when one ends",
            retry_after_ms=1000,
        )

    def keep(self, room: Room, language: str, speed: float | None, held: Held | None) -> None:
        """A listener at ``speed`` is in ``room``: the count ``take`` gave it held for its rate (or
        given back, where another listener at that rate came first and holds one)."""
        if held is None:
            return
        assert speed is not None
        if (language, speed) in room.rates_held:
            self._counters.release(held)
        else:
            room.rates_held[(language, speed)] = held

    def left(self, room: Room, language: str, speed: float | None) -> None:
        """A listener at ``speed`` in ``language`` left ``room``: its rate's count goes back when
        no listener here hears that language at that rate any more."""
        if speed is None or (language, speed) not in room.rates_held:
            return
        if any(listener.speed == speed for listener in room.listeners.get(language) or ()):
            return
        self._counters.release(room.rates_held.pop((language, speed)))
