"""OpenTelemetry traces: off unless the standard ``OTEL_*`` variables ask for them (docs/deploy.md).

Turned on (``setup``, called once per process by its entry point) when ``OTEL_TRACES_EXPORTER``
names an exporter (``otlp``, ``console``, ... a comma-separated list; ``none``: off), or, with that
unset, when ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (then
``otlp``). ``OTEL_SDK_DISABLED=true`` turns it off whatever else is set. The SDK reads the rest
itself: the exporter's endpoint, headers and protocol, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_BSP_*``. The service name is ``OTEL_SERVICE_NAME``, else ``translate_svc``.

What a caller sends cannot steer tracing (security finding N17):

- Sampling is the server's: ``OTEL_TRACES_SAMPLER(_ARG)`` give one ratio (``_sample_ratio``), and a
  call is sampled at that ratio whatever the sampled flag of its ``traceparent`` says (its trace is
  still continued: the span takes its trace id and parent). A sampled caller cannot make an
  unsampled server export a span per call, nor an unsampled one hide its calls. A caller's call is
  drawn at random, not by its trace id, which the caller chooses; the server's own roots by trace id.
  Children in the process follow their parent, so a trace is whole or absent.
- Every string attribute is cut to ``MAX_ATTRIBUTE_LENGTH`` characters (the SDK's span limits): the
  instrumentation records the caller's ``user-agent`` as ``rpc.user_agent``, which gRPC admits only
  as printable ASCII but up to its metadata limit (8 KiB).
- A call refused for its token (UNAUTHENTICATED, PERMISSION_DENIED) that ran nothing (no child
  span) is not exported (``_export_served``): an unauthenticated caller cannot fill the trace
  backend. Its span is still made, because the server installs this interceptor before the token
  check; a revoked stream that served segments keeps its span.

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
(``tests/observability/test_tracing.py`` checks ``sys.modules``). Process-global; the span functions
may be called from any thread (the SDK's tracer is thread-safe).
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from translate_svc.types import BatchStats, SegmentResult, TraceRef

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import Tracer

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
    #: the share of calls (and of batches) traced: ``OTEL_TRACES_SAMPLER(_ARG)``
    sample_ratio: float = 1.0


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


#: ``OTEL_TRACES_SAMPLER`` values -> the fixed ratio they stand for (None: ``OTEL_TRACES_SAMPLER_ARG``).
#: ``parentbased_`` or not, the same here: a caller's flag never decides (module docstring)
_SAMPLERS: dict[str, float | None] = {
    "always_on": 1.0,
    "always_off": 0.0,
    "traceidratio": None,
    "parentbased_always_on": 1.0,
    "parentbased_always_off": 0.0,
    "parentbased_traceidratio": None,
}
#: the longest string attribute a span keeps (the rest is cut; the user-agent, a request id ...)
MAX_ATTRIBUTE_LENGTH = 256
#: gRPC status codes of a call refused for its token: PERMISSION_DENIED, UNAUTHENTICATED
REFUSED_CODES = frozenset({7, 16})


def _sample_ratio(environ: Mapping[str, str]) -> float:
    """The ratio ``OTEL_TRACES_SAMPLER(_ARG)`` ask for (default: 1, every call), or
    ``TracingConfigError``."""
    name = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
    if name not in _SAMPLERS:
        raise TracingConfigError(f"OTEL_TRACES_SAMPLER={name[:40]!r}: use one of {', '.join(_SAMPLERS)}")
    fixed = _SAMPLERS[name]
    if fixed is not None:
        return fixed
    arg = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip() or "1.0"
    try:
        ratio = float(arg)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise TracingConfigError(f"OTEL_TRACES_SAMPLER_ARG={arg[:40]!r}: a ratio from 0 to 1")
    return ratio


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
    return TracingConfig(exporters, _service_name(environ), UNTRACED_SERVICES + extra, _sample_ratio(environ))


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
    config = config or TracingConfig((), _service_name(environ), sample_ratio=_sample_ratio(environ))
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": config.service_name, "translate_svc.process": process})
    provider = TracerProvider(
        sampler=_sampler(config.sample_ratio),
        resource=resource,
        span_limits=SpanLimits(max_span_attribute_length=MAX_ATTRIBUTE_LENGTH),
    )
    exporting: list[SpanProcessor] = []
    for name in config.exporters:
        exporter_class = next(iter(entry_points(group=EXPORTERS_GROUP, name=name))).load()
        exporting.append(BatchSpanProcessor(exporter_class()))
    provider.add_span_processor(_export_served(exporting + list(processors)))
    shutdown()
    _provider, _tracer, _untraced = provider, provider.get_tracer("translate_svc"), config.untraced_services
    return True


def _sampler(ratio: float) -> Any:
    """The server's sampler (module docstring): ``ratio`` for its own roots (by trace id) and for
    a caller's calls (at random, whatever its flag says); a local parent's decision for children."""
    import random

    from opentelemetry.sdk.trace.sampling import (
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
        TraceIdRatioBased,
    )

    class CallerBlind(Sampler):
        def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
            draw = ratio >= 1.0 or random.random() < ratio
            return SamplingResult(Decision.RECORD_AND_SAMPLE if draw else Decision.DROP, kwargs.get("attributes"))

        def get_description(self) -> str:
            return f"CallerBlind{{{ratio}}}"

    caller = CallerBlind()
    return ParentBased(TraceIdRatioBased(ratio), remote_parent_sampled=caller, remote_parent_not_sampled=caller)


def _export_served(processors: Sequence[SpanProcessor]) -> SpanProcessor:
    """One processor over ``processors`` that leaves out the span of a call refused for its token
    that ran nothing (module docstring). Any thread (the SDK calls it where spans start and end)."""
    from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, SynchronousMultiSpanProcessor
    from opentelemetry.trace import SpanKind

    class ExportServed(SpanProcessor):
        def __init__(self) -> None:
            self._inner = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
            for processor in processors:
                self._inner.add_span_processor(processor)
            #: spans of this process that have a child (ids; one entry per live parent at most)
            self._parents: set[int] = set()

        def on_start(self, span: Span, parent_context: Any = None) -> None:
            parent = span.parent
            if parent is not None and not parent.is_remote:
                self._parents.add(parent.span_id)
            self._inner.on_start(span, parent_context=parent_context)

        def on_end(self, span: ReadableSpan) -> None:
            ran = span.context is not None and span.context.span_id in self._parents
            if span.context is not None:
                self._parents.discard(span.context.span_id)
            code = (span.attributes or {}).get("rpc.grpc.status_code")
            if span.kind is SpanKind.SERVER and code in REFUSED_CODES and not ran:
                return
            self._inner.on_end(span)

        def shutdown(self) -> None:
            self._inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return self._inner.force_flush(timeout_millis)

    return ExportServed()


def shutdown() -> None:
    """Export what is buffered and turn tracing off (also done at exit, by the SDK)."""
    global _provider, _tracer
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


# -- calls ------------------------------------------------------------------------------------------


def grpc_server_interceptor() -> Any:
    """The gRPC instrumentation's asyncio server interceptor: a SERVER span per call (W3C
    ``traceparent`` from the caller's metadata continues its trace). Only when ``enabled``.

    Its response-streaming wrapper iterates the handler with ``async for``; grpc.aio also takes a
    coroutine that writes with ``context.write`` (the token check's refusals are one), which it
    would end with UNKNOWN instead of the refusal's status: such handlers are made async
    generators first (``_streams_as_generators``)."""
    assert _provider is not None, "tracing is off"
    from opentelemetry.instrumentation.grpc import aio_server_interceptor
    from opentelemetry.instrumentation.grpc.filters import any_of, negate, service_name

    untraced = negate(any_of(*(service_name(s) for s in _untraced)))
    interceptor = aio_server_interceptor(tracer_provider=_provider, filter_=untraced)  # type: ignore[no-untyped-call]

    class StreamsAsGenerators(type(interceptor)):  # type: ignore[misc]
        async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
            async def adapted(details: Any) -> Any:
                return _streams_as_generators(await continuation(details))

            return await super().intercept_service(adapted, handler_call_details)

    interceptor.__class__ = StreamsAsGenerators  # the instrumentation's class is private: subclassed in place
    return interceptor


def _streams_as_generators(handler: Any) -> Any:
    """``handler`` (a grpc ``RpcMethodHandler``, a named tuple) with a response-streaming coroutine
    behaviour replaced by an async generator that awaits it and yields nothing (what it writes, it
    writes through the context)."""
    if handler is None or not handler.response_streaming:
        return handler
    field = "stream_stream" if handler.request_streaming else "unary_stream"
    behavior = getattr(handler, field)
    if not inspect.iscoroutinefunction(behavior):
        return handler

    async def generator(request: Any, context: Any) -> AsyncIterator[Any]:
        await behavior(request, context)
        return
        yield  # an async generator

    return handler._replace(**{field: generator})


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
        "translate_svc.segment.optional_ms": t.optional_ms,
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
