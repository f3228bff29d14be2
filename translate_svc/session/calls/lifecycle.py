"""One session's lifecycle events, for every door: ``session.started`` once it is
admitted and configured, exactly one ``session.ended`` however it ends, and ``quota.exceeded``.

Every door's calls pass through two seams, and both hold a ``SessionRecord``: the stream core
(``driver.StreamDriver``: gRPC and Riva streams, OpenAI realtime and transcription over WebSocket
and WebRTC, phone calls, room speakers) and the unary calls' accounting (``accounting.accounted``:
Translate, TranslateChunked, TranslateText, Riva's unary calls, the REST audio endpoints). The
usage a record carries is added where the tenant counters on ``/metrics`` are (``account_result``,
``account_audio``, ``account_text_in``), so both say the same. A session whose process dies before
it ends is ended by another process from its last checkpoint (``webhooks/outbox.py``). Event loop
only.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from translate_svc.errors import LimitReached, ServiceError, ShuttingDown
from translate_svc.observability import metrics
from translate_svc.observability.access import CallInfo
from translate_svc.types import SegmentResult
from translate_svc.webhooks.events import (
    QUOTA_EXCEEDED,
    SESSION_ENDED,
    SESSION_STARTED,
    Event,
    EventSink,
    Usage,
    iso,
)

#: the reason of a tenant's spent audio budget (``tenants.budget.QuotaRefused``, ``QuotaSpent``)
QUOTA_REASON = "quota"


def ending_of(code: str, cause: BaseException | None) -> tuple[str, str]:
    """(ending, reason) of a session that ended with ``code`` because of ``cause`` (its error, or the
    limit that ended it): completed, cancelled, drain, quota, limit, error."""
    if isinstance(cause, ServiceError) and cause.reason == QUOTA_REASON:
        return "quota", QUOTA_REASON
    if isinstance(cause, ShuttingDown):
        return "drain", cause.reason or "draining"
    if isinstance(cause, LimitReached):
        return ("error" if cause.reason == "engine_failed" else "limit"), cause.reason or code.lower()
    if code == "OK":
        return "completed", "ok"
    if code == "CANCELLED":
        return "cancelled", "client"
    return "error", code.lower()


def quota_exceeded(sink: EventSink, tenant: str, call: CallInfo | None, error: ServiceError) -> None:
    """``quota.exceeded`` when ``error`` is a tenant's spent audio budget (a refusal or an end)."""
    if error.reason != QUOTA_REASON:
        return
    data = {
        "tenant": tenant,
        "door": call.method if call is not None else "internal",
        "request_id": call.request_id if call is not None else "",
        "retry_after_ms": getattr(error, "retry_after_ms", None),
        "message": str(error),
    }
    sink.emit(Event(QUOTA_EXCEEDED, tenant, data))


class SessionRecord:
    """One session's events and usage. ``start`` once the session is configured (before it, a
    refused call is no session); ``end`` as it ends (``session.ended`` only if it started, and
    only the first time)."""

    def __init__(self, sink: EventSink, tenant: str, call: CallInfo | None) -> None:
        self._sink = sink
        self.tenant = tenant
        self.call = call
        self.usage = Usage()
        self._session_id = ""
        self._started_at = 0.0
        self._languages: dict[str, Any] = {}
        self._state = "new"  # new -> started -> ended

    @property
    def session_id(self) -> str:
        return self._session_id

    def start(self, session_id: str | None, source_language: str | None, target_languages: Sequence[str]) -> None:
        if self._state != "new":
            return
        self._state = "started"
        self._session_id = session_id or uuid.uuid4().hex
        self._started_at = time.time()
        self._languages = {"source_language": source_language, "target_languages": list(target_languages)}
        event = Event(SESSION_STARTED, self.tenant, self._base(), session_id=self._session_id)
        self._sink.session_started(event, self)

    def _base(self) -> dict[str, Any]:
        call = self.call
        return {
            "session_id": self._session_id,
            "request_id": call.request_id if call is not None else "",
            "door": call.method if call is not None else "internal",
            "tenant": self.tenant,
            **self._languages,
            "started_at": iso(self._started_at),
        }

    def ended_data(self, ending: str, reason: str, code: str) -> dict[str, Any]:
        now = time.time()
        return {
            **self._base(),
            "ended_at": iso(now),
            "duration_s": round(now - self._started_at, 3),
            "ending": ending,
            "reason": reason,
            "code": code,
            "usage": self.usage.as_dict(),
        }

    def end(self, code: str, cause: BaseException | None = None) -> None:
        """The session's ``session.ended`` (once, if it started), and ``quota.exceeded`` when the
        tenant's budget ended or refused it."""
        if self._state == "ended":
            return
        started, self._state = self._state == "started", "ended"
        if started:
            ending, reason = ending_of(code, cause)
            data = self.ended_data(ending, reason, code)
            self._sink.session_ended(Event(SESSION_ENDED, self.tenant, data, session_id=self._session_id))
        if isinstance(cause, ServiceError):
            quota_exceeded(self._sink, self.tenant, self.call, cause)

    # -- usage: each counted where the tenant's counter on /metrics is, with the same value

    def account_result(self, result: SegmentResult) -> None:
        metrics.observe_segment(result, self.tenant)
        self.usage.add_result(result)

    def account_audio(self, seconds: float) -> None:
        metrics.tenant_audio(self.tenant, seconds)
        self.usage.audio_in_s += seconds

    def account_text_in(self, chars: int) -> None:
        metrics.tenant_text_in(self.tenant, chars)
        self.usage.text_in_chars += chars
