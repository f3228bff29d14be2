"""A tenant: a name from the tokens file, its caps, its room rights and its recording policy.

A **tenant** is a name from the tokens file (every token belongs to one; ``default`` when the line
names none, and for every call on a server without tokens) with optional caps: concurrent streams,
concurrent Translate calls, audio seconds per minute, unary calls, rooms, speakers and listeners,
streams with noise suppression or speaker labels (``TenantCaps``), the rooms its token may publish
into and listen to (``RoomRights``), what is kept of its sessions (``recording.RecordPolicy``), and
its streams' profanity filter unless a stream sets its own (``Tenant.profanity``). Pure:
frozen values, no I/O.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from translate_svc.session.tenants.recording import NO_RECORDING, RecordPolicy
from translate_svc.types import Profanity

#: the tenant of the sessions the demo page's client secrets open (``transport/http/client_secrets.py``):
#: capped by a tokens-file line naming it, and refused the ear unless ``limits.demo_ear_streams`` allows it
DEMO_TENANT = "demo"
#: a tenant's name: a metrics label and part of a client secret, so a short, plain word
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,39}")


@dataclass(frozen=True)
class TenantCaps:
    """A tenant's caps; None: no cap of that kind (the node's own limits still hold)."""

    streams: int | None = None
    translate_calls: int | None = None
    audio_seconds_per_minute: float | None = None
    #: unary calls in progress at once (None: ``limits.max_unary_calls_per_tenant``)
    unary_calls: int | None = None
    #: rooms open at once (``session/rooms/``), speakers publishing into them, listeners
    rooms: int | None = None
    room_speakers: int | None = None
    listeners: int | None = None
    #: (room, language, speaking rate) renditions its listeners keep in use at once (None:
    #: ``rooms.max_renditions_per_tenant``; 0: its listeners choose no rate)
    renditions: int | None = None
    #: background jobs not finished (uploading, queued, running) at once, and their audio in hours (``jobs/``)
    jobs: int | None = None
    job_hours: float | None = None
    #: streams with noise suppression or speaker labels open at once (security finding J1; 0: none may ask;
    #: None: ``limits.max_ear_streams`` alone, and for tenant ``DEMO_TENANT`` ``limits.demo_ear_streams``)
    ear_streams: int | None = None


@dataclass(frozen=True)
class RoomRights:
    """Which rooms a caller may publish into and listen to: shell-style patterns (``fnmatch``,
    case-sensitive) of room names, from its token's line in the tokens file. ``speak_only``: the
    caller may open a stream only to speak into one of its ``publish`` rooms (a room's speaker
    key, ``open_room`` of the MCP door: not a stream of its own without a room; security finding H4).
    ``rates``: the rooms whose owner lets the caller's listens choose a speaking rate (each rate
    costs the room's tenant a vocoder row per segment of each speaker): a tokens-file line's
    ``rates=`` patterns (unstated: its ``listen=`` ones), a room's listeners' key only where
    ``open_room`` asked with ``allow_rates``, the demo page's only with ``rooms.demo_rates``."""

    publish: tuple[str, ...] = ()
    listen: tuple[str, ...] = ()
    speak_only: bool = False
    rates: tuple[str, ...] = ()

    def may_publish(self, room: str) -> bool:
        return any(fnmatch.fnmatchcase(room, p) for p in self.publish)

    def may_listen(self, room: str) -> bool:
        return any(fnmatch.fnmatchcase(room, p) for p in self.listen)

    def may_rate(self, room: str) -> bool:
        """Whether a listen of this caller in ``room`` may choose a speaking rate."""
        return any(fnmatch.fnmatchcase(room, p) for p in self.rates)


#: every room, both ways (a server without tokens; a token with every permission and no room option)
ALL_ROOMS = RoomRights(("*",), ("*",), rates=("*",))
NO_ROOMS = RoomRights()


@dataclass(frozen=True)
class Tenant:
    name: str = "default"
    caps: TenantCaps = field(default_factory=TenantCaps)
    #: what is kept of its sessions, and for how long (``recording.py``)
    record: RecordPolicy = NO_RECORDING
    #: the profanity filter of its calls that set none (the tokens file's ``profanity=``)
    profanity: Profanity = Profanity.OFF


DEFAULT_TENANT = Tenant()
