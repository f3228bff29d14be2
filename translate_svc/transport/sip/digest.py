"""SIP digest authentication (RFC 3261 §22.4 over RFC 2617, MD5, ``qop=auth`` or none), sans I/O:
the challenge a caller outside ``sip.allowed_cidrs`` gets, and the check of its answer against a
SIP user's HA1 from the tokens file (``tokens.Grant.sip_ha1``: of the SIP password derived from the
user's token, ``tokens.sip_password``, never of the token itself).

A nonce is the time it was made, a random salt (two challenges in one second are two nonces) and
an HMAC, under a key of the process, of both and the source address it was sent to: good for
``NONCE_TTL_S`` from that address only; nothing is kept per challenge, so a flood of INVITEs keeps
no state here. An answer must name the request's own Request-URI (its ``uri``), and counts once:
per nonce, the highest nonce-count (``nc``) answered right is kept, and an answer whose count is
not above it is a replay (an answer without ``qop`` has no count: its nonce answers once). The
table is bounded (``MAX_NONCES``, the oldest out first): a nonce made before the newest one
forgotten is stale. Security finding H5: one captured answer was admitted again for 5 minutes from
anywhere, for any Request-URI, room and call. Pure (the clock passed in); event loop only (the
nonce table).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from enum import Enum

from translate_svc.transport.tokens.sip import SIP_REALM

#: how long a challenge's nonce may be answered
NONCE_TTL_S = 300.0
#: nonces answered right that are kept with their count, at most
MAX_NONCES = 4096
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')
_NC = re.compile(r"[0-9a-fA-F]{8}")


class Verdict(str, Enum):
    OK = "ok"
    #: a nonce not (or no longer) good for this source: a new challenge (``stale=true``)
    STALE = "stale"
    #: a wrong answer: 403
    WRONG = "wrong"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class DigestChallenger:
    def __init__(self, key: bytes | None = None, max_nonces: int = MAX_NONCES) -> None:
        self._key = key or secrets.token_bytes(32)
        self._max = max_nonces
        #: nonces answered right: their highest nonce-count, oldest first
        self._counts: OrderedDict[str, int] = OrderedDict()
        #: a nonce made at or before this (the newest forgotten) and not in ``_counts`` is stale
        self._floor = -1

    def _sign(self, stamp: str, salt: str, source: str) -> str:
        return hmac.new(self._key, f"{stamp}|{salt}|{source}".encode(), hashlib.sha256).hexdigest()[:24]

    def challenge(self, source: str, now: float | None = None, *, stale: bool = False) -> str:
        """A ``WWW-Authenticate`` value with a fresh nonce for ``source`` (the caller's address)."""
        stamp, salt = f"{int(now if now is not None else time.time()):x}", secrets.token_hex(4)
        nonce = f"{stamp}.{salt}.{self._sign(stamp, salt, source)}"
        return f'Digest realm="{SIP_REALM}", nonce="{nonce}", algorithm=MD5, qop="auth"' + (
            ", stale=true" if stale else ""
        )

    def _made(self, nonce: str, source: str, now: float) -> int | None:
        """When a nonce of ours for ``source`` was made; None: not ours for it, or too old."""
        stamp, _, rest = nonce.partition(".")
        salt, _, sign = rest.partition(".")
        if len(stamp) > 16 or len(salt) > 16 or not hmac.compare_digest(sign, self._sign(stamp, salt, source)):
            return None
        try:
            made = int(stamp, 16)
        except ValueError:
            return None
        return made if 0 <= now - made <= NONCE_TTL_S else None

    def check(
        self, params: dict[str, str], ha1: str, method: str, request_uri: str, source: str, now: float | None = None
    ) -> Verdict:
        """Whether an ``Authorization``'s parameters answer one of our live nonces for ``source``
        with ``ha1``'s password, for ``request_uri``, and for the first time (compared in
        constant time); a right answer's count is kept."""
        now = now if now is not None else time.time()
        if params.get("realm") != SIP_REALM or "nonce" not in params or "response" not in params:
            return Verdict.WRONG
        nonce = params["nonce"]
        made = self._made(nonce, source, now)
        if made is None:
            return Verdict.STALE
        if params.get("uri") != request_uri:
            return Verdict.WRONG  # an answer for another Request-URI (RFC 2617 §3.2.2.5)
        if params.get("qop") == "auth":
            nc_text = params.get("nc", "")
            if not _NC.fullmatch(nc_text) or not params.get("cnonce"):
                return Verdict.WRONG
            nc = int(nc_text, 16)
        else:
            nc = 1  # no count: the nonce answers once
        if not hmac.compare_digest(params["response"].lower(), expected_response(params, ha1, method)):
            return Verdict.WRONG
        last = self._counts.get(nonce)
        if (last is not None and nc <= last) or (last is None and made <= self._floor):
            return Verdict.STALE  # a replay, or a nonce whose count was forgotten
        self._keep(nonce, nc, made, now)
        return Verdict.OK

    def _keep(self, nonce: str, nc: int, made: int, now: float) -> None:
        self._counts.pop(nonce, None)
        self._counts[nonce] = nc
        while self._counts:
            oldest, _ = next(iter(self._counts.items()))
            oldest_made = int(oldest.partition(".")[0], 16)
            if len(self._counts) <= self._max and now - oldest_made <= NONCE_TTL_S:
                break
            del self._counts[oldest]
            self._floor = max(self._floor, oldest_made)


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
