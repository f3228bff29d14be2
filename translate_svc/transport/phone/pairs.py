"""Two-party calls: the two legs of one call, by the tenant that placed them and the call id both
name (``?call=`` or Twilio's ``customParameters``). Each leg's translation is played into the
other leg; a leg never hears its own speech translated.

Call ids are namespaced by tenant: a leg only ever meets a leg of its own tenant. Call ids are
constants written into TwiML and dialplans, so another tenant that names the same id is not
refused (that would tell it the id is in use, and let it take the id first and lock the real
call out): it waits alone in its own namespace, hears nothing of the real call and is heard by
nobody (docs/decisions.md). Event loop only."""

from __future__ import annotations

from typing import Generic, TypeVar

from translate_svc.errors import InvalidInput

T = TypeVar("T")

#: the most calls waiting for, or talking with, their other leg (every tenant together; each leg
#: also holds one of its tenant's streams, so a tenant's own caps bound its share)
MAX_PAIRS = 10_000

#: a two-party call's key: (the tenant's name, the call id both legs name)
PairKey = tuple[str, str]


class Pairs(Generic[T]):
    """The legs of the door's two-party calls, by ``PairKey``."""

    def __init__(self) -> None:
        self._legs: dict[PairKey, list[T]] = {}

    def join(self, key: PairKey, leg: T) -> None:
        legs = self._legs.get(key)
        if legs is None:
            if len(self._legs) >= MAX_PAIRS:
                raise InvalidInput("too many two-party calls are waiting for their other leg: try again later")
            legs = self._legs[key] = []
        if len(legs) >= 2:
            raise InvalidInput("this call already has two legs: a two-party call has two (name another `call`)")
        legs.append(leg)

    def leave(self, key: PairKey, leg: T) -> None:
        legs = self._legs.get(key, [])
        if leg in legs:
            legs.remove(leg)
        if not legs:
            self._legs.pop(key, None)

    def peer(self, key: PairKey, leg: T) -> T | None:
        """The other leg, once it has joined."""
        return next((other for other in self._legs.get(key, []) if other is not leg), None)
