"""Rooms on the HTTP port (docs/rooms.md): listeners over a WebSocket, the listen page and
the QR code of a room's address. A route set of the HTTP port (``../http/door.py``), built by the
host beside OpenAI's.

- ``GET /v1/rooms/<room>/listen?language=...``: a room listener (``protocol.py`` has the wire).
  Authorized by the port's one caller check (``http.caller.Authorizer``: a browser page of another
  site refused; ``Authorization: Bearer``, or the subprotocols
  ``translate-svc.rooms.v1, openai-insecure-api-key.<key>``; a client secret), with any valid
  token: what it may listen to is its room patterns (``listen=``/``room=``), checked by the
  registry with the caps, all before the upgrade (an HTTP 400, 401, 403, 429 or 503 and no socket).
- ``GET /listen/<room>``: the page to listen on (``static/listen.*``), ``GET /listen/_/config`` the
  languages it offers.
- ``GET /listen/<room>/qr.svg``: a QR code of the room's page address as this request reached
  the server (its Host), for a speaker's screen (``segno``, on the server: the page needs no network).
  It needs no token, so codes are kept by address and new ones drawn at a bounded rate per process,
  each client address at most its share of it and part of it kept for the rooms open here
  (``qr.py``; beyond it 503 with ``Retry-After``): strangers cannot spend the event loop, nor a
  speaker's draws, from one address or many.

The listen runs through the listen core (``session.ListenDriver``: admission, the listener, the
access line, the tenant's call metric), as the gRPC door's ``Listen`` does: the listener is made
first (refusals as HTTP answers), then the upgrade (``http.websocket.SocketLife``); its events are
sent as they come, and the socket's sending waits for the client (its send buffer bounded as every
socket's of the port), so a listener that does not read falls behind its own bounded queue in the
registry and is told what it lost, never slowing the speaker. The client's end (or any message
from it) closes the listener at once, whether or not the room says anything. A listen opened with
a token ends when the token is revoked (``room.closed`` ``revoked``, close 1008), and every listen
at ``rooms.max_listen_s`` (``max_listen_duration``, 1000); a socket whose client does not read then
is cut after ``CLOSE_GRACE_S``. Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from pathlib import Path
from weakref import WeakKeyDictionary

from aiohttp import WSMsgType, hdrs, web

from translate_svc.errors import ServiceError
from translate_svc.observability import metrics
from translate_svc.observability.access import CallInfo
from translate_svc.session.calls.listen import ListenDriver, ListenRequest
from translate_svc.session.manager import SessionManager
from translate_svc.session.rooms.checks import ROOM_NAME
from translate_svc.session.rooms.listener import ListenCut, Listener, ListenEvent, RoomOutput
from translate_svc.transport.calls import REQUEST_ID, SMALL_MESSAGE_BYTES, call_info
from translate_svc.transport.door import DoorContext
from translate_svc.transport.http.caller import Authorizer, Caller
from translate_svc.transport.http.door import Served
from translate_svc.transport.http.handshake import read_offer
from translate_svc.transport.http.pages import page_config, page_file, page_headers, page_languages
from translate_svc.transport.http.responses import http_error, refused
from translate_svc.transport.http.websocket import OpenSockets, SocketLife, Unreadable, received
from translate_svc.transport.rooms.protocol import (
    LISTEN_SUBPROTOCOL,
    UNSUPPORTED_CLOSE_CODE,
    Encodings,
    closed,
    frames,
    listen_ask,
)
from translate_svc.transport.rooms.qr import QrBusy, QrCodes
from translate_svc.transport.tokens.revocation import LISTEN_REVOKED, may_listen_to
from translate_svc.types import ModelCard

PATH = "/v1/rooms/{room}/listen"
PAGE = "/listen"
STATIC = Path(__file__).with_name("static")
_FILES = {
    "listen.js": ("listen.js", "text/javascript"),
    "listen.css": ("listen.css", "text/css"),
}
#: the page loads only its own files and talks only to this server
_HEADERS = page_headers()
#: a listen the server ends whose client does not take what is sent: its socket is cut after this
CLOSE_GRACE_S = 2.0


class RoomRoutes:
    """The HTTP port's rooms routes (an ``http.door.RouteSet``). ``callers``: the port's one caller
    check. Event loop only."""

    def __init__(self, ctx: DoorContext, callers: Authorizer) -> None:
        self._m = ctx.sessions
        self._callers = callers
        #: its open WebSockets (closed when the port stops)
        self.sockets = OpenSockets()
        settings = ctx.settings.rooms
        rooms = ctx.sessions.rooms.rooms
        self.qr = QrCodes(
            settings.qr_draws_per_s,
            settings.qr_cache_entries,
            source_draws_per_s=settings.qr_source_draws_per_s,
            open_rooms=lambda: (name for (_, name), room in rooms.items() if room.held),
        )
        #: each room output's frames, made once and sent to every listener of its language
        self._encoded: Encodings = WeakKeyDictionary()

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(PATH, self._listen)
        router.add_get(PAGE + "/_/config", self._config)
        router.add_get(PAGE + "/_/{name}", self._file)
        router.add_get(PAGE + "/{room}", self._page)
        router.add_get(PAGE + "/{room}/qr.svg", self._qr)

    def describe(self, served: Served) -> list[str]:
        return [
            f"room listeners on {served.url('/v1/rooms/<room>/listen', socket=True)}",
            f"the listen page on {served.url(PAGE + '/<room>')}",
        ]

    async def stop(self) -> None:
        await self.sockets.close_all()

    # -- the listener's socket

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        caller = self._callers.authorize_request(
            request, what="listening to a room", protocol=LISTEN_SUBPROTOCOL, needed=None
        )
        if isinstance(caller, web.Response):
            return caller
        call = call_info(request.headers.get(REQUEST_ID), "listen", request.remote or "")
        token = caller.token.sha256 if caller.token is not None else None
        driver = ListenDriver(self._m, tenant=caller.tenant, rights=caller.rooms, call=call, token=token)
        socket = _ListenSocket(request, self._m, call, self.sockets, self._encoded)

        async def read() -> ListenRequest:
            return listen_ask(request.match_info["room"], request.query)

        try:
            await driver.run(read, socket.send, grace_s=CLOSE_GRACE_S, opened=socket.open, watch=_watch(caller))
        except ListenCut:  # ended while its client read nothing: the connection is cut
            socket.cut()
        except ServiceError as e:
            if socket.ws is None:  # refused before the upgrade: an HTTP answer, no socket
                return refused(e)
            await socket.close_for(e)
        finally:
            await socket.closed()
        assert socket.ws is not None
        return socket.ws

    # -- the page

    async def _page(self, request: web.Request) -> web.Response:
        if not ROOM_NAME.fullmatch(request.match_info["room"]):
            raise web.HTTPNotFound(text="no such room name: 1-64 letters, digits, '.', '_' or '-'")
        return page_file(STATIC / "listen.html", "text/html", _HEADERS)

    async def _file(self, request: web.Request) -> web.Response:
        found = _FILES.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        name, content_type = found
        return page_file(STATIC / name, content_type, _HEADERS)

    async def _config(self, request: web.Request) -> web.Response:
        """The languages a room may be listened in (text output), and whether this server runs
        the test checkpoint."""
        return page_config(self._m, _config_of)

    async def _qr(self, request: web.Request) -> web.Response:
        room = request.match_info["room"]
        if not ROOM_NAME.fullmatch(room):
            raise web.HTTPNotFound(text="no such room name: 1-64 letters, digits, '.', '_' or '-'")
        url = f"{request.scheme}://{request.host}{PAGE}/{room}"
        if len(url) > 300:  # (a Host header is at most HTTP_MAX_FIELD_BYTES; a QR code this long is unreadable)
            raise web.HTTPBadRequest(text="the address this server was reached at is too long for a QR code")
        if request.query.get("demo") == "1":
            url += "#demo"
        try:
            svg = self.qr.get(url, request.remote or "", room)
        except QrBusy as e:
            busy = http_error(503, str(e), "qr_rate_limited", "server_error")
            busy.headers["Retry-After"] = str(max(1, math.ceil(e.retry_after_s)))
            return busy
        return web.Response(body=svg, content_type="image/svg+xml", headers=_HEADERS)


def _config_of(card: ModelCard) -> dict[str, object]:
    return {"languages": page_languages(card), "test_model": card.info.is_test_model}


def _watch(caller: Caller) -> Callable[[Listener, str], contextlib.AbstractContextManager[None]]:
    """The listen's revocation watch: its token removed from the file, or its listen= right for
    the room taken, ends it."""

    def watch(listener: Listener, room: str) -> contextlib.AbstractContextManager[None]:
        return caller.watching(listener, allowed=may_listen_to(room), message=LISTEN_REVOKED)

    return watch


class _ListenSocket:
    """One listener's WebSocket: upgraded once the listener exists (``open``), its events sent as
    frames, the client's close (or any message from it) ending the listen, and its close."""

    def __init__(
        self, request: web.Request, manager: SessionManager, call: CallInfo, sockets: OpenSockets, encoded: Encodings
    ) -> None:
        """``encoded``: the door's frames of each room output (``protocol.frames``), shared by its sockets."""
        self.request = request
        self._m = manager
        self._call = call
        self._sockets = sockets
        self._encoded = encoded
        self.ws: web.WebSocketResponse | None = None
        self._life: SocketLife | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self, listener: Listener) -> None:
        offered = read_offer(self.request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL), LISTEN_SUBPROTOCOL).protocol
        life = SocketLife(
            self.request,
            self._m.limits,
            self._call,
            self._sockets,
            max_msg_size=SMALL_MESSAGE_BYTES,
            subprotocol=offered,
            release=listener.close,
            close_grace_s=CLOSE_GRACE_S,
        )
        self.ws = await life.upgrade()
        self._life = life
        self._reader = asyncio.get_running_loop().create_task(_read_until_closed(self.ws, listener))

    async def send(self, ev: ListenEvent) -> None:
        """The listener's event as frames (nothing once the socket is closed: the reader closes
        the listener, which ends the listen)."""
        ws = self.ws
        assert ws is not None
        try:
            for frame in frames(ev, self._encoded):
                if ws.closed:
                    return
                await ws.send_frame(frame.data, WSMsgType.TEXT if frame.text else WSMsgType.BINARY)
                if isinstance(ev, RoomOutput):
                    metrics.room_sent("ws", len(frame.data))
        except ConnectionError:  # the client went away while it was sent to: its reader ends the listen
            return

    async def close_for(self, e: ServiceError) -> None:
        """A listen the server ended: ``room.closed`` and the close code (``protocol.closed``),
        within ``CLOSE_GRACE_S``; a client that takes neither has its connection cut."""
        ws = self.ws
        assert ws is not None and self._life is not None
        last, code = closed(e)
        try:
            async with asyncio.timeout(CLOSE_GRACE_S):
                if not ws.closed:
                    with contextlib.suppress(ConnectionError):
                        await ws.send_frame(last.data, WSMsgType.TEXT)
                    await ws.close(code=code, message=b"listen again")
        except TimeoutError:
            self.cut()

    def cut(self) -> None:
        if self._life is not None:
            self._life.cut()

    async def closed(self) -> None:
        """The listen is over: the reader stopped, the socket closed (``SocketLife``)."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._life is not None:
            await self._life.end()


async def _read_until_closed(ws: web.WebSocketResponse, listener: Listener) -> None:
    """The client sends nothing: its close (or a lost connection) ends the listen at once; any
    message it sends closes the socket (1003) with a reason saying so."""
    try:
        async for message in received(ws):
            if not isinstance(message, Unreadable):
                await ws.close(
                    code=UNSUPPORTED_CLOSE_CODE, message=b"a room listener's socket takes no messages from the client"
                )
            break
    finally:
        listener.close()
