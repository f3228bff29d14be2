"""Logs that tell the truth (issue 53): what a client may do is never an ERROR or a traceback in the
server's log, and every call's access line (and its count in the metrics) says how it really
ended: a clean close is ``OK``, a client that went away mid-stream ``CANCELLED``. One real
``translate-svc serve`` process (the stable test translator, JSON logs), its log read back.

Per door: gRPC (half-close, cancel while reading, stop reading then cancel, garbage) and the
OpenAI WebSocket (``session.close`` then closing the socket, the socket closed mid-stream, garbage
events and frames)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import websockets

from tests.support.server_process import ServerProcess
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(30)]

FMT = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)


@pytest.fixture(scope="module")
def served(test_model_dir: Path) -> Iterator[ServerProcess]:
    env = {"TRANSLATE_SVC_LOG_FORMAT": "json", "TRANSLATE_SVC_SERVER__METRICS_PORT": "0"}  # it picks, and says
    args = ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"]
    server = ServerProcess([*args, "--test-translator", "stable"], env=env)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def speech(shared_audio: Path) -> np.ndarray:
    return speech_pcm16(shared_audio / "silero_test.wav", 20.0, 16000)


def records(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in list(server.lines) if line.startswith("{")]


def problems(server: ServerProcess) -> list[str]:
    """ERROR lines, tracebacks logged with a record, and raw tracebacks printed past the logger."""
    found = [
        f"{r.get('level')} {r.get('logger')}: {r.get('message')}"
        for r in records(server)
        if r.get("level") in ("ERROR", "CRITICAL") or "exc_info" in r
    ]
    return found + [line for line in list(server.lines) if line.startswith("Traceback")]


def access_line(server: ServerProcess, request_id: str, timeout_s: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [
            r
            for r in records(server)
            if r.get("logger") == "translate_svc.access" and r.get("request_id") == request_id
        ]
        if found:
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no access line for {request_id}")


def stream_calls(server: ServerProcess) -> dict[str, float]:
    """translate_svc_tenant_calls_total of streams (every door), by code."""
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    body = urllib.request.urlopen(url, timeout=10).read().decode()
    out: dict[str, float] = {}
    for line in body.splitlines():
        if line.startswith("translate_svc_tenant_calls_total{") and 'method="stream"' in line:
            labels, value = line.rsplit(" ", 1)
            code = labels.split('code="', 1)[1].split('"', 1)[0]
            out[code] = out.get(code, 0.0) + float(value)
    return out


def counted(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after if after.get(k, 0.0) != before.get(k, 0.0)}


# -- gRPC ---------------------------------------------------------------------------------------


def config(speech_out: bool = False) -> pb.StreamingTranslateRequest:
    out = pb.OutputOptions(text=True, speech=speech_out, transcript=False)
    return pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=FMT, target_languages=["spa"], output=out))


def chunks(pcm: np.ndarray, ms: int = 100) -> list[bytes]:
    step = 16 * ms
    return [pcm[i : i + step].tobytes() for i in range(0, len(pcm), step)]


async def test_grpc_stream_endings_are_logged_as_the_client_ended_them(
    served: ServerProcess, speech: np.ndarray
) -> None:
    before = await asyncio.to_thread(stream_calls, served)
    async with grpc.aio.insecure_channel(served.address) as ch:
        stub = pb_grpc.TranslatorStub(ch)

        # half-close after the audio, read to the end: a clean end
        async def clean() -> AsyncIterator[pb.StreamingTranslateRequest]:
            yield config()
            for c in chunks(speech[: 16000 * 6], 200):
                yield pb.StreamingTranslateRequest(audio=c)

        call = stub.StreamingTranslate(clean(), metadata=(("x-request-id", "grpc-clean"),))
        kinds = [r.WhichOneof("response") async for r in call]
        assert await call.code() == grpc.StatusCode.OK and kinds[-1] == "ended"

        # cancelled mid-stream by a client that reads: it vanished
        opened = asyncio.Event()

        async def endless() -> AsyncIterator[pb.StreamingTranslateRequest]:
            yield config()
            for c in chunks(speech):
                await asyncio.sleep(0.05)
                yield pb.StreamingTranslateRequest(audio=c)
            await asyncio.Event().wait()

        call = stub.StreamingTranslate(endless(), metadata=(("x-request-id", "grpc-cancel"),))

        async def read() -> None:
            async for _ in call:
                opened.set()

        reading = asyncio.create_task(read())
        await asyncio.wait_for(opened.wait(), 30)
        await asyncio.sleep(1.0)
        call.cancel()
        await asyncio.gather(reading, return_exceptions=True)

        # a message protobuf cannot parse: refused, the client's fault
        garbage = ch.stream_stream("/translate_svc.api.v1.Translator/StreamingTranslate")
        bad = garbage(metadata=(("x-request-id", "grpc-garbage"),))
        await bad.write(b"\xff\xff\xff\xff not a message")
        await bad.done_writing()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in bad:
                pass
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # stops reading (a small fixed window, speech on: the server's writes wait), then cancels
    window = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16 * 1024)]
    async with grpc.aio.insecure_channel(served.address, options=window) as ch:

        async def fast() -> AsyncIterator[pb.StreamingTranslateRequest]:
            yield config(speech_out=True)
            for c in chunks(speech):
                yield pb.StreamingTranslateRequest(audio=c)
            await asyncio.Event().wait()

        call = pb_grpc.TranslatorStub(ch).StreamingTranslate(fast(), metadata=(("x-request-id", "grpc-unread"),))
        await call.initial_metadata()
        await asyncio.sleep(4.0)  # the results of 20 s of speech outgrow the window: a write waits
        call.cancel()

    lines = {rid: access_line(served, rid) for rid in ("grpc-clean", "grpc-cancel", "grpc-garbage", "grpc-unread")}
    assert {rid: line["code"] for rid, line in lines.items()} == {
        "grpc-clean": "OK",
        "grpc-cancel": "CANCELLED",
        "grpc-garbage": "INVALID_ARGUMENT",
        "grpc-unread": "CANCELLED",
    }
    assert lines["grpc-unread"]["segments_total"] >= 1  # it had a result on its way when it cancelled
    after = await asyncio.to_thread(stream_calls, served)
    assert counted(before, after) == {"OK": 1, "CANCELLED": 2, "INVALID_ARGUMENT": 1}
    await asyncio.sleep(1.0)  # a late traceback would come about now
    assert problems(served) == []


# -- the OpenAI WebSocket ------------------------------------------------------------------------


def ws_url(server: ServerProcess) -> str:
    assert server.info.http_port is not None
    return f"ws://127.0.0.1:{server.info.http_port}/v1/realtime/translations?model=test"


async def open_session(server: ServerProcess, request_id: str) -> Any:
    ws = await websockets.connect(ws_url(server), additional_headers={"X-Request-Id": request_id})
    assert json.loads(await ws.recv())["type"] == "session.created"
    update = {"type": "session.update", "session": {"audio": {"output": {"language": "es"}}}}
    await ws.send(json.dumps(update))
    return ws


async def append(ws: Any, pcm24k: np.ndarray, seconds: float) -> None:
    step = 4800  # 200 ms
    for at in range(0, int(24000 * seconds), step):
        chunk = pcm24k[at : at + step].astype("<i2").tobytes()
        await ws.send(
            json.dumps({"type": "session.input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()})
        )


async def until(ws: Any, kind: str) -> list[dict[str, Any]]:
    seen = []
    async for raw in ws:
        ev = json.loads(raw)
        seen.append(ev)
        if ev["type"] == kind:
            return seen
    raise AssertionError(f"the socket closed before {kind}: {[e['type'] for e in seen]}")


async def test_websocket_session_endings_are_logged_as_the_client_ended_them(
    served: ServerProcess, shared_audio: Path
) -> None:
    pcm24k = speech_pcm16(shared_audio / "silero_test.wav", 8.0, 24000)
    before = await asyncio.to_thread(stream_calls, served)

    # session.close, every result and session.closed, then the socket closed: a clean end
    ws = await open_session(served, "ws-clean")
    await append(ws, pcm24k, 8.0)
    await ws.send(json.dumps({"type": "session.close"}))
    events = await until(ws, "session.closed")
    await ws.close()
    assert events[-1]["x_reason"] == "closed" and events[-1]["x_segments_total"] >= 1

    # garbage (not JSON, a binary frame, an unknown event) is answered, then a clean end
    ws = await open_session(served, "ws-garbage")
    await until(ws, "session.updated")
    await ws.send("{not json")
    await ws.send(b"\x00\x01binary")
    await ws.send(json.dumps({"type": "no.such.event"}))
    await append(ws, pcm24k, 2.0)
    await ws.send(json.dumps({"type": "session.close"}))
    events = await until(ws, "session.closed")
    await ws.close()
    assert sum(e["type"] == "error" for e in events) == 3

    # the socket closed mid-stream, without session.close: the client went away
    ws = await open_session(served, "ws-vanished")
    await until(ws, "session.updated")
    await append(ws, pcm24k, 4.0)
    await ws.close()

    lines = {rid: access_line(served, rid) for rid in ("ws-clean", "ws-garbage", "ws-vanished")}
    assert {rid: (line["method"], line["code"]) for rid, line in lines.items()} == {
        "ws-clean": ("realtime", "OK"),
        "ws-garbage": ("realtime", "OK"),
        "ws-vanished": ("realtime", "CANCELLED"),
    }
    after = await asyncio.to_thread(stream_calls, served)
    assert counted(before, after) == {"OK": 2, "CANCELLED": 1}
    await asyncio.sleep(1.0)
    assert problems(served) == []
