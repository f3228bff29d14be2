"""OpenTelemetry traces: off unless the standard ``OTEL_*`` variables ask for them (docs/deploy.md).

Turned on (``setup``, called once per process by its entry point) when ``OTEL_TRACES_EXPORTER``
names an exporter (``otlp``, ``console``, ... a comma-separated list; ``none``: off), or, with that
unset, when ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (then
``otlp``). ``OTEL_SDK_DISABLED=true`` turns it off whatever else is set. The SDK reads the rest
itself: the exporter's endpoint, headers and protocol, ``OTEL_TRACES_SAMPLER(_ARG)``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``. The service name is ``OTEL_SERVICE_NAME``, else
``translate_svc``.

Spans (docs/deploy.md, "Traces"):

- a call: the gRPC instrumentation's server span per RPC (``grpc_server_interceptor``, added to
  the server's interceptors only when on; health and reflection are left out), or ``call_span``
  by hand for the realtime doors (WebSocket, WebRTC);
- ``segment``: one per segment result, a child of its call, with its timings, linked to
- ``engine.batch``: one per model batch (a root: a batch serves many calls), made in the engine's
  process; its ids travel back with each job's result as plain values (``types.TraceRef``, and
  over the engine process's wire), so nothing below ``transport/`` needs OpenTelemetry's types.

With tracing off, nothing here imports OpenTelemetry: every function the hot path calls returns at
once (``_tracer`` is None), and the SDK is imported by ``setup`` only when it turns tracing on
(``tests/integration/test_tracing.py`` checks ``sys.modules``). Process-global; the span functions
may be called from any thread (the SDK's tracer is thread-safe).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from translate_svc.types import SegmentResult, TraceRef

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import Tracer

    from translate_svc.engine.jobs import BatchStats

DEFAULT_SERVICE_NAME = "translate_svc"
#: the SDK's registry of span exporters (``console`` from the SDK, ``otlp_proto_grpc`` ...)
EXPORTERS_GROUP = "opentelemetry_traces_exporter"
#: gRPC services whose calls get no span: probes and tooling would drown the calls that matter
#: (more by ``OTEL_PYTHON_GRPC_EXCLUDED_SERVICES``, the instrumentation's own variable)
UNTRACED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")

_provider: TracerProvider | None = None
_tracer: Tracer | None = None
_untraced: tuple[str, ...] = UNTRACED_SERVICES


class TracingConfigError(ValueError):
    """The ``OTEL_*`` variables ask for something this install cannot do (one-line message)."""


@dataclass(frozen=True)
class TracingConfig:
    """What the environment asks for (``config_from_env``)."""

    #: span exporters, by their entry-point names (``otlp`` resolved to its protocol's)
    exporters: tuple[str, ...]
    service_name: str = DEFAULT_SERVICE_NAME
    untraced_services: tuple[str, ...] = UNTRACED_SERVICES


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _service_name(environ: Mapping[str, str]) -> str:
    if name := environ.get("OTEL_SERVICE_NAME", "").strip():
        return name
    for item in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, _, value = item.partition("=")
        if key.strip() == "service.name" and value.strip():
            return unquote(value.strip())
    return DEFAULT_SERVICE_NAME


def _otlp(environ: Mapping[str, str]) -> str:
    """``otlp`` -> the exporter of its protocol (the SDK's own mapping)."""
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    ).strip()
    if protocol == "grpc":
        return "otlp_proto_grpc"
    if protocol == "http/protobuf":
        return "otlp_proto_http"
    raise TracingConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: use grpc or http/protobuf")


def config_from_env(environ: Mapping[str, str]) -> TracingConfig | None:
    """The tracing ``environ`` asks for, or None (off). Pure: imports nothing of OpenTelemetry.
    Raises ``TracingConfigError`` for an exporter that is not installed."""
    if _flag(environ.get("OTEL_SDK_DISABLED")):
        return None
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if not endpoint:
            return None
        names = ["otlp"]
    if "none" in names:
        return None
    exporters = tuple(dict.fromkeys(_otlp(environ) if n == "otlp" else n for n in names))
    known = {e.name for e in entry_points(group=EXPORTERS_GROUP)}
    missing = [n for n in exporters if n not in known]
    if missing:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER: no span exporter {', '.join(missing)} is installed "
            f"(installed: {', '.join(sorted(known)) or 'none'})"
        )
    extra = tuple(s.strip() for s in environ.get("OTEL_PYTHON_GRPC_EXCLUDED_SERVICES", "").split(",") if s.strip())
    return TracingConfig(exporters, _service_name(environ), UNTRACED_SERVICES + extra)


def enabled() -> bool:
    return _tracer is not None


