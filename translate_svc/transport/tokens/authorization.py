"""Authorisation: the one token decision every door asks once per call.

Each door takes the token from its own wire (``grpc/auth.py``: call metadata; ``openai/door.py``:
the HTTP ``Authorization`` header) through ``bearer``, and asks ``authorize`` once per call: a
tenant (``Authorized``, with the token's digest, by which its stream is watched for revocation:
``revocation.py``), or a ``Refusal`` (``refusals.py``), which the door renders as its own status.
"""

from __future__ import annotations

from dataclasses import dataclass

from translate_svc.session.tenants.tenant import ALL_ROOMS, DEFAULT_TENANT, RoomRights, Tenant
from translate_svc.transport.tokens.file import Permission, TokenDigest
from translate_svc.transport.tokens.refusals import Refusal, RefusalKind, Wording
from translate_svc.transport.tokens.store import TokenStore


@dataclass(frozen=True)
class Authorized:
    """A call ``authorize`` let in: whose it is, and the token that let it in as its digest (None:
    the server takes no tokens), by which its stream is watched for revocation from ``generation``
    on (the tokens file's ``TokenStore.reloads`` when the token was looked up)."""

    tenant: Tenant
    token: TokenDigest | None = None
    generation: int = 0
    #: the rooms it may publish into and listen to
    rooms: RoomRights = ALL_ROOMS


def authorize(
    store: TokenStore | None, token: str | None, needed: Permission | None, wording: Wording, what: str = ""
) -> Authorized | Refusal:
    """Whether a call that presents ``token`` (``bearer``'s: None for none, "" for one that is not a
    bearer token) may do what needs ``needed`` (None: any valid token). One lookup: a door asks once
    per call and keeps the answer. A server without a tokens file (``store`` None) lets every call
    in as the ``default`` tenant."""
    if store is None:
        return Authorized(DEFAULT_TENANT)
    if token is None:
        return Refusal(RefusalKind.NO_TOKEN, f"this server requires a token: {wording.how_to_send}")
    if not token:
        return Refusal(RefusalKind.MALFORMED, wording.malformed)
    grant = store.lookup(token)
    if grant is None:
        return Refusal(RefusalKind.UNKNOWN_TOKEN, wording.unknown)
    if needed is not None and needed not in grant.permissions:
        return Refusal(RefusalKind.NO_PERMISSION, wording.lacks.format(permission=needed.value, what=what))
    return Authorized(grant.tenant, TokenDigest.of(token), store.reloads, grant.rooms)


def bearer(value: str | None) -> str | None:
    """The token of one ``Authorization`` value (``Bearer <token>``, the scheme in any case); None
    when there is no value; "" when it is there but is not a bearer token. Every door parses the
    header through here."""
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return ""
    return token
