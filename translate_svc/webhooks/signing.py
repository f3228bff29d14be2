"""Standard Webhooks signing (https://www.standardwebhooks.com, its spec's "Signature scheme"):
``webhook-signature`` is ``v1,`` and the base64 of HMAC-SHA256 over ``{id}.{timestamp}.{body}``
keyed with the secret's bytes (``whsec_`` then base64); several signatures, space-separated, let a
receiver rotate its secret (either verifies). Pure."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
_URL_SAFE = str.maketrans("-_", "+/")


def secret_key(secret: str) -> bytes:
    """The key bytes of a ``whsec_`` secret, its base64 (RFC 4648 §4) or base64url (§5, which some
    providers hand out) padded or not; ValueError, not quoting it, if it is neither."""
    body = secret.removeprefix(SECRET_PREFIX).rstrip("=")
    if "-" in body or "_" in body:  # base64url: its two other characters
        if "+" in body or "/" in body:
            raise ValueError("a secret that mixes base64 and base64url")
        body = body.translate(_URL_SAFE)
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except ValueError:  # binascii.Error: its message quotes nothing, but say what is wrong
        raise ValueError("a secret that is not base64 or base64url") from None
    if not key:
        raise ValueError("an empty secret")
    return key


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of one delivery attempt (signed with every key: a rotation's old and new)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(k, msg_id, timestamp, body) for k in keys),
        "content-type": "application/json",
    }
