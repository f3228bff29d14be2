"""OpenTelemetry traces (``observability/tracing.py``): real servers on loopback, real speech.

In one process, the SDK's in-memory exporter (installed through ``tracing.setup``, as ``serve``
does it) shows the span tree of a gRPC stream and of a realtime WebSocket session: the call's span,
a ``segment`` span per result as its child with the result's timings, each linked to the
``engine.batch`` span that computed it. With ``serve --workers 2`` the batch spans are made in the
engine process: a collector (a real OTLP/gRPC endpoint in this test) gets spans from both kinds of
process, and the links cross the wire. With tracing off, a server that streamed has not imported
OpenTelemetry at all.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import make_settings, serving
from tests.support.node import node
from tests.support.paths import REPO
from tests.support.raw import channel
from tests.support.speech import speech_pcm16
from tests.support.tokens import ALL, LANG_ONLY, bearer
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.app import engine_core
from translate_svc.client_cli.decode import load_pcm16k
from translate_svc.observability import tracing
from translate_svc.transport.openai.door import PATH as REALTIME_PATH

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(35)]

STREAM = "/translate_svc.api.v1.Translator/StreamingTranslate"
TIMINGS = ("vad_wait_ms", "queue_ms", "model_ms", "speech_ms", "language_id_ms", "encode_ms", "total_ms")
SEG = "translate_svc.segment."
#: a caller's W3C trace context: the call's span continues this trace
CALLER_TRACE, CALLER_SPAN = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
TRACEPARENT = f"00-{CALLER_TRACE:032x}-{CALLER_SPAN:016x}-01"


@contextlib.contextmanager
def in_memory_tracing(environ: Mapping[str, str] | None = None) -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process, through the setup ``serve`` runs (with ``environ``), exporting
    to memory (at once, as each span ends)."""
    exporter = InMemorySpanExporter()
    assert tracing.setup(environ or {}, processors=[SimpleSpanProcessor(exporter)])
    try:
        yield exporter
    finally:
        tracing.shutdown()
    assert not tracing.enabled()


def requests(pcm: np.ndarray, targets: list[str]) -> Iterator[pb.StreamingTranslateRequest]:
    fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)
    output = pb.OutputOptions(text=True, speech=True, transcript=True, speech_encoding=pb.SPEECH_ENCODING_OPUS)
    cfg = pb.StreamingConfig(format=fmt, source_language="eng", target_languages=targets, output=output)
    yield pb.StreamingTranslateRequest(config=cfg)
    for i in range(0, len(pcm), 1600):
        yield pb.StreamingTranslateRequest(audio=pcm[i : i + 1600].tobytes())


def by_id(spans: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in spans if s.context is not None}


def check_segment(span: ReadableSpan, want: pb.SegmentResult, targets: list[str]) -> None:
    """A segment span carries its result's id, span, status, targets and timings."""
    a = span.attributes or {}
    assert a[SEG + "id"] == want.segment_id
    assert (a[SEG + "start_ms"], a[SEG + "end_ms"]) == (want.start_ms, want.end_ms)
    assert a[SEG + "status"] == "OK" and list(a[SEG + "targets"]) == targets  # type: ignore[arg-type]
    for name in TIMINGS:
        assert isinstance(a[SEG + name], float) and a[SEG + name] >= 0, name
    for name in ("vad_wait_ms", "queue_ms", "model_ms", "total_ms"):
        assert a[SEG + name] == getattr(want.timing, name), name  # the very values the client got
    assert a[SEG + "encode_ms"] > 0  # Opus
    assert span.start_time is not None and span.end_time is not None
    assert span.end_time - span.start_time == pytest.approx((a[SEG + "total_ms"] + a[SEG + "encode_ms"]) * 1e6, abs=2)


