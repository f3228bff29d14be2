"""OpenAI's wire format for the realtime door: events as JSON text, errors in OpenAI's shape, and our
error codes as OpenAI's ``type`` and ``code``. Pure (no socket, no web framework): the protocol
(``protocol.py``) renders with it, and so do the loop and the door for what they send themselves
(an error that ends a session, an HTTP refusal's body)."""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from translate_svc.errors import ErrorCode, InvalidInput, ServiceError, ShuttingDown
from translate_svc.session.events import StreamRequest


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


#: our error codes -> OpenAI's error ``type`` and ``code``
ERROR_TYPES: dict[ErrorCode, tuple[str, str]] = {
    ErrorCode.INVALID_ARGUMENT: ("invalid_request_error", "invalid_value"),
    ErrorCode.UNAUTHENTICATED: ("invalid_request_error", "invalid_api_key"),
    ErrorCode.PERMISSION_DENIED: ("invalid_request_error", "permission_denied"),
    ErrorCode.FAILED_PRECONDITION: ("invalid_request_error", "unsupported_feature"),
    ErrorCode.OUT_OF_RANGE: ("invalid_request_error", "limit_reached"),
    ErrorCode.RESOURCE_EXHAUSTED: ("server_error", "server_overloaded"),
    ErrorCode.UNAVAILABLE: ("server_error", "server_unavailable"),
    ErrorCode.INTERNAL: ("server_error", "internal_error"),
}


#: the most characters of a client event beside its ``"audio"`` string (an append's base64): no
#: other event needs more, and ``json.loads`` works through them value by value on the event loop
#: (4 MB of small values: 40 to 150 ms; an append of 4 MB: 3 to 15 ms; issue 52 F3)
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


def oversized(text: str) -> str | None:
    """The ``error`` event for a client event with more than ``MAX_BESIDE_AUDIO_CHARS`` beside its
    audio (it is not read); None for any other."""
    if len(text) <= MAX_BESIDE_AUDIO_CHARS or beside_audio(text) <= MAX_BESIDE_AUDIO_CHARS:
        return None
    return error_event(
        f"an event over {MAX_BESIDE_AUDIO_CHARS} characters must be an append whose audio is most of it: "
        "send other events smaller (this one was not read)",
        "invalid_request_error",
        "event_too_large",
    )


def error_type(code: ErrorCode) -> tuple[str, str]:
    """OpenAI's error ``type`` and ``code`` for one of ours."""
    return ERROR_TYPES.get(code, ("server_error", "internal_error"))


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


def service_error_event(e: ServiceError, **extra: Any) -> str:
    """An ``error`` event for one of our errors (a ``ParamError``'s ``param`` with it)."""
    if isinstance(e, ParamError):
        extra["param"] = e.param
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


def error_body(message: str, code: str, kind: str = "invalid_request_error", **extra: Any) -> dict[str, Any]:
    """An HTTP error response's JSON body, in OpenAI's shape."""
    return {"error": {"message": message, "type": kind, "code": code, "param": None, **extra}}


@dataclass(frozen=True)
class HttpRefusal:
    """A refused handshake as an HTTP answer: its status, JSON body and headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def admission_refusal(e: ServiceError) -> HttpRefusal:
    """A stream refused at the handshake (a WebSocket's or a WebRTC call's), as an HTTP status: 503
    while the server drains (Retry-After 1), 429 at a cap (with Retry-After where the error has a
    retry hint); the body is the error event the session would have sent."""
    kind, code = error_type(e.code)
    if e.code == ErrorCode.UNAVAILABLE:
        status, code = 503, "server_shutting_down"
    else:
        status, code = (429, e.reason or code) if e.code == ErrorCode.RESOURCE_EXHAUSTED else (500, code)
    headers = {}
    extra: dict[str, Any] = {}
    if e.retry_after_ms is not None:
        headers["Retry-After"] = str(max(1, math.ceil(e.retry_after_ms / 1000)))
        extra["x_retry_after_ms"] = e.retry_after_ms
    elif status == 503:  # draining: another replica takes it now
        headers["Retry-After"] = "1"
    return HttpRefusal(status, error_body(e.message, code, kind, **extra), headers)


SHOWN_TYPE_CHARS = 64


def shown_type(kind: Any) -> str:
    """A client's event ``type`` for an error message: at most ``SHOWN_TYPE_CHARS`` of it."""
    if not isinstance(kind, str):
        return "(not a string)"
    return repr(kind[:SHOWN_TYPE_CHARS]) + ("..." if len(kind) > SHOWN_TYPE_CHARS else "")
