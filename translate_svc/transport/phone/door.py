"""The phone door: carriers' WebSocket framings on the HTTP port (``/v1/phone/<carrier>``:
``PhoneRoutes``, a route set the host hands the HTTP port's door, ``../http/door.py``, so the
phone routes share that port's connection cap, TLS and header timeout) and Asterisk AudioSocket on
its own TCP port (``phone.audiosocket_port``: ``PhoneDoor``, a ``Door`` of its own). Both share the
two-party calls' legs (``pairs.py``: they meet through the cluster store, on any worker or pod).

Who may call: a token with ``stream`` from ``Authorization: Bearer`` or, for carriers that cannot
set headers, ``?token=`` (``phone.query_tokens``; docs/telephony.md says what that costs); a
Twilio connection must also carry a valid ``X-Twilio-Signature`` when ``phone.twilio_auth_token``
is set; whom a signed call meets (its room, participant, two-party call) comes from the signed URL
only (its path, ``/v1/phone/twilio/call=c1``, or query: ``call.call_params``). The stream's slots
are taken before the upgrade (a refusal is the HTTP port's: 401/403, 429 or 503 with
``Retry-After``, 500 for the server's own fault; no socket), so a call counts from its first byte;
the socket then lives as every socket of the port does (``http.websocket.SocketLife``: heartbeat,
writer limit, kernel buffers, its heartbeat disarmed once closed). AudioSocket
(``audiosocket_server.py``) has no credentials: its calls are the tenant
``phone.audiosocket_tenant``'s, within a cap of their own. Event loop only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator

from aiohttp import hdrs, web

from translate_svc.errors import InvalidInput
from translate_svc.session.manager import SessionManager
from translate_svc.session.tenants.tenant import DEFAULT_TENANT, RoomRights, Tenant
from translate_svc.settings import PhoneSettings
from translate_svc.transport.calls import REQUEST_ID, call_info
from translate_svc.transport.door import DoorContext, address
from translate_svc.transport.http.caller import Caller, authorize_token, wording
from translate_svc.transport.http.door import Served
from translate_svc.transport.http.responses import http_error
from translate_svc.transport.http.websocket import OpenSockets, SocketLife, Unreadable, admit, received
from translate_svc.transport.phone.asterisk import AsteriskFraming
from translate_svc.transport.phone.audiosocket_server import AudioSocketServer
from translate_svc.transport.phone.outbox import Framing, Outbox, close_code
from translate_svc.transport.phone.twilio import DIALECTS, TwilioFraming
from translate_svc.transport.telephony.loop import PhoneCall, close_reason
from translate_svc.transport.telephony.pairs import Pairs
from translate_svc.transport.tokens.authorization import bearer
from translate_svc.transport.tokens.file import Permission

logger = logging.getLogger(__name__)

PREFIX = "/v1/phone/"
#: the carriers served on the HTTP port, by the last part of their path
CARRIERS = (*DIALECTS, "asterisk")
#: the carriers whose connection may be checked by Twilio's signature (phone.twilio_auth_token)
SIGNED_CARRIERS = ("twilio", "signalwire")
#: call parameters a URL's path may carry (``name=value`` segments)
PATH_PARAMS = (
    "source",
    "target",
    "simultaneous",
    "noise_suppression",
    "speed",
    "room",
    "x_room",
    "participant",
    "call",
    "conversation",
)
#: the phone calls' token refusals: the port's, and a carrier that cannot set headers sends ``?token=``
WORDING = wording(
    "send `Authorization: Bearer <token>`, or `?token=<token>` in the URL where the carrier cannot set headers"
)
#: a write to a carrier that does not finish within this is a carrier that stopped reading
WRITE_TIMEOUT_S = 10.0
#: how long a call's close may take (its hang-up message, then the close), else the connection is cut
CLOSE_GRACE_S = 1.0


def twilio_signature(auth_token: str, url: str) -> str:
    """Twilio's request signature of a WebSocket connection (a GET: the URL alone, no body):
    base64 of HMAC-SHA1 over the full URL, keyed by the account's auth token."""
    digest = hmac.new(auth_token.encode(), url.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class PhoneDoor:
    """The phone door's own port, AudioSocket (a ``Door``), and what its calls share with the
    WebSocket framings' route set (``routes``): the two-party calls (``pairs.Pairs``) and the
    tenants as the tokens file states them. Event loop only."""

    def __init__(self, ctx: DoorContext) -> None:
        self.settings = ctx.settings
        self.phone: PhoneSettings = ctx.settings.phone
        self._m: SessionManager = ctx.sessions
        self._tokens = ctx.tokens
        #: the two-party calls' legs, meeting through the cluster store wherever each landed
        self.pairs = Pairs(ctx.cluster, self.phone.partner_timeout_s, ctx.settings.cluster.on_redis_loss)
        self.audiosocket: AudioSocketServer | None = None
        if self.phone.audiosocket_port is not None:
            self.audiosocket = AudioSocketServer(
                self._m,
                self.phone,
                lambda: self.tenant(self.phone.audiosocket_tenant),
                self.pairs,
                reuse_port=ctx.reuse_port,
            )
        #: the carriers' WebSockets, a route set of the HTTP port (``phone.websocket``; None: off)
        self.routes = PhoneRoutes(ctx, self) if self.phone.websocket else None

    async def start(self) -> None:
        if self.audiosocket is not None:
            await self.audiosocket.start(self.phone.audiosocket_host, self.phone.audiosocket_port or 0)

    def describe(self) -> list[str]:
        if self.audiosocket is None:
            return []
        where = address(self.phone.audiosocket_host, self.audiosocket.port)
        return [
            f"Asterisk AudioSocket on tcp://{where} (no token: tenant {self.phone.audiosocket_tenant!r}, "
            f"at most {self.phone.audiosocket_max_calls} calls; firewall it)"
        ]

    def tenant(self, name: str) -> Tenant:
        """The tenant ``name`` as the tokens file states it now (its caps and audio quota); one no
        line names (or a server without tokens) has no caps of its own."""
        found = self._tokens.tenant(name) if self._tokens is not None else None
        return found or (DEFAULT_TENANT if name == DEFAULT_TENANT.name else Tenant(name))

    def ports(self) -> dict[str, int]:
        return {"audiosocket_port": self.audiosocket.port} if self.audiosocket is not None else {}

    async def set_serving(self, serving: bool) -> None:
        """No health of its own."""

    async def drain(self) -> None:
        """Nothing of its own: the stream core refuses new calls; live ones drain (their tail is
        played first)."""
        if self.audiosocket is not None:
            self.audiosocket.stop_listening()

    async def stop(self, grace: float) -> None:
        if self.audiosocket is not None:
            await self.audiosocket.stop()

    async def close(self) -> None:
        """Nothing stays open to the end."""


class PhoneRoutes:
    """The carriers' WebSockets on the HTTP port (an ``http.door.RouteSet``). Event loop only."""

    def __init__(self, ctx: DoorContext, door: PhoneDoor) -> None:
        self.phone: PhoneSettings = ctx.settings.phone
        self._m: SessionManager = ctx.sessions
        self._tokens = ctx.tokens
        self._revocation = ctx.revocation()
        self._door = door
        #: its open WebSockets, closed when the port stops ("service restart": call again)
        self.sockets = OpenSockets(close_code=1012)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """The WebSocket framings' routes. Twilio and SignalWire also take the call's parameters as
        path segments (``.../twilio/call=c1``): Twilio drops a Stream url's query string, and its
        signature covers the URL alone."""
        for name in CARRIERS:
            router.add_get(PREFIX + name, self._connect)
        for name in SIGNED_CARRIERS:
            router.add_get(PREFIX + name + "/{params:.+}", self._connect)

    def describe(self, served: Served) -> list[str]:
        return [f"phone calls (Twilio, SignalWire, Telnyx, Exotel, Asterisk) at {PREFIX}<carrier>"]

    async def stop(self) -> None:
        await self.sockets.close_all()

    def authorize(self, request: web.Request, carrier: str) -> Caller | web.Response:
        """Twilio sends no token (its Stream url takes no query string either): with
        ``phone.twilio_auth_token`` its signature is the credential, and a call it signs is the
        default tenant's (its caps in the tokens file apply), and may speak into the rooms of
        ``phone.twilio_rooms`` (the TwiML that names the room in the signed URL is the account's
        own). Every other call presents a token, whose
        ``publish=`` patterns say which rooms it may speak into."""
        if carrier in SIGNED_CARRIERS and self.phone.twilio_auth_token is not None:
            given = request.headers.get("X-Twilio-Signature", "")
            url = self._signed_url(request)
            if not hmac.compare_digest(given.encode(), twilio_signature(self.phone.twilio_auth_token, url).encode()):
                return http_error(
                    403,
                    "the X-Twilio-Signature does not match this URL: check phone.twilio_auth_token and "
                    "phone.public_url (the URL Twilio dials)",
                    "invalid_signature",
                )
            tenant = self._door.tenant(DEFAULT_TENANT.name)  # its caps in the tokens file apply
            rooms = RoomRights(publish=tuple(self.phone.twilio_rooms))
            return Caller(tenant, rooms, signed_url=True)
        token = bearer(request.headers.get(hdrs.AUTHORIZATION))
        if token is None and self.phone.query_tokens:
            token = request.query.get("token")
        return authorize_token(self._tokens, self._revocation, token, Permission.STREAM, WORDING, "a phone call")

    def _signed_url(self, request: web.Request) -> str:
        if self.phone.public_url is not None:
            return self.phone.public_url.rstrip("/") + request.path_qs
        scheme = "wss" if request.secure else "ws"
        return f"{scheme}://{request.host}{request.path_qs}"

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        carrier = request.path.removeprefix(PREFIX).split("/", 1)[0]
        path_params = _path_params(request.match_info.get("params", ""))
        if isinstance(path_params, web.Response):
            return path_params
        caller = self.authorize(request, carrier)
        if isinstance(caller, web.Response):
            return caller
        admission = await admit(self._m, caller.tenant)
        if isinstance(admission, web.Response):
            return admission
        framing: Framing = AsteriskFraming() if carrier == "asterisk" else TwilioFraming(DIALECTS[carrier])
        params = {**{k: v for k, v in request.query.items() if k != "token"}, **path_params}
        call = call_info(request.headers.get(REQUEST_ID), f"phone_{carrier}", request.remote or "")
        # what a carrier that stops reading lets us push is bounded as on every socket of the port:
        # sends wait once aiohttp holds the send buffer's worth, and the kernel's buffers are fixed
        # (Linux would grow them to MBs, where speech waits unseen by phone.max_held_s)
        life = SocketLife(
            request,
            self._m.limits,
            call,
            self.sockets,
            max_msg_size=self.phone.max_message_bytes,
            release=admission.release,  # the session's own once it started (then this does nothing)
            close_grace_s=CLOSE_GRACE_S,
        )
        async with life as ws:

            async def send(message: str | bytes) -> None:
                if isinstance(message, str):
                    await ws.send_str(message)
                else:
                    await ws.send_bytes(message)

            phone_call = PhoneCall(
                self._m,
                self.phone,
                framing,
                params,
                caller,
                call,
                admission,
                peer_alive=lambda: not ws.closed,
                pairs=self._door.pairs,
            )
            outbox = Outbox(
                framing,
                send,
                max_held_s=self.phone.max_held_s,
                write_timeout_s=min(WRITE_TIMEOUT_S, self.phone.max_held_s),
                on_stall=phone_call.end,
            )
            phone_call.outlet = outbox
            try:
                await phone_call.run(_messages(ws))
                if not outbox.stalled and not ws.closed:
                    with contextlib.suppress(TimeoutError):  # what is queued goes first
                        async with asyncio.timeout(1.0):
                            await outbox.flushed()
            finally:
                await outbox.close()
                await _hang_up(request, ws, life, outbox, phone_call, framing)
        return ws


async def _hang_up(
    request: web.Request, ws: web.WebSocketResponse, life: SocketLife, outbox: Outbox, call: PhoneCall, framing: Framing
) -> None:
    """The call is over on our side. A carrier that stopped reading (a write that did not finish; a
    stall with what we queued still unsent) gets no closing handshake: the connection is cut, or
    the transport would hold it and its queue, open, until the carrier read again. Any other gets
    the framing's hang-up (Asterisk: HANGUP) unless it hung up itself, then the close with the
    call's code and reason (``SocketLife``, within ``CLOSE_GRACE_S``)."""
    transport = request.transport
    unread = outbox.stalled and transport is not None and transport.get_write_buffer_size() > 0
    if outbox.write_stuck or unread:
        life.cut()
        return
    life.close_code = close_code(call)
    life.close_message = close_reason(call).encode()
    if ws.closed or call.hung_up:
        return
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_GRACE_S):
            for message in framing.hangup():
                if isinstance(message, str):
                    await ws.send_str(message)
                else:
                    await ws.send_bytes(message)