def check_batches(segments: list[ReadableSpan], batches: dict[int, ReadableSpan], core: str) -> None:
    """Every segment links to one batch span that exists (same trace and span ids): a root span
    with its size and timings; the batches' sizes account for every segment. ``core`` (app.py
    ``engine_core``): with whole batches a segment's model time is its batch's; with the steps core
    the span is the unit (one turn) the segment ended in, which began at or after the segment
    joined the running decode, so it is at most the segment's model time."""
    seen: set[int] = set()
    for seg in segments:
        (link,) = seg.links
        batch = batches[link.context.span_id]
        assert batch.context is not None and batch.context.trace_id == link.context.trace_id
        assert batch.name == "engine.batch" and batch.parent is None
        b = batch.attributes or {}
        assert b["translate_svc.batch.size"] >= 1 and b["translate_svc.batch.padded_audio_s"] > 0
        batch_ms, seg_ms = b["translate_svc.batch.model_ms"], (seg.attributes or {})[SEG + "model_ms"]
        assert batch_ms > 0
        if core == "batch":
            assert batch_ms >= seg_ms - 1e-6
        else:
            assert batch_ms <= seg_ms + 1e-6
        assert b["translate_svc.batch.failed"] == 0 and b["translate_svc.batch.captions"] is False
        seen.add(link.context.span_id)
    assert sum((batches[s].attributes or {})["translate_svc.batch.size"] for s in seen) >= len(segments)


@pytest.mark.parametrize("core", ["batch", "steps"])
async def test_a_stream_has_a_call_span_with_a_segment_span_per_result_linked_to_its_batch(
    test_model_dir: Path, shared_audio: Path, core: str
) -> None:
    pcm = load_pcm16k(shared_audio / "jfk.flac")
    targets = ["spa", "fra"]
    metadata = (("traceparent", TRACEPARENT), ("x-request-id", "trace-test-1"))
    with in_memory_tracing() as exporter:
        async with serving(make_settings(test_model_dir, core=core)) as live:
            call = live.stub.StreamingTranslate(requests(pcm, targets), metadata=metadata, timeout=120)
            got = [r.segment async for r in call if r.HasField("segment")]
            health = health_pb2_grpc.HealthStub(live.channel)
            checked = await health.Check(health_pb2.HealthCheckRequest())
            assert checked.status == health_pb2.HealthCheckResponse.SERVING
    spans = list(exporter.get_finished_spans())
    assert len(got) == 4

    (stream,) = [s for s in spans if s.name == STREAM]  # health checks make no span
    assert stream.kind is SpanKind.SERVER and stream.context is not None
    assert stream.context.trace_id == CALLER_TRACE and stream.parent is not None
    assert stream.parent.span_id == CALLER_SPAN  # the caller's traceparent continued
    attrs = stream.attributes or {}
    assert attrs["rpc.system"] == "grpc" and attrs["rpc.method"] == "StreamingTranslate"
    assert attrs["translate_svc.request_id"] == "trace-test-1"
    assert stream.status.status_code is not StatusCode.ERROR

    segments = sorted((s for s in spans if s.name == "segment"), key=lambda s: (s.attributes or {})[SEG + "id"])
    assert len(segments) == len(got)
    for span, want in zip(segments, got, strict=True):
        assert span.parent is not None and span.parent.span_id == stream.context.span_id
        assert span.context is not None and span.context.trace_id == CALLER_TRACE
        check_segment(span, want, targets)
    check_batches(segments, by_id([s for s in spans if s.name == "engine.batch"]), core)
    resource = stream.resource.attributes
    assert resource["service.name"] == "translate_svc" and resource["translate_svc.process"] == "main"


async def test_a_realtime_session_has_a_call_span_by_hand(test_model_dir: Path, shared_audio: Path) -> None:
    """The OpenAI-compatible door (aiohttp): no instrumentation, a SERVER span made by the door."""
    pcm24k = speech_pcm16(shared_audio / "jfk.flac", 11, 24000)
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    events: list[dict[str, Any]] = []
    with in_memory_tracing() as exporter:
        async with serving(settings) as live:
            assert live.server.http is not None
            url = f"ws://127.0.0.1:{live.server.http.port}{REALTIME_PATH}?model=m"
            async with aiohttp.ClientSession() as http, http.ws_connect(url, headers={"X-Request-Id": "rt-1"}) as ws:
                inp = {"language": "en", "transcription": {"model": "w"}}
                update = {"audio": {"output": {"language": "es"}, "input": inp}}
                await ws.send_json({"type": "session.update", "session": update})
                for i in range(0, len(pcm24k), 4800):
                    chunk = base64.b64encode(pcm24k[i : i + 4800].tobytes()).decode()
                    await ws.send_json({"type": "session.input_audio_buffer.append", "audio": chunk})
                await ws.send_json({"type": "session.close"})
                async with asyncio.timeout(120):
                    async for msg in ws:
                        events.append(json.loads(msg.data))
                        if events[-1]["type"] == "session.closed":
                            break
    assert events[-1]["type"] == "session.closed" and events[-1]["x_segments_total"] >= 1, events[-3:]
    spans = list(exporter.get_finished_spans())
    (session,) = [s for s in spans if s.name == "realtime session"]
    assert session.kind is SpanKind.SERVER and session.parent is None and session.context is not None
    assert (session.attributes or {})["translate_svc.request_id"] == "rt-1"
    segments = [s for s in spans if s.name == "segment"]
    assert len(segments) == events[-1]["x_segments_total"]
    for span in segments:
        assert span.parent is not None and span.parent.span_id == session.context.span_id
        assert list((span.attributes or {})[SEG + "targets"]) == ["spa"]  # type: ignore[arg-type]
    check_batches(segments, by_id([s for s in spans if s.name == "engine.batch"]), engine_core(settings))


