"""OpenAI's wire format for the realtime sessions: events as JSON text, a client event's envelope
(``envelope``: JSON with a ``type`` and an optional ``event_id``, one reading and one wording for the
translation and the transcription protocols), and errors as ``error`` events in OpenAI's shape (our
error codes as its ``type`` and ``code``: the HTTP port's one table, ``../http/errors.py``). Pure
(no socket, no web framework): the protocols (``protocol.py``, ``transcription.py``) render with
it, and so does the loop for what it sends itself (an error that ends a session)."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from translate_svc.errors import ErrorCode, InvalidInput, ServiceError, ShuttingDown
from translate_svc.session.events import StreamRequest
from translate_svc.transport.http.errors import error_type

#: the subprotocol OpenAI's server selects (a browser offers it with its key beside it:
#: ``../http/handshake.py``)
REALTIME = "realtime"
#: the longest ``event_id`` a client event may carry
MAX_EVENT_ID_CHARS = 64


@dataclass(frozen=True, eq=False)
class Speech:
    """Translated speech for WebRTC's track of ``tag`` (float32 samples at ``rate``): on WebRTC the
    protocol gives speech as this, not as ``session.output_audio.delta`` events."""

    tag: str
    audio: np.ndarray
    rate: int


#: what the protocol gives the loop for a client's message: an event to send back (JSON text), or
#: a request for the stream core
Reply = str | StreamRequest
#: what it gives for one of the stream core's events: an event to send, or speech for a track
Out = str | Speech


class ParamError(InvalidInput):
    """Bad input in one field: ``param`` names it as the client wrote it (OpenAI's ``error.param``)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


#: the most characters of a client event beside its ``"audio"`` string (an append's base64): no
#: other event needs more, and ``json.loads`` works through them value by value on the event loop
#: (4 MB of small values: 40 to 150 ms; an append of 4 MB: 3 to 15 ms; security finding F3)
MAX_BESIDE_AUDIO_CHARS = 64 * 1024
_TO_STRING = re.compile(r'\s*:\s*"')


def beside_audio(text: str) -> int:
    """The characters of a client event outside its ``"audio"`` value when that is a string
    without escapes (base64 has none); all of them when there is none. Found with a few searches
    (the first four ``"audio"`` keys looked at), nothing parsed."""
    at = 0
    for _ in range(4):
        key = text.find('"audio"', at)
        if key < 0:
            break
        at = key + len('"audio"')
        value = _TO_STRING.match(text, at)
        if value is None:
            continue
        end = text.find('"', value.end())
        if end >= 0 and text.find("\\", value.end(), end) < 0:
            return len(text) - (end - value.end())
    return len(text)


@dataclass(frozen=True)
class Envelope:
    """A client event as read: its ``type``, its ``event_id`` (None: none given) and the whole object."""

    kind: str
    event_id: str | None
    event: dict[str, Any]


@dataclass(frozen=True)
class BadEnvelope:
    """A client message that is no usable event: what to say (an ``error`` event's message, code
    and the field at fault), and nothing of it is used."""

    message: str
    code: str
    param: str | None = None


def envelope(text: str | None) -> Envelope | BadEnvelope:
    """A client message (None: a binary one) as an event to act on, or why it is none: a binary
    frame, an event too large beside its audio (``MAX_BESIDE_AUDIO_CHARS``: counted before
    ``json.loads`` works through it), not a JSON object with a ``type``, an ``event_id`` that is
    not a string of at most ``MAX_EVENT_ID_CHARS`` characters."""
    if text is None:
        return BadEnvelope("send JSON text events, not binary frames", "invalid_event")
    if len(text) > MAX_BESIDE_AUDIO_CHARS and beside_audio(text) > MAX_BESIDE_AUDIO_CHARS:
        return BadEnvelope(
            f"an event over {MAX_BESIDE_AUDIO_CHARS} characters must be an append whose audio is most of it: "
            "send other events smaller (this one was not read)",
            "event_too_large",
        )
    try:
        event = json.loads(text)
        kind = event["type"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return BadEnvelope("each message must be a JSON event with a `type`", "invalid_event")
    event_id = event.get("event_id")
    if event_id is not None and (not isinstance(event_id, str) or len(event_id) > MAX_EVENT_ID_CHARS):
        return BadEnvelope(
            f"event_id must be a string of at most {MAX_EVENT_ID_CHARS} characters (this event was not used)",
            "invalid_value",
            "event_id",
        )
    return Envelope(kind, event_id, event)


def wire_event(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, "event_id": f"event_{uuid.uuid4().hex[:20]}", **fields})


def error_event(
    message: str, kind: str, code: str, *, event_id: str | None = None, param: str | None = None, **extra: Any
) -> str:
    """An ``error`` event; ``param``: the field at fault, as the client wrote it (only where known)."""
    error: dict[str, Any] = {"message": message, "type": kind, "code": code, "event_id": event_id}
    if param is not None:
        error["param"] = param
    return wire_event("error", error=error, **extra)


#: the service's field names (``ServiceError.field``) as a realtime ``session.update`` spells them
SESSION_PARAMS = {"conversation": "session.x_conversation"}


def service_error_event(e: ServiceError, **extra: Any) -> str:
    """An ``error`` event for one of our errors (a ``ParamError``'s ``param`` with it, or the
    session's spelling of the field a core's check names)."""
    if isinstance(e, ParamError):
        extra["param"] = e.param
    elif e.field in SESSION_PARAMS:
        extra["param"] = SESSION_PARAMS[e.field]
    return coded_error_event(e.code, e.message, e, **extra)


def coded_error_event(ours: ErrorCode, message: str, e: ServiceError | None = None, **extra: Any) -> str:
    """An ``error`` event for one of our codes: a shutdown says so, a named limit or a tenant's
    spent budget gives its name as the code, and a retry hint is ``x_retry_after_ms``."""
    kind, code = error_type(ours)
    if e is None:
        pass
    elif isinstance(e, ShuttingDown):
        code = "server_shutting_down"
    elif e.reason is not None:  # a limit that ends a session, or a tenant's spent audio budget
        code = e.reason
    if e is not None and e.retry_after_ms is not None:
        extra["x_retry_after_ms"] = e.retry_after_ms
    return error_event(message, kind, code, **extra)


SHOWN_TYPE_CHARS = 64


def shown_type(kind: Any) -> str:
    """A client's event ``type`` for an error message: at most ``SHOWN_TYPE_CHARS`` of it."""
    if not isinstance(kind, str):
        return "(not a string)"
    return repr(kind[:SHOWN_TYPE_CHARS]) + ("..." if len(kind) > SHOWN_TYPE_CHARS else "")
