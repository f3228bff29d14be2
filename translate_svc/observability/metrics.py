"""Prometheus metrics. Process-global collectors (prometheus_client's own registry); thread-safe."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from translate_svc.engine.jobs import BatchStats
from translate_svc.types import SegmentResult

_MS = (10, 25, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000)

STREAMS_ACTIVE = Gauge("translate_svc_streams_active", "StreamingTranslate calls in progress")
SEGMENTS = Counter("translate_svc_segments_total", "segment results by status", ["status"])
SEGMENT_TOTAL_MS = Histogram("translate_svc_segment_latency_ms", "segment closed -> result ready (ms)", buckets=_MS)
QUEUE_MS = Histogram("translate_svc_queue_wait_ms", "segment wait for the model (ms)", buckets=_MS)
BATCH_SIZE = Histogram(
    "translate_svc_batch_size", "segments per model batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
BATCH_MS = Histogram("translate_svc_batch_model_ms", "model time per batch (ms)", buckets=_MS)
BATCH_PADDED_AUDIO_S = Histogram(
    "translate_svc_batch_padded_audio_seconds", "padded audio seconds per batch", buckets=(1, 5, 15, 30, 60, 120, 240)
)

VAD_STREAMS_PER_CALL = Histogram(
    "translate_svc_vad_streams_per_call",
    "streams scored together in one VAD model call batch",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)


def observe_vad_call(streams: int) -> None:
    VAD_STREAMS_PER_CALL.observe(streams)


def observe_batch(stats: BatchStats) -> None:
    BATCH_SIZE.observe(stats.size)
    BATCH_MS.observe(stats.model_ms)
    BATCH_PADDED_AUDIO_S.observe(stats.padded_audio_s)
    for q in stats.queue_ms:
        QUEUE_MS.observe(q)


def observe_segment(result: SegmentResult) -> None:
    SEGMENTS.labels("OK" if result.error is None else result.error.code).inc()
    SEGMENT_TOTAL_MS.observe(result.timing.total_ms)


def serve_metrics(port: int, host: str = "0.0.0.0") -> None:
    """Expose /metrics over HTTP on its own thread (prometheus_client)."""
    start_http_server(port, addr=host)