def setup(environ: Mapping[str, str], *, process: str = "main", processors: Sequence[SpanProcessor] = ()) -> bool:
    """Turn tracing on in this process if ``environ`` asks for it (``config_from_env``), or if
    ``processors`` are given (tests pass an in-memory exporter's); returns whether it is on.
    ``process``: this process's role (``main``, ``engine``, a worker's name), a resource
    attribute. Call once, at start-up, before the server is built (it adds its interceptor then)."""
    global _provider, _tracer, _untraced
    if _flag(environ.get("OTEL_SDK_DISABLED")):
        return False
    config = config_from_env(environ)
    if config is None and not processors:
        return False
    config = config or TracingConfig((), _service_name(environ))
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": config.service_name, "translate_svc.process": process})
    provider = TracerProvider(resource=resource)  # the sampler: OTEL_TRACES_SAMPLER(_ARG), parent-based always on
    for name in config.exporters:
        exporter_class = next(iter(entry_points(group=EXPORTERS_GROUP, name=name))).load()
        provider.add_span_processor(BatchSpanProcessor(exporter_class()))
    for processor in processors:
        provider.add_span_processor(processor)
    shutdown()
    _provider, _tracer, _untraced = provider, provider.get_tracer("translate_svc"), config.untraced_services
    return True


def shutdown() -> None:
    """Export what is buffered and turn tracing off (also done at exit, by the SDK)."""
    global _provider, _tracer
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


# -- calls ------------------------------------------------------------------------------------------


def grpc_server_interceptor() -> Any:
    """The gRPC instrumentation's asyncio server interceptor: a SERVER span per call (W3C
    ``traceparent`` from the caller's metadata continues its trace). Only when ``enabled``."""
    assert _provider is not None, "tracing is off"
    from opentelemetry.instrumentation.grpc import aio_server_interceptor
    from opentelemetry.instrumentation.grpc.filters import any_of, negate, service_name

    untraced = negate(any_of(*(service_name(s) for s in _untraced)))
    return aio_server_interceptor(tracer_provider=_provider, filter_=untraced)  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def call_span(name: str, **attributes: str) -> Iterator[None]:
    """A SERVER span around a call that no instrumentation covers (the realtime doors); the
    segments of the stream it drives become its children."""
    if _tracer is None:
        yield
        return
    from opentelemetry.trace import SpanKind

    with _tracer.start_as_current_span(name, kind=SpanKind.SERVER, attributes=attributes):
        yield


def set_call_attributes(**attributes: str) -> None:
    """Attributes of the current call's span (the request id, so a trace meets its access line)."""
    if _tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attributes(attributes)


# -- segments and batches ---------------------------------------------------------------------------


def segment_span(result: SegmentResult, targets: Sequence[str]) -> None:
    """A ``segment`` span for a result going out now: a child of the current span (the call's),
    linked to the batch that computed it. It ends now and lasts ``total_ms + encode_ms`` (segment
    closed -> result ready); a result held behind an earlier segment's starts that much later.
    ``targets``: the languages asked for (a failed segment has no translations to name them)."""
    if _tracer is None:
        return
    from opentelemetry.trace import Link, SpanContext, Status, StatusCode, TraceFlags

    t = result.timing
    end = time.time_ns()
    links = []
    if result.batch_trace is not None:
        ref = result.batch_trace
        batch = SpanContext(ref.trace_id, ref.span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
        links.append(Link(batch))
    attributes: dict[str, Any] = {
        "translate_svc.segment.id": result.segment_id,
        "translate_svc.segment.start_ms": result.start_ms,
        "translate_svc.segment.end_ms": result.end_ms,
        "translate_svc.segment.status": "OK" if result.error is None else result.error.code,
        "translate_svc.segment.targets": list(targets),
        "translate_svc.segment.vad_wait_ms": t.vad_wait_ms,
        "translate_svc.segment.queue_ms": t.queue_ms,
        "translate_svc.segment.model_ms": t.model_ms,
        "translate_svc.segment.speech_ms": t.speech_ms,
        "translate_svc.segment.language_id_ms": t.language_id_ms,
        "translate_svc.segment.encode_ms": t.encode_ms,
        "translate_svc.segment.total_ms": t.total_ms,
    }
    if result.detected is not None:
        attributes["translate_svc.segment.detected_language"] = result.detected.language
    start = end - int((t.total_ms + t.encode_ms) * 1e6)
    span = _tracer.start_span("segment", links=links, attributes=attributes, start_time=start)
    if result.error is not None:
        span.set_status(Status(StatusCode.ERROR, result.error.code))
    span.end(end_time=end)


def batch_span(
    start_ns: int, stats: BatchStats, *, failed: int, captions: bool, speech_ms: float, language_id_ms: float
) -> TraceRef | None:
    """An ``engine.batch`` span, from ``start_ns`` (``time.time_ns()`` as the batch entered the
    model) to now: a root span. Returns its ids for the batch's results (None: off, or not
    sampled, so nothing could link to it)."""
    if _tracer is None:
        return None
    from opentelemetry.context import Context

    attributes = {
        "translate_svc.batch.size": stats.size,
        "translate_svc.batch.padded_audio_s": stats.padded_audio_s,
        "translate_svc.batch.text_rows": stats.text_rows,
        "translate_svc.batch.model_ms": stats.model_ms,
        "translate_svc.batch.speech_ms": speech_ms,
        "translate_svc.batch.language_id_ms": language_id_ms,
        "translate_svc.batch.queue_ms_max": max(stats.queue_ms, default=0.0),
        "translate_svc.batch.failed": failed,
        "translate_svc.batch.captions": captions,
    }
    span = _tracer.start_span("engine.batch", context=Context(), attributes=attributes, start_time=start_ns)
    span.end()
    ctx = span.get_span_context()
    return TraceRef(ctx.trace_id, ctx.span_id) if ctx.trace_flags.sampled else None
