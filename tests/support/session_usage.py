"""A session's usage as its webhook tells it, against the server's own tenant counters on ``/metrics``
(issue 61): the counters read over HTTP, and every field of ``session.ended``'s ``usage`` checked
against how much they grew over the session."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.live_server import LiveServer


def tenant_counters(live: LiveServer, tenant: str) -> dict[str, float]:
    """The tenant's usage counters on /metrics, read over HTTP."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{live.server.metrics_port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.labels.get("tenant") != tenant or not s.name.endswith("_total"):
                continue
            if s.name == "translate_svc_tenant_segments_total":
                out[f"segments.{s.labels['status']}"] = s.value
            elif s.name == "translate_svc_tenant_text_characters_total":
                out[f"chars.{s.labels['direction']}"] = s.value
            elif s.name in ("translate_svc_tenant_audio_seconds_total", "translate_svc_tenant_speech_seconds_total"):
                out[s.name] = s.value
    return out


def grown(before: dict[str, float], after: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


def check_usage(
    name: str, usage: dict[str, Any], before: dict[str, float], after: dict[str, float], *, audio: bool = True
) -> None:
    """``usage`` equals what the counters grew by from ``before`` to ``after`` (``audio``: the
    session took audio in, so some was counted)."""
    assert usage["segments_total"] >= 1, (name, usage)
    assert usage["audio_in_s"] == pytest.approx(grown(before, after, "translate_svc_tenant_audio_seconds_total")), name
    if audio:
        assert usage["audio_in_s"] > 0, name
    speech = grown(before, after, "translate_svc_tenant_speech_seconds_total")
    assert usage["speech_out_s_total"] == pytest.approx(speech), name
    assert sum(usage["speech_out_s"].values()) == pytest.approx(speech), name
    statuses = {k.split(".", 1)[1] for k in after if k.startswith("segments.")}
    assert usage["segments"] == {
        s: grown(before, after, f"segments.{s}") for s in statuses if grown(before, after, f"segments.{s}")
    }, name
    assert sum(usage["text_out_chars"].values()) == grown(before, after, "chars.out"), name
    assert usage["text_in_chars"] == grown(before, after, "chars.in"), name
