"""The HTTP port's site (``server.http_port``): aiohttp's runner and a listening site with the port's
bounds (docs/openai-compat.md "Bounds of the HTTP port", docs/security.md), and the TLS context it
is served with (a socket's kernel buffers: ``../sockets.py``). The door (``door.py``) holds the
application its route sets put their routes on; everything here is about the port, not about what
is served on it. Event loop only.

- Connections open at once: at most ``limits.http_max_connections`` (``CappedSite``; with SIP over
  TCP, never more than its share of half the process's file descriptors:
  ``../descriptors.py``), in two budgets: a connection that
  serves a request is never closed for a newer one; at the cap, one that waits for a request (its
  head not yet whole, a TLS handshake, an idle keep-alive) is, the longest-waiting of the address
  with the most waiting first (``ConnectionBudget``).
- A request's head: how long (``limits.http_header_timeout_s``) and how large (aiohttp's parser
  limits: ``HTTP_MAX_*``) it may be.
- What strangers can write to the log (``PortLog``, aiohttp's logger for the port): a request whose
  head aiohttp refused (an over-long request line, a malformed header: a 400 from its parser) or
  whose connection was reset while it was served is one INFO line without a traceback, at most
  ``RefusalLog``'s burst per window (the rest counted in one line); aiohttp's ERROR with a
  traceback is kept for what is the server's fault (a handler's bug: a 500).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from translate_svc.settings import LimitsSettings
from translate_svc.transport.http.errors import error_body
from translate_svc.transport.refusal_log import RefusalLog

logger = logging.getLogger(__name__)

#: a request's head on the HTTP port (aiohttp's parser limits): the request line, one header (name
#: and value: a browser's cookies fit), and the headers' count (a browser sends 15-25, a proxy adds
#: a few), so a request not yet sent whole holds at most 64 x 8 KiB while it waits
HTTP_MAX_LINE_BYTES = 8190
HTTP_MAX_FIELD_BYTES = 8190
HTTP_MAX_HEADERS = 64
#: at most one log line per this many seconds about connections refused at ``http_max_connections``
REFUSED_LOG_EVERY_S = 10.0


async def listen(
    app: web.Application,
    host: str,
    port: int,
    limits: LimitsSettings,
    *,
    max_connections: int,
    reuse_port: bool = False,
    tls: ssl.SSLContext | None = None,
) -> tuple[web.AppRunner, CappedSite]:
    """Serve ``app`` on ``host:port``, bounded: aiohttp's own limits on what a request's head may
    hold and how long it may take (its keep-alive timer runs from accept, so it is the header
    timeout), and at most ``max_connections`` connections open (``CappedSite``: the port's share of
    the file descriptors, ``descriptors.connection_caps``). The runner (cleaned up to stop) and the
    started site."""
    timeout = limits.http_header_timeout_s
    budget = ConnectionBudget(max_connections)
    app.middlewares.append(budget.middleware)  # a connection serves a request while its handler runs
    runner = web.AppRunner(
        app,
        access_log=None,
        logger=PortLog(RefusalLog()),  # a client's bad request: one rate-limited line, no traceback
        handle_signals=False,
        keepalive_timeout=timeout,
        lingering_time=timeout,  # an unread body is drained this long at most, then the connection closes
        max_line_size=HTTP_MAX_LINE_BYTES,
        max_field_size=HTTP_MAX_FIELD_BYTES,
        max_headers=HTTP_MAX_HEADERS,
    )
    await runner.setup()
    site = CappedSite(
        runner,
        host,
        port,
        budget=budget,
        handshake_timeout_s=timeout,
        ssl_context=tls,
        reuse_port=reuse_port or None,
    )
    await site.start()
    return runner, site


class PortLog:
    """aiohttp's logger for the port's connections (``RequestHandler.logger``). aiohttp logs every
    request its parser refuses (``HttpProcessingError``: a request line over ``HTTP_MAX_LINE_BYTES``,
    a malformed head) and every connection reset under a handler as an ERROR with a traceback, ~730
    bytes a request that any stranger can have written as fast as it sends bad requests (17.7 MB
    in 10 s). Those are the client's doing: each is ``refusals``' one INFO line (rate-limited, quoting
    nothing the client sent). Everything else is aiohttp's own logging, unchanged. Event loop only."""

    def __init__(self, refusals: RefusalLog, inner: logging.Logger | None = None) -> None:
        self.refusals = refusals
        self._inner = inner or logging.getLogger("aiohttp.server")

    def exception(self, msg: str, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else None
        why = _client_fault(exc)
        if why is None:
            self._inner.exception(msg, *args, exc_info=exc_info, **kwargs)
            return
        peer = args[0] if args and isinstance(args[0], str) else "an unknown address"
        self.refusals("request", peer, why)

    def __getattr__(self, name: str) -> Any:  # debug, warning, ...: aiohttp's own
        return getattr(self._inner, name)


def _client_fault(exc: BaseException | None) -> str | None:
    """Why a request failed by its client's doing (None: not the client's)."""
    if isinstance(exc, LineTooLong):
        return f"{exc.code}, its request line or a header is over {HTTP_MAX_LINE_BYTES} bytes"
    if isinstance(exc, HttpProcessingError):
        return f"{exc.code}, its request's head is not one this port reads ({type(exc).__name__})"
    if isinstance(exc, ConnectionResetError):
        return "its connection was reset while it was served"
    return None


def bound_port(runner: web.AppRunner) -> int:
    """The port a runner's site bound (port 0: a free one)."""
    return int(runner.addresses[0][1])


_REFUSAL_BODY = json.dumps(
    error_body(
        "this server has as many connections open on its HTTP port as it takes "
        "(limits.http_max_connections); retry shortly",
        "server_overloaded",
        "server_error",
    )
).encode()
#: what a plaintext connection over the cap gets before it is closed
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_REFUSAL_BODY), _REFUSAL_BODY)
)


