"""``/metrics`` over HTTP on the process's event loop (security finding N15).

prometheus_client's ``start_http_server`` starts a thread per connection and waits on a half-sent
request for ever. Here aiohttp's low-level server serves it on the running event loop: a connection
costs a few kB and no thread, its request must be complete within ``METRICS_IDLE_S`` of connecting
(or of its last answer), and at most ``METRICS_MAX_CONNECTIONS`` are open (a new one beyond aborts
the oldest). The exposition text is made on one thread of the loop's default executor, one at a
time: concurrent scrapes share it. Imported by ``metrics.serve_metrics`` / ``serve_aggregate`` only,
so the modules that count (sessions, the engine) never load aiohttp.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


#: a metrics connection's request must be complete within this many seconds of its connecting (or
#: of its last answer, kept alive): a half-sent request is closed then
METRICS_IDLE_S = 10.0
#: metrics connections open at once (Prometheus keeps one per target); a new one beyond closes the oldest
METRICS_MAX_CONNECTIONS = 32
#: the listening socket's accept queue
_BACKLOG = 256


class _CappedServer(web.Server):
    """aiohttp's low-level HTTP server with a cap on open connections: accepting one beyond
    ``max_connections`` aborts the oldest (a scraper sends its request at once, so the oldest is the
    one most likely to be stuck). Event loop only."""

    def __init__(self, handler: Any, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._max = max_connections
        #: oldest first; the transport once the connection is made
        self._open: dict[RequestHandler, asyncio.Transport | None] = {}

    def __call__(self) -> RequestHandler:
        while len(self._open) >= self._max:
            oldest = next((h for h, t in self._open.items() if t is not None), None)
            if oldest is None:
                break  # all still being accepted: they are counted once made
            transport = self._open.pop(oldest)
            assert transport is not None
            transport.abort()  # close() would wait to flush to a reader that may never read
        handler = super().__call__()
        self._open[handler] = None
        return handler

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if handler in self._open:
            self._open[handler] = transport

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self._open.pop(handler, None)
        super().connection_lost(handler, exc)

    def close_all(self) -> None:
        for transport in self._open.values():
            if transport is not None:
                transport.abort()
        self._open.clear()


class MetricsEndpoint:
    """``/metrics`` of ``registry`` on ``sock`` (bound and listening), served on the running event
    loop; ``start`` returns at once. GET or HEAD of ``/`` or ``/metrics`` (the text format, or
    OpenMetrics when the Accept header asks for it; gzip when accepted). Event loop only."""

    def __init__(self, sock: socket.socket, registry: Collector, *, idle_s: float, max_connections: int) -> None:
        self._sock = sock
        self._registry = registry
        self.port = int(sock.getsockname()[1])
        self._http = _CappedServer(
            self._handle,
            max_connections=max_connections,
            keepalive_timeout=idle_s,  # aiohttp arms it at connect: also the deadline of the first request
            access_log=None,
            max_line_size=2048,
            max_field_size=2048,
            max_headers=32,
            lingering_time=1.0,
        )
        #: the exposition being made, by (content type, gzip): concurrent scrapes share one
        self._rendering: dict[tuple[str, bool], asyncio.Future[bytes]] = {}
        self._server: asyncio.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen(), name=f"metrics:{self.port}")
        self._task.add_done_callback(self._started)

    async def _listen(self) -> None:
        # the socket listens already: connections wait in its queue until this runs
        self._server = await asyncio.get_running_loop().create_server(self._http, sock=self._sock, backlog=_BACKLOG)

    def _started(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("/metrics on port %d failed to start", self.port, exc_info=task.exception())

    def close(self) -> None:
        """Stop listening and drop every open connection."""
        if self._task is not None:
            self._task.cancel()
        if self._server is not None:
            self._server.close()
        else:
            self._sock.close()
        self._http.close_all()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD"})
        if request.path not in ("/", "/metrics"):
            return web.Response(status=404)
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        compress = gzip_accepted(request.headers.get("Accept-Encoding", ""))
        body = await self._render((content_type, compress), encoder)
        headers = {"Content-Type": content_type}
        if compress:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def _render(self, key: tuple[str, bool], encoder: Callable[[Collector], bytes]) -> bytes:
        future = self._rendering.get(key)
        if future is None:

            def render() -> bytes:
                out = encoder(self._registry)
                return gzip.compress(out) if key[1] else out

            future = asyncio.ensure_future(asyncio.to_thread(render))
            self._rendering[key] = future
            future.add_done_callback(lambda _: self._rendering.pop(key, None))
        return await asyncio.shield(future)  # a scraper that leaves does not cancel the others' answer


#: the endpoints this process serves, by port
_endpoints: dict[int, MetricsEndpoint] = {}


def _listen(port: int, host: str) -> socket.socket:
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    sock = socket.create_server(address, family=family, backlog=_BACKLOG)
    sock.setblocking(False)
    return sock


def serve(port: int, host: str, registry: Collector, *, idle_s: float | None, max_connections: int | None) -> int:
    """Serve ``registry`` on ``host:port`` on the running event loop; the port bound (``port`` 0: a
    free one). Binds before it returns (a port in use raises ``OSError`` here)."""
    endpoint = MetricsEndpoint(
        _listen(port, host),
        registry,
        idle_s=METRICS_IDLE_S if idle_s is None else idle_s,
        max_connections=METRICS_MAX_CONNECTIONS if max_connections is None else max_connections,
    )
    endpoint.start()
    _endpoints[endpoint.port] = endpoint
    return endpoint.port


def stop(port: int) -> None:
    """Stop serving /metrics on ``port``; nothing if it is not served."""
    endpoint = _endpoints.pop(port, None)
    if endpoint is not None:
        endpoint.close()
