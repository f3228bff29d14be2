"""Which ``OTEL_*`` variables turn tracing on (``tracing.config_from_env``, pure), and the batch
span's ids across the engine process's wire."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from translate_svc.engine.remote import wire
from translate_svc.engine.results import EngineResult
from translate_svc.model_api.requests import ModelOutput
from translate_svc.observability import tracing
from translate_svc.observability.tracing import TracingConfig, TracingConfigError, config_from_env
from translate_svc.types import TraceRef

pytestmark = pytest.mark.unit


def test_off_unless_an_exporter_or_an_endpoint_is_named() -> None:
    assert config_from_env({}) is None
    assert config_from_env({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}) is None
    assert not tracing.enabled()


def test_an_endpoint_alone_means_otlp_over_grpc() -> None:
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        config = config_from_env({var: "http://collector:4317"})
        assert config is not None and config.exporters == ("otlp_proto_grpc",)
        assert config.service_name == "translate_svc"


def test_the_exporter_list_none_and_sdk_disabled() -> None:
    config = config_from_env({"OTEL_TRACES_EXPORTER": "otlp, console", "OTEL_SERVICE_NAME": "edge-1"})
    assert config is not None and config.exporters == ("otlp_proto_grpc", "console")
    assert config.service_name == "edge-1"
    assert config_from_env({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}) is None
    assert config_from_env({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "TRUE"}) is None
    assert config_from_env({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "false"}) is not None


def test_the_service_name_from_the_resource_attributes_and_more_untraced_services() -> None:
    env = {
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.name=edge%20b",
        "OTEL_PYTHON_GRPC_EXCLUDED_SERVICES": "translate_svc.api.v1.Translator",
    }
    config = config_from_env(env)
    assert config is not None and config.service_name == "edge b"
    assert "grpc.health.v1.Health" in config.untraced_services
    assert "translate_svc.api.v1.Translator" in config.untraced_services


def test_an_exporter_that_is_not_installed_fails_at_start() -> None:
    with pytest.raises(TracingConfigError, match="no span exporter zipkin is installed"):
        config_from_env({"OTEL_TRACES_EXPORTER": "zipkin"})
    http = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    if "otlp_proto_http" in {e.name for e in entry_points(group=tracing.EXPORTERS_GROUP)}:  # installed by hand
        assert config_from_env(http) == TracingConfig(("otlp_proto_http",))
    else:  # not a dependency: the message says what is missing
        with pytest.raises(TracingConfigError, match="otlp_proto_http"):
            config_from_env(http)
    with pytest.raises(TracingConfigError, match="grpc or http/protobuf"):
        config_from_env({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"})


@pytest.mark.parametrize("ref", [None, TraceRef(2**128 - 1, 2**64 - 1), TraceRef(0x1F, 0x2)])
def test_the_batch_span_ids_cross_the_wire(ref: TraceRef | None) -> None:
    """128-bit trace ids (more than a MessagePack integer) survive ``Result``'s encoding."""
    out = ModelOutput("hi", {"spa": "hola"})
    sent = wire.result_of(7, EngineResult(out, None, 1.0, 2.0, 3, ref))
    got = wire.decode(wire.encode(sent), wire.ToWorker)
    assert isinstance(got, wire.Result)
    assert wire.job_result(got).batch_trace == ref
