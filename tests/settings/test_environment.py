"""The settings read from the environment as they always have (issue 71 split ``settings.py`` into a
package, a module a section, and ``LimitsSettings`` into a group per door): a sample of environment
names, one or more of every section and of every group of ``limits``, land in the same fields, and
``limits`` stays one flat section (``limits.<field>``, ``TRANSLATE_SVC_LIMITS__<FIELD>``)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from translate_svc.settings import LimitsSettings, Settings

pytestmark = pytest.mark.unit

#: environment name -> (dotted field, its value once read)
SAMPLE: dict[str, tuple[str, Any]] = {
    "TRANSLATE_SVC_MODEL__PATH": ("model.path", Path("/models/seamless")),
    "TRANSLATE_SVC_MODEL__WARMUP_LENGTHS_S": ("model.warmup_lengths_s", [1.0, 3.5]),
    "TRANSLATE_SVC_VAD__MIN_SILENCE_MS": ("vad.min_silence_ms", 640),
    "TRANSLATE_SVC_ENGINE__MAX_BATCH_SIZE": ("engine.max_batch_size", 32),
    # limits, a field of each group
    "TRANSLATE_SVC_LIMITS__MAX_TARGET_LANGUAGES": ("limits.max_target_languages", 7),
    "TRANSLATE_SVC_LIMITS__MAX_STREAMS": ("limits.max_streams", 9),
    "TRANSLATE_SVC_LIMITS__DEMO_EAR_STREAMS": ("limits.demo_ear_streams", 2),
    "TRANSLATE_SVC_LIMITS__SIMULTANEOUS_MIN_CHUNK_MS": ("limits.simultaneous_min_chunk_ms", 300),
    "TRANSLATE_SVC_LIMITS__MAX_TRANSLATE_CALLS": ("limits.max_translate_calls", 3),
    "TRANSLATE_SVC_LIMITS__MAX_UNARY_CALLS_PER_TENANT": ("limits.max_unary_calls_per_tenant", 5),
    "TRANSLATE_SVC_LIMITS__MAX_CALLS_PER_CONNECTION": ("limits.max_calls_per_connection", 100),
    "TRANSLATE_SVC_LIMITS__STREAM_WINDOW_BYTES": ("limits.stream_window_bytes", 65536),
    "TRANSLATE_SVC_LIMITS__HTTP_MAX_CONNECTIONS": ("limits.http_max_connections", 77),
    "TRANSLATE_SVC_LIMITS__HTTP_ALLOWED_ORIGINS": ("limits.http_allowed_origins", ["https://app.example.com"]),
    "TRANSLATE_SVC_LIMITS__WS_SEND_BUFFER_BYTES": ("limits.ws_send_buffer_bytes", 8192),
    "TRANSLATE_SVC_LIMITS__WEBRTC_CANDIDATE_NETWORKS": (
        "limits.webrtc_candidate_networks",
        [ipaddress.ip_network("10.0.0.0/8")],
    ),
    "TRANSLATE_SVC_LIMITS__WEBRTC_STUN_SERVER": ("limits.webrtc_stun_server", "stun:stun.example.com:3478"),
    "TRANSLATE_SVC_SERVER__PORT": ("server.port", 50052),
    "TRANSLATE_SVC_SERVER__WORKERS": ("server.workers", "auto"),
    "TRANSLATE_SVC_AUTH__CLIENT_SECRET_TTL_S": ("auth.client_secret_ttl_s", 120),
    "TRANSLATE_SVC_PHONE__AUDIOSOCKET_TENANT": ("phone.audiosocket_tenant", "pbx"),
    "TRANSLATE_SVC_PHONE__ORIGINAL_VOICE": ("phone.original_voice", "removed"),
    "TRANSLATE_SVC_SIP__DTMF_TARGETS": ("sip.dtmf_targets", {"1": "spa", "2": "fra"}),
    "TRANSLATE_SVC_SIP__RTP_PORTS": ("sip.rtp_ports", (20000, 20100)),
    "TRANSLATE_SVC_ROOMS__BACKLOG_S": ("rooms.backlog_s", 12.5),
    "TRANSLATE_SVC_CLUSTER__ON_REDIS_LOSS": ("cluster.on_redis_loss", "refuse"),
    "TRANSLATE_SVC_RECORDINGS__SWEEP_INTERVAL_S": ("recordings.sweep_interval_s", 60.0),
    "TRANSLATE_SVC_MCP__FETCH_HOSTS": ("mcp.fetch_hosts", ["media.example.com"]),
    "TRANSLATE_SVC_WEBHOOKS__MAX_QUEUED": ("webhooks.max_queued", 500),
    "TRANSLATE_SVC_LOG_FORMAT": ("log_format", "json"),
    "TRANSLATE_SVC_BLAS_THREADS": ("blas_threads", 2),
}
#: what the environment holds for each (JSON for lists, tuples and maps, as pydantic-settings reads them)
RAW = {
    "TRANSLATE_SVC_MODEL__WARMUP_LENGTHS_S": "[1.0, 3.5]",
    "TRANSLATE_SVC_LIMITS__HTTP_ALLOWED_ORIGINS": '["https://app.example.com"]',
    "TRANSLATE_SVC_LIMITS__WEBRTC_CANDIDATE_NETWORKS": '["10.0.0.0/8"]',
    "TRANSLATE_SVC_SIP__DTMF_TARGETS": '{"1": "spa", "2": "fra"}',
    "TRANSLATE_SVC_SIP__RTP_PORTS": "[20000, 20100]",
    "TRANSLATE_SVC_MCP__FETCH_HOSTS": '["media.example.com"]',
}


def field(settings: object, dotted: str) -> Any:
    for part in dotted.split("."):
        settings = getattr(settings, part)
    return settings


def test_a_sample_of_environment_names_land_in_their_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, (_, value) in SAMPLE.items():
        monkeypatch.setenv(name, RAW.get(name, str(value)))
    settings = Settings()
    got = {name: field(settings, dotted) for name, (dotted, _) in SAMPLE.items()}
    assert got == {name: value for name, (_, value) in SAMPLE.items()}


def test_the_sample_is_not_the_defaults() -> None:
    """Each sampled value differs from its default: reading it proves the name was read."""
    defaults = Settings()
    assert [name for name, (dotted, value) in SAMPLE.items() if field(defaults, dotted) == value] == []


def test_limits_is_one_flat_section_of_every_group() -> None:
    """Grouped by door in the code, ``limits`` is read as before: every field a plain value on the
    section (no nested group, so no ``LIMITS__<GROUP>__`` name), every group's fields on it."""
    fields = LimitsSettings.model_fields
    nested = [n for n, f in fields.items() if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)]
    assert nested == []
    groups = [base for base in LimitsSettings.__mro__[1:] if base.__module__ == LimitsSettings.__module__]
    assert len(groups) >= 5 and set().union(*(b.model_fields for b in groups)) == set(fields)  # type: ignore[attr-defined]
    assert Settings().model_dump()["limits"].keys() == fields.keys()
    # 2 for held HTTP requests, 4 for the ear (EarLimits), 8 for the pools of work a caller sizes
    # (WorkLimits: threads and per-tenant calls of result encoding, large messages, part writes,
    # file reads), 2 for a conversation's turns (StreamLimits), 4 for detection (UnaryLimits: its
    # longest clip, processes, processes per tenant, memory)
    assert len(fields) == 74
