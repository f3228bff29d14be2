"""The SDK's values for rooms (docs/rooms.md): the room a stream speaks into, and what a listen
yields. Frozen dataclasses, no protobuf, safe to pass between threads (as ``types.py``'s)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import grpc

from translate_svc.client.types import Draining, Interim, Segment, Translation


@dataclass(frozen=True)
class Room:
    """A room to speak into (``stream(room=...)``): its ``name`` (1-64 of ``A-Z a-z 0-9 . _ -``,
    starting with a letter or digit; the server checks it) and, optionally, your ``participant``
    id: a listener with the same participant is sent nothing of this speaker (a two-way meeting:
    each side speaks and listens to the other)."""

    name: str
    participant: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("Room: name the room (1-64 of A-Z a-z 0-9 . _ -)")


@dataclass(frozen=True)
class RoomSpeaker:
    """A speaker present when a listen started: its id (its participant, else its session id) and
    the first segment id of its live output sure to carry the listen's language (-1: none yet)."""

    id: str
    first_segment_id: int


@dataclass(frozen=True)
class ListenStarted:
    """The first event of a listen, and of each call the SDK listens again on after a drain or a
    lost connection (``resumes``: how many times it did so far). ``backlog``: the room's final
    results of the last ``rooms.backlog_s`` that follow at once (text only; on a resumed call the
    SDK drops those you already had); ``address``: the server of this call."""

    room: str
    language: str
    participant: str
    backlog: int
    speakers: tuple[RoomSpeaker, ...]
    address: str
    resumes: int = 0


@dataclass(frozen=True, eq=False)
class RoomSegment:
    """A speaker's final result, as its own stream has it (``segment_id``, spans, transcript) with
    its translations cut to the listen's language. ``backlog``: sent on joining, text only (no
    speech)."""

    speaker: str
    segment: Segment
    backlog: bool = False

    @property
    def segment_id(self) -> int:
        return self.segment.segment_id

    @property
    def start_ms(self) -> int:
        return self.segment.start_ms

    @property
    def end_ms(self) -> int:
        return self.segment.end_ms

    @property
    def translation(self) -> Translation | None:
        """The translation into the listen's language (None: the segment failed, or has none)."""
        return self.segment.translations[0] if self.segment.translations else None


@dataclass(frozen=True, eq=False)
class RoomCaption:
    """A speaker's live caption (when the speaker asked for ``interim_ms``); its ``RoomSegment``
    supersedes it. Never in the backlog."""

    speaker: str
    caption: Interim


@dataclass(frozen=True)
class ListenDropped:
    """This listener fell behind: the server dropped its ``count`` oldest events since the last
    notice (``total`` over the call). A notice: the listen goes on."""

    count: int
    total: int


class ListenEndReason(str, Enum):
    """Why the server ended a listen (``ListenEnd``)."""

    REVOKED = "revoked"  # its token was removed, or no longer covers the room: UNAUTHENTICATED
    MAX_LISTEN_DURATION = "max_listen_duration"  # rooms.max_listen_s: OUT_OF_RANGE (listen(resume=False))
    DRAINING = "draining"  # the server shut down: UNAVAILABLE (listen(resume=False))
    LOST = "lost"  # the connection was lost (listen(resume=False))
    ERROR = "error"  # any other status


@dataclass(frozen=True)
class ListenEnd:
    """The last event of a listen the server ended (and the SDK did not continue elsewhere): the
    reason, the status the call ended with, the server's message (which says what to do), the
    listen's ``x-request-id`` and the server's address. The iteration then raises
    ``ListenEndedError``."""

    reason: ListenEndReason
    code: grpc.StatusCode
    message: str
    request_id: str | None = None
    address: str | None = None


#: What iterating a listen yields.
ListenEvent = ListenStarted | RoomSegment | RoomCaption | ListenDropped | Draining | ListenEnd
