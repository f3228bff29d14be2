"""The token store every door shares: bearer tokens, their tenants, and revocation of live streams.

Tokens live in a file that a Kubernetes Secret can mount, one per line (see docs/security.md)::

    # comment
    s3cr3t-token-1                      # no permissions listed: all
    s3cr3t-token-2 languages,translate
    s3cr3t-token-3 * tenant=acme streams=8 translate_calls=2 audio_seconds_per_minute=600
    s3cr3t-token-4 stream publish=talk-* listen=talk-* tenant=acme rooms=4 listeners=500
    s3cr3t-token-5 recordings tenant=acme record=audio retention_days=30
    s3cr3t-token-6 stream tenant=pbx sip_user=pbx1   # a SIP caller's digest credentials

A line with ``sip_user=<name>`` is also a SIP caller's credentials (issue 60): the SIP door's
digest challenge takes the user ``<name>`` with the SIP password derived from the token
(``sip_password``: an HMAC of the user's name under the token, issue 68; ``translate-svc
phone-config sip --token ... --sip-user ...`` prints it), never the token itself, so a SIP phone's
configuration, or a digest's HA1 cracked offline, gives nothing that opens another door. For
that, the line keeps the digest's HA1 (MD5 of ``<name>:translate-svc:<SIP password>``, RFC 2617
§3.2.2.2) beside the token's SHA-256: what SIP digest needs, and no more than it needs.

Room rights (issue 47, docs/rooms.md): ``publish=<pattern>`` (a stream may speak into a room of
that name), ``listen=<pattern>`` (Listen), ``room=<pattern>`` (both); shell-style patterns,
repeatable. A line with no room option may use every room when it grants every permission (none
listed, or ``*``), and none otherwise.

Recordings (issue 61, docs/security.md): ``record=none|text|audio`` (``none`` unless stated) and
``retention_days=N`` (a number, fractions allowed) are the tenant's, stated like its caps; the
``recordings`` permission (never implied by ``*`` or by a line that lists none: reading back what
was said is not calling) lets a token list, fetch and delete its tenant's recordings.

Each token belongs to a tenant (``tenant=``; ``default`` if the line names none): the name the
server counts usage by (``/metrics``) and holds to its caps (``session/quota.py``). A tenant's caps
may be stated on any of its lines; two lines that state one differently are an error.

The file is re-read when it changes (one ``stat`` at most once per ``check_interval_s``), so a
rotated Secret takes effect without a restart; a file that becomes unreadable, empty or invalid
keeps the last good set (and logs an error), because locking every client out is worse than
honouring a token for a few more seconds.

Only SHA-256 digests of the tokens are kept. A presented token is hashed and compared with
``hmac.compare_digest`` against every known digest, with no early exit, so neither the position of
a match nor the length of a token shows in the time taken. Tokens are never logged or echoed.

Door-neutral: nothing here knows gRPC or HTTP. Each door takes the token from its own wire
(``grpc/auth.py``: call metadata; ``openai/door.py``: the HTTP ``Authorization`` header)
through ``bearer``, asks ``authorize`` once per call (a tenant, or a ``Refusal``: its kind and
message, which the door renders as its own status), and watches its live streams with a
``Revocation`` over the one store the host (``host.py``) builds for all of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from translate_svc.errors import LimitReached, Revoked
from translate_svc.observability import metrics
from translate_svc.session.quota import ALL_ROOMS, DEFAULT_TENANT, NO_ROOMS, TENANT_NAME, RoomRights, Tenant, TenantCaps
from translate_svc.session.recording import RecordMode, RecordPolicy

logger = logging.getLogger(__name__)


class Permission(str, Enum):
    LANGUAGES = "languages"
    TRANSLATE = "translate"
    STREAM = "stream"
    #: list, fetch and delete the tenant's recordings (named explicitly: ``*`` does not imply it)
    RECORDINGS = "recordings"


#: what ``*``, or a line that lists no permission, grants: every call, not the recordings
ALL_PERMISSIONS = frozenset({Permission.LANGUAGES, Permission.TRANSLATE, Permission.STREAM})


class TokenFileError(Exception):
    """The tokens file cannot be used; the message is one line naming the file (and line)."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class TokenDigest:
    """A presented token as the server keeps it after the check: its SHA-256 digest, never the
    token itself (a live stream's, looked up again when the tokens file changes)."""

    sha256: bytes

    @classmethod
    def of(cls, token: str) -> TokenDigest:
        return cls(_digest(token))


