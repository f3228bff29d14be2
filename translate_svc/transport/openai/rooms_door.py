"""Rooms on the HTTP port (issue 47, docs/rooms.md): listeners over a WebSocket, the listen page and
the QR code of a room's address.

- ``GET /v1/rooms/<room>/listen?language=...``: a room listener (``rooms_protocol.py`` has the
  wire). Authorized as the realtime door's sessions (``OpenAIDoor.authorize``: a browser page of
  another site refused; ``Authorization: Bearer``, or the subprotocols
  ``translate-svc.rooms.v1, openai-insecure-api-key.<key>``), with any valid token: what it may
  listen to is its room patterns (``listen=``/``room=``), checked by the registry with the caps,
  all before the upgrade (an HTTP 400, 401, 403, 429 or 503 and no socket).
- ``GET /listen/<room>``: the page to listen on (``static/listen.*``: plain HTML, CSS and
  JavaScript; no build step, no CDN), ``GET /listen/_/config`` the languages it offers.
- ``GET /listen/<room>/qr.svg``: a QR code of the room's page address as this request reached
  the server (its Host), for a speaker's screen (``segno``, on the server: the page needs no network).
  It needs no token, so codes are kept by address and new ones drawn at a bounded rate per process
  (``rooms_qr.py``; beyond it 503 with ``Retry-After``): strangers cannot spend the event loop.

The loop: the listener is made first (refusals as HTTP answers), then the upgrade; its events are
sent as they come, and the socket's sending waits for the client (its send buffer bounded as the
realtime sockets'), so a listener that does not read falls behind its own bounded queue in the
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

from aiohttp import WSMsgType, hdrs, web

from translate_svc.errors import NotReady, ServiceError
from translate_svc.observability import metrics
from translate_svc.session.manager import SessionManager
from translate_svc.session.room_listener import ListenCut, until_ended
from translate_svc.session.rooms import ROOM_NAME, Listener, RoomOutput
from translate_svc.settings import RoomSettings
from translate_svc.transport.calls import REQUEST_ID, SMALL_MESSAGE_BYTES, call_info
from translate_svc.transport.openai.demo import page_languages
from translate_svc.transport.openai.handshake import read_offer
from translate_svc.transport.openai.http_site import http_error
from translate_svc.transport.openai.loop import Caller, disarm_heartbeat, heartbeat_s
from translate_svc.transport.openai.rooms_protocol import (
    LISTEN_SUBPROTOCOL,
    UNSUPPORTED_CLOSE_CODE,
    closed,
    frames,
    listen_ask,
    refusal,
)
from translate_svc.transport.openai.rooms_qr import QrBusy, QrCodes
from translate_svc.transport.sockets import fix_buffers
from translate_svc.transport.tokens import LISTEN_REVOKED, may_listen_to

PATH = "/v1/rooms/{room}/listen"
PAGE = "/listen"
STATIC = Path(__file__).with_name("static")
_FILES = {
    "listen.js": ("listen.js", "text/javascript"),
    "listen.css": ("listen.css", "text/css"),
}
#: the page loads only its own files and talks only to this server
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self' blob:",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
Authorize = Callable[..., Caller | web.Response]
#: a listen the server ends whose client does not take what is sent: its socket is cut after this
CLOSE_GRACE_S = 2.0


class RoomListeners:
    """The HTTP port's rooms routes. ``authorize``: the realtime door's; ``sockets``: the door's open
    sockets (closed when it stops); ``settings``: the QR codes' bounds."""

    def __init__(
        self,
        manager: SessionManager,
        app: web.Application,
        authorize: Authorize,
        sockets: set[web.WebSocketResponse],
        settings: RoomSettings,
    ) -> None:
        self._m = manager
        self._authorize = authorize
        self._sockets = sockets
        self.qr = QrCodes(settings.qr_draws_per_s, settings.qr_cache_entries)
        app.router.add_get(PATH, self._listen)
        app.router.add_get(PAGE + "/_/config", self._config)
        app.router.add_get(PAGE + "/_/{name}", self._file)
        app.router.add_get(PAGE + "/{room}", self._page)
        app.router.add_get(PAGE + "/{room}/qr.svg", self._qr)

    # -- the listener's socket

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        caller = self._authorize(request, protocol=LISTEN_SUBPROTOCOL, needed=None, what="listening to a room")
        if isinstance(caller, web.Response):
            return caller
        call = call_info(request.headers.get(REQUEST_ID), "listen", request.remote or "")
        try:
            ask = listen_ask(request.match_info["room"], request.query)
            listener = self._m.rooms.listen(
                ask.room, ask.language, participant=ask.participant, tenant=caller.tenant, rights=caller.rooms
            )
        except ServiceError as e:
            refused = refusal(e)
            return web.json_response(refused.body, status=refused.status, headers=refused.headers)
        offered = read_offer(request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL), LISTEN_SUBPROTOCOL).protocol
        limits = self._m.limits
        try:
            ws = web.WebSocketResponse(
                heartbeat=heartbeat_s(limits.idle_timeout_s),
                max_msg_size=SMALL_MESSAGE_BYTES,
                protocols=(offered,) if offered else (),
                writer_limit=limits.ws_send_buffer_bytes,
            )
            ws.headers[REQUEST_ID] = call.request_id
            await ws.prepare(request)
            fix_buffers(request.transport, limits)
        except BaseException:
            listener.close()
            raise
        self._sockets.add(ws)
        reader = asyncio.get_running_loop().create_task(_read_until_closed(ws, listener))
        revocation = caller.revocation
        watch = (
            contextlib.nullcontext()
            if revocation is None
            else revocation.watching(
                listener, caller.token, caller.generation, allowed=may_listen_to(ask.room), message=LISTEN_REVOKED
            )
        )
        try:
            with watch:
                await until_ended(_send_events(ws, listener), listener, CLOSE_GRACE_S)
        except ServiceError as e:
            listener.close()
            await _close_for(request, ws, e)
        except ListenCut:  # ended while its client read nothing: the connection is cut
            listener.close()
            _cut(request)
        finally:
            listener.close()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self._sockets.discard(ws)
            if not ws.closed:
                try:
                    async with asyncio.timeout(CLOSE_GRACE_S):
                        await ws.close()
                except TimeoutError:
                    _cut(request)
            await disarm_heartbeat(ws)
        return ws

    # -- the page

    async def _page(self, request: web.Request) -> web.Response:
        if not ROOM_NAME.fullmatch(request.match_info["room"]):
            raise web.HTTPNotFound(text="no such room name: 1-64 letters, digits, '.', '_' or '-'")
        body = (STATIC / "listen.html").read_bytes()
        return web.Response(body=body, content_type="text/html", charset="utf-8", headers=_HEADERS)

    async def _file(self, request: web.Request) -> web.Response:
        found = _FILES.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        name, content_type = found
        body = (STATIC / name).read_bytes()
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers=_HEADERS)

    async def _config(self, request: web.Request) -> web.Response:
        """The languages a room may be listened in (text output), and whether this server's demo page
        is on (the page's ``#demo`` links use its client secrets)."""
        try:
            card = self._m.card
        except NotReady as e:
            return web.json_response({"error": {"message": e.message}}, status=503, headers={"Retry-After": "5"})
        languages = page_languages(card)
        body = {"languages": languages, "test_model": card.info.is_test_model}
        return web.json_response(body, headers={"Cache-Control": "no-store"})

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
            svg = self.qr.get(url)
        except QrBusy as e:
            refused = http_error(503, str(e), "qr_rate_limited", "server_error")
            refused.headers["Retry-After"] = str(max(1, math.ceil(e.retry_after_s)))
            return refused
        return web.Response(body=svg, content_type="image/svg+xml", headers=_HEADERS)


