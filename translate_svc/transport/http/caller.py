"""Who calls on the HTTP port: one ``Caller`` for every route set, and the checks that let a request
in before anything of it is served.

- ``authorize_token``: a token (``tokens.authorize``, the host's one token store) as the caller, or
  its refusal as the HTTP answer (``TOKEN_REFUSALS``: 401/403, in one wording in which a route set
  says only how its clients send a token: ``wording``). Every route set's token check ends here
  (the phone's, with its ``?token=``).
- ``Authorizer.authorize_request``: the whole check of a request that may open a session from a
  browser (OpenAI's realtime sessions, WebRTC calls and client secrets, the audio endpoints, a
  room listener): a browser page of another site refused first (its Origin,
  ``limits.http_allowed_origins``), then a WebSocket offer whose subprotocols cannot be served
  (``handshake.read_offer``), then the key from ``Authorization`` or the subprotocol key entry
  (the same refusals either way), a client secret (``client_secrets.py``) where one will do, else
  a token.

A ``Caller`` says which rooms it may publish into and listen to; it has no default: each check
says (a token: its room patterns; a server without tokens: every room for a realtime session or a
listener; a Twilio-signed phone call: ``phone.twilio_rooms``). A live stream or listener a token
opened is watched by the door's ``Revocation`` (``Caller.watching``). Event loop only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import hdrs, web

from translate_svc.observability.access import CallInfo
from translate_svc.session.admission import Admission
from translate_svc.session.calls.stream import StreamDriver
from translate_svc.session.manager import SessionManager
from translate_svc.session.tenants.tenant import ALL_ROOMS, NO_ROOMS, RoomRights, Tenant
from translate_svc.transport.door import DoorContext
from translate_svc.transport.http.client_secrets import (
    DEMO_TENANT,
    LISTEN,
    LISTEN_RATES,
    ORIGIN_REFUSED,
    PUBLISH,
    Claims,
    ClientSecrets,
    origin_allowed,
)
from translate_svc.transport.http.client_secrets import PREFIX as SECRET_PREFIX
from translate_svc.transport.http.handshake import KEY_PREFIX, presented_key, read_offer
from translate_svc.transport.http.responses import http_error
from translate_svc.transport.tokens.authorization import authorize, bearer
from translate_svc.transport.tokens.file import Grant, Permission, TokenDigest
from translate_svc.transport.tokens.refusals import Refusal, RefusalKind, Wording
from translate_svc.transport.tokens.revocation import Endable, Revocation, may_stream, watching
from translate_svc.transport.tokens.store import TokenStore

#: a token's refusal -> its HTTP status and error code
TOKEN_REFUSALS: dict[RefusalKind, tuple[int, str]] = {
    RefusalKind.NO_TOKEN: (401, "missing_api_key"),
    RefusalKind.MALFORMED: (401, "missing_api_key"),
    RefusalKind.UNKNOWN_TOKEN: (401, "invalid_api_key"),
    RefusalKind.NO_PERMISSION: (403, "insufficient_permissions"),
}
#: how a client of the HTTP port that can set headers sends its token
BEARER = "send `Authorization: Bearer <token>` (api_key)"


def wording(how_to_send: str = BEARER) -> Wording:
    """The HTTP port's token refusals (``tokens.authorize``), as its clients have seen them; a route
    set says only how its clients send a token. A header that is no bearer token is answered as none."""
    return Wording(
        how_to_send=how_to_send,
        malformed=f"this server requires a token: {how_to_send}",
        unknown="the token is not valid; send a current token of this server",
        lacks='the token lacks the permission "{permission}" that {what} needs',
    )


#: the refusals of a request that is not a WebSocket's
WORDING = wording()


def socket_wording(protocol: str) -> Wording:
    """A WebSocket handshake's refusals: the key may also come in a subprotocol entry beside
    ``protocol`` (``handshake.py``)."""
    return wording(f'{BEARER}, or offer the subprotocols "{protocol}, {KEY_PREFIX}<token>" (browsers)')


@dataclass(frozen=True)
class Caller:
    """Who opened a call on the HTTP port: their tenant, the rooms they may publish into and listen
    to, and (opened with a token) how it is revoked."""

    tenant: Tenant
    rooms: RoomRights
    #: the token that opened it, as its digest only: a session may live for hours
    token: TokenDigest | None = None
    revocation: Revocation | None = None
    #: the tokens file's generation when the token was looked up (``Authorized.generation``)
    generation: int | None = None
    #: let in by a signature of its URL (a Twilio call): whom it meets comes from that URL only
    signed_url: bool = False

    def watching(
        self, stream: Endable, *, allowed: Callable[[Grant], bool] = may_stream, message: str | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """While the block runs, ``stream`` ends if its token is removed from the tokens file or no
        longer ``allowed`` what it does (``Revocation.watching``); a caller without a token (a
        client secret, a server without tokens, a signed call): nothing is watched."""
        return watching(self.revocation, stream, self, allowed=allowed, message=message)


def stream_driver(
    manager: SessionManager,
    caller: Caller,
    call: CallInfo | None,
    *,
    admission: Admission | None,
    peer_alive: Callable[[], bool] | None,
) -> StreamDriver:
    """The stream core's driver for a stream ``caller`` opened on the HTTP port: its tenant and room
    rights, the slots taken before the upgrade (``admission``), whether its client still answers
    the socket's pings (``peer_alive``: a muted client is not idle). No half-closed write to wait
    for at an error (``error_drain_s`` 0, unlike gRPC)."""
    return StreamDriver(
        manager,
        error_drain_s=0.0,
        tenant=caller.tenant,
        call=call,
        admission=admission,
        peer_alive=peer_alive,
        rooms=caller.rooms,
    )


def authorize_token(
    tokens: TokenStore | None,
    revocation: Revocation | None,
    token: str | None,
    needed: Permission | None,
    wording: Wording,
    what: str,
) -> Caller | web.Response:
    """The caller a presented ``token`` is (``tokens.authorize``: a server without tokens lets
    everyone in as its default tenant, with every room), or the HTTP refusal to answer with."""
    decision = authorize(tokens, token, needed, wording, what)
    if isinstance(decision, Refusal):
        status, code = TOKEN_REFUSALS[decision.kind]
        return http_error(status, decision.message, code)
    return Caller(decision.tenant, decision.rooms, decision.token, revocation, decision.generation)


class Authorizer:
    """The HTTP port's check of a request that may open a session or mint a secret, over the host's
    one token store, with the port's client secrets and one ``Revocation``. Event loop only."""

    def __init__(self, ctx: DoorContext) -> None:
        self.settings = ctx.settings
        self.tokens = ctx.tokens
        #: over the host's one token store: a token removed from the tokens file ends the sessions
        #: and listens it opened (client secrets expire)
        self.revocation = ctx.revocation()
        auth = ctx.settings.auth
        self.secrets = ClientSecrets(auth.client_secret_key, auth.client_secret_ttl_s)

    def authorize_request(
        self,
        request: web.Request,
        *,
        what: str,
        protocol: str | None,
        secret_ok: bool = True,
        needed: Permission | None = Permission.STREAM,
    ) -> Caller | web.Response:
        """Who may make this request (``secret_ok``: a client secret will do), or the HTTP error to
        answer with. A browser page of another site is refused first (``origin_allowed``), then a
        WebSocket offer whose subprotocols cannot be served (``protocol``: the endpoint's, which
        must be offered if any is; None: the endpoint takes no subprotocol key). The key comes from
        ``Authorization`` or the subprotocol key entry, with the same refusals either way; a token
        needs ``needed`` (None: any token; a room listener's rights are its room patterns, checked
        by the registry)."""
        limits = self.settings.limits
        if not origin_allowed(request.headers.get("Origin"), request.headers.get("Host"), limits.http_allowed_origins):
            return http_error(403, ORIGIN_REFUSED, "origin_not_allowed")
        token = bearer(request.headers.get(hdrs.AUTHORIZATION))
        if protocol is not None:
            offer = read_offer(request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL), protocol)
            if offer.problem is not None:
                return http_error(offer.status, offer.problem, offer.code)
            token, conflict = presented_key(token, offer)
            if conflict is not None:
                return http_error(400, conflict, "conflicting_api_keys")
        socket = protocol is not None and request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
        if secret_ok and token and token.startswith(SECRET_PREFIX):
            return self._secret_caller(token, listening=needed is None)
        words = socket_wording(protocol) if socket and protocol is not None else WORDING
        return authorize_token(self.tokens, self.revocation, token, needed, words, what)

    def _secret_caller(self, secret: str, *, listening: bool) -> Caller | web.Response:
        claims = self.secrets.claims(secret)
        if claims is None:
            return http_error(401, "the client secret is not valid or has expired: mint a new one", "invalid_api_key")
        if claims.role in (LISTEN, LISTEN_RATES) and not listening:
            return http_error(
                403, "this client secret may only listen to its room: open a session with a token", "permission_denied"
            )
        known = self._secret_tenant(claims)
        if known is None:  # no token of its tenant may stream any more (docs/security.md)
            return http_error(401, "the client secret's tenant was removed: mint a new one", "invalid_api_key")
        return Caller(known, self._secret_rooms(claims))  # a session opened with it runs on until it ends

    def _secret_tenant(self, claims: Claims) -> Tenant | None:
        """The tenant a secret's session runs as, with its caps as the tokens file states them now;
        None when the secret may open nothing. A token's secret lives while some token of its
        tenant may stream (its tenant's lines removed: refused, whatever the tenant's name). The
        demo page's own secrets (``claims.page``) live while the page is on, as tenant ``demo``,
        capped by a line naming that tenant when there is one."""
        if claims.page:
            if not self.settings.server.demo_page:
                return None
            stated = self.tokens.tenant(DEMO_TENANT) if self.tokens is not None else None
            return stated or Tenant(DEMO_TENANT)
        if self.tokens is None:
            return Tenant(claims.tenant)
        return self.tokens.secret_tenant(claims.tenant)

    def _secret_rooms(self, claims: Claims) -> RoomRights:
        """The rooms a client secret may publish into and listen to (docs/rooms.md): the demo page's
        every room (of its tenant ``demo``), a server without tokens every room; a token's secret
        none (a secret does not carry its token's room patterns: use the token). A speaking rate:
        a room's listeners' key only if ``open_room`` allowed rates, the demo page's only with
        ``rooms.demo_rates`` (its keys go to anyone who opens the page)."""
        if claims.role:  # a room's secret (the MCP door's open_room): that room, one way
            if claims.role == PUBLISH:  # a session that speaks into that room, nothing else
                return RoomRights(publish=(claims.room,), speak_only=True)
            rates = (claims.room,) if claims.role == LISTEN_RATES else ()
            return RoomRights(listen=(claims.room,), rates=rates)
        if claims.page:
            return RoomRights(("*",), ("*",), rates=("*",) if self.settings.rooms.demo_rates else ())
        return ALL_ROOMS if self.tokens is None else NO_ROOMS
