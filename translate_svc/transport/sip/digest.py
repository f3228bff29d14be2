"""SIP digest authentication (RFC 3261 §22.4 over RFC 2617, MD5, ``qop=auth`` or none), sans I/O:
the challenge a caller outside ``sip.allowed_cidrs`` gets, and the check of its answer against a
SIP user's HA1 from the tokens file (``tokens.Grant.sip_ha1``).

Nonces are stateless: the time they were made and an HMAC of it under a key of the process, good
for ``NONCE_TTL_S``; nothing is kept per challenge, so a flood of INVITEs keeps no state here.
Within its lifetime a nonce may be answered again (no nonce-count is tracked). Pure and thread-safe.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

from translate_svc.transport.tokens import SIP_REALM

#: how long a challenge's nonce may be answered
NONCE_TTL_S = 300.0
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class DigestChallenger:
    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _sign(self, stamp: str) -> str:
        return hmac.new(self._key, stamp.encode(), hashlib.sha256).hexdigest()[:24]

    def challenge(self, now: float | None = None) -> str:
        """A ``WWW-Authenticate`` value with a fresh nonce."""
        stamp = f"{int(now if now is not None else time.time()):x}"
        nonce = f"{stamp}.{self._sign(stamp)}"
        return f'Digest realm="{SIP_REALM}", nonce="{nonce}", algorithm=MD5, qop="auth"'

    def _nonce_ok(self, nonce: str, now: float) -> bool:
        stamp, _, sign = nonce.partition(".")
        if not hmac.compare_digest(sign, self._sign(stamp)):
            return False
        try:
            made = int(stamp, 16)
        except ValueError:
            return False
        return 0 <= now - made <= NONCE_TTL_S

    def check(self, params: dict[str, str], ha1: str, method: str, now: float | None = None) -> bool:
        """Whether an ``Authorization``'s parameters answer one of our live nonces with ``ha1``'s
        password (compared in constant time)."""
        if params.get("realm") != SIP_REALM or "nonce" not in params or "response" not in params:
            return False
        if not self._nonce_ok(params["nonce"], now if now is not None else time.time()):
            return False
        return hmac.compare_digest(params["response"].lower(), expected_response(params, ha1, method))


def parse_authorization(header: str) -> dict[str, str] | None:
    """The parameters of a ``Digest`` ``Authorization`` value; None: not one."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest" or len(rest) > 2048:
        return None
    return {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3) for m in _PARAM.finditer(rest)}


def expected_response(params: dict[str, str], ha1: str, method: str) -> str:
    """RFC 2617 §3.2.2.1: with ``qop=auth``, MD5(HA1:nonce:nc:cnonce:qop:HA2); without, MD5(HA1:nonce:HA2)."""
    ha2 = _md5(f"{method}:{params.get('uri', '')}")
    if params.get("qop") == "auth":
        return _md5(f"{ha1}:{params['nonce']}:{params.get('nc', '')}:{params.get('cnonce', '')}:auth:{ha2}")
    return _md5(f"{ha1}:{params['nonce']}:{ha2}")
