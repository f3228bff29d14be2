"""The phone door: carriers' WebSocket framings on the HTTP port (``/v1/phone/<carrier>``) and
Asterisk AudioSocket on its own TCP port (``phone.audiosocket_port``). The host builds it from the
doors' context and hands ``install`` the HTTP port's application (``../host.py``), so the phone
routes share that port's connection cap, TLS and header timeout.

Who may call: a token with ``stream`` from ``Authorization: Bearer`` or, for carriers that cannot
set headers, ``?token=`` (``phone.query_tokens``; docs/telephony.md says what that costs); a
Twilio connection must also carry a valid ``X-Twilio-Signature`` when ``phone.twilio_auth_token``
is set; whom a signed call meets (its room, participant, two-party call) comes from the signed URL
only (its path, ``/v1/phone/twilio/call=c1``, or query: ``call.call_params``). The stream's slots
are taken before the upgrade (a refusal is an HTTP 401/403/429/503 and no socket), so a call counts
from its first byte. AudioSocket (``audiosocket_server.py``) has no credentials: its calls are the
tenant ``phone.audiosocket_tenant``'s, within a cap of their own. Event loop only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator

from aiohttp import WSMsgType, hdrs, web

from translate_svc.errors import InvalidInput, ServiceError
from translate_svc.session.manager import SessionManager
from translate_svc.session.quota import DEFAULT_TENANT, RoomRights, Tenant
from translate_svc.settings import PhoneSettings
from translate_svc.transport.calls import REQUEST_ID, call_info
from translate_svc.transport.door import DoorContext, address
from translate_svc.transport.phone.asterisk import AsteriskFraming
from translate_svc.transport.phone.audiosocket_server import AudioSocketServer
from translate_svc.transport.phone.loop import Caller, Framing, Outbox, PhoneCall, close_code, close_reason
from translate_svc.transport.phone.pairs import Pairs
from translate_svc.transport.phone.twilio import DIALECTS, TwilioFraming
from translate_svc.transport.sockets import fix_buffers
from translate_svc.transport.tokens import Permission, Refusal, RefusalKind, Wording, authorize, bearer

logger = logging.getLogger(__name__)

PREFIX = "/v1/phone/"
#: the carriers served on the HTTP port, by the last part of their path
CARRIERS = (*DIALECTS, "asterisk")
#: the carriers whose connection may be checked by Twilio's signature (phone.twilio_auth_token)
SIGNED_CARRIERS = ("twilio", "signalwire")
#: call parameters a URL's path may carry (``name=value`` segments)
PATH_PARAMS = ("source", "target", "simultaneous", "room", "x_room", "participant", "call")
_HOW = "send `Authorization: Bearer <token>`, or `?token=<token>` in the URL where the carrier cannot set headers"
WORDING = Wording(
    how_to_send=_HOW,
    malformed=f"this server requires a token: {_HOW}",
    unknown="the token is not valid; send a current token of this server",
    lacks='the token lacks the permission "{permission}" that {what} needs',
)
STATUS: dict[RefusalKind, int] = {
    RefusalKind.NO_TOKEN: 401,
    RefusalKind.MALFORMED: 401,
    RefusalKind.UNKNOWN_TOKEN: 401,
    RefusalKind.NO_PERMISSION: 403,
}
#: a write to a carrier that does not finish within this is a carrier that stopped reading
WRITE_TIMEOUT_S = 10.0
#: the longest a WebSocket goes unpinged
MAX_HEARTBEAT_S = 30.0


def twilio_signature(auth_token: str, url: str) -> str:
    """Twilio's request signature of a WebSocket connection (a GET: the URL alone, no body):
    base64 of HMAC-SHA1 over the full URL, keyed by the account's auth token."""
    digest = hmac.new(auth_token.encode(), url.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class PhoneDoor:
    """The phone door (a ``Door``). Event loop only."""

    def __init__(self, ctx: DoorContext) -> None:
        self.settings = ctx.settings
        self.phone: PhoneSettings = ctx.settings.phone
        self._m: SessionManager = ctx.sessions
        self._tokens = ctx.tokens
        self._revocation = ctx.revocation()
        self._sockets: set[web.WebSocketResponse] = set()
        self.pairs: Pairs[PhoneCall] = Pairs()
        self.audiosocket: AudioSocketServer | None = None
        if self.phone.audiosocket_port is not None:
            self.audiosocket = AudioSocketServer(
                self._m,
                self.phone,
                lambda: self._tenant(self.phone.audiosocket_tenant),
                self.pairs,
                reuse_port=ctx.reuse_port,
            )

    def install(self, app: web.Application) -> None:
        """The WebSocket framings' routes on the HTTP port's application (before it starts). Twilio
        and SignalWire also take the call's parameters as path segments (``.../twilio/call=c1``):
        Twilio drops a Stream url's query string, and its signature covers the URL alone."""
        for name in CARRIERS:
            app.router.add_get(PREFIX + name, self._connect)
        for name in SIGNED_CARRIERS:
            app.router.add_get(PREFIX + name + "/{params:.+}", self._connect)

    async def start(self) -> None:
        if self.audiosocket is not None:
            await self.audiosocket.start(self.phone.audiosocket_host, self.phone.audiosocket_port or 0)

    def describe(self) -> list[str]:
        parts = []
        if self.phone.websocket:
            parts.append(f"phone calls (Twilio, SignalWire, Telnyx, Exotel, Asterisk) at {PREFIX}<carrier>")
        if self.audiosocket is not None:
            where = address(self.phone.audiosocket_host, self.audiosocket.port)
            parts.append(
                f"Asterisk AudioSocket on tcp://{where} (no token: tenant {self.phone.audiosocket_tenant!r}, "
                f"at most {self.phone.audiosocket_max_calls} calls; firewall it)"
            )
        return parts

    def _tenant(self, name: str) -> Tenant:
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
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1012)
        if self.audiosocket is not None:
            await self.audiosocket.stop()

    async def close(self) -> None:
        """Nothing stays open to the end."""

    # -- a WebSocket call -------------------------------------------------------------------------

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
                return _refuse(
                    403,
                    "the X-Twilio-Signature does not match this URL: check phone.twilio_auth_token and "
                    "phone.public_url (the URL Twilio dials)",
                )
            tenant = self._tenant(DEFAULT_TENANT.name)  # its caps in the tokens file apply
            rooms = RoomRights(publish=tuple(self.phone.twilio_rooms))
            return Caller(tenant, rooms=rooms, signed_url=True)
        token = bearer(request.headers.get(hdrs.AUTHORIZATION))
        if token is None and self.phone.query_tokens:
            token = request.query.get("token")
        decision = authorize(self._tokens, token, Permission.STREAM, WORDING, "a phone call")
        if isinstance(decision, Refusal):
            return _refuse(STATUS[decision.kind], decision.message)
        return Caller(decision.tenant, decision.token, self._revocation, decision.generation, decision.rooms)

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
        try:
            admission = self._m.admit_stream(caller.tenant)
        except ServiceError as e:
            status = 503 if e.code.value == "UNAVAILABLE" else 429
            return _refuse(status, str(e))
        framing: Framing = AsteriskFraming() if carrier == "asterisk" else TwilioFraming(DIALECTS[carrier])
        params = {**{k: v for k, v in request.query.items() if k != "token"}, **path_params}
        call = call_info(request.headers.get(REQUEST_ID), f"phone_{carrier}", request.remote or "")
        try:
            # what a carrier that stops reading lets us push is bounded as on the OpenAI door: sends
            # wait once aiohttp holds the send buffer's worth, and the kernel's buffers are fixed
            # (Linux would grow them to MBs, where speech waits unseen by phone.max_held_s)
            ws = web.WebSocketResponse(
                heartbeat=min(MAX_HEARTBEAT_S, self._m.limits.idle_timeout_s / 2),
                max_msg_size=self.phone.max_message_bytes,
                writer_limit=self._m.limits.ws_send_buffer_bytes,
            )
            ws.headers[REQUEST_ID] = call.request_id
            await ws.prepare(request)
            fix_buffers(request.transport, self._m.limits)
        except BaseException:
            admission.release()
            raise
        self._sockets.add(ws)

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
            pairs=self.pairs,
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
            admission.release()  # the session's own once it started (then this does nothing)
            await outbox.close()
            self._sockets.discard(ws)
            transport = request.transport
            # a carrier that stopped reading (a write that did not finish; a stall with what we
            # queued still unsent) gets no closing handshake: the connection is reset, or the
            # transport would hold it and its queue, open, until the carrier read again
            unread = outbox.stalled and transport is not None and transport.get_write_buffer_size() > 0
            if (outbox.write_stuck or unread) and transport is not None:
                transport.abort()
            elif not ws.closed:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        if not phone_call.hung_up:  # the call is over on our side (Asterisk: HANGUP)
                            for message in framing.hangup():
                                await send(message)
                        await ws.close(code=close_code(phone_call), message=close_reason(phone_call).encode())
        return ws


async def _messages(ws: web.WebSocketResponse) -> AsyncIterator[str | bytes | InvalidInput]:
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            yield msg.data
        elif msg.type == WSMsgType.BINARY:
            yield msg.data
        elif msg.type == WSMsgType.ERROR:
            yield InvalidInput(
                "a message could not be read: over phone.max_message_bytes, or not a WebSocket frame; "
                "send smaller messages"
            )
            return


def _path_params(path: str) -> dict[str, str] | web.Response:
    """The call parameters of a URL's path segments after the carrier (``call=c1/room=r``); a 400
    for a segment that is not one (nothing of it is echoed)."""
    params: dict[str, str] = {}
    segments = [s for s in path.split("/") if s] if path else []
    if len(segments) > len(PATH_PARAMS):
        return _refuse(400, f"at most {len(PATH_PARAMS)} call parameters in the URL's path")
    for segment in segments:
        name, eq, value = segment.partition("=")
        if not eq or name not in PATH_PARAMS:
            return _refuse(
                400, "a path segment after the carrier is a call parameter, name=value: " + ", ".join(PATH_PARAMS)
            )
        params[name] = value
    return params


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "status": status}}, status=status)
