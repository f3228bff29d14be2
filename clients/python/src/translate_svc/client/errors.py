"""Exceptions the SDK raises (call-level failures; per-segment failures are ``Segment.error``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from translate_svc.client.room_types import ListenEnd
    from translate_svc.client.types import StreamEnd


class TranslateError(Exception):
    """A call failed with a gRPC status: ``code`` and the server's ``message`` (which says what to fix).

    ``retry_delay_s`` is the server's ``google.rpc.RetryInfo`` hint, when it sent one; ``address``
    is the target of the failed attempt; ``request_id`` is the ``x-request-id`` the SDK sent with
    the call (one per call or stream, kept across its retries and resumes): the server's access
    log has a line with it.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        retry_delay_s: float | None = None,
        address: str | None = None,
        attempts: int = 1,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}" + (f" [request_id {request_id}]" if request_id else ""))
        self.code = code
        self.message = message
        self.retry_delay_s = retry_delay_s
        self.address = address
        self.attempts = attempts
        self.request_id = request_id


class StreamResumeError(TranslateError):
    """A stream was lost and could not be continued on any server (``max_resumes`` or
    ``max_attempts`` used up); ``__cause__`` is the last failure. Results delivered before it stand;
    audio from ``resume_offset_ms`` on was not translated."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        resume_offset_ms: int,
        attempts: int,
        request_id: str | None = None,
    ) -> None:
        super().__init__(code, message, attempts=attempts, request_id=request_id)
        self.resume_offset_ms = resume_offset_ms


class StreamEndedError(TranslateError):
    """The server ended a stream other than cleanly: its tenant's audio budget was spent
    (``QUOTA``, RESOURCE_EXHAUSTED with ``retry_delay_s``), its token was revoked (``REVOKED``,
    UNAUTHENTICATED), a message could not be used (``ERROR``, e.g. INVALID_ARGUMENT), it was idle
    too long (``IDLE_TIMEOUT``) or too long (``MAX_STREAM_DURATION``, both OUT_OF_RANGE).

    The open speech was translated first: the iteration yields every result and then the
    ``StreamEnd`` (``end``: reason, status, totals), and raises this on its next step; ``send``
    and ``flush`` raise it from the moment the SDK has read the end. ``reason``, ``code``,
    ``message`` (the server's, which says what to do) and ``request_id`` are ``end``'s.
    Never raised for a drain or a dead model worker: the SDK resumes those elsewhere.
    """

    def __init__(self, end: StreamEnd, *, retry_delay_s: float | None = None, address: str | None = None) -> None:
        super().__init__(end.code, end.message, retry_delay_s=retry_delay_s, address=address, request_id=end.request_id)
        self.end = end
        self.reason = end.reason
        rid = f" [request_id {end.request_id}]" if end.request_id else ""
        self.args = (f"the stream ended: {end.reason.value} ({end.code.name}): {end.message}{rid}",)


class ListenEndedError(TranslateError):
    """The server ended a listen and the SDK did not continue it elsewhere: its token was revoked
    (``REVOKED``, UNAUTHENTICATED), or another status; with ``listen(resume=False)`` also a drain
    (``DRAINING``, UNAVAILABLE), a lost connection (``LOST``) and the longest listen
    (``MAX_LISTEN_DURATION``, OUT_OF_RANGE). The iteration yields the ``ListenEnd`` (``end``) first,
    then raises this; ``reason``, ``code``, ``message`` (the server's, which says what to do) and
    ``request_id`` are ``end``'s."""

    def __init__(self, end: ListenEnd, *, retry_delay_s: float | None = None) -> None:
        super().__init__(
            end.code, end.message, retry_delay_s=retry_delay_s, address=end.address, request_id=end.request_id
        )
        self.end = end
        self.reason = end.reason
        rid = f" [request_id {end.request_id}]" if end.request_id else ""
        self.args = (f"the listen ended: {end.reason.value} ({end.code.name}): {end.message}{rid}",)


class StreamClosedError(RuntimeError):
    """``send``/``flush`` after ``close()``, after the stream ended cleanly, or after it failed
    (a ``StreamEndedError`` is raised as itself)."""
