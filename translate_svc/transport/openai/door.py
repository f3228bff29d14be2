"""The OpenAI-compatible door on the HTTP port (``server.http_port``): OpenAI's realtime translation
protocol over a WebSocket (``GET /v1/realtime/translations?model=...``, JSON events in and out, as
``openai``'s ``client.realtime.translations.connect()`` speaks them), client secrets for browsers
(``POST .../client_secrets``), its WebRTC flow (``webrtc.py``) and the demo page (``demo.py``), on one
aiohttp application. The host (``../host.py``) builds it from the doors' context (``../door.py``)
and drives its lifetime as a ``Door``.

This module is the door: its routes, who may open a session, and the connect. The protocol is
``protocol.py`` (sans I/O), a session's I/O ``loop.py``, the port and its bounds ``http_site.py``.

Tokens are the gRPC door's (``Authorization: Bearer``, or a browser's
``openai-insecure-api-key.<token>`` subprotocol entry: ``handshake.py``; permission ``stream``),
checked before the WebSocket upgrade, and so are a browser's Origin
(``limits.http_allowed_origins``) and the stream's slots (``SessionManager.admit_stream``): a
refused handshake is an HTTP 401, 403, 429 or 503 (400 for subprotocols it cannot serve) with an
OpenAI-shaped JSON body, and no socket is opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import hdrs, web

from translate_svc.session.quota import ALL_ROOMS, NO_ROOMS, RoomRights, Tenant
from translate_svc.transport.calls import REQUEST_ID, call_info
from translate_svc.transport.door import DoorContext, address
from translate_svc.transport.openai.audio_api import PATHS as AUDIO_PATHS
from translate_svc.transport.openai.audio_api import AudioApi
from translate_svc.transport.openai.client_secrets import (
    MAX_SESSION_CHARS,
    ORIGIN_REFUSED,
    BadRequest,
    Claims,
    ClientSecrets,
    origin_allowed,
)
from translate_svc.transport.openai.client_secrets import PREFIX as SECRET_PREFIX
from translate_svc.transport.openai.client_secrets import SHAPE as MINT_SHAPE
from translate_svc.transport.openai.client_secrets import parse_request as parse_mint_request
from translate_svc.transport.openai.demo import DEMO_TENANT, DemoPage, page_url
from translate_svc.transport.openai.handshake import KEY_PREFIX, REALTIME, presented_key, read_offer
from translate_svc.transport.openai.http_site import (
    CappedSite,
    bound_port,
    http_error,
    listen,
    tls_context,
)
from translate_svc.transport.openai.loop import Caller, admit_and_serve, card_or_none
from translate_svc.transport.openai.protocol import RealtimeProtocol
from translate_svc.transport.openai.rooms_door import RoomListeners
from translate_svc.transport.openai.transcription_door import PATH as TRANSCRIPTION_PATH
from translate_svc.transport.openai.transcription_door import TranscriptionSessions
from translate_svc.transport.openai.webrtc import WebRtcDoor
from translate_svc.transport.tokens import (
    Permission,
    Refusal,
    RefusalKind,
    Wording,
    authorize,
    bearer,
)

logger = logging.getLogger(__name__)

PATH = "/v1/realtime/translations"
_HOW_TO_SEND = "send `Authorization: Bearer <token>` (api_key)"
#: the HTTP port's token refusals (``tokens.authorize``), as its clients have seen them; a header
#: that is no bearer token is answered as none
WORDING = Wording(
    how_to_send=_HOW_TO_SEND,
    malformed=f"this server requires a token: {_HOW_TO_SEND}",
    unknown="the token is not valid; send a current token of this server",
    lacks='the token lacks the permission "{permission}" that {what} needs',
)


def socket_wording(protocol: str) -> Wording:
    """A WebSocket handshake's refusals: the key may also come in a subprotocol entry beside
    ``protocol`` (``handshake.py``)."""
    how = f'{_HOW_TO_SEND}, or offer the subprotocols "{protocol}, {KEY_PREFIX}<token>" (browsers)'
    return Wording(
        how_to_send=how, malformed=f"this server requires a token: {how}", unknown=WORDING.unknown, lacks=WORDING.lacks
    )


SOCKET_WORDING = socket_wording(REALTIME)
#: each refusal's HTTP status and OpenAI error code
STATUS: dict[RefusalKind, tuple[int, str]] = {
    RefusalKind.NO_TOKEN: (401, "missing_api_key"),
    RefusalKind.MALFORMED: (401, "missing_api_key"),
    RefusalKind.UNKNOWN_TOKEN: (401, "invalid_api_key"),
    RefusalKind.NO_PERMISSION: (403, "insufficient_permissions"),
}


class OpenAIDoor:
    """The HTTP port's doors (a ``Door``); ``start`` and ``stop`` run on the gRPC server's event
    loop. Event loop only."""

    def __init__(self, ctx: DoorContext) -> None:
        settings, sessions = ctx.settings, ctx.sessions
        self.settings = settings
        self._m = sessions
        self._tokens = ctx.tokens
        self._reuse_port = ctx.reuse_port
        #: over the host's one token store: a token removed from the tokens file ends the sessions
        #: it opened (client secrets expire)
        self._revocation = ctx.revocation()
        auth = settings.auth
        self.secrets = ClientSecrets(auth.client_secret_key, auth.client_secret_ttl_s)
        self.app = web.Application()
        self.app.router.add_get(PATH, self._connect)
        self.app.router.add_post(PATH + "/client_secrets", self._mint)
        self.webrtc = WebRtcDoor(sessions, self.app, PATH, self.authorize)
        if settings.server.demo_page:
            DemoPage(sessions, self.app, self.secrets)
        self._runner: web.AppRunner | None = None
        #: the listening site (``start``), with its count of open and refused connections
        self.site: CappedSite | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self.port = 0
        # issue 51: OpenAI's realtime transcription sessions and the audio REST endpoints
        TranscriptionSessions(sessions, self.app, self.authorize, self._sockets)
        AudioApi(sessions, self.app, ctx.tokens)
        # issue 47: room listeners' WebSockets and the listen page
        self.rooms = RoomListeners(sessions, self.app, self.authorize, self._sockets, settings.rooms)

    @property
    def tls(self) -> bool:
        s = self.settings.server
        return s.tls_cert_file is not None and s.tls_key_file is not None

    async def start(self) -> None:
        """Listen on ``server.http_port``, bounded (``http_site.listen``), with the gRPC port's TLS."""
        s = self.settings.server
        assert s.http_port is not None
        tls = None
        if s.tls_cert_file is not None and s.tls_key_file is not None:
            tls = tls_context(s.tls_cert_file, s.tls_key_file, s.tls_client_ca_file)
        self._runner, self.site = await listen(
            self.app, s.host, s.http_port, self._m.limits, reuse_port=self._reuse_port, tls=tls
        )
        self.port = bound_port(self._runner)

    def describe(self) -> list[str]:
        s = self.settings.server
        where = address(s.host, self.port)
        parts = [f"OpenAI-compatible realtime door on {'wss' if self.tls else 'ws'}://{where}{PATH}"]
        parts.append(f"realtime transcription sessions on {'wss' if self.tls else 'ws'}://{where}{TRANSCRIPTION_PATH}")
        http = "https" if self.tls else "http"
        parts.append("audio endpoints on " + " and ".join(f"{http}://{where}{p}" for p in AUDIO_PATHS.values()))
        parts.append(f"room listeners on {'wss' if self.tls else 'ws'}://{where}/v1/rooms/<room>/listen")
        parts.append(f"the listen page on {http}://{where}/listen/<room>")
        if s.demo_page:
            page = page_url(s.host, self.port, tls=self.tls)
            parts.append(f"demo page on {page} (it mints client secrets for anyone who reaches it)")
        return parts

    def ports(self) -> dict[str, int]:
        return {"http_port": self.port}

    async def set_serving(self, serving: bool) -> None:
        """No health of its own: the gRPC port's health speaks for the process."""

    async def drain(self) -> None:
        """Nothing of its own: the stream core refuses new sessions (503 at the handshake)."""

    async def stop(self, grace: float) -> None:
        """After the drain: the WebRTC calls, then what is still open, then the port (the sessions
        have ended on the drain: ``grace`` is not waited for)."""
        await self.webrtc.close()
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def close(self) -> None:
        """Nothing stays open to the end."""

    def authorize(
        self,
        request: web.Request,
        *,
        secret_ok: bool = True,
        protocol: str = REALTIME,
        needed: Permission | None = Permission.STREAM,
        what: str = "a realtime session",
    ) -> Caller | web.Response:
        """Who may open a session (``secret_ok``: a client secret will do), or the HTTP error to
        answer with. A browser page of another site is refused first (``origin_allowed``), then a
        handshake whose subprotocols cannot be served (``handshake.read_offer``: ``protocol`` must be
        offered if any is). The key comes from ``Authorization`` or the subprotocol key entry, with
        the same refusals either way; a token needs ``needed`` (None: any token; a room listener's
        rights are its room patterns, checked by the registry)."""
        if not origin_allowed(
            request.headers.get("Origin"), request.headers.get("Host"), self._m.limits.http_allowed_origins
        ):
            return http_error(403, ORIGIN_REFUSED, "origin_not_allowed")
        offer = read_offer(request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL), protocol)
        if offer.problem is not None:
            return http_error(offer.status, offer.problem, offer.code)
        token, conflict = presented_key(bearer(request.headers.get(hdrs.AUTHORIZATION)), offer)
        if conflict is not None:
            return http_error(400, conflict, "conflicting_api_keys")
        socket = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
        wording = (SOCKET_WORDING if protocol == REALTIME else socket_wording(protocol)) if socket else WORDING
        if secret_ok and token and token.startswith(SECRET_PREFIX):
            claims = self.secrets.claims(token)
            if claims is None:
                return http_error(
                    401, "the client secret is not valid or has expired: mint a new one", "invalid_api_key"
                )
            known = self._secret_tenant(claims)
            if known is None:  # no token of its tenant may stream any more (docs/security.md)
                return http_error(401, "the client secret's tenant was removed: mint a new one", "invalid_api_key")
            return Caller(known, rooms=self._secret_rooms(claims))  # a session opened with it runs on until it ends
        decision = authorize(self._tokens, token, needed, wording, what)
        if isinstance(decision, Refusal):
            status, code = STATUS[decision.kind]
            return http_error(status, decision.message, code)
        return Caller(decision.tenant, decision.token, self._revocation, decision.generation, decision.rooms)

    def _secret_tenant(self, claims: Claims) -> Tenant | None:
        """The tenant a secret's session runs as, with its caps as the tokens file states them now;
        None when the secret may open nothing. A token's secret lives while some token of its
        tenant may stream (its tenant's lines removed: refused, whatever the tenant's name). The
        demo page's own secrets (``claims.page``) live while the page is on, as tenant ``demo``,
        capped by a line naming that tenant when there is one."""
        if claims.page:
            if not self.settings.server.demo_page:
                return None
            stated = self._tokens.tenant(DEMO_TENANT) if self._tokens is not None else None
            return stated or Tenant(DEMO_TENANT)
        if self._tokens is None:
            return Tenant(claims.tenant)
        return self._tokens.secret_tenant(claims.tenant)

    def _secret_rooms(self, claims: Claims) -> RoomRights:
        """The rooms a client secret may publish into and listen to (docs/rooms.md): the demo page's
        every room (of its tenant ``demo``), a server without tokens every room; a token's secret
        none (a secret does not carry its token's room patterns: use the token)."""
        return ALL_ROOMS if claims.page or self._tokens is None else NO_ROOMS

    async def _mint(self, request: web.Request) -> web.Response:
        """A short-lived client secret for a browser (a server token with ``stream`` mints it;
        a client secret cannot mint another)."""
        caller = self.authorize(request, secret_ok=False)
        if isinstance(caller, web.Response):
            return caller
        timeout_s = self._m.limits.http_header_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                body = await request.json()
        except (ValueError, RecursionError):  # not JSON (nor UTF-8), or nested deeper than Python's parser goes
            body = None
        except TimeoutError:
            message = f"the request's body did not come within {timeout_s:g} s (limits.http_header_timeout_s)"
            return http_error(408, message, "request_timeout")
        except web.HTTPRequestEntityTooLarge:  # over aiohttp's client_max_size (1 MiB), as decoded
            message = (
                f"the request's body is too large: {MINT_SHAPE}, the session at most {MAX_SESSION_CHARS} characters"
            )
            return http_error(413, message, "request_too_large")
        except ConnectionError as e:  # no one to answer
            logger.info("a client secret's client went away while it sent its request (%s)", type(e).__name__)
            return web.Response(status=499)
        try:
            asked, session = parse_mint_request(body)
        except BadRequest as e:
            return http_error(400, str(e), "invalid_value")
        value, expires = self.secrets.mint(asked, tenant=caller.tenant.name)
        return web.json_response({"value": value, "expires_at": expires, "session": {"type": "translation", **session}})

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        caller = self.authorize(request)
        if isinstance(caller, web.Response):
            return caller
        limits = self._m.limits
        call = call_info(request.headers.get(REQUEST_ID), "realtime", request.remote or "")
        protocol = RealtimeProtocol(
            request.query.get("model", ""),
            request.query.get("source_language"),
            self._m.vad_defaults,
            max_languages=limits.max_target_languages,
            max_append_bytes=limits.ws_max_append_bytes,
            chunk_bytes=limits.max_chunk_bytes,
            card=card_or_none(self._m),
            limits=limits,
            resume_lead_in=request.query.get("x_resume_lead_in_ms"),
        )
        resume = request.query.get("x_resume") or None
        return await admit_and_serve(request, self._m, protocol, caller, call, resume=resume, sockets=self._sockets)
