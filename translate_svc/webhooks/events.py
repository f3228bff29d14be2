"""The service's events as the sessions make them: the ``EventSink`` seam they emit into,
the events' shape, and one session's usage as it grows.

The sessions (``session/calls/lifecycle.py``, ``session/rooms/``) and the recordings call an
``EventSink``; ``webhooks/outbox.py`` implements it (a durable queue, then signed deliveries),
``NO_EVENTS`` drops everything (no ``webhooks.data_dir``). An ``emit`` never blocks and never
raises: an event that cannot be queued is dropped, counted and logged, and the call goes on.

Event types (``data`` of each: docs/deploy.md "Webhooks and usage"): ``session.started``,
``session.ended`` (exactly one per started session, however it ends), ``room.started``,
``room.ended``, ``quota.exceeded``, ``recording.ready``, ``job.completed``, ``job.failed``. Pure: no I/O, no event loop.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from translate_svc.types import SegmentResult

SESSION_STARTED = "session.started"
SESSION_ENDED = "session.ended"
ROOM_STARTED = "room.started"
ROOM_ENDED = "room.ended"
QUOTA_EXCEEDED = "quota.exceeded"
RECORDING_READY = "recording.ready"
#: a background job finished with its results, or cannot finish (``jobs/``)
JOB_COMPLETED = "job.completed"
JOB_FAILED = "job.failed"
EVENT_TYPES = (
    SESSION_STARTED,
    SESSION_ENDED,
    ROOM_STARTED,
    ROOM_ENDED,
    QUOTA_EXCEEDED,
    RECORDING_READY,
    JOB_COMPLETED,
    JOB_FAILED,
)


def iso(at: float) -> str:
    """Unix seconds as RFC 3339 UTC with milliseconds (``2026-11-26T01:02:03.456Z``)."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_event_id() -> str:
    """A webhook-id: one per event, the same on every retry and endpoint (receivers de-duplicate)."""
    return f"msg_{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Event:
    """One event: its ``type``, the tenant it belongs to (the endpoints' tenant filter), its
    ``data`` (JSON values only) and, for the session events, the session it is about."""

    type: str
    tenant: str
    data: Mapping[str, Any]
    id: str = field(default_factory=new_event_id)
    #: when it happened (Unix seconds)
    at: float = field(default_factory=time.time)
    session_id: str | None = None


class LiveSession(Protocol):
    """A started session, as the sink checkpoints it (``session/calls/lifecycle.py``'s ``SessionRecord``)."""

    @property
    def session_id(self) -> str: ...

    def ended_data(self, ending: str, reason: str, code: str) -> dict[str, Any]:
        """What its ``session.ended`` would say if it ended now so."""
        ...


class EventSink(Protocol):
    """Where events go. Event loop only; never blocks, never raises."""

    def emit(self, event: Event) -> None:
        """Queue ``event`` for every endpoint that takes it."""
        ...

    def session_started(self, event: Event, live: LiveSession) -> None:
        """Queue ``session.started`` and keep ``live`` checkpointed (its usage so far) until it ends:
        if this process dies, another ends it from its last checkpoint (``ending: lost``)."""
        ...

    def session_ended(self, event: Event) -> None:
        """Queue ``session.ended`` and its usage record, once: not if the session was already ended
        as lost."""
        ...

    async def session_data(self, session_id: str) -> dict[str, Any] | None:
        """What the usage records say of a session now: its last checkpoint while it is open, its
        ``session.ended`` once it ended; None when there are no records, they cannot be read now,
        or they hold no such session."""
        ...


class _NoEvents:
    def emit(self, event: Event) -> None:
        return None

    def session_started(self, event: Event, live: LiveSession) -> None:
        return None

    def session_ended(self, event: Event) -> None:
        return None

    async def session_data(self, session_id: str) -> dict[str, Any] | None:
        return None


#: a server without ``webhooks.data_dir``: events go nowhere
NO_EVENTS: EventSink = _NoEvents()


def recording_ready(
    sink: EventSink,
    *,
    tenant: str,
    session_id: str,
    request_id: str,
    recording_id: str,
    complete: bool,
    files: Mapping[str, Any],
    reason: str = "",
) -> None:
    """Emit ``recording.ready`` for a session's recording (``files``: name -> its size and SHA-256,
    as the manifest says; ``complete`` False with ``reason`` when it was cut short, a full disk)."""
    data = {
        "tenant": tenant,
        "session_id": session_id,
        "request_id": request_id,
        "recording_id": recording_id,
        "complete": complete,
        "reason": reason,
        "files": dict(files),
    }
    sink.emit(Event(RECORDING_READY, tenant, data, session_id=session_id))


@dataclass
class Usage:
    """What one session used so far: the same sums as the tenant counters on ``/metrics``
    (``observability/metrics.py``: audio, speech, segments, text characters)."""

    audio_in_s: float = 0.0
    #: translated speech sent, seconds by target language
    speech_out_s: dict[str, float] = field(default_factory=dict)
    #: segment results by status (``OK`` or the error's code)
    segments: Counter[str] = field(default_factory=Counter)
    #: TranslateText's input characters
    text_in_chars: int = 0
    #: characters of translated text sent, by target language
    text_out_chars: dict[str, int] = field(default_factory=dict)

    def add_result(self, result: SegmentResult) -> None:
        self.segments["OK" if result.error is None else result.error.code] += 1
        for t in result.translations:
            if t.audio is not None and len(t.audio):
                lang = t.target_language
                self.speech_out_s[lang] = self.speech_out_s.get(lang, 0.0) + len(t.audio) / t.sample_rate_hz
            if t.text:
                self.text_out_chars[t.target_language] = self.text_out_chars.get(t.target_language, 0) + len(t.text)

    def as_dict(self) -> dict[str, Any]:
        return {
            "audio_in_s": self.audio_in_s,
            "speech_out_s": dict(self.speech_out_s),
            "speech_out_s_total": sum(self.speech_out_s.values()),
            "segments": dict(self.segments),
            "segments_total": sum(self.segments.values()),
            "text_in_chars": self.text_in_chars,
            "text_out_chars": dict(self.text_out_chars),
        }
