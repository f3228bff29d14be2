"""Two-party calls: the two legs of one call, by the call id both name (``?call=`` or Twilio's
``customParameters``). Each leg's translation is played into the other leg; a leg never hears its
own speech translated. Event loop only."""

from __future__ import annotations

from typing import Generic, TypeVar

from translate_svc.errors import InvalidInput

T = TypeVar("T")

#: the most calls waiting for, or talking with, their other leg
MAX_PAIRS = 10_000


class Pairs(Generic[T]):
    """The legs of the door's two-party calls."""

    def __init__(self) -> None:
        self._legs: dict[str, list[T]] = {}

    def join(self, key: str, leg: T) -> None:
        legs = self._legs.get(key)
        if legs is None:
            if len(self._legs) >= MAX_PAIRS:
                raise InvalidInput("too many two-party calls are waiting for their other leg: try again later")
            legs = self._legs[key] = []
        if len(legs) >= 2:
            raise InvalidInput("this call already has two legs: a two-party call has two (name another `call`)")
        legs.append(leg)

    def leave(self, key: str, leg: T) -> None:
        legs = self._legs.get(key, [])
        if leg in legs:
            legs.remove(leg)
        if not legs:
            self._legs.pop(key, None)

    def peer(self, key: str, leg: T) -> T | None:
        """The other leg, once it has joined."""
        return next((other for other in self._legs.get(key, []) if other is not leg), None)
