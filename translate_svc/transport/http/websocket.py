"""One WebSocket's life on the HTTP port, for every route set that upgrades (OpenAI's realtime and
transcription sessions, a room listener, a phone call):

1. before the upgrade, what the call holds is taken (a stream's slots: ``admit``; a listener's
   place in its room), so a refusal is an HTTP answer (``errors.refusal``: 429 or 503 with
   ``Retry-After``) and no socket is opened;
2. the upgrade (``SocketLife``): the heartbeat (``heartbeat_s``), the largest message the route
   set reads, the writer limit (sending waits once ``limits.ws_send_buffer_bytes`` is queued in
   aiohttp: a client that stops reading holds its session's events, not the server's memory), the
   kernel's buffers fixed (``sockets.fix_buffers``), the call's request id in the 101's headers, and
   the subprotocol the caller check accepted; what the call holds is released if it fails;
3. the client's messages (``received``);
4. the close: what the call holds released, the socket closed with the route set's code and
   reason within its grace (a client that takes no close has its connection cut), and the
   heartbeat disarmed for good (``disarm_heartbeat``).

A route set keeps its open sockets in an ``OpenSockets``, closed when the port stops. Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from types import TracebackType

from aiohttp import WSMsgType, web

from translate_svc.errors import ServiceError
from translate_svc.observability.access import CallInfo
from translate_svc.session.admission import Admission
from translate_svc.session.manager import SessionManager
from translate_svc.session.tenants.tenant import Tenant
from translate_svc.settings import LimitsSettings
from translate_svc.transport.calls import REQUEST_ID
from translate_svc.transport.http.responses import refused
from translate_svc.transport.sockets import fix_buffers

#: the longest a WebSocket goes unpinged while its client sends nothing
MAX_HEARTBEAT_S = 30.0


def heartbeat_s(idle_timeout_s: float) -> float:
    """How long a WebSocket may be quiet before the server pings it (aiohttp's heartbeat: the pong
    must come within half of it, else the socket is closed): at most 30 s, and short enough that a
    dead peer is found within ``limits.idle_timeout_s`` (0.75 of it from its last frame), the
    bound an idle stream has on every door."""
    return min(MAX_HEARTBEAT_S, idle_timeout_s / 2)


async def admit(manager: SessionManager, tenant: Tenant) -> Admission | web.Response:
    """A stream's slots before its socket (or WebRTC call) opens (security finding N3): a tenant at its
    cap, a full or a draining server is answered with its HTTP refusal (``errors.refusal``) and
    nothing is opened; an open socket holds its slots, and the stream core ends it if no config
    comes (``limits.config_timeout_ms``)."""
    try:
        return await manager.admit_stream(tenant)
    except ServiceError as e:
        return refused(e)


class OpenSockets:
    """A route set's open WebSockets; ``close_all`` closes what is left when the port stops (after
    the drain, so their sessions have ended), with ``close_code``."""

    def __init__(self, close_code: int = 1000) -> None:
        self.close_code = close_code
        self._open: set[web.WebSocketResponse] = set()

    def __len__(self) -> int:
        return len(self._open)

    def add(self, ws: web.WebSocketResponse) -> None:
        self._open.add(ws)

    def discard(self, ws: web.WebSocketResponse) -> None:
        self._open.discard(ws)

    async def close_all(self) -> None:
        for ws in list(self._open):
            with contextlib.suppress(Exception):
                await ws.close(code=self.close_code)


class SocketLife:
    """One WebSocket from its upgrade to its close: ``async with SocketLife(...) as ws``. ``release``
    gives back what the call holds (its stream slots, its listener): called if the upgrade fails and
    again as the block ends (it must be idempotent). Set ``close_code`` and ``close_message`` in the
    block for how the socket closes; ``cut`` drops the connection instead (a client that takes
    nothing more). ``close_grace_s``: how long the close may take (None: aiohttp's own timeout)."""

    def __init__(
        self,
        request: web.Request,
        limits: LimitsSettings,
        call: CallInfo,
        sockets: OpenSockets,
        *,
        max_msg_size: int,
        subprotocol: str | None = None,
        release: Callable[[], object] = lambda: None,
        close_grace_s: float | None = None,
    ) -> None:
        self.request = request
        self.call = call
        self.close_code = 1000
        self.close_message = b""
        self._limits = limits
        self._sockets = sockets
        self._release = release
        self._grace_s = close_grace_s
        self._cut = False
        self.ws = web.WebSocketResponse(
            heartbeat=heartbeat_s(limits.idle_timeout_s),
            max_msg_size=max_msg_size,
            protocols=(subprotocol,) if subprotocol else (),
            writer_limit=limits.ws_send_buffer_bytes,
        )
        self.ws.headers[REQUEST_ID] = call.request_id

    async def __aenter__(self) -> web.WebSocketResponse:
        return await self.upgrade()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.end()

    async def upgrade(self) -> web.WebSocketResponse:
        """The upgrade (what the call holds released if it fails); the open socket."""
        try:
            await self.ws.prepare(self.request)
            fix_buffers(self.request.transport, self._limits)
        except BaseException:
            self._release()
            raise
        self._sockets.add(self.ws)
        return self.ws

    async def end(self) -> None:
        """What the call holds released; the socket closed (``close_code``, ``close_message``)
        within the grace, else cut; its heartbeat disarmed for good."""
        self._release()
        self._sockets.discard(self.ws)
        ws = self.ws
        if not (self._cut or ws.closed):
            try:
                async with asyncio.timeout(self._grace_s):
                    with contextlib.suppress(ConnectionError):
                        await ws.close(code=self.close_code, message=self.close_message)
            except TimeoutError:
                self.cut()
        await disarm_heartbeat(ws)

    def cut(self) -> None:
        """Drop the connection of a client that takes nothing more (no closing handshake: the
        transport would hold the connection, and what is queued for it, until it read again)."""
        self._cut = True
        if self.request.transport is not None:
            self.request.transport.abort()


async def disarm_heartbeat(ws: web.WebSocketResponse) -> None:
    """aiohttp (3.14) re-arms a socket's heartbeat when data arrives during ``close()`` (the
    client's close frame), after ``close()`` disarmed it: the timer then holds the closed socket's
    response, request handler and zlib state (about 300 KB) for 45 s more (a soak's
    sessions). The re-arm runs on the next turn of the loop; after it, disarm for good."""
    await asyncio.sleep(0)
    ws._cancel_heartbeat()


class Unreadable:
    """A message that could not be read: over the route set's largest message, or not a WebSocket
    frame (aiohttp's ``ERROR``). Nothing more is read after it."""


UNREADABLE = Unreadable()


async def received(ws: web.WebSocketResponse) -> AsyncIterator[str | bytes | Unreadable]:
    """The client's messages, text as ``str`` and binary as ``bytes``, until its close (or a lost
    connection); ``UNREADABLE`` last for a message that could not be read."""
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            yield msg.data
        elif msg.type == WSMsgType.BINARY:
            yield msg.data
        elif msg.type == WSMsgType.ERROR:
            yield UNREADABLE
            return
