"""Which server a call goes to: the SDK's own round-robin over several addresses.

``targets`` is either several ``host:port`` addresses (a list, or one comma-separated string):
each gets its own channel and the SDK rotates over them, one address per call and the next one on
a retry or a failover; or one gRPC target (``dns:///svc.ns:50051``, ``ipv4:10.0.0.1:50051,...``,
``unix:...``), resolved by gRPC itself and balanced with its ``round_robin`` policy. Pure, no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

#: name-resolver schemes gRPC understands (a target with one is passed to gRPC whole)
_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "xds:", "vsock:", "passthrough:")


def parse_targets(targets: str | Sequence[str]) -> tuple[str, ...]:
    """The addresses to rotate over (one entry for a gRPC target with a scheme)."""
    if isinstance(targets, str):
        t = targets.strip()
        items = [t] if t.startswith(_SCHEMES) else [p.strip() for p in t.split(",")]
    else:
        items = [p.strip() for p in targets]
    items = [p for p in items if p]
    if not items:
        raise ValueError('no server address given: pass "host:port", a list of them, or a target like dns:///svc:50051')
    seen: set[str] = set()
    out = []
    for p in items:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return tuple(out)


def is_local(target: str) -> bool:
    """True when ``target`` stays on this machine: a loopback host (``localhost``, 127.0.0.0/8,
    ``::1``) or a Unix socket. A name other than ``localhost`` is not trusted to resolve to one."""
    t = target.strip()
    if t.startswith(("unix:", "unix-abstract:")):
        return True
    for scheme in ("dns:///", "dns:", "ipv4:", "ipv6:", "passthrough:///"):
        if t.startswith(scheme):
            t = t[len(scheme) :]
            break
    hosts = [h.strip() for h in t.split(",") if h.strip()]
    return bool(hosts) and all(_loopback_host(h) for h in hosts)


def _loopback_host(address: str) -> bool:
    if address.startswith("["):  # [::1]:50051
        host = address[1 : address.find("]")]
    elif address.count(":") == 1:  # host:port
        host = address.rsplit(":", 1)[0]
    else:  # a bare IPv6 address, or a host without a port
        host = address
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AddressRotation:
    """Round-robin over addresses; ``next(avoid=a)`` skips ``a`` (the one that just failed) when
    another exists. Event-loop (or single-thread) use only."""

    def __init__(self, addresses: Sequence[str]) -> None:
        if not addresses:
            raise ValueError("AddressRotation needs at least one address")
        self.addresses = tuple(addresses)
        self._i = 0

    def next(self, avoid: str | None = None) -> str:
        n = len(self.addresses)
        for _ in range(n):
            a = self.addresses[self._i % n]
            self._i = (self._i + 1) % n
            if a != avoid or n == 1:
                return a
        return self.addresses[0]  # unreachable: n >= 2 addresses are distinct
