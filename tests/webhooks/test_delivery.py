"""Webhook deliveries from a real server to a real receiver on loopback (issue 61), every delivery
verified with the Standard Webhooks reference library (``tests/support/webhook_receiver.py``):

- a receiver that is down, then back, gets every event; and events queued before the server
  stopped (the receiver still down) are delivered after the next start, from the queue on disk;
- a receiver that never answers costs a bounded amount: at most ``max_in_flight`` requests held,
  at most ``max_queued`` deliveries on disk (the rest dropped and counted), and the calls are
  not delayed;
- a tampered body or a replayed delivery (its timestamp too old) fails verification; during a
  secret's rotation both the old and the new secret verify every delivery.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import standardwebhooks.webhooks as swh
from prometheus_client import REGISTRY

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.webhook_receiver import Receiver, new_secret, receiving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.settings import WebhookEndpoint, WebhookSettings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(40)]


def settings_for(model_dir: Path, data_dir: Path, endpoints: list[WebhookEndpoint], **hooks: Any) -> Any:
    settings = make_settings(model_dir)
    settings.model.test_translator = "stable"
    settings.webhooks = WebhookSettings(
        endpoints=endpoints, data_dir=data_dir, first_backoff_s=0.2, max_backoff_s=1.0, allow_http=True, **hooks
    )
    return settings


async def texts(live: LiveServer, n: int) -> list[float]:
    """``n`` TranslateText calls at once (each a session: started and ended), and how long each took."""

    async def one() -> float:
        t0 = time.monotonic()
        req = pb.TranslateTextRequest(
            texts=["the meeting starts at nine"], source_language="eng", target_languages=["spa"]
        )
        await live.stub.TranslateText(req, timeout=60)
        return time.monotonic() - t0

    return list(await asyncio.gather(*(one() for _ in range(n))))


def queue_full() -> float:
    """Deliveries dropped at a full queue so far, every tenant's."""
    return sum(
        s.value
        for m in REGISTRY.collect()
        if m.name == "translate_svc_webhook_dropped"
        for s in m.samples
        if s.name.endswith("_total") and s.labels.get("reason") == "queue_full"
    )


def ids(receiver: Receiver, type_: str = "session.ended") -> set[str]:
    return {e["data"]["session_id"] for e in receiver.events(type_)}


@pytest_asyncio.fixture(loop_scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving(new_secret()) as r:
        yield r


async def test_a_receiver_down_then_back_gets_every_event_and_a_restart_keeps_the_queue(
    test_model_dir: Path, tmp_path: Path, receiver: Receiver
) -> None:
    endpoint = WebhookEndpoint(url=receiver.url, secret=receiver.secrets[0])
    settings = settings_for(test_model_dir, tmp_path / "data", [endpoint])
    await receiver.stop()  # down: connections refused
    async with serving(settings) as live:
        await texts(live, 3)
        await asyncio.sleep(1.0)  # a few attempts fail meanwhile
        assert receiver.accepted == []
        await receiver.start()  # back, on the same port
        await receiver.wait_for(lambda r: len(r.events("session.ended")) == 3)
        await receiver.wait_for(lambda r: len(r.events("session.started")) == 3)
        before_stop = ids(receiver)
        await receiver.stop()  # down again; these wait on disk while the server stops
        await texts(live, 2)
    await receiver.start()
    async with serving(settings):  # events arrive in no set order: wait for both kinds
        await receiver.wait_for(lambda r: len(r.events("session.ended")) == len(r.events("session.started")) == 5)
    after = ids(receiver)
    assert before_stop < after and len(after) == 5
    assert len(receiver.events("session.started")) == 5
    assert receiver.refused == []


async def test_a_receiver_that_never_answers_holds_at_most_max_in_flight_and_max_queued(
    test_model_dir: Path, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.mode = "hold"
    endpoint = WebhookEndpoint(url=receiver.url, secret=receiver.secrets[0])
    settings = settings_for(test_model_dir, tmp_path / "data", [endpoint], max_in_flight=2, max_queued=10, timeout_s=2)
    dropped0 = queue_full()
    async with serving(settings) as live:
        took = []
        for _ in range(3):  # 4 at once: limits.max_translate_calls
            took += await texts(live, 4)
        outbox = live.server.app.outbox
        assert outbox is not None
        await receiver.wait_for(lambda r: r.holding == 2)
        await asyncio.sleep(3.0)  # the held ones time out and are retried: still at most 2 at once
        assert receiver.most_held == 2
        assert len(outbox._sends) <= 2
        assert outbox.store.queued <= 10
        queued = REGISTRY.get_sample_value("translate_svc_webhook_queued")
        assert queued is not None and queued <= 10
    assert queue_full() - dropped0 == 12 * 2 - 10  # 24 events (started and ended of 12 calls), 10 kept
    assert max(took) < 10, took  # no call waited for the receiver


async def test_a_tampered_or_replayed_delivery_fails_and_both_secrets_of_a_rotation_verify(
    test_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = new_secret(), new_secret()
    async with receiving(old, new) as both, receiving(new) as only_new:
        endpoints = [
            WebhookEndpoint(url=both.url, secret=new, secrets=[old]),
            WebhookEndpoint(url=only_new.url, secret=new, secrets=[old], events=["session.ended"]),
        ]
        async with serving(settings_for(test_model_dir, tmp_path / "data", endpoints)) as live:
            await texts(live, 1)
            await both.wait_for(lambda r: len(r.events()) == 2)
            await only_new.wait_for(lambda r: len(r.events()) == 1)
        assert both.refused == [] and only_new.refused == []
        assert [e["type"] for e in only_new.events()] == ["session.ended"]  # its event filter
    d = both.accepted[-1]
    hook = swh.Webhook(old)
    hook.verify(d.body, d.headers)  # as sent: valid
    with pytest.raises(swh.WebhookVerificationError):
        hook.verify(d.body.replace(b'"ended_at"', b'"ended_At"'), d.headers)
    with pytest.raises(swh.WebhookVerificationError):  # the same bytes with a fresh timestamp
        hook.verify(d.body, {**d.headers, "webhook-timestamp": str(int(time.time()) + 60)})

    class Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) + timedelta(minutes=6)

    monkeypatch.setattr(swh, "datetime", Later)
    with pytest.raises(swh.WebhookVerificationError, match="too old"):  # replayed 6 minutes later
        hook.verify(d.body, d.headers)