@dataclass(frozen=True)
class Grant:
    """What a known token may do, and whose it is."""

    permissions: frozenset[Permission]
    tenant: Tenant = DEFAULT_TENANT
    #: the rooms it may publish into and listen to
    rooms: RoomRights = ALL_ROOMS
    #: a SIP caller's digest user (``sip_user=``) and its HA1 for ``SIP_REALM``; None: not a SIP caller
    sip_user: str | None = None
    sip_ha1: str | None = None


#: a tenant's caps as the tokens file names them: (TenantCaps field, type, smallest value)
_CAPS: dict[str, tuple[type, float]] = {
    "streams": (int, 1),
    "translate_calls": (int, 1),
    "audio_seconds_per_minute": (float, 1),
    "unary_calls": (int, 1),
    "rooms": (int, 1),
    "room_speakers": (int, 1),
    "listeners": (int, 1),
}
#: a room pattern: a room name's characters and the wildcards ``*``, ``?`` and ``[...]``
_ROOM_PATTERN = re.compile(r"[A-Za-z0-9._\-*?\[\]!]{1,64}")
_ROOM_OPTIONS = ("publish", "listen", "room")
#: a tenant's recording policy (``session/recording.py``)
_RECORD_OPTIONS = ("record", "retention_days")
#: the longest retention a line may state (about 100 years)
_MAX_RETENTION_DAYS = 36_500


def _record_option(option: str, value: str, where: str) -> str | float:
    if option == "record":
        if value not in {m.value for m in RecordMode}:
            raise TokenFileError(f"{where}: record must be none, text or audio, got {value[:24]!r}")
        return value
    try:
        days = float(value)
    except ValueError:
        days = -1.0
    if not 0 < days <= _MAX_RETENTION_DAYS:
        raise TokenFileError(
            f"{where}: retention_days must be a number of days over 0 and at most {_MAX_RETENTION_DAYS}, "
            f"got {value[:24]!r}"
        )
    return days


#: the SIP door's digest realm, and a SIP user's name
SIP_REALM = "translate-svc"
_SIP_USER = re.compile(r"[A-Za-z0-9._\-]{1,64}")
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


def _cap(option: str, value: str, where: str) -> int | float:
    kind, least = _CAPS[option]
    try:
        number: int | float = int(value) if kind is int else float(value)
    except ValueError:
        number = least - 1
    if not least <= number < 1e9:
        raise TokenFileError(f"{where}: {option} must be a number of at least {least:g}, got {value[:24]!r}")
    return number