async def _messages(ws: web.WebSocketResponse) -> AsyncIterator[str | bytes | InvalidInput]:
    async for message in received(ws):
        if isinstance(message, Unreadable):
            yield InvalidInput(
                "a message could not be read: over phone.max_message_bytes, or not a WebSocket frame; "
                "send smaller messages"
            )
            return
        yield message


def _path_params(path: str) -> dict[str, str] | web.Response:
    """The call parameters of a URL's path segments after the carrier (``call=c1/room=r``); a 400
    for a segment that is not one (nothing of it is echoed), or a parameter given twice."""
    params: dict[str, str] = {}
    segments = [s for s in path.split("/") if s] if path else []
    if len(segments) > len(PATH_PARAMS):
        return http_error(400, f"at most {len(PATH_PARAMS)} call parameters in the URL's path", "invalid_value")
    for segment in segments:
        name, eq, value = segment.partition("=")
        if not eq or name not in PATH_PARAMS:
            return http_error(
                400,
                "a path segment after the carrier is a call parameter, name=value: " + ", ".join(PATH_PARAMS),
                "invalid_value",
            )
        if name in params:  # a second value would silently replace the first: say so instead
            return http_error(400, f"the call parameter {name} is in the URL's path more than once", "invalid_value")
        params[name] = value
    return params
