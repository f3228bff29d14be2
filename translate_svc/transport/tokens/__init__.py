"""The tokens every door shares (docs/security.md): bearer tokens in a file, their tenants, and the
revocation of what they let in. Door-neutral: nothing here knows gRPC or HTTP.

The modules, one job each, from the top floor down (a contract in pyproject.toml keeps the floors):

- ``authorization.py``: ``bearer`` (the token of an ``Authorization`` value) and ``authorize``,
  the one decision each door asks once per call: ``Authorized`` (a tenant, the token's digest, the
  rooms it may use) or a ``Refusal``;
- ``revocation.py``: ``Revocation`` and ``watching``: live streams and room listeners, ended when
  their token is removed from the file or no longer grants what they do;
- ``store.py``: ``TokenStore``, the file's grants, re-read when it changes (constant-time lookups
  over SHA-256 digests; the last good set kept while the file cannot be used);
- ``file.py``: the file's format, ``parse_tokens`` into ``Grant``\\ s (permissions, tenant and caps,
  room rights, recording policy, SIP credentials), ``TokenDigest``;
- ``refusals.py``: the wording of refusals (``RefusalKind``, ``Refusal``, each door's ``Wording``);
  ``sip.py``: a SIP caller's password and HA1, derived from its token.

Each door takes the token from its own wire (``grpc/auth.py``: call metadata; ``openai/door.py``:
the HTTP ``Authorization`` header) through ``bearer``, asks ``authorize`` once per call, renders a
refusal as its own status, and watches its live streams with a ``Revocation`` over the one store
the host (``host.py``) builds for all of them. The package exports these entry points; the rest is
imported from its module.
"""

from translate_svc.transport.tokens.authorization import Authorized, authorize, bearer
from translate_svc.transport.tokens.file import Permission, TokenFileError
from translate_svc.transport.tokens.revocation import Revocation, watching
from translate_svc.transport.tokens.store import TokenStore

__all__ = [
    "Authorized",
    "Permission",
    "Revocation",
    "TokenFileError",
    "TokenStore",
    "authorize",
    "bearer",
    "watching",
]
