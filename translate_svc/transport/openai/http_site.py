"""The HTTP port's site (``server.http_port``): aiohttp's runner and a listening site with the port's
bounds (docs/openai-compat.md "Bounds of the HTTP port", docs/security.md), the TLS context it is
served with, the kernel buffers of a realtime socket, and the refusals it answers in OpenAI's
shape. The door (``door.py``) puts its routes on the application; everything here is about the
port, not about what is served on it. Event loop only.

- Connections open at once: at most ``limits.http_max_connections`` (``CappedSite``; never more
  than half the process's file descriptors, ``connection_cap``).
- A request's head: how long (``limits.http_header_timeout_s``) and how large (aiohttp's parser
  limits: ``HTTP_MAX_*``) it may be.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from translate_svc.errors import ServiceError
from translate_svc.settings import LimitsSettings
from translate_svc.transport.openai.wire import admission_refusal, error_body

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
    reuse_port: bool = False,
    tls: ssl.SSLContext | None = None,
) -> tuple[web.AppRunner, CappedSite]:
    """Serve ``app`` on ``host:port``, bounded: aiohttp's own limits on what a request's head may
    hold and how long it may take (its keep-alive timer runs from accept, so it is the header
    timeout), and at most ``limits.http_max_connections`` connections open (``CappedSite``). The
    runner (cleaned up to stop) and the started site."""
    timeout = limits.http_header_timeout_s
    runner = web.AppRunner(
        app,
        access_log=None,
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
        max_connections=connection_cap(limits.http_max_connections),
        handshake_timeout_s=timeout,
        ssl_context=tls,
        reuse_port=reuse_port or None,
    )
    await site.start()
    return runner, site


def bound_port(runner: web.AppRunner) -> int:
    """The port a runner's site bound (port 0: a free one)."""
    return int(runner.addresses[0][1])


def fix_buffers(request: web.Request, limits: LimitsSettings) -> None:
    """Fixed kernel buffers for the socket (issue 34), as the gRPC door fixes its HTTP/2 windows;
    Linux would grow each to MBs. Sending: what a client that does not read lets the server push
    (results computed for nobody, held in the kernel). Receiving: the audio a client sends ahead
    of a session that stopped reading (``limits.stream_window_bytes``)."""
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limits.ws_send_buffer_bytes)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, limits.stream_window_bytes)


def http_error(status: int, message: str, code: str, kind: str = "invalid_request_error") -> web.Response:
    """An HTTP error in OpenAI's shape."""
    return web.json_response(error_body(message, code, kind), status=status)


def admission_refused(e: ServiceError) -> web.Response:
    """A stream refused at the handshake (``wire.admission_refusal``) as the HTTP answer."""
    refusal = admission_refusal(e)
    return web.json_response(refusal.body, status=refusal.status, headers=refusal.headers)


def connection_cap(setting: int) -> int:
    """``limits.http_max_connections``, but never more than half this process's file descriptors
    (RLIMIT_NOFILE; a shell's default is 1024): the other half stays for the other doors, the model's
    files and the engine (a warning says when the setting was lowered)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or setting <= soft // 2:
        return setting
    cap = max(1, soft // 2)
    logger.warning(
        "limits.http_max_connections=%d is more than half of this process's %d file descriptors (ulimit -n): "
        "the HTTP port takes at most %d connections",
        setting,
        soft,
        cap,
    )
    return cap


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


class CappedSite(web.BaseSite):
    """``web.TCPSite`` with a cap on the connections open at once, which aiohttp lacks (3.14: its
    ``Server`` counts connections but never refuses one; asyncio accepts until the process is out
    of file descriptors, and then logs every failed accept). A connection over ``max_connections``
    is closed as soon as it is accepted (a plaintext one after a 503), so its descriptor is free
    again at once, and one warning per ``REFUSED_LOG_EVERY_S`` says how many were. Counted: aiohttp's
    connections, and TLS handshakes under way (from accept; ``handshake_timeout_s`` at most, not
    asyncio's 60 s). Everything else (parsing, timeouts, keep-alive) is aiohttp's. Event loop only."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        max_connections: int,
        handshake_timeout_s: float,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool | None = None,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host, self._port, self._reuse_port = host, port, reuse_port
        self.max_connections = max_connections
        self._handshake_timeout_s = handshake_timeout_s
        self._handshakes: set[asyncio.Task[None]] = set()
        #: connections refused at the cap since the site started
        self.refused = 0
        self._unlogged = 0  # refused since the last line logged
        self._log_timer: asyncio.TimerHandle | None = None

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self._host}:{self._port}"

    @property
    def open_connections(self) -> int:
        server = self._runner.server
        return (len(server.connections) if server is not None else 0) + len(self._handshakes)

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
        """A connection was accepted: refused over the cap, else handed to aiohttp's protocol
        (after the TLS handshake, with TLS)."""
        server = self._runner.server
        if server is None or self.open_connections >= self.max_connections:
            self._refuse(transport)
            return
        handler = server()  # aiohttp's RequestHandler, with the runner's limits
        if self._ssl_context is None:
            transport.set_protocol(handler)
            handler.connection_made(transport)
            return
        transport.pause_reading()  # the handshake reads first
        task = asyncio.get_running_loop().create_task(self._handshake(transport, handler, self._ssl_context))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, transport: asyncio.Transport, handler: asyncio.Protocol, tls: ssl.SSLContext) -> None:
        early = _Early()
        try:
            wrapped = await asyncio.get_running_loop().start_tls(
                transport, early, tls, server_side=True, ssl_handshake_timeout=self._handshake_timeout_s
            )
        except Exception:  # failed, too slow, or the client left: nothing to serve
            transport.abort()
            return
        if wrapped is None:
            transport.abort()
            return
        wrapped.set_protocol(handler)
        handler.connection_made(wrapped)
        early.replay(handler)

    def _refuse(self, transport: asyncio.Transport) -> None:
        self.refused += 1
        if self._ssl_context is None:
            transport.write(_REFUSAL)
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()
        if self._log_timer is not None:  # said already: counted, and said within REFUSED_LOG_EVERY_S
            self._unlogged += 1
            return
        logger.warning(
            "the HTTP port has %d connections open, its cap (limits.http_max_connections): refusing new ones",
            self.max_connections,
        )
        self._log_timer = asyncio.get_running_loop().call_later(REFUSED_LOG_EVERY_S, self._log_refused)

    def _log_refused(self, *, again: bool = True) -> None:
        """How many more were refused since the last line (nothing if none: the next refusal says
        it again at once)."""
        self._log_timer = None
        if not self._unlogged:
            return
        logger.warning(
            "the HTTP port refused %d more connections at its cap of %d (limits.http_max_connections)",
            self._unlogged,
            self.max_connections,
        )
        self._unlogged = 0
        if again:
            self._log_timer = asyncio.get_running_loop().call_later(REFUSED_LOG_EVERY_S, self._log_refused)


class _Accepted(asyncio.Protocol):
    """A connection as accepted, until ``CappedSite`` refuses it or hands it to aiohttp."""

    def __init__(self, site: CappedSite) -> None:
        self._site = site

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._site.accepted(transport)

    def data_received(self, data: bytes) -> None:  # a refused connection's request: dropped
        pass


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
