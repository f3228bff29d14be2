"""Who may reach the SIP door, checked before any dialog or call state is kept (DESIGN pitfall 35):
the source address against ``sip.allowed_cidrs``, and a token bucket of INVITEs per source address
(``sip.invites_per_s``, ``sip.invite_burst``) over a bounded table of sources (the least recently
seen forgotten first). Pure (the clock passed in); event loop only."""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Sequence

#: sources whose INVITE buckets are kept, at most
MAX_SOURCES = 4096


class AllowList:
    def __init__(self, cidrs: Sequence[str]) -> None:
        self._networks = [ipaddress.ip_network(c, strict=False) for c in cidrs]

    def allows(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == n.version and ip in n for n in self._networks)


class InviteRate:
    """A token bucket per source address: ``rate`` INVITEs a second, ``burst`` at once."""

    def __init__(self, rate: float, burst: int, max_sources: int = MAX_SOURCES) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._max = max_sources
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, source: str, now: float) -> bool:
        """Whether an INVITE from ``source`` may pass now (and count it)."""
        tokens, at = self._buckets.pop(source, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        ok = tokens >= 1.0
        self._buckets[source] = (tokens - 1.0 if ok else tokens, now)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return ok