class Connection:
    """One connection of the port: its peer address, its transport (before TLS), aiohttp's protocol
    for it, its handshake while that runs, and whether a request is being served on it."""

    __slots__ = ("handler", "handshake", "peer", "serving", "transport")

    def __init__(self, peer: str, transport: asyncio.Transport, handler: asyncio.Protocol) -> None:
        self.peer = peer
        self.transport = transport
        self.handler = handler
        self.handshake: asyncio.Task[None] | None = None
        self.serving = False


class ConnectionBudget:
    """The port's connections in two budgets: those serving a request, and those waiting
    for one (accepted, in their TLS handshake, their request's head not yet whole, or idle between
    requests), kept oldest first per peer address (IPv6: per /64). Under ``max_connections`` a new
    connection is let in; at it, the longest-waiting connection of the address with the most
    connections waiting is closed for it; only when none waits (every connection serves a request)
    is it refused. So a token-less client's half-sent requests, however many and however fast they
    are reopened, cost the other addresses nothing, never keep out a connection that has sent its
    request, and at their own address cost a newcomer only once as many newer ones came before its
    request was read. ``middleware`` marks a connection serving while a handler runs (a WebSocket
    session: its whole life). Event loop only."""

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self._conns: dict[asyncio.Protocol, Connection] = {}  # by aiohttp's protocol (a request's)
        self._by_peer: dict[str, dict[Connection, None]] = {}  # waiting, insertion order: longest first
        #: peers by how many of their connections wait (their count's bucket), for the largest
        self._peers_with: dict[int, dict[str, None]] = {}
        self._most = 0  # the largest count a peer has

    @property
    def open(self) -> int:
        return len(self._conns)

    @property
    def waiting(self) -> int:
        return sum(len(mine) for mine in self._by_peer.values())

    def admit(self) -> Connection | bool:
        """For a new connection: True (room), the waiting connection to close for it, or False
        (refuse it: every connection of the cap serves a request)."""
        if self.open < self.max_connections:
            return True
        if not self._most:
            return False
        peer = next(iter(self._peers_with[self._most]))
        return next(iter(self._by_peer[peer]))

    def add(self, conn: Connection) -> None:
        self._conns[conn.handler] = conn
        self._wait(conn)

    def remove(self, conn: Connection) -> None:
        """The connection is gone (closed, or to be closed for a newer one); again: nothing."""
        if self._conns.get(conn.handler) is conn:
            del self._conns[conn.handler]
            self._unwait(conn)

    def serve(self, conn: Connection) -> None:
        """A request came whole on ``conn``: it serves it, and is closed for no newcomer."""
        if not conn.serving:
            conn.serving = True
            self._unwait(conn)

    def served(self, conn: Connection) -> None:
        """Its request is answered: ``conn`` waits for the next one (keep-alive), unless it is gone."""
        if conn.serving and self._conns.get(conn.handler) is conn:
            conn.serving = False
            self._wait(conn)

    def _wait(self, conn: Connection) -> None:
        mine = self._by_peer.setdefault(conn.peer, {})
        mine[conn] = None
        self._move(conn.peer, len(mine) - 1, len(mine))

    def _unwait(self, conn: Connection) -> None:
        mine = self._by_peer.get(conn.peer)
        if mine is None or mine.pop(conn, False) is not None:  # (a serving connection waits nowhere)
            return
        self._move(conn.peer, len(mine) + 1, len(mine))
        if not mine:
            del self._by_peer[conn.peer]

    def _move(self, peer: str, was: int, now: int) -> None:
        if was:
            bucket = self._peers_with[was]
            del bucket[peer]
            if not bucket:
                del self._peers_with[was]
                if self._most == was:
                    self._most = now  # counts move by one: the next largest is ``now`` (or none: 0)
        if now:
            self._peers_with.setdefault(now, {})[peer] = None
            self._most = max(self._most, now)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        conn = self._conns.get(request.protocol)
        if conn is None:  # (not one of the site's: served as it is)
            return await handler(request)  # type: ignore[no-any-return]
        self.serve(conn)
        try:
            return await handler(request)  # type: ignore[no-any-return]
        finally:
            self.served(conn)


