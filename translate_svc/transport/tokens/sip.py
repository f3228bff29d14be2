"""A SIP caller's credentials: the SIP password derived from a token, and the
digest's HA1 the token store keeps of it.

A line of the tokens file with ``sip_user=<name>`` is also a SIP caller's credentials: the SIP
door's digest challenge takes the user ``<name>`` with the SIP password derived from the token
(``sip_password``: an HMAC of the user's name under the token; ``translate-svc phone-config sip
--token ... --sip-user ...`` prints it), never the token itself, so a SIP phone's configuration,
or a digest's HA1 cracked offline, gives nothing that opens another door. For that, the line
keeps the digest's HA1 (MD5 of ``<name>:translate-svc:<SIP password>``, RFC 2617 §3.2.2.2) beside
the token's SHA-256: what SIP digest needs, and no more than it needs. Pure.
"""

from __future__ import annotations

import hashlib
import hmac
import re

#: the SIP door's digest realm
SIP_REALM = "translate-svc"
#: a SIP user's name (``sip_user=``)
SIP_USER = re.compile(r"[A-Za-z0-9._\-]{1,64}")
#: what the SIP password's HMAC signs beside the user's name (a label of its own: the same token's
#: HMAC of anything else is never this password)
_SIP_PASSWORD_LABEL = b"translate-svc sip password\x00"


def sip_password(token: str, user: str) -> str:
    """The SIP digest password of ``user`` (``sip_user=``) whose line holds ``token``: the first
    32 hex digits (128 bits) of HMAC-SHA256 keyed with the token over a label and the user's name.
    A phone or PBX is configured with this, never with the token: it opens the SIP door as that
    user and nothing else, and the token cannot be recovered from it."""
    return hmac.new(token.encode("utf-8"), _SIP_PASSWORD_LABEL + user.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def sip_ha1(user: str, password: str) -> str:
    """RFC 2617 §3.2.2.2's HA1 for ``SIP_REALM``: what the store keeps of a SIP user's password."""
    return hashlib.md5(f"{user}:{SIP_REALM}:{password}".encode(), usedforsecurity=False).hexdigest()
