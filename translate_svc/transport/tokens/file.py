"""The tokens file's format: its lines, parsed into grants (a token's digest, permissions, tenant, room
rights and SIP credentials).

Tokens live in a file that a Kubernetes Secret can mount, one per line (see docs/security.md)::

    # comment
    s3cr3t-token-1                      # no permissions listed: all
    s3cr3t-token-2 languages,translate
    s3cr3t-token-3 * tenant=acme streams=8 translate_calls=2 audio_seconds_per_minute=600
    s3cr3t-token-4 stream publish=talk-* listen=talk-* tenant=acme rooms=4 listeners=500
    s3cr3t-token-5 recordings tenant=acme record=audio retention_days=30
    s3cr3t-token-6 stream tenant=pbx sip_user=pbx1   # a SIP caller's digest credentials
    s3cr3t-token-7 * tenant=kids profanity=mask
    s3cr3t-token-8 jobs tenant=media jobs=4 job_hours=20

A line with ``sip_user=<name>`` is also a SIP caller's credentials: the SIP door's
digest challenge takes the user ``<name>`` with the SIP password derived from the token
(``sip.sip_password``: an HMAC of the user's name under the token; ``translate-svc
phone-config sip --token ... --sip-user ...`` prints it), never the token itself, so a SIP phone's
configuration, or a digest's HA1 cracked offline, gives nothing that opens another door. For
that, the line keeps the digest's HA1 (MD5 of ``<name>:translate-svc:<SIP password>``, RFC 2617
§3.2.2.2) beside the token's SHA-256: what SIP digest needs, and no more than it needs.

Room rights (docs/rooms.md): ``publish=<pattern>`` (a stream may speak into a room of
that name), ``listen=<pattern>`` (Listen), ``room=<pattern>`` (both); shell-style patterns,
repeatable. A line with no room option may use every room when it grants every permission (none
listed, or ``*``), and none otherwise. ``rates=<pattern>`` (repeatable) names the rooms whose
listens on the token may choose a speaking rate (unstated: every room it may listen to; ``rates=-``
matches no room); ``renditions=N`` caps the tenant's rates in use, stated like its caps.

Recordings (docs/security.md): ``record=none|text|audio`` (``none`` unless stated) and
``retention_days=N`` (a number, fractions allowed) are the tenant's, stated like its caps; the
``recordings`` permission (never implied by ``*`` or by a line that lists none: reading back what
was said is not calling) lets a token list, fetch and delete its tenant's recordings.

Background jobs (docs/api.md "Jobs"): ``jobs=N`` caps the tenant's jobs not finished
(uploading, queued or running) and ``job_hours=H`` their audio, in hours; stated like its caps
(unstated: ``jobs.max_jobs_per_tenant`` and ``jobs.max_hours_per_tenant``). The ``jobs`` permission
(never implied by ``*`` or by a line that lists none) lets a token submit and read them.

Noise suppression and speaker labels (security finding J1): ``ear_streams=N`` caps the
tenant's streams that use them at once (0: none may), stated like its caps; unstated,
``limits.max_ear_streams`` holds each process, and tenant ``demo`` (the demo page's) gets
``limits.demo_ear_streams`` (0 by default: none).

The profanity filter (docs/api.md): ``profanity=off|mask|remove`` is the tenant's
default for its calls that set none (``off`` unless stated), stated like its caps.

Each token belongs to a tenant (``tenant=``; ``default`` if the line names none): the name the
server counts usage by (``/metrics``) and holds to its caps (``session/tenants/``). A tenant's caps
may be stated on any of its lines; two lines that state one differently are an error.

Only SHA-256 digests of the tokens are kept (``TokenDigest``): the parse digests each token as it
reads its line. Messages name the line, never the token. Pure: no I/O (``store.py`` reads the file).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import Enum

from translate_svc.session.tenants.recording import RecordMode, RecordPolicy
from translate_svc.session.tenants.tenant import (
    ALL_ROOMS,
    DEFAULT_TENANT,
    NO_ROOMS,
    TENANT_NAME,
    RoomRights,
    Tenant,
    TenantCaps,
)
from translate_svc.transport.tokens.sip import SIP_USER, sip_ha1, sip_password
from translate_svc.types import Profanity


class Permission(str, Enum):
    LANGUAGES = "languages"
    TRANSLATE = "translate"
    STREAM = "stream"
    #: list, fetch and delete the tenant's recordings (named explicitly: ``*`` does not imply it)
    RECORDINGS = "recordings"
    #: create, list, replace and delete the tenant's stored glossaries (named explicitly too)
    GLOSSARIES = "glossaries"
    #: submit, follow, cancel and read back the tenant's background jobs (named explicitly too:
    #: hours of the model's time and gigabytes of disk per job)
    JOBS = "jobs"


#: what ``*``, or a line that lists no permission, grants: every call, not the recordings
ALL_PERMISSIONS = frozenset({Permission.LANGUAGES, Permission.TRANSLATE, Permission.STREAM})


class TokenFileError(Exception):
    """The tokens file cannot be used; the message is one line naming the file (and line)."""


def digest_of(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class TokenDigest:
    """A presented token as the server keeps it after the check: its SHA-256 digest, never the
    token itself (a live stream's, looked up again when the tokens file changes)."""

    sha256: bytes

    @classmethod
    def of(cls, token: str) -> TokenDigest:
        return cls(digest_of(token))


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
    "renditions": (int, 0),
    "jobs": (int, 1),
    "job_hours": (float, 0.01),
    "ear_streams": (int, 0),
}
#: a room pattern: a room name's characters and the wildcards ``*``, ``?`` and ``[...]``
_ROOM_PATTERN = re.compile(r"[A-Za-z0-9._\-*?\[\]!]{1,64}")
_ROOM_OPTIONS = ("publish", "listen", "room", "rates")
#: a tenant's recording policy (``session/tenants/recording.py``)
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