def peer_of(transport: asyncio.BaseTransport) -> str:
    """The address a connection is counted under: its peer's IP address; an IPv6 one's /64 (one
    client or site may hold a whole /64)."""
    peername = transport.get_extra_info("peername")
    host = str(peername[0]) if isinstance(peername, tuple) and peername else ""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class CappedSite(web.BaseSite):
    """``web.TCPSite`` with a cap on the connections open at once, which aiohttp lacks (3.14: its
    ``Server`` counts connections but never refuses one; asyncio accepts until the process is out
    of file descriptors, and then logs every failed accept), in the budgets of a
    ``ConnectionBudget``: a connection over the cap closes the longest-waiting connection (one not
    serving a request) as soon as it is accepted, and is refused (a plaintext one after a 503) only
    when every connection serves a request; its descriptor is free again at once, and one warning
    per ``REFUSED_LOG_EVERY_S`` says how many were. Counted from accept, TLS handshakes included
    (``handshake_timeout_s`` at most, not asyncio's 60 s). Everything else (parsing, timeouts,
    keep-alive) is aiohttp's. Event loop only."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        budget: ConnectionBudget,
        handshake_timeout_s: float,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool | None = None,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host, self._port, self._reuse_port = host, port, reuse_port
        self.budget = budget
        self.max_connections = budget.max_connections
        self._handshake_timeout_s = handshake_timeout_s
        self._handshakes: set[asyncio.Task[None]] = set()
        #: connections the cap closed since the site started: refused at accept, or closed while
        #: waiting for a request to make room for a newer one (``evicted`` of them)
        self.refused = 0
        self.evicted = 0
        self._unlogged = 0  # closed since the last line logged
        self._log_timer: asyncio.TimerHandle | None = None

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self._host}:{self._port}"

    @property
    def open_connections(self) -> int:
        return self.budget.open

    async def start(self) -> None:
        await super().start()
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Accepted(self), self._host, self._port, backlog=self._backlog, reuse_port=self._reuse_port
        )

    async def stop(self) -> None:
        await super().stop()
        if self._log_timer is not None:
            self._log_timer.cancel()
            self._log_refused(again=False)
        for task in list(self._handshakes):
            task.cancel()
        await asyncio.gather(*self._handshakes, return_exceptions=True)

    def accepted(self, transport: asyncio.Transport) -> None:
        """A connection was accepted: within the budget (``ConnectionBudget.admit``: room, or a
        waiting connection closed for it) handed to aiohttp's protocol (after the TLS handshake,
        with TLS); else refused."""
        server = self._runner.server
        verdict = self.budget.admit() if server is not None else False
        if verdict is False or server is None:
            self._refuse(transport)
            return
        if verdict is not True:
            self._evict(verdict)
        handler = server()  # aiohttp's RequestHandler, with the runner's limits
        conn = Connection(peer_of(transport), transport, handler)
        self.budget.add(conn)
        watched = _Watched(handler, lambda: self.budget.remove(conn))
        if self._ssl_context is None:
            transport.set_protocol(watched)
            watched.connection_made(transport)
            return
        transport.pause_reading()  # the handshake reads first
        task = asyncio.get_running_loop().create_task(self._handshake(transport, watched, self._ssl_context))
        conn.handshake = task
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, transport: asyncio.Transport, watched: _Watched, tls: ssl.SSLContext) -> None:
        early = _Early()
        wrapped = None
        try:
            wrapped = await asyncio.get_running_loop().start_tls(
                transport, early, tls, server_side=True, ssl_handshake_timeout=self._handshake_timeout_s
            )
        except Exception:  # failed, too slow, or the client left: nothing to serve
            pass
        finally:
            if wrapped is None:  # (cancelled too: closed for a newer connection, or the site stops)
                transport.abort()
                watched.lost()
        if wrapped is None:
            return
        wrapped.set_protocol(watched)
        watched.connection_made(wrapped)
        early.replay(watched)

    def _evict(self, conn: Connection) -> None:
        """Close a connection that waits for a request, for a newer one."""
        self.budget.remove(conn)
        self.evicted += 1
        if conn.handshake is not None:
            conn.handshake.cancel()  # its transport is closed as the task ends
        else:
            _close(conn.transport)
        self._count_refused()

    def _refuse(self, transport: asyncio.Transport) -> None:
        if self._ssl_context is None:
            transport.write(_REFUSAL)
        _close(transport)
        self._count_refused()

    def _count_refused(self) -> None:
        self.refused += 1
        if self._log_timer is not None:  # said already: counted, and said within REFUSED_LOG_EVERY_S
            self._unlogged += 1
            return
        logger.warning(
            "the HTTP port has %d connections open, its cap (limits.http_max_connections): closing the "
            "longest-waiting for a request of the address with the most waiting, or refusing new ones while "
            "every connection serves a request",
            self.budget.max_connections,
        )
        self._log_timer = asyncio.get_running_loop().call_later(REFUSED_LOG_EVERY_S, self._log_refused)

    def _log_refused(self, *, again: bool = True) -> None:
        """How many more were closed since the last line (nothing if none: the next says it again
        at once)."""
        self._log_timer = None
        if not self._unlogged:
            return
        logger.warning(
            "the HTTP port refused or closed %d more connections at its cap of %d (limits.http_max_connections)",
            self._unlogged,
            self.budget.max_connections,
        )
        self._unlogged = 0
        if again:
            self._log_timer = asyncio.get_running_loop().call_later(REFUSED_LOG_EVERY_S, self._log_refused)


def _close(transport: asyncio.Transport) -> None:
    if transport.get_write_buffer_size():
        transport.abort()
    else:
        transport.close()


class _Accepted(asyncio.Protocol):
    """A connection as accepted, until ``CappedSite`` refuses it or hands it to aiohttp."""

    def __init__(self, site: CappedSite) -> None:
        self._site = site

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._site.accepted(transport)

    def data_received(self, data: bytes) -> None:  # a refused connection's request: dropped
        pass


class _Watched(asyncio.Protocol):
    """aiohttp's protocol for one connection, as the transport sees it: every call passed on, and
    the connection's end told to the budget (once)."""

    def __init__(self, inner: asyncio.Protocol, on_lost: Callable[[], None]) -> None:
        self._inner = inner
        self._on_lost: Callable[[], None] | None = on_lost

    def lost(self) -> None:
        on_lost, self._on_lost = self._on_lost, None
        if on_lost is not None:
            on_lost()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._inner.connection_lost(exc)
        finally:
            self.lost()


class _Early(asyncio.Protocol):
    """A TLS connection's protocol from its handshake's end until aiohttp's takes over: what came
    in that moment is kept for it, in order."""

    def __init__(self) -> None:
        self._events: list[Callable[[asyncio.Protocol], object]] = []

    def data_received(self, data: bytes) -> None:
        self._events.append(lambda p: p.data_received(data))

    def eof_received(self) -> bool:
        self._events.append(lambda p: p.eof_received())
        return True  # aiohttp's protocol decides once it has it

    def connection_lost(self, exc: Exception | None) -> None:
        self._events.append(lambda p: p.connection_lost(exc))

    def replay(self, protocol: asyncio.Protocol) -> None:
        for event in self._events:
            event(protocol)
        self._events.clear()


def tls_context(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    """The gRPC port's TLS (and mTLS) for the HTTP port too (read at start: a rotated certificate
    needs a restart here, unlike on the gRPC port)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    return ctx
