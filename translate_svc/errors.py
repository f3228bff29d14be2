"""Transport-neutral errors. ``transport/`` alone maps them to gRPC status codes."""

from __future__ import annotations

import errno
from enum import Enum


class ErrorCode(str, Enum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    ABORTED = "ABORTED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


class ServiceError(Exception):
    """Base error: a code, and a message that tells the caller what to fix."""

    code: ErrorCode = ErrorCode.INTERNAL
    #: which limit or cap it is, where one is named ("idle_timeout", "quota", ...): doors that
    #: name limits (the OpenAI door's error codes) use it
    reason: str | None = None
    #: the request field at fault, in the service's own names (``"conversation"``), where one
    #: check owns the field: a door that spells it otherwise names its own (OpenAI's ``param``)
    field: str | None = None

    def __init__(self, message: str, *, retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_ms = retry_after_ms


class InvalidInput(ServiceError):
    code = ErrorCode.INVALID_ARGUMENT


class Unauthenticated(ServiceError):
    code = ErrorCode.UNAUTHENTICATED


class PermissionDenied(ServiceError):
    """A known caller without the right the request needs (a room its token does not cover)."""

    code = ErrorCode.PERMISSION_DENIED


class NotFound(ServiceError):
    """What the request names is not there for its caller (another tenant's is not found either)."""

    code = ErrorCode.NOT_FOUND


class AlreadyExists(ServiceError):
    code = ErrorCode.ALREADY_EXISTS


class Conflict(ServiceError):
    """A change made against a revision that is no longer the current one (ABORTED: read, retry)."""

    code = ErrorCode.ABORTED


class Overloaded(ServiceError):
    code = ErrorCode.RESOURCE_EXHAUSTED


class StorageFull(ServiceError):
    """The server's disk (or its quota, or its file size limit) refused a write of what the request
    sent (ENOSPC, EDQUOT, EFBIG: ``FULL_DISK``): nothing of it was kept, and the request may be sent
    again once space is freed, here or on another server. HTTP 507 Insufficient Storage; gRPC
    RESOURCE_EXHAUSTED."""

    code = ErrorCode.RESOURCE_EXHAUSTED
    reason = "insufficient_storage"


#: the errnos of a write refused for space: a full disk, a quota, a file size limit
FULL_DISK = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def storage_full(e: OSError, what: str) -> StorageFull | None:
    """``e`` as the refusal of ``what`` (``"this part"``) when it is a write refused for space
    (``FULL_DISK``); None for any other error (a bug, or a file gone: the caller's to judge)."""
    if e.errno not in FULL_DISK:
        return None
    return StorageFull(f"the server's disk is full: {what} was not kept; send it again later, or to another server")


class TooSlow(ServiceError):
    """A call's request did not arrive within its deadline, counted from the call's start: it held
    a call slot meanwhile (``limits.request_read_timeout_s``)."""

    code = ErrorCode.DEADLINE_EXCEEDED


class LimitReached(ServiceError):
    """A stream reached one of its published limits (idle time, duration): it is closed after its
    open speech is translated and every result is sent."""

    code = ErrorCode.OUT_OF_RANGE

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        #: which limit: "idle_timeout", "max_stream_duration", "draining", "revoked", "quota", "engine_failed"
        self.reason = reason


class Revoked(LimitReached):
    """The stream's token was removed from the tokens file: the stream was closed after its open
    speech was translated and every result sent."""

    code = ErrorCode.UNAUTHENTICATED

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "the token of this stream was revoked (removed from the server's tokens file): the stream "
            "was closed after its open speech was translated; connect again with a current token",
            reason="revoked",
        )


class ShuttingDown(LimitReached):
    """The server shut down while the stream was live: its open speech was translated and every
    result sent; the client resumes on another server (``StreamEnd.resume_offset_ms``)."""

    code = ErrorCode.UNAVAILABLE

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="draining")


class EngineFailed(LimitReached):
    """The model worker died (the in-process model thread, or the engine process) under a live
    stream: its open speech and the segments waiting for the model came back with status
    UNAVAILABLE and their spans, then the stream ended; the client resumes on another server."""

    code = ErrorCode.UNAVAILABLE

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="engine_failed")


class NotInstalled(ServiceError):
    """A feature that needs something this server lacks (the language identifier's weights)."""

    code = ErrorCode.FAILED_PRECONDITION


class NotReady(ServiceError):
    code = ErrorCode.UNAVAILABLE


def shown(value: object, limit: int = 24) -> str:
    """A client-supplied value for an error message: repr'd and cut to ``limit`` characters, so a
    status never echoes unbounded client text (it must fit the client's metadata limit)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


class ModelNotFound(Exception):
    """Raised at start-up when the model directory is missing or incomplete."""
