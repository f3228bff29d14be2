"""Prometheus metrics. Process-global collectors (prometheus_client's own registry); thread-safe.

With ``serve --workers N`` every process of the node (the engine process and each front-end worker)
writes its values under ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode, chosen
by that variable when this module is first imported), and the supervisor serves one aggregate
(``serve_aggregate``): counters and histograms are summed over the processes, dead ones included;
the active-streams gauge over the live ones. ``translate_svc_streams_started_total`` keeps one
series per front-end process (its ``process`` label), so the spread of streams over workers shows.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, start_http_server

from translate_svc.engine.jobs import BatchStats
from translate_svc.types import SegmentResult

_MS = (10, 25, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000)

STREAMS_ACTIVE = Gauge(
    "translate_svc_streams_active", "StreamingTranslate calls in progress", multiprocess_mode="livesum"
)
STREAMS_STARTED = Counter(
    "translate_svc_streams_started_total", "StreamingTranslate calls admitted, by front-end process", ["process"]
)
#: this process's name in ``STREAMS_STARTED`` (``main``, or a worker's name: ``set_process``)
_process = "main"
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

TEXT_ROWS = Counter(
    "translate_svc_text_decoder_rows_total",
    "text decoder rows run: one per segment and language (the transcript's included)",
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
    TEXT_ROWS.inc(stats.text_rows)
    for q in stats.queue_ms:
        QUEUE_MS.observe(q)


def set_process(name: str) -> None:
    global _process
    _process = name


def stream_started() -> None:
    STREAMS_ACTIVE.inc()
    STREAMS_STARTED.labels(_process).inc()


def stream_ended() -> None:
    STREAMS_ACTIVE.dec()


def observe_segment(result: SegmentResult) -> None:
    SEGMENTS.labels("OK" if result.error is None else result.error.code).inc()
    SEGMENT_TOTAL_MS.observe(result.timing.total_ms)


def serve_metrics(port: int, host: str = "0.0.0.0") -> None:
    """Expose /metrics over HTTP on its own thread (prometheus_client)."""
    start_http_server(port, addr=host)


def serve_aggregate(port: int, host: str, directory: Path) -> int:
    """Expose /metrics of every process writing under ``directory`` (the supervisor of ``serve
    --workers N``, which records nothing itself); returns the port (``port`` 0: a free one)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    server, _ = start_http_server(port, addr=host, registry=registry)
    return int(server.server_port)


def process_gone(pid: int, directory: Path) -> None:
    """A process of the node exited: drop its live-only gauges from the aggregate."""
    multiprocess.mark_process_dead(pid, path=str(directory))  # type: ignore[no-untyped-call]