def parse_tokens(text: str, source: str) -> list[tuple[bytes, Grant]]:
    """The file's (token digest, grant) pairs; ``TokenFileError`` on the first bad line.

    A token listed twice gets the union of its permissions (and must name one tenant). Messages
    name the line, never the token.
    """
    perms_of: dict[bytes, frozenset[Permission]] = {}
    rooms_of: dict[bytes, RoomRights] = {}
    tenant_of: dict[bytes, str] = {}
    sip_of: dict[bytes, tuple[str, str]] = {}
    caps: dict[str, dict[str, int | float | str]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        where = f"{source} line {number}"
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        token, *rest = line.split(None, 1)
        if not token.isascii() or not token.isprintable():
            raise TokenFileError(f"{where}: a token must be printable ASCII without spaces")
        words = [p for p in (rest[0].replace(",", " ").split() if rest else []) if p]
        perms: set[Permission] = set()
        tenant = DEFAULT_TENANT.name
        stated: dict[str, int | float | str] = {}  # the tenant's caps and recording policy
        publish: list[str] = []
        listen: list[str] = []
        for word in words:
            option, eq, value = word.partition("=")
            if eq and option == "tenant":
                if not TENANT_NAME.fullmatch(value):
                    raise TokenFileError(
                        f"{where}: tenant {value[:24]!r} is not a name (letters, digits, '.' and '-', at most 40)"
                    )
                tenant = value
            elif eq and option in _ROOM_OPTIONS:
                if not _ROOM_PATTERN.fullmatch(value):
                    raise TokenFileError(
                        f"{where}: {option}= takes a room name pattern (letters, digits, '.', '_', '-' and the "
                        f"wildcards * ? [...], at most 64), got {value[:24]!r}"
                    )
                if option in ("publish", "room"):
                    publish.append(value)
                if option in ("listen", "room"):
                    listen.append(value)
            elif eq and option in _CAPS:
                stated[option] = _cap(option, value, where)
            elif eq and option in _RECORD_OPTIONS:
                stated[option] = _record_option(option, value, where)
            elif eq and option == "sip_user":
                if not _SIP_USER.fullmatch(value):
                    raise TokenFileError(
                        f"{where}: sip_user= takes a name (letters, digits, '.', '_', '-', at most 64)"
                    )
                sip_of[_digest(token)] = (value, sip_ha1(value, sip_password(token, value)))
            elif eq:
                known = ", ".join(["tenant", *_CAPS, *_ROOM_OPTIONS, *_RECORD_OPTIONS, "sip_user"])
                raise TokenFileError(f"{where}: unknown option {option[:24]!r} (use {known})")
            elif word == "*":
                perms |= ALL_PERMISSIONS
            else:
                try:
                    perms.add(Permission(word))
                except ValueError:
                    allowed = ", ".join(p.value for p in Permission)
                    raise TokenFileError(f"{where}: unknown permission {word[:24]!r} (use {allowed} or *)") from None
        known_caps = caps.setdefault(tenant, {})
        for option, cap in stated.items():
            if known_caps.setdefault(option, cap) != cap:
                shown, what = known_caps[option], "cap" if option in _CAPS else "option"
                raise TokenFileError(
                    f"{where}: tenant {tenant!r} has {option}={shown if isinstance(shown, str) else f'{shown:g}'} "
                    f"on another line; state each {what} once, or the same on every line"
                )
        digest = _digest(token)
        if tenant_of.setdefault(digest, tenant) != tenant:
            raise TokenFileError(f"{where}: this token is listed before under tenant {tenant_of[digest]!r}")
        granted = frozenset(perms or ALL_PERMISSIONS)
        perms_of[digest] = perms_of.get(digest, frozenset()) | granted
        if publish or listen:
            rooms = RoomRights(tuple(publish), tuple(listen))
        else:
            rooms = ALL_ROOMS if ALL_PERMISSIONS <= granted else NO_ROOMS
        known_rooms = rooms_of.get(digest, NO_ROOMS)
        rooms_of[digest] = RoomRights(known_rooms.publish + rooms.publish, known_rooms.listen + rooms.listen)
    if not perms_of:
        raise TokenFileError(f"{source} holds no token (one per line: <token> [<permission>,...] [tenant=<name>])")
    users = [user for user, _ in sip_of.values()]
    if len(users) != len(set(users)):
        raise TokenFileError(f"{source}: a sip_user= is named on two tokens; name each SIP user once")
    tenants = {
        name: Tenant(name, TenantCaps(**{k: v for k, v in c.items() if k in _CAPS}), _policy(c))  # type: ignore[arg-type]
        for name, c in caps.items()
    }
    return [
        (digest, Grant(perms, tenants[tenant_of[digest]], rooms_of[digest], *sip_of.get(digest, (None, None))))
        for digest, perms in perms_of.items()
    ]


def _policy(stated: dict[str, int | float | str]) -> RecordPolicy:
    mode = RecordMode(str(stated.get("record", RecordMode.NONE.value)))
    days = stated.get("retention_days")
    return RecordPolicy(mode, float(days) if days is not None else None)


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
        presented = token.sha256 if isinstance(token, TokenDigest) else _digest(token)
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
class Authorized:
    """A call ``authorize`` let in: whose it is, and the token that let it in as its digest (None:
    the server takes no tokens), by which its stream is watched for revocation from ``generation``
    on (the tokens file's ``TokenStore.reloads`` when the token was looked up)."""

    tenant: Tenant
    token: TokenDigest | None = None
    generation: int = 0
    #: the rooms it may publish into and listen to
    rooms: RoomRights = ALL_ROOMS


@dataclass(frozen=True)
class Wording:
    """How a door words its refusals: each door's clients send a token their own way, and have seen
    these texts. ``lacks`` is formatted with ``permission`` and ``what`` (what the call is)."""

    how_to_send: str
    malformed: str
    unknown: str
    lacks: str


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


class Endable(Protocol):
    """A live stream that can be ended from outside (``session.StreamDriver``, a room's
    ``Listener``)."""

    def end(self, limit: LimitReached) -> None: ...


def may_stream(grant: Grant) -> bool:
    """What a live stream's token must keep: the ``stream`` permission."""
    return Permission.STREAM in grant.permissions


def may_listen_to(room: str) -> Callable[[Grant], bool]:
    """What a room listener's token must keep: a ``listen=``/``room=`` pattern covering ``room``."""
    return lambda grant: grant.rooms.may_listen(room)


#: a room listener ended by revocation
LISTEN_REVOKED = (
    "the token of this listen was revoked (removed from the server's tokens file, or its listen= pattern "
    "no longer covers the room): listen again with a current token"
)


@dataclass(frozen=True)
class _Watched:
    digest: TokenDigest
    allowed: Callable[[Grant], bool]
    message: str | None


class Revocation:
    """Live streams (and room listeners) by the token that opened them, as its digest
    (``TokenDigest``: a stream lives for hours, and its token must not stay in memory that long):
    when the tokens file changes, one whose token is gone, or no longer ``allowed`` what it does
    (a stream: ``stream``; a listener: its room), is ended (``Revoked``). Shared by every door.
    Event loop only."""

    def __init__(self, tokens: TokenStore) -> None:
        self._tokens = tokens
        self._live: dict[Endable, _Watched] = {}
        tokens.on_reload.append(self._check)

    def watching(
        self,
        stream: Endable,
        token: str | TokenDigest | None,
        since: int | None = None,
        *,
        allowed: Callable[[Grant], bool] = may_stream,
        message: str | None = None,
    ) -> contextlib.AbstractContextManager[None]:
        """While the block runs, ``stream`` ends if ``token`` is revoked (none: nothing to watch)
        or its grant is no longer ``allowed``; ``message``: the ``Revoked`` error's (None: a
        stream's). A token is digested here, at once: neither this object nor the context it
        returns keeps it. ``since``: the tokens file's generation when the token was looked up
        (``Authorized.generation``); if the file changed after (between a call's check and its
        stream's watch: the door awaited in between), the token is looked up again as the block
        starts, so a token removed in that moment ends the stream too."""
        if isinstance(token, str):
            token = TokenDigest.of(token) if token else None
        watched = _Watched(token, allowed, message) if token is not None else None
        return _Watch(self, stream, watched, since)

    def _check(self) -> None:
        for stream, watched in list(self._live.items()):
            self._check_one(stream, watched)

    def _check_one(self, stream: Endable, watched: _Watched) -> None:
        grant = self._tokens.lookup(watched.digest)
        if grant is None or not watched.allowed(grant):
            stream.end(Revoked(watched.message))


class TokenHolder(Protocol):
    """A caller as a door keeps it (``Authorized``; the HTTP port's ``Caller``): its token's digest
    (None: none) and the tokens file's generation when the token was looked up."""

    @property
    def token(self) -> TokenDigest | None: ...

    @property
    def generation(self) -> int | None: ...


def watching(
    revocation: Revocation | None,
    stream: Endable,
    caller: TokenHolder,
    *,
    allowed: Callable[[Grant], bool] = may_stream,
    message: str | None = None,
) -> contextlib.AbstractContextManager[None]:
    """``Revocation.watching`` for a call ``authorize`` let in, where the door may have no
    revocation (a server without tokens): then nothing is watched. Every door's one watch."""
    if revocation is None:
        return contextlib.nullcontext()
    return revocation.watching(stream, caller.token, caller.generation, allowed=allowed, message=message)


class _Watch(contextlib.AbstractContextManager[None]):
    """``Revocation.watching``'s block: holds the digest only (``contextlib.contextmanager`` would
    keep the call's arguments, the token among them, for as long as the block runs)."""

    def __init__(self, owner: Revocation, stream: Endable, watched: _Watched | None, since: int | None) -> None:
        self._owner, self._stream, self._watched, self._since = owner, stream, watched, since

    def __enter__(self) -> None:
        if self._watched is None:
            return
        self._owner._live[self._stream] = self._watched
        if self._since is not None and self._since != self._owner._tokens.reloads:
            self._owner._check_one(self._stream, self._watched)

    def __exit__(self, *exc_info: object) -> None:
        self._owner._live.pop(self._stream, None)
