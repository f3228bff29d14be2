"""The token store every door shares: the tokens file's grants, re-read when the file changes.

The file is re-read when it changes (one ``stat`` at most once per ``check_interval_s``), so a
rotated Secret takes effect without a restart; a file that becomes unreadable, empty or invalid
keeps the last good set (and logs an error), because locking every client out is worse than
honouring a token for a few more seconds.

Only SHA-256 digests of the tokens are kept. A presented token is hashed and compared with
``hmac.compare_digest`` against every known digest, with no early exit, so neither the position of
a match nor the length of a token shows in the time taken. Tokens are never logged or echoed.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from translate_svc.observability import metrics
from translate_svc.session.tenants.recording import RecordMode
from translate_svc.session.tenants.tenant import Tenant
from translate_svc.transport.tokens.file import Grant, Permission, TokenDigest, TokenFileError, digest_of, parse_tokens

#: the logger name operators' log queries already use for tokens (kept when the module became a package)
logger = logging.getLogger("translate_svc.transport.tokens")


class TokenStore:
    """The known tokens, re-read from ``path`` when it changes.

    Event loop only: ``lookup`` runs in the interceptor on every call. Its cost is a clock read,
    and at most once per ``check_interval_s`` one ``stat`` (the small file is read only when the
    stat changed). The constructor raises ``TokenFileError`` so a bad file fails start-up.
    """

    def __init__(
        self, path: Path, *, check_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self._interval = check_interval_s
        self._clock = clock
        self._seen: tuple[int, int, int, int] | None = self._stat()
        self._entries = parse_tokens(self._read(), f"auth.tokens_file {path}")
        metrics.TOKENS_FILE_OK.set(1)
        #: the error of the last check while the file cannot be used (logged once per error)
        self._failing: str | None = None
        self._next_check = clock() + check_interval_s
        #: reloads picked up since start (tests and logs)
        self.reloads = 0
        #: called after every reload that changed the tokens (revocation of open streams)
        self.on_reload: list[Callable[[], None]] = []

    def __len__(self) -> int:
        return len(self._entries)

    def _stat(self) -> tuple[int, int, int, int]:
        try:
            st = os.stat(self.path)
        except OSError as e:
            raise TokenFileError(f"cannot read auth.tokens_file {self.path}: {e.strerror or e}") from None
        return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)

    def _read(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = getattr(e, "strerror", None) or e
            raise TokenFileError(f"cannot read auth.tokens_file {self.path}: {reason}") from None

    def maybe_reload(self) -> None:
        """Re-read the file if its stat changed (at most once per interval); keep the last good set
        when it cannot be used (one error per state of the file, not one per second).

        A file that could not be used is read again at every check, whether or not its stat
        changed since, until it can be: a read that failed once (no file descriptors left, a
        transient permission error) must not leave a removed token working until the file changes
        again. ``translate_svc_tokens_file_ok`` is 0 meanwhile."""
        now = self._clock()
        if now < self._next_check:
            return
        self._next_check = now + self._interval
        try:
            sig = self._stat()
            if sig == self._seen:
                return
            entries = parse_tokens(self._read(), f"auth.tokens_file {self.path}")
        except TokenFileError as e:
            self._seen = None  # not read: read again at the next check
            if str(e) != self._failing:
                logger.error("%s; keeping the %d tokens loaded before", e, len(self._entries))
                metrics.tokens_file(ok=False)
            self._failing = str(e)
            return
        self._seen, self._failing = sig, None
        metrics.tokens_file(ok=True)
        if dict(entries) != dict(self._entries):
            self._entries = entries
            self.reloads += 1
            logger.info("auth: reloaded %d tokens from %s", len(entries), self.path)
            for listener in self.on_reload:
                listener()

    def lookup(self, token: str | TokenDigest) -> Grant | None:
        """The grant of ``token`` (or of the token of that digest), or None if it is unknown.
        Constant time in the token: every known digest is compared, with no early exit."""
        self.maybe_reload()
        presented = token.sha256 if isinstance(token, TokenDigest) else digest_of(token)
        granted: Grant | None = None
        for digest, grant in self._entries:
            match = hmac.compare_digest(presented, digest)
            granted = grant if match else granted
        return granted

    def sip_user(self, user: str) -> Grant | None:
        """The grant of the SIP user ``user`` (``sip_user=``), as the file states it now; None: unknown."""
        self.maybe_reload()
        return next((g for _, g in self._entries if g.sip_user is not None and g.sip_user == user), None)

    @property
    def has_sip_users(self) -> bool:
        return any(g.sip_user is not None for _, g in self._entries)

    def tenant(self, name: str) -> Tenant | None:
        """The tenant ``name`` as the file states it now (its caps); None if no line names it."""
        return next((grant.tenant for _, grant in self._entries if grant.tenant.name == name), None)

    def recording_tenants(self) -> list[str]:
        """The tenants whose line asks for recordings (``record=text|audio``), by name."""
        return sorted({g.tenant.name for _, g in self._entries if g.tenant.record.mode is not RecordMode.NONE})

    def secret_tenant(self, name: str) -> Tenant | None:
        """The tenant of a client secret minted for ``name``, as the file states it now; None when
        no token of that tenant may ``stream`` any more (the tenant was removed, or every token of
        it that could mint was revoked or lost ``stream``): its secrets open nothing from then on.
        A secret carries its tenant, not the token that minted it, so revoking one of several
        tokens of a tenant leaves the tenant's secrets valid until they expire."""
        return next(
            (g.tenant for _, g in self._entries if g.tenant.name == name and Permission.STREAM in g.permissions),
            None,
        )
