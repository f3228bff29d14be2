"""One unary call's accounting, for every unary call of every door (``ClipDriver``, ``TextDriver``):
the tenant's call counter, the call's access line and its session events (``lifecycle.py``:
``session.ended`` once the call's driver started it), written however the call ends."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from translate_svc.errors import ServiceError
from translate_svc.observability import access, metrics
from translate_svc.observability.access import CallInfo
from translate_svc.session.calls.lifecycle import SessionRecord
from translate_svc.session.tenants.tenant import Tenant
from translate_svc.types import SegmentResult
from translate_svc.webhooks.events import NO_EVENTS, EventSink


@dataclass
class CallOutcome:
    """What the call's access line says, filled in as the call goes."""

    config: dict[str, Any] = field(default_factory=dict)
    results: list[SegmentResult] = field(default_factory=list)
    audio_s: float = 0.0
    #: the call's session events and usage: its driver starts it once the request is checked
    record: SessionRecord | None = None


@contextlib.contextmanager
def accounted(
    tenant: Tenant, call: CallInfo | None, method: str, events: EventSink = NO_EVENTS
) -> Iterator[CallOutcome]:
    """Count the call for ``tenant`` under ``method`` and log its access line when it ends, with its
    code: OK, the ServiceError's, INTERNAL for anything else, CANCELLED when the call went away;
    its session's events go to ``events``."""
    outcome = CallOutcome(record=SessionRecord(events, tenant.name, call))
    code = "CANCELLED"
    cause: BaseException | None = None
    try:
        yield outcome
        code = "OK"
    except ServiceError as e:
        code, cause = e.code.value, e
        raise
    except Exception as e:
        code, cause = "INTERNAL", e
        raise
    finally:
        metrics.tenant_call(tenant.name, method, code)
        if outcome.record is not None:
            outcome.record.end(code, cause)
        if call is not None:
            results = Counter("OK" if r.error is None else r.error.code for r in outcome.results)
            access.log_call(
                call, code=code, tenant=tenant.name, config=outcome.config, audio_s=outcome.audio_s, segments=results
            )