# -- off: nothing of OpenTelemetry is imported ------------------------------------------------------

#: a server as ``translate-svc serve`` makes one (tracing set up from the environment, then the
#: server), on the fake runner; one stream of real speech through it; then what it imported
SERVER_AND_STREAM = """
import asyncio, json, os, sys
from pathlib import Path

from tests.support.fake_runner import FakeRunner
from translate_svc import app
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from tests.support.raw import channel, stream_pcm
from translate_svc.client_cli.decode import load_pcm16k
from translate_svc.observability import tracing
from translate_svc.settings import ServerSettings, Settings
from translate_svc.transport.host import TranslateServer


async def main() -> None:
    on = tracing.setup(os.environ)
    settings = Settings(server=ServerSettings(host="127.0.0.1", port=0))
    server = TranslateServer(app.build(settings, runner_factory=FakeRunner))
    port = await server.start(warmup=False)
    ch = channel(f"127.0.0.1:{port}")
    trace = await stream_pcm(pb_grpc.TranslatorStub(ch), load_pcm16k(Path(sys.argv[1])), ["spa"], source="eng")
    await ch.close()
    await server.stop(grace=1)
    tracing.shutdown()
    loaded = sorted(m for m in sys.modules if m == "opentelemetry" or m.startswith("opentelemetry."))
    print(json.dumps({"on": on, "segments": len(trace.segments), "otel": loaded}))


asyncio.run(main())
"""


