"""The webhooks' metrics (``webhooks/outbox.py``): what waits, what is in flight, how
deliveries went and what was dropped. Process-global collectors; thread-safe."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

QUEUED = Gauge(
    "translate_svc_webhook_queued",
    "webhook deliveries waiting on disk (every endpoint; bounded by webhooks.max_queued)",
    multiprocess_mode="max",
)
IN_FLIGHT = Gauge(
    "translate_svc_webhook_in_flight",
    "webhook requests sent and not answered yet (bounded by webhooks.max_in_flight per endpoint)",
    multiprocess_mode="livesum",
)
ATTEMPTS = Counter(
    "translate_svc_webhook_attempts_total",
    "webhook delivery attempts by outcome: delivered (2xx), failed (retried later), expired (given up "
    "after webhooks.retry_for_s)",
    ["outcome"],
)
DROPPED = Counter(
    "translate_svc_webhook_dropped_total",
    "webhook deliveries dropped, by reason and by the tenant whose event it was: queue_full (webhooks.max_queued: "
    "the oldest of the tenant with the most waiting made room), store_behind (the disk is behind), store_error, "
    "not_started",
    ["reason", "tenant"],
)


def queued(n: int) -> None:
    QUEUED.set(n)


def in_flight(delta: int) -> None:
    IN_FLIGHT.inc(delta)


def attempt(outcome: str) -> None:
    ATTEMPTS.labels(outcome).inc()


def dropped(reason: str, tenant: str, n: int = 1) -> None:
    DROPPED.labels(reason, tenant).inc(n)