async def _send_events(ws: web.WebSocketResponse, listener: Listener) -> None:
    """The listener's events as frames until it ends: closed from outside (the client left), or
    by the server (its error raised: a drain, a revocation, its longest listen)."""
    try:
        async for ev in listener.events():
            for frame in frames(ev):
                if ws.closed:
                    return
                await ws.send_frame(frame.data, WSMsgType.TEXT if frame.text else WSMsgType.BINARY)
                if isinstance(ev, RoomOutput):
                    metrics.room_sent("ws", len(frame.data))
    except ConnectionError:  # the client went away while it was sent to
        return


async def _close_for(request: web.Request, ws: web.WebSocketResponse, e: ServiceError) -> None:
    """A listen the server ended: ``room.closed`` and the close code (``rooms_protocol.closed``),
    within ``CLOSE_GRACE_S``; a client that takes neither has its connection cut."""
    last, code = closed(e)
    try:
        async with asyncio.timeout(CLOSE_GRACE_S):
            if not ws.closed:
                with contextlib.suppress(ConnectionError):
                    await ws.send_frame(last.data, WSMsgType.TEXT)
                await ws.close(code=code, message=b"listen again")
    except TimeoutError:
        _cut(request)


def _cut(request: web.Request) -> None:
    """Drop the connection of a client that takes nothing more."""
    if request.transport is not None:
        request.transport.abort()


async def _read_until_closed(ws: web.WebSocketResponse, listener: Listener) -> None:
    """The client sends nothing: its close (or a lost connection) ends the listen at once; any
    message it sends closes the socket (1003) with a reason saying so."""
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await ws.close(
                    code=UNSUPPORTED_CLOSE_CODE, message=b"a room listener's socket takes no messages from the client"
                )
                break
    finally:
        listener.close()
