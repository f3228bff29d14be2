"""The ports a node of ``serve --workers N`` reserves before any worker starts: every door's (issue
73): gRPC, health, HTTP, SIP (UDP and TCP, one port), SIP over TLS and AudioSocket.

Each is bound (not listened on) with ``SO_REUSEPORT``, so port 0 is resolved once, here, for every
worker (which binds the same port beside it), and a busy port fails the start before anything
loads. A TCP reservation that never listens takes no connection; a bound UDP socket would take its
share of the datagrams and read none, so the SIP port's UDP reservation is given back once the
workers hold the port (``release_datagrams``).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from translate_svc.settings import Settings

#: port 0 for SIP: tries to find a port free for both UDP and TCP
PAIR_TRIES = 20


class StartError(Exception):
    """The node could not start (a busy port, an engine that failed to load); one line."""


def reserve_port(host: str, port: int, *, flag: str = "--port", kind: int = socket.SOCK_STREAM) -> socket.socket:
    """Bind (not listen) ``host:port`` with ``SO_REUSEPORT``: the workers bind it too; port 0 is
    resolved here, once, for all of them. ``flag``: the setting to change when it is busy."""
    family, sock_type, proto, _, addr = socket.getaddrinfo(host.strip("[]"), port, type=kind, flags=socket.AI_PASSIVE)[
        0
    ]
    sock = socket.socket(family, sock_type, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise StartError(
            f"cannot listen on {host}:{port}: {e.strerror}; pick another {flag} (0: any free one)"
        ) from None
    return sock


def reserve_pair(host: str, port: int, *, flag: str) -> tuple[socket.socket, socket.socket]:
    """The same port over UDP and TCP (SIP's): port 0 picks one free for both."""
    for _ in range(PAIR_TRIES):
        udp = reserve_port(host, port, flag=flag, kind=socket.SOCK_DGRAM)
        try:
            return udp, reserve_port(host, udp.getsockname()[1], flag=flag)
        except StartError:
            udp.close()
            if port:
                raise
    raise StartError(f"no port free on {host} for both UDP and TCP ({flag} 0)")


@dataclass
class NodePorts:
    """The node's ports, as reserved (port 0 resolved); None: that door is off."""

    port: int = 0
    health_port: int | None = None
    http_port: int | None = None
    sip_port: int | None = None
    sip_tls_port: int | None = None
    audiosocket_port: int | None = None
    #: held until the node stops
    _held: list[socket.socket] = field(default_factory=list)
    #: the UDP ones, given back once the workers hold their ports
    _datagrams: list[socket.socket] = field(default_factory=list)

    @classmethod
    def reserve(cls, settings: Settings) -> NodePorts:
        """Every door's port that ``settings`` serve (a busy one: ``StartError``, nothing kept)."""
        ports = cls()
        try:
            ports._reserve(settings)
        except BaseException:
            ports.close()
            raise
        return ports

    def _reserve(self, settings: Settings) -> None:
        s = settings.server
        self.port = self._tcp(s.host, s.port, "--port")
        if s.health_port is not None:
            self.health_port = self._tcp(s.host, s.health_port, "--health-port")
        if s.http_port is not None:
            self.http_port = self._tcp(s.host, s.http_port, "--http-port")
        if settings.sip.port is not None:
            udp, tcp = reserve_pair(s.host, settings.sip.port, flag="--sip-port")
            self._datagrams.append(udp)
            self._held.append(tcp)
            self.sip_port = tcp.getsockname()[1]
        if settings.sip.tls_port is not None:
            self.sip_tls_port = self._tcp(s.host, settings.sip.tls_port, "sip.tls_port")
        phone = settings.phone
        if phone.audiosocket_port is not None:
            self.audiosocket_port = self._tcp(phone.audiosocket_host, phone.audiosocket_port, "--audiosocket-port")

    def _tcp(self, host: str, port: int, flag: str) -> int:
        sock = reserve_port(host, port, flag=flag)
        self._held.append(sock)
        return int(sock.getsockname()[1])

    def apply(self, child: Settings) -> None:
        """The workers' settings: every door on the port reserved for it."""
        child.server.port = self.port
        child.server.health_port = self.health_port
        child.server.http_port = self.http_port
        if self.sip_port is not None:
            child.sip.port = self.sip_port
        if self.sip_tls_port is not None:
            child.sip.tls_port = self.sip_tls_port
        if self.audiosocket_port is not None:
            child.phone.audiosocket_port = self.audiosocket_port

    def release_datagrams(self) -> None:
        """The workers hold the UDP ports now: this process stops taking their datagrams."""
        for sock in self._datagrams:
            sock.close()
        self._datagrams.clear()

    def close(self) -> None:
        self.release_datagrams()
        for sock in self._held:
            sock.close()
        self._held.clear()
