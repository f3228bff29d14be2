"""The pure parts of the webhooks (issue 61): Standard Webhooks signatures as the scheme's own
library verifies them (every secret of a rotation), the retry backoff's bounds, how a session's end
is named, and ``recording.ready`` as the recordings emit it."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.webhook_receiver import new_secret
from translate_svc.errors import InvalidInput, LimitReached, ShuttingDown
from translate_svc.session.calls.lifecycle import ending_of
from translate_svc.session.tenants.budget import QuotaSpent
from translate_svc.session.tenants.tenant import Tenant, TenantCaps
from translate_svc.settings import WebhookEndpoint
from translate_svc.settings.webhooks import REVEAL
from translate_svc.webhooks import signing
from translate_svc.webhooks.events import RECORDING_READY, Event, LiveSession, recording_ready
from translate_svc.webhooks.outbox import backoff_s

pytestmark = pytest.mark.unit


def test_each_secret_of_a_rotation_verifies_and_a_changed_byte_does_not() -> None:
    old, new = new_secret(), new_secret()
    body = b'{"type":"session.ended","data":{}}'
    now = int(time.time())
    headers = signing.headers([signing.secret_key(new), signing.secret_key(old)], "msg_1", now, body)
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers) == {"type": "session.ended", "data": {}}
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body, {**headers, "webhook-id": "msg_2"})


def test_a_secret_unpadded_or_not_is_the_same_key_and_a_bad_one_is_refused() -> None:
    secret = new_secret()
    assert signing.secret_key(secret) == signing.secret_key(secret.rstrip("="))
    with pytest.raises(ValueError):
        signing.secret_key("whsec_not*base64")


def test_the_backoff_doubles_to_its_cap_with_half_of_it_random() -> None:
    for attempt, full in [(1, 5.0), (2, 10.0), (3, 20.0), (12, 3600.0)]:
        waits = [backoff_s(attempt, 5.0, 3600.0) for _ in range(200)]
        assert all(full / 2 <= w <= full for w in waits), (attempt, min(waits), max(waits))
        assert max(waits) - min(waits) > full / 10  # jittered


def test_how_a_session_ended_is_named() -> None:
    spent = QuotaSpent(Tenant("t", TenantCaps(audio_seconds_per_minute=1)), 500)
    assert ending_of("OK", None) == ("completed", "ok")
    assert ending_of("CANCELLED", None) == ("cancelled", "client")
    assert ending_of("RESOURCE_EXHAUSTED", spent) == ("quota", "quota")
    assert ending_of("UNAVAILABLE", ShuttingDown("bye")) == ("drain", "draining")
    assert ending_of("OUT_OF_RANGE", LimitReached("idle", reason="idle_timeout")) == ("limit", "idle_timeout")
    assert ending_of("INVALID_ARGUMENT", InvalidInput("x")) == ("error", "invalid_argument")


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def session_started(self, event: Event, live: LiveSession) -> None:
        raise AssertionError("not a session event")

    def session_ended(self, event: Event) -> None:
        raise AssertionError("not a session event")


def test_recording_ready_is_an_event_of_the_recordings_tenant() -> None:
    sink = Sink()
    files: dict[str, Any] = {"source.ogg": {"bytes": 10, "sha256": "ab" * 32}}
    recording_ready(
        sink, tenant="acme", session_id="s1", request_id="r1", recording_id="rec1", complete=True, files=files
    )
    (event,) = sink.events
    assert (event.type, event.tenant, event.session_id) == (RECORDING_READY, "acme", "s1")
    assert event.data["files"] == files and event.data["complete"] is True and event.id.startswith("msg_")


def test_a_base64url_secret_is_the_same_key_and_a_mixed_one_is_refused() -> None:
    key = bytes(range(250, 256)) * 4  # base64 of these has '+' and '/'
    standard = "whsec_" + base64.b64encode(key).decode()
    url_safe = "whsec_" + base64.urlsafe_b64encode(key).decode().rstrip("=")
    assert "/" in standard and "_" in url_safe
    assert signing.secret_key(url_safe) == signing.secret_key(standard) == key
    with pytest.raises(ValueError, match="mixes"):
        signing.secret_key(url_safe + "+/")


def test_a_secret_is_masked_in_every_dump_but_the_workers_settings() -> None:
    secret = new_secret()
    endpoint = WebhookEndpoint(url="https://h.example.com/x", secret=secret, secrets=[secret])
    assert secret not in repr(endpoint) and secret not in str(endpoint)
    assert secret not in endpoint.model_dump_json() and "**********" in endpoint.model_dump_json()
    assert json.loads(endpoint.model_dump_json(context=REVEAL))["secrets"] == [secret]
    assert WebhookEndpoint.model_validate_json(endpoint.model_dump_json(context=REVEAL)) == endpoint
