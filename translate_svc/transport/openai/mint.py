"""A client secret's mint request (``POST /v1/realtime/translations/client_secrets``), as OpenAI's
API takes it: ``{session: {...}, expires_after: {seconds: N}}``, both optional; its shape checked
before anything is used. The secrets themselves are the HTTP port's (``../http/client_secrets.py``).
Pure."""

from __future__ import annotations

import json
from typing import Any

#: the ``session`` of a mint request is echoed back: at most this many characters of JSON
MAX_SESSION_CHARS = 16 * 1024
SHAPE = "send JSON {session: {...}, expires_after: {seconds: N}} (both optional)"


class BadRequest(ValueError):
    """A mint request of the wrong shape; the message says what to fix (and names no client value)."""


def parse_request(body: Any) -> tuple[int | None, dict[str, Any]]:
    """The seconds asked for (None: the TTL) and the ``session`` of a mint request's JSON ``body``,
    its shape checked before anything is used (``BadRequest``)."""
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object: {SHAPE}")
    expires_after = body.get("expires_after")
    if expires_after is None:
        expires_after = {}
    if not isinstance(expires_after, dict):
        raise BadRequest(f'expires_after must be an object such as {{"seconds": 600}}: {SHAPE}')
    asked = expires_after.get("seconds")
    if asked is not None and (not isinstance(asked, int) or isinstance(asked, bool) or asked < 1):
        raise BadRequest("expires_after.seconds must be a positive whole number of seconds")
    session = body.get("session")
    if session is None:
        session = {}
    if not isinstance(session, dict):
        raise BadRequest(f"session must be a JSON object (the session's settings), or absent: {SHAPE}")
    if len(json.dumps(session)) > MAX_SESSION_CHARS:
        raise BadRequest(f"session is too large: at most {MAX_SESSION_CHARS} characters of JSON")
    return asked, session