def serve_and_stream(audio: Path, **otel: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", SERVER_AND_STREAM, str(audio)],
        cwd=REPO,
        env={**env, **otel},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def test_with_tracing_off_a_server_that_streamed_never_imported_opentelemetry(shared_audio: Path) -> None:
    jfk = shared_audio / "jfk.flac"
    off = await asyncio.to_thread(serve_and_stream, jfk)
    assert off["on"] is False and off["segments"] == 4
    assert off["otel"] == []
    # the check can fail: the same server with tracing on (console exporter) has imported it
    on = await asyncio.to_thread(serve_and_stream, jfk, OTEL_TRACES_EXPORTER="console")
    assert on["on"] is True and on["segments"] == 4
    assert "opentelemetry.sdk.trace" in on["otel"] and "opentelemetry.instrumentation.grpc" in on["otel"]
    # OTEL_SDK_DISABLED wins over an exporter
    disabled = await asyncio.to_thread(serve_and_stream, jfk, OTEL_TRACES_EXPORTER="console", OTEL_SDK_DISABLED="true")
    assert disabled["on"] is False and disabled["otel"] == []


# -- serve --workers 2: spans from the workers and the engine process, to a collector ---------------


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace endpoint (what an OpenTelemetry Collector listens with on 4317)."""

    def __init__(self) -> None:
        self.spans: list[tuple[dict[str, str], Any]] = []  # (resource attributes, span)

    def Export(self, request: Any, context: Any) -> Any:
        for rs in request.resource_spans:
            resource = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
            for scope in rs.scope_spans:
                self.spans.extend((resource, span) for span in scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@contextlib.contextmanager
def collector() -> Iterator[tuple[Collector, int]]:
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    servicer = Collector()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, port
    finally:
        server.stop(0)


def _attrs(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") != "array_value" else None
    return out


async def until(check: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the collector did not get the spans in time"
        await asyncio.sleep(0.1)


async def test_with_workers_the_batch_spans_come_from_the_engine_process_and_the_links_cross_the_wire(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path
) -> None:
    pcm = load_pcm16k(shared_audio / "jfk.flac")
    with collector() as (spans, port):
        otel = {
            "OTEL_TRACES_EXPORTER": "",  # unset: the endpoint alone turns tracing on (otlp)
            "OTEL_SDK_DISABLED": "false",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        with node(test_model_dir, tmp_path / "node.log", **otel) as n:
            ch = channel(n.address)
            try:
                call = pb_grpc.TranslatorStub(ch).StreamingTranslate(requests(pcm, ["spa"]), timeout=120)
                got = [r.segment async for r in call if r.HasField("segment")]
            finally:
                await ch.close()
            assert len(got) == 4

            def segments() -> list[tuple[dict[str, str], Any]]:
                return [(r, s) for r, s in spans.spans if s.name == "segment"]

            def batches() -> dict[bytes, tuple[dict[str, str], Any]]:
                return {s.span_id: (r, s) for r, s in spans.spans if s.name == "engine.batch"}

            await until(lambda: len(segments()) == 4 and all(s.links[0].span_id in batches() for _, s in segments()))
    (call_resource, stream), *_ = [(r, s) for r, s in spans.spans if s.name == STREAM]
    assert call_resource["translate_svc.process"] in ("w0", "w1")
    assert call_resource["service.name"] == "translate_svc"
    for resource, seg in segments():
        assert resource["translate_svc.process"] == call_resource["translate_svc.process"]
        assert seg.parent_span_id == stream.span_id and seg.trace_id == stream.trace_id
        (link,) = seg.links
        batch_resource, batch = batches()[link.span_id]
        assert batch_resource["translate_svc.process"] == "engine" and batch.trace_id == link.trace_id
        assert _attrs(batch)["translate_svc.batch.size"] >= 1
    assert sorted(_attrs(s)[SEG + "id"] for _, s in segments()) == [0, 1, 2, 3]


# -- what a caller sends cannot steer tracing (issue 34, N17) ---------------------------------------

LANGUAGES = "/translate_svc.api.v1.Translator/ListLanguages"


async def test_a_call_refused_for_its_token_is_not_traced(test_model_dir: Path, tmp_path: Path) -> None:
    """Calls without a token (UNAUTHENTICATED) or with one that lacks the permission
    (PERMISSION_DENIED) leave no span; a call let in does."""
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ALL}\n{LANG_ONLY} languages\n")
    settings = make_settings(test_model_dir)
    settings.auth.tokens_file = tokens
    with in_memory_tracing() as exporter:
        async with serving(settings, warmup=False, runner_factory=FakeRunner) as live:
            with pytest.raises(grpc.aio.AioRpcError) as no_token:
                await live.stub.ListLanguages(pb.ListLanguagesRequest(), timeout=10)
            assert no_token.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await live.stub.ListLanguages(pb.ListLanguagesRequest(), metadata=bearer("not-a-token"), timeout=10)
            assert unknown.value.code() == grpc.StatusCode.UNAUTHENTICATED
            nothing = np.zeros(0, np.int16)
            call = live.stub.StreamingTranslate(iter(requests(nothing, ["spa"])), metadata=bearer(LANG_ONLY))
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                async for _ in call:
                    pass
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            await live.stub.ListLanguages(pb.ListLanguagesRequest(), metadata=bearer(ALL), timeout=10)
            await until(lambda: any(s.name == LANGUAGES for s in exporter.get_finished_spans()), 10)
        spans = list(exporter.get_finished_spans())
    # the call let in, last: every span of the refused calls before it would have ended by then
    assert [(s.name, (s.attributes or {})["rpc.grpc.status_code"]) for s in spans] == [(LANGUAGES, 0)]


async def test_a_callers_sampled_flag_does_not_decide_sampling(
    test_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sampling ratio 0: a caller's ``traceparent`` flagged sampled (and its trace id the lowest,
    which a trace-id ratio would take first) is not traced. Ratio 1: a caller flagged not sampled
    is traced all the same, its trace continued."""
    lowest = f"00-{1:032x}-{CALLER_SPAN:016x}-01"
    ratio0 = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}
    for key, value in ratio0.items():
        monkeypatch.setenv(key, value)  # where the SDK's own sampler would read it
    with in_memory_tracing(ratio0) as exporter:
        async with serving(make_settings(test_model_dir), warmup=False, runner_factory=FakeRunner) as live:
            for traceparent in (TRACEPARENT, lowest):
                metadata = (("traceparent", traceparent),)
                await live.stub.ListLanguages(pb.ListLanguagesRequest(), metadata=metadata, timeout=10)
            # spans are exported as they end, before the answer is sent
            assert list(exporter.get_finished_spans()) == []
    ratio1 = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"}
    for key, value in ratio1.items():
        monkeypatch.setenv(key, value)
    with in_memory_tracing(ratio1) as exporter:
        async with serving(make_settings(test_model_dir), warmup=False, runner_factory=FakeRunner) as live:
            unsampled = (("traceparent", TRACEPARENT[:-2] + "00"),)
            await live.stub.ListLanguages(pb.ListLanguagesRequest(), metadata=unsampled, timeout=10)
            await until(lambda: len(exporter.get_finished_spans()) == 1, 10)
        (span,) = exporter.get_finished_spans()
    assert span.name == LANGUAGES and span.context is not None and span.context.trace_id == CALLER_TRACE
    assert span.context.trace_flags.sampled