def _profanity(value: str, where: str) -> str:
    if value not in {m.value for m in Profanity}:
        raise TokenFileError(f"{where}: profanity must be off, mask or remove, got {value[:24]!r}")
    return value


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
        rates: list[str] = []  # the rooms whose listens on this token may choose a speaking rate
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
                if option == "rates":
                    rates.append(value)
            elif eq and option in _CAPS:
                stated[option] = _cap(option, value, where)
            elif eq and option in _RECORD_OPTIONS:
                stated[option] = _record_option(option, value, where)
            elif eq and option == "profanity":
                stated[option] = _profanity(value, where)
            elif eq and option == "sip_user":
                if not SIP_USER.fullmatch(value):
                    raise TokenFileError(
                        f"{where}: sip_user= takes a name (letters, digits, '.', '_', '-', at most 64)"
                    )
                sip_of[digest_of(token)] = (value, sip_ha1(value, sip_password(token, value)))
            elif eq:
                known = ", ".join(["tenant", *_CAPS, *_ROOM_OPTIONS, *_RECORD_OPTIONS, "profanity", "sip_user"])
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
        digest = digest_of(token)
        if tenant_of.setdefault(digest, tenant) != tenant:
            raise TokenFileError(f"{where}: this token is listed before under tenant {tenant_of[digest]!r}")
        granted = frozenset(perms or ALL_PERMISSIONS)
        perms_of[digest] = perms_of.get(digest, frozenset()) | granted
        if publish or listen:
            rooms = RoomRights(tuple(publish), tuple(listen), rates=tuple(listen))
        else:
            rooms = ALL_ROOMS if ALL_PERMISSIONS <= granted else NO_ROOMS
        if rates:  # stated: only these rooms' listens may choose a rate (unstated: wherever it listens)
            rooms = RoomRights(rooms.publish, rooms.listen, rates=tuple(rates))
        known_rooms = rooms_of.get(digest, NO_ROOMS)
        rooms_of[digest] = RoomRights(
            known_rooms.publish + rooms.publish,
            known_rooms.listen + rooms.listen,
            rates=known_rooms.rates + rooms.rates,
        )
    if not perms_of:
        raise TokenFileError(f"{source} holds no token (one per line: <token> [<permission>,...] [tenant=<name>])")
    users = [user for user, _ in sip_of.values()]
    if len(users) != len(set(users)):
        raise TokenFileError(f"{source}: a sip_user= is named on two tokens; name each SIP user once")
    tenants = {
        name: Tenant(
            name,
            TenantCaps(**{k: v for k, v in c.items() if k in _CAPS}),  # type: ignore[arg-type]
            _policy(c),
            Profanity(str(c.get("profanity", Profanity.OFF.value))),
        )
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
