"""The HTTP port's door (``server.http_port``): one aiohttp application on one bounded site
(``site.py``), hosting the route sets the settings ask for, as ``GrpcDoor`` hosts other doors'
services on the gRPC port (``rpc.PortServices``). The host (``../host.py``) builds the route sets
(OpenAI's: ``openai/``; the rooms': ``rooms/``; the phone's WebSockets: ``phone/``) and this door
from the doors' context; they share the port, its TLS, its connection cap and header bounds, the
one caller check (``caller.Authorizer``, built once for the port and handed to the route sets that
take browsers) and the port's lifetime: a route set only adds its routes, says where it listens,
and ends what it holds open when the port stops. No route set is mounted on another's application.
Event loop only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from translate_svc.transport.descriptors import connection_caps
from translate_svc.transport.door import DoorContext, address
from translate_svc.transport.http.site import CappedSite, bound_port, listen, tls_context


@dataclass(frozen=True)
class Served:
    """Where the port serves, for a route set's part of the host's one line."""

    host: str
    port: int
    tls: bool

    def url(self, path: str, *, socket: bool = False) -> str:
        """The address of ``path`` on the port (``socket``: a WebSocket's, ``ws``/``wss``)."""
        scheme = ("wss" if self.tls else "ws") if socket else ("https" if self.tls else "http")
        return f"{scheme}://{address(self.host, self.port)}{path}"


class RouteSet(Protocol):
    """A door's routes on the HTTP port. Added to the port's application before it starts."""

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Its routes."""

    def describe(self, served: Served) -> list[str]:
        """Its parts of the host's one line."""

    async def stop(self) -> None:
        """After the drain, before the port closes: end what it still holds open (sockets, calls)."""


class HttpDoor:
    """The HTTP port (a ``Door``) and the route sets on it. Event loop only."""

    def __init__(self, ctx: DoorContext, route_sets: Sequence[RouteSet]) -> None:
        self.settings = ctx.settings
        self._limits = ctx.sessions.limits
        self._reuse_port = ctx.reuse_port
        self.route_sets = tuple(route_sets)
        self.app = web.Application()
        for routes in self.route_sets:
            routes.add_routes(self.app.router)
        self._runner: web.AppRunner | None = None
        #: the listening site (``start``), with its count of open and refused connections
        self.site: CappedSite | None = None
        self.port = 0

    @property
    def tls(self) -> bool:
        s = self.settings.server
        return s.tls_cert_file is not None and s.tls_key_file is not None

    async def start(self) -> None:
        """Listen on ``server.http_port``, bounded (``site.listen``), with the gRPC port's TLS."""
        s = self.settings.server
        assert s.http_port is not None
        tls = None
        if s.tls_cert_file is not None and s.tls_key_file is not None:
            tls = tls_context(s.tls_cert_file, s.tls_key_file, s.tls_client_ca_file)
        cap = connection_caps(self.settings)["http"]  # its share of the file descriptors, with SIP's
        self._runner, self.site = await listen(
            self.app, s.host, s.http_port, self._limits, max_connections=cap, reuse_port=self._reuse_port, tls=tls
        )
        self.port = bound_port(self._runner)

    def describe(self) -> list[str]:
        served = Served(self.settings.server.host, self.port, self.tls)
        return [part for routes in self.route_sets for part in routes.describe(served)]

    def ports(self) -> dict[str, int]:
        return {"http_port": self.port}

    async def set_serving(self, serving: bool) -> None:
        """No health of its own: the gRPC port's health speaks for the process."""

    async def drain(self) -> None:
        """Nothing of its own: the stream core refuses new sessions (503 before an upgrade)."""

    async def stop(self, grace: float) -> None:
        """After the drain: what each route set still holds open, then the port (the sessions have
        ended on the drain: ``grace`` is not waited for)."""
        for routes in self.route_sets:
            await routes.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    async def close(self) -> None:
        """Nothing stays open to the end."""