async def test_a_long_user_agent_is_not_recorded_whole(test_model_dir: Path) -> None:
    """A caller's 6,000-character user-agent (gRPC refuses metadata over 8 KiB at random, so not
    10 KB) is cut to ``MAX_ATTRIBUTE_LENGTH`` characters on the span."""
    agent = "agent/1.0 " + "x" * 6000
    with in_memory_tracing() as exporter:
        async with serving(make_settings(test_model_dir), warmup=False, runner_factory=FakeRunner) as live:
            options = [("grpc.primary_user_agent", agent)]
            async with grpc.aio.insecure_channel(f"127.0.0.1:{live.port}", options=options) as ch:
                await pb_grpc.TranslatorStub(ch).ListLanguages(pb.ListLanguagesRequest(), timeout=10)
            await until(lambda: len(exporter.get_finished_spans()) == 1, 10)
        (span,) = exporter.get_finished_spans()
    recorded = (span.attributes or {})["rpc.user_agent"]
    assert isinstance(recorded, str) and recorded.startswith("agent/1.0 xxx")
    assert len(recorded) == tracing.MAX_ATTRIBUTE_LENGTH


async def test_a_refused_calls_span_is_left_out_but_not_one_that_ran_something() -> None:
    """The rule behind the refused-call test, span by span: a SERVER span ending UNAUTHENTICATED
    with no child is not exported; one with a child (a stream revoked after it served a segment)
    is, with its child."""
    with in_memory_tracing() as exporter:
        assert tracing._provider is not None
        tracer = tracing._provider.get_tracer("test")
        refused = {"rpc.grpc.status_code": 16}
        with tracer.start_as_current_span("refused", kind=SpanKind.SERVER, attributes=refused):
            pass
        with tracer.start_as_current_span("revoked", kind=SpanKind.SERVER) as span:
            with tracer.start_as_current_span("segment"):
                pass
            span.set_attribute("rpc.grpc.status_code", 16)
        with tracer.start_as_current_span("denied", kind=SpanKind.SERVER, attributes={"rpc.grpc.status_code": 7}):
            pass
        with tracer.start_as_current_span("not-found", kind=SpanKind.SERVER, attributes={"rpc.grpc.status_code": 5}):
            pass
        names = [s.name for s in exporter.get_finished_spans()]
    assert names == ["segment", "revoked", "not-found"]


@pytest.mark.parametrize(
    ("sampler", "arg", "ratio"),
    [
        ("", "", 1.0),
        ("parentbased_always_on", "", 1.0),
        ("always_off", "", 0.0),
        ("parentbased_traceidratio", "0.25", 0.25),
        ("traceidratio", "", 1.0),
        ("jaeger_remote", "", None),
        ("parentbased_traceidratio", "2", None),
        ("parentbased_traceidratio", "half", None),
    ],
)
async def test_the_sampler_variables_give_one_ratio_or_stop_start_up(
    sampler: str, arg: str, ratio: float | None
) -> None:
    environ = {"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": arg}
    if ratio is None:
        with pytest.raises(tracing.TracingConfigError, match="OTEL_TRACES_SAMPLER"):
            tracing.config_from_env(environ)
    else:
        config = tracing.config_from_env(environ)
        assert config is not None and config.sample_ratio == ratio
