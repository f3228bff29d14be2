"""The wording of refusals: why a call was refused (its kind, which each door renders as its own
status) and the words each door says it in (its clients send a token their own way, and have seen
these texts). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class RefusalKind(str, Enum):
    """Why a call was refused; each door renders it as its own status (gRPC: the first three
    UNAUTHENTICATED, the last PERMISSION_DENIED; HTTP: 401, 401, 401, 403)."""

    NO_TOKEN = "no_token"
    MALFORMED = "malformed"  # an authorization that is not a bearer token
    UNKNOWN_TOKEN = "unknown_token"  # not (or no longer) in the tokens file
    NO_PERMISSION = "no_permission"  # a known token without the permission the call needs


@dataclass(frozen=True)
class Refusal:
    """A call ``authorize`` refused: the kind (the door's status) and the message to send."""

    kind: RefusalKind
    message: str


@dataclass(frozen=True)
class Wording:
    """How a door words its refusals: each door's clients send a token their own way, and have seen
    these texts. ``lacks`` is formatted with ``permission`` and ``what`` (what the call is)."""

    how_to_send: str
    malformed: str
    unknown: str
    lacks: str
