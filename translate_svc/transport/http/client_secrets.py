"""Short-lived client secrets for browsers, and the Origin rule of the HTTP port's browser requests.
The OpenAI route set mints them (``POST /v1/realtime/translations/client_secrets``; the demo page
its own); the port's caller check (``caller.py``) takes them wherever a WebSocket or WebRTC
session may be opened with one (a realtime session, a room listener).

A secret is ``ek_<expiry>_<tenant>_<nonce>_<signature>``: HMAC-SHA256 over the expiry, the tenant
of the token that minted it (``session/tenants/``: the secret's sessions are that tenant's) and the
nonce with the server's key (``auth.client_secret_key``, shared by every process of a node). Nothing is stored,
so any worker checks a secret another minted, and a restart with a new random key revokes them
all. A secret grants the ``stream`` permission only, until it expires (``auth.client_secret_ttl_s``
at most); a session opened before the expiry runs on. The demo page's own secrets (minted by the
server, not by a token) carry ``PAGE`` before their tenant, a character no tenant name has, so a
token's tenant named like the page's is never taken for it (security finding F6). Event loop only; pure
but for the clock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

# the tenant of the demo page's sessions (capped by a tokens-file line with tenant=demo; the ear
# refused unless limits.demo_ear_streams allows it)
from translate_svc.session.tenants.tenant import DEMO_TENANT as DEMO_TENANT

PREFIX = "ek_"
#: before the tenant of a secret the demo page minted (no tenant name has it: ``tenants.TENANT_NAME``;
#: RFC 6750 allows it in a bearer token)
PAGE = "~"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
#: the 403's message for a browser page of another site (it names the setting, not the origin)
ORIGIN_REFUSED = (
    "this request comes from a browser page of another site (its Origin header), which may not use "
    "this server: list that page's origin in limits.http_allowed_origins "
    "(TRANSLATE_SVC_LIMITS__HTTP_ALLOWED_ORIGINS) to let it in; clients other than browsers send no Origin"
)


def origin_allowed(origin: str | None, host: str | None, allowed: Sequence[str]) -> bool:
    """Whether a request from the browser page ``origin`` (its Origin header; None: not a browser,
    which needs no permission) may open a session or mint a secret on a server it addressed as
    ``host`` (the Host header): yes for this server's own pages (the demo page: the same host and
    port), for an origin in ``allowed`` ("*": any), else no. Checked on every browser request to the
    HTTP port's session and minting endpoints, so a page on another site cannot use a server a
    visitor's browser reaches (a tokenless one on their machine or network)."""
    if origin is None:
        return True
    wanted = {a.strip().rstrip("/").lower() for a in allowed}
    if "*" in wanted or origin.strip().rstrip("/").lower() in wanted:
        return True
    try:
        page = urlsplit(origin.strip())
        served = urlsplit(f"//{host}") if host else None
        if served is None or page.hostname is None or served.hostname is None:
            return False
        default = _DEFAULT_PORTS.get(page.scheme.lower())
        return page.hostname == served.hostname and (page.port or default) == (served.port or default)
    except ValueError:  # a port that is not a number
        return False


#: a room secret's role (``Claims.role``): it may publish into its room, or listen to it (only);
#: ``LISTEN_RATES``: listen, its listens choosing a speaking rate if they ask (``open_room``'s
#: ``allow_rates``: the room's owner lets its listeners cost it renditions)
PUBLISH, LISTEN, LISTEN_RATES = "p", "l", "r"


@dataclass(frozen=True)
class Claims:
    """What a valid secret says: its tenant, whether this server's demo page minted it (else a
    token of that tenant did), and for a room's secret (``open_room`` of the MCP door)
    its room and role (``PUBLISH`` or ``LISTEN``)."""

    tenant: str
    page: bool = False
    room: str = ""
    role: str = ""


class ClientSecrets:
    def __init__(self, key: str | None, ttl_s: int, *, clock: Callable[[], float] = time.time) -> None:
        self._key = (key or secrets.token_hex(32)).encode()
        self.ttl_s = ttl_s
        self._clock = clock

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]

    def mint(
        self, seconds: int | None = None, tenant: str = "default", *, page: bool = False, room: str = "", role: str = ""
    ) -> tuple[str, int]:
        """A new secret of ``tenant`` (a name without ``_``) and its expiry (Unix seconds):
        ``seconds`` from now, at most the TTL. ``page``: minted by this server's demo page;
        ``room`` and ``role``: a room's secret, which may only publish into (``PUBLISH``) or only
        listen to (``LISTEN``; ``LISTEN_RATES``: choosing a rate) that room; the room rides after the
        nonce, in hex (no ``_``)."""
        ttl = self.ttl_s if seconds is None else max(1, min(seconds, self.ttl_s))
        expires = int(self._clock()) + ttl
        nonce = secrets.token_hex(8)
        if room:
            assert role in (PUBLISH, LISTEN, LISTEN_RATES)
            nonce += role + room.encode().hex()
        body = f"{expires}_{PAGE if page else ''}{tenant}_{nonce}"
        return f"{PREFIX}{body}_{self._sign(body)}", expires

    def claims(self, value: str) -> Claims | None:
        """What a secret this key signed that has not expired says; None for any other value."""
        if not value.startswith(PREFIX):
            return None
        body, _, signature = value[len(PREFIX) :].rpartition("_")
        expires, _, rest = body.partition("_")
        tenant, _, nonce = rest.rpartition("_")
        if not (expires.isdigit() and tenant and hmac.compare_digest(signature, self._sign(body))):
            return None
        if int(expires) <= self._clock():
            return None
        page = tenant.startswith(PAGE)
        room, role = "", nonce[16:17]
        if role:  # signed by this key: a room's secret as ``mint`` wrote it
            room = bytes.fromhex(nonce[17:]).decode()
        return Claims(tenant.removeprefix(PAGE), page, room, role) if tenant != PAGE else None

    def tenant(self, value: str) -> str | None:
        """The tenant of a secret this key signed that has not expired; None for any other value."""
        claims = self.claims(value)
        return claims.tenant if claims is not None else None

    def valid(self, value: str) -> bool:
        """True for a secret this key signed that has not expired."""
        return self.tenant(value) is not None
