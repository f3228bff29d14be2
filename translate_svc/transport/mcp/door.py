"""The MCP endpoint (docs/agents.md): ``/mcp`` on the HTTP port, a route set
(``../http/door.py``) built by the host when ``mcp.enabled`` (``serve --mcp``).

Each request is checked, bounded and read here before the ``mcp`` SDK sees a byte of it
(docs/security.md, "The MCP endpoint"):

1. a browser page of another site is refused (its Origin, ``limits.http_allowed_origins``);
2. the token (``Authorization: Bearer``): 401 without a valid one (with ``WWW-Authenticate``),
   in the port's one wording; which tool it may call is its permissions' (``toolbox.McpCaller``);
3. the body: ``Content-Length`` over the endpoint's limit (a ``translate_audio`` clip of
   ``mcp.max_clip_bytes`` in base64, and its other arguments) is a 413 unread; otherwise it is read
   as it comes, counted, within ``limits.clip_read_timeout_s`` of the request's start (408), while
   the request holds one of its tenant's and token's unary call slots
   (``limits.max_unary_calls_per_tenant``/``_per_token``) and, for a body over 1 MiB or of unknown
   length, one of the tenant's ``limits.max_clip_reads_per_tenant``: a caller that sends slowly
   holds no more than that (429 beyond, with ``Retry-After``);
4. then the SDK's streamable HTTP transport (``asgi.py`` serves it from this aiohttp handler),
   stateless: no MCP session is kept between requests, so any worker of ``serve --workers N``
   and any pod answers any request, and nothing is held for a client that went away. So POST
   only: a GET's stream would never carry anything and would hold its connection (a 405, as the
   spec allows). The tools then take their own admission in the session cores, as on the gRPC
   door.

Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiohttp import hdrs, web
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from translate_svc.errors import ServiceError
from translate_svc.fetch import Fetcher
from translate_svc.transport.calls import REQUEST_ID, SMALL_MESSAGE_BYTES, config_message_bytes
from translate_svc.transport.door import DoorContext
from translate_svc.transport.http.caller import TOKEN_REFUSALS, WORDING, Authorizer
from translate_svc.transport.http.client_secrets import ORIGIN_REFUSED, origin_allowed
from translate_svc.transport.http.door import Served
from translate_svc.transport.mcp import asgi
from translate_svc.transport.mcp.captions import Captions
from translate_svc.transport.mcp.refusals import refusal, service_refusal
from translate_svc.transport.mcp.rooms import Reached, RoomTools
from translate_svc.transport.mcp.server import SCOPE_KEY, Exchange, build_server
from translate_svc.transport.mcp.toolbox import McpCaller, Toolbox
from translate_svc.transport.tokens.authorization import Authorized, authorize, bearer
from translate_svc.transport.tokens.file import ALL_PERMISSIONS
from translate_svc.transport.tokens.refusals import Refusal

logger = logging.getLogger(__name__)

PATH = "/mcp"
#: a body larger than this (or of unknown length) also takes one of the tenant's clip reads
LARGE_BODY_BYTES = 1024 * 1024
_CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    pass


class McpRoutes:
    """The HTTP port's MCP route set (an ``http.door.RouteSet``). ``callers``: the port's caller
    check (its client secrets mint the rooms' keys); ``grpc_port``: where the gRPC port listens,
    once started. Event loop only."""

    def __init__(self, ctx: DoorContext, callers: Authorizer, grpc_port: Callable[[], int]) -> None:
        settings = ctx.settings
        self._m = ctx.sessions
        self._tokens = ctx.tokens
        self._limits = settings.limits
        self._grpc_port = grpc_port
        mcp = settings.mcp
        clip = min(mcp.max_clip_bytes, settings.limits.max_message_bytes)
        fetcher = Fetcher(
            mcp.fetch_hosts, max_bytes=clip, timeout_s=mcp.fetch_timeout_s, max_redirects=mcp.fetch_max_redirects
        )
        self.toolbox = Toolbox(self._m, fetcher, clip)
        secrets = callers.secrets if ctx.tokens is not None else None
        rooms = RoomTools(self._m, secrets, grpc_port)
        captions = Captions(self._m, callers.revocation, mcp.max_subscriptions)
        self.server = build_server(self.toolbox, rooms, captions)
        #: the largest body: a clip in base64 and what a request holds besides (terms, languages)
        self.body_limit = (clip + 2) // 3 * 4 + config_message_bytes(settings.limits) + SMALL_MESSAGE_BYTES
        self._manager = StreamableHTTPSessionManager(self.server, stateless=True, max_request_body_size=self.body_limit)
        asgi.ClientGoneLog.install()  # a client that leaves mid-answer: a rate-limited line, no traceback
        self._running: asyncio.Task[None] | None = None
        self._started: asyncio.Future[None] | None = None
        self._stop = asyncio.Event()

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_route("*", PATH, self._handle)

    def describe(self, served: Served) -> list[str]:
        return [f"MCP (streamable HTTP) on {served.url(PATH)}"]

    async def stop(self) -> None:
        """The SDK's task group ends: every listen stream and call in it is cancelled."""
        self._stop.set()
        if self._running is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._running

    async def _serving(self) -> None:
        """The SDK's session manager runs (its task group) from the first request to ``stop``."""
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            self._running = asyncio.ensure_future(self._run(self._started))
        await asyncio.shield(self._started)

    async def _run(self, started: asyncio.Future[None]) -> None:
        try:
            async with self._manager.run():
                started.set_result(None)
                await self._stop.wait()
        except BaseException as e:
            if not started.done():
                started.set_exception(e)
            logger.exception("the MCP endpoint's session manager failed")
            raise

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = asyncio.get_running_loop().time()
        if request.method != "POST":  # the spec's answer for an endpoint without a GET stream
            return refusal(
                405,
                "this endpoint takes POST only: it keeps no MCP session, so it offers no server-sent event stream "
                "(GET) and has none to end (DELETE)",
                "method_not_allowed",
                headers={"Allow": "POST"},
            )
        if not origin_allowed(
            request.headers.get("Origin"), request.headers.get("Host"), self._limits.http_allowed_origins
        ):
            return refusal(403, ORIGIN_REFUSED, "origin_not_allowed")
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        length = request.content_length
        if length is not None and length > self.body_limit:
            return _too_large(self.body_limit)
        large = request.body_exists and (length is None or length > LARGE_BODY_BYTES)
        limit_s = self._limits.clip_read_timeout_s
        try:
            async with (
                self._m.admit_unary(caller.tenant, caller.key),
                self._m.receiving_clip(caller.tenant) if large else contextlib.nullcontext(),
            ):
                left = limit_s - (asyncio.get_running_loop().time() - started)
                body = await asyncio.wait_for(self._body(request), max(0.0, left))
        except ServiceError as e:
            return service_refusal(e)
        except BodyTooLarge:
            return _too_large(self.body_limit)
        except TimeoutError:
            return refusal(
                408,
                f"the request's body did not arrive within {limit_s:g} s (limits.clip_read_timeout_s): send it at "
                "once, or a smaller clip",
                "request_timeout",
            )
        reached = Reached(request.secure, request.host, self._grpc_port())
        await self._serving()
        return await asgi.serve(self._manager.handle_request, request, body, {SCOPE_KEY: Exchange(caller, reached)})

    def _caller(self, request: web.Request) -> McpCaller | web.Response:
        token = bearer(request.headers.get(hdrs.AUTHORIZATION))
        decision = authorize(self._tokens, token, None, WORDING, "the MCP endpoint")
        if isinstance(decision, Refusal):
            status, code = TOKEN_REFUSALS[decision.kind]
            headers: dict[str, str] = {}
            if status == 401:  # RFC 6750 section 3, as MCP's authorization spec asks
                headers["WWW-Authenticate"] = 'Bearer realm="translate-svc", error="invalid_token"'
            return refusal(status, decision.message, code, headers=headers)
        assert isinstance(decision, Authorized)
        permissions = ALL_PERMISSIONS
        if self._tokens is not None and token:
            grant = self._tokens.lookup(token)
            permissions = grant.permissions if grant is not None else frozenset()
        return McpCaller(
            decision.tenant,
            permissions,
            decision.rooms,
            decision.token,
            decision.generation if decision.token is not None else None,
            request.remote or "",
            request.headers.get(REQUEST_ID),
        )

    async def _body(self, request: web.Request) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > self.body_limit:
                raise BodyTooLarge
            chunks.append(chunk)
        return b"".join(chunks)


def _too_large(limit: int) -> web.Response:
    return refusal(
        413,
        f"the request is over this endpoint's {limit}-byte limit (a translate_audio clip of mcp.max_clip_bytes in "
        "base64, and its arguments): send a shorter clip, or give it as an https audio_url",
        "request_too_large",
    )
