"""How the OpenAI-compatible door names a refusal: a limit or cap with a name gives its name as the
error code, whether it ends a live session or refuses one as it opens (issue 32)."""

from __future__ import annotations

import json

import pytest

from translate_svc.errors import ErrorCode, Overloaded
from translate_svc.session.tenants.budget import QuotaRefused, QuotaSpent
from translate_svc.session.tenants.tenant import Tenant, TenantCaps
from translate_svc.transport.openai.wire import service_error_event

pytestmark = pytest.mark.unit

Z = Tenant("z", TenantCaps(audio_seconds_per_minute=3))


def test_a_spent_audio_budget_is_quota_when_a_session_opens_as_when_it_ends_one() -> None:
    for error in (QuotaRefused(Z, 1500), QuotaSpent(Z, 1500)):
        event = json.loads(service_error_event(error))
        assert error.code is ErrorCode.RESOURCE_EXHAUSTED
        assert (event["error"]["type"], event["error"]["code"]) == ("server_error", "quota"), event
        assert event["x_retry_after_ms"] == 1500 and "'z'" in event["error"]["message"]


def test_a_full_server_is_server_overloaded() -> None:
    event = json.loads(service_error_event(Overloaded("the server is at capacity", retry_after_ms=1000)))
    assert event["error"]["code"] == "server_overloaded" and event["x_retry_after_ms"] == 1000
