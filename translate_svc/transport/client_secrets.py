"""Short-lived client secrets for browsers: ``POST /v1/realtime/translations/client_secrets``.

A secret is ``ek_<expiry>_<tenant>_<nonce>_<signature>``: HMAC-SHA256 over the expiry, the tenant
of the token that minted it (``session/quota.py``: the secret's sessions are that tenant's) and the
nonce with the server's key (``auth.client_secret_key``, shared by every process of a node). Nothing is stored,
so any worker checks a secret another minted, and a restart with a new random key revokes them
all. A secret grants the ``stream`` permission only, until it expires (``auth.client_secret_ttl_s``
at most); a session opened before the expiry runs on. Event loop only; pure but for the clock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

PREFIX = "ek_"


class ClientSecrets:
    def __init__(self, key: str | None, ttl_s: int, *, clock: Callable[[], float] = time.time) -> None:
        self._key = (key or secrets.token_hex(32)).encode()
        self.ttl_s = ttl_s
        self._clock = clock

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]

    def mint(self, seconds: int | None = None, tenant: str = "default") -> tuple[str, int]:
        """A new secret of ``tenant`` (a name without ``_``) and its expiry (Unix seconds):
        ``seconds`` from now, at most the TTL."""
        ttl = self.ttl_s if seconds is None else max(1, min(seconds, self.ttl_s))
        expires = int(self._clock()) + ttl
        body = f"{expires}_{tenant}_{secrets.token_hex(8)}"
        return f"{PREFIX}{body}_{self._sign(body)}", expires

    def tenant(self, value: str) -> str | None:
        """The tenant of a secret this key signed that has not expired; None for any other value."""
        if not value.startswith(PREFIX):
            return None
        body, _, signature = value[len(PREFIX) :].rpartition("_")
        expires, _, rest = body.partition("_")
        tenant, _, _ = rest.rpartition("_")
        if not (expires.isdigit() and tenant and hmac.compare_digest(signature, self._sign(body))):
            return None
        return tenant if int(expires) > self._clock() else None

    def valid(self, value: str) -> bool:
        """True for a secret this key signed that has not expired."""
        return self.tenant(value) is not None
