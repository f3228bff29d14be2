"""The access log and request ids (issue 24) on a real ``translate-svc serve`` process: one line per
call when it ends, as JSON with ``TRANSLATE_SVC_LOG_FORMAT=json``, and the request id back in the
initial metadata."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support.server_process import ServerProcess
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(15)]


@pytest.fixture(scope="module")
def json_logging(test_model_dir: Path) -> Iterator[ServerProcess]:
    env = {"TRANSLATE_SVC_LOG_FORMAT": "json", "TRANSLATE_SVC_SERVER__METRICS_PORT": "0"}  # it picks, and says
    server = ServerProcess(["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0"], env=env)
    try:
        yield server
    finally:
        server.stop()


def access_lines(server: ServerProcess, **match: Any) -> list[dict[str, Any]]:
    found = []
    for line in list(server.lines):
        if not line.startswith("{"):
            continue  # the CLI's own start-up lines are for a person
        record = json.loads(line)  # every log line is one JSON object
        if record.get("logger") == "translate_svc.access" and all(record.get(k) == v for k, v in match.items()):
            found.append(record)
    return found


def wait_for(server: ServerProcess, **match: Any) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while not (lines := access_lines(server, **match)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return lines


async def test_a_stream_leaves_one_json_access_line_with_its_request_id(
    json_logging: ServerProcess, shared_audio: Path
) -> None:
    speech = speech_pcm16(shared_audio / "jfk.flac", 6.0, 16000).tobytes()

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)
        yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=fmt, target_languages=["spa"]))
        for at in range(0, len(speech), 6400):
            yield pb.StreamingTranslateRequest(audio=speech[at : at + 6400])

    async with grpc.aio.insecure_channel(json_logging.address) as ch:
        call = pb_grpc.TranslatorStub(ch).StreamingTranslate(requests(), metadata=(("x-request-id", "r-1"),))
        initial = await call.initial_metadata()
        got = [r async for r in call]
        assert await call.code() == grpc.StatusCode.OK
        # no id given: one is made, returned, and logged
        clip = pb.TranslateRequest(
            audio=pb.AudioInput(
                content=speech[: 32000 * 3], format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)
            ),
            target_languages=["spa"],
        )
        unary = pb_grpc.TranslatorStub(ch).Translate(clip)
        answer = await unary
        made = dict(await unary.initial_metadata())["x-request-id"]
    assert dict(initial)["x-request-id"] == "r-1"
    segments = sum(r.HasField("segment") for r in got)
    [line] = wait_for(json_logging, request_id="r-1")  # exactly one line for the call
    assert line["method"] == "StreamingTranslate" and line["code"] == "OK" and line["level"] == "INFO"
    assert line["segments_total"] == segments and line["segments"] == {"OK": segments} and segments >= 1
    assert line["audio_s"] == pytest.approx(6.0) and line["tenant"] == "default" and line["targets"] == "spa"
    assert line["encoding"] == "LINEAR16" and line["sample_rate_hz"] == 16000 and line["peer"]
    assert len(made) == 32 and int(made, 16) >= 0
    [clip_line] = wait_for(json_logging, request_id=made)
    assert clip_line["method"] == "Translate" and clip_line["code"] == "OK"
    assert clip_line["segments_total"] == len(answer.segments)
    assert (clip_line["encoding"], clip_line["sample_rate_hz"], clip_line["targets"]) == ("LINEAR16", 16000, "spa")


async def test_a_failed_call_is_logged_with_its_code(json_logging: ServerProcess) -> None:
    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(target_languages=["spa"]))  # no format

    async with grpc.aio.insecure_channel(json_logging.address) as ch:
        call = pb_grpc.TranslatorStub(ch).StreamingTranslate(requests(), metadata=(("x-request-id", "bad-1"),))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in call:
                pass
    [line] = wait_for(json_logging, request_id="bad-1")
    assert line["code"] == err.value.code().name == "INVALID_ARGUMENT" and line["segments_total"] == 0


async def test_the_sdk_sends_a_request_id_and_puts_it_on_its_errors(
    json_logging: ServerProcess, shared_audio: Path
) -> None:
    from translate_svc.client import AsyncTranslateClient, TranslateError

    async with AsyncTranslateClient(json_logging.address) as client:
        with pytest.raises(TranslateError) as err:
            await client.translate(shared_audio / "jfk.flac", targets="xx-not-a-language")
    rid = err.value.request_id
    assert rid and rid in str(err.value) and err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    [line] = wait_for(json_logging, request_id=rid)  # the server's line for the same call
    # the SDK sends clips over TranslateChunked (issue 52)
    assert line["method"] == "TranslateChunked" and line["code"] == "INVALID_ARGUMENT"


async def test_metrics_are_served_over_http_with_the_calls_by_tenant(
    json_logging: ServerProcess, shared_audio: Path
) -> None:
    """/metrics over HTTP from a real server process (the kubectl test covers it only in a cluster):
    a stream that ends OK and one refused are counted, by tenant and final status (its own calls,
    so the test holds alone or after the others)."""
    port = json_logging.metrics_port
    url = f"http://127.0.0.1:{port}/metrics"
    ok = 'translate_svc_tenant_calls_total{code="OK",method="stream",tenant="default"}'
    bad = 'translate_svc_tenant_calls_total{code="INVALID_ARGUMENT",method="stream",tenant="default"}'

    async def scrape() -> tuple[str, dict[str, float]]:
        body = (await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())).decode()
        samples = {}
        for line in body.splitlines():
            if line.startswith("translate_svc_tenant_calls_total{"):
                key, value = line.rsplit(" ", 1)
                samples[key] = float(value)
        return body, samples

    _, before = await scrape()
    speech = speech_pcm16(shared_audio / "jfk.flac", 4.0, 16000).tobytes()
    fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)

    async def good() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=fmt, target_languages=["spa"]))
        for at in range(0, len(speech), 6400):
            yield pb.StreamingTranslateRequest(audio=speech[at : at + 6400])

    async def no_format() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(target_languages=["spa"]))

    async with grpc.aio.insecure_channel(json_logging.address) as ch:
        stub = pb_grpc.TranslatorStub(ch)
        call = stub.StreamingTranslate(good(), metadata=(("x-request-id", "metrics-ok"),))
        kinds = [r.WhichOneof("response") async for r in call]
        assert await call.code() == grpc.StatusCode.OK and "segment" in kinds
        with pytest.raises(grpc.aio.AioRpcError):
            async for _ in stub.StreamingTranslate(no_format(), metadata=(("x-request-id", "metrics-bad"),)):
                pass
    wait_for(json_logging, request_id="metrics-ok")  # the access line is written as the call's count is
    wait_for(json_logging, request_id="metrics-bad")
    body, after = await scrape()
    assert after.get(ok, 0) - before.get(ok, 0) == 1, (before, after)
    assert after.get(bad, 0) - before.get(bad, 0) == 1, (before, after)
    assert 'translate_svc_segments_total{status="OK"}' in body
