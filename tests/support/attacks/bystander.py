"""What another tenant sees while an attack runs: a probe of its calls (health ``Check``,
``ListLanguages``, a short ``StreamingTranslate``), a ``Check`` loop's latencies, and how late the
results of its real-time stream of speech come. Each over a connection of its own."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import numpy as np

from tests.support.attacks.client import OWN, metadata
from tests.support.paths import SHARED_AUDIO

STREAM = "/translate_svc.api.v1.Translator/StreamingTranslate"
CHUNK_MS = 100


def speech() -> np.ndarray:
    """jfk.flac (11 s of speech) as 16 kHz int16."""
    from translate_svc.client_cli.decode import load_pcm16k

    return load_pcm16k(SHARED_AUDIO / "jfk.flac")


async def probe(address: str, token: str | None, *, stream: bool = True) -> dict[str, Any]:
    """The other tenant meanwhile, from a new connection: a token-less health Check, ListLanguages
    and (``stream``) a one-second StreamingTranslate with ``token``; each one's status and seconds."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from translate_svc.api.v1 import translate_pb2 as pb
    from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

    out: dict[str, Any] = {}

    async def timed(name: str, call: Callable[[], Awaitable[Any]]) -> None:
        t = time.perf_counter()
        try:
            await call()
            code = "OK"
        except grpc.aio.AioRpcError as e:
            code = e.code().name
        out[name] = {"code": code, "seconds": round(time.perf_counter() - t, 3)}

    async def one_stream(stub: Any) -> None:
        async def requests() -> AsyncIterator[Any]:
            fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)
            yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=fmt, target_languages=["spa"]))
            yield pb.StreamingTranslateRequest(audio=bytes(32000))

        async for _ in stub.StreamingTranslate(requests(), metadata=metadata(token), timeout=30):
            pass

    async with grpc.aio.insecure_channel(address, options=OWN) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        stub = pb_grpc.TranslatorStub(ch)
        await timed("health_check", lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=10))
        await timed(
            "list_languages",
            lambda: stub.ListLanguages(pb.ListLanguagesRequest(), metadata=metadata(token), timeout=10),
        )
        if stream:
            await timed("streaming_translate", lambda: one_stream(stub))
    return out


async def check_loop(
    address: str, stop: asyncio.Event, latencies: list[float], every_s: float = 0.2, timeout_s: float = 120
) -> None:
    """A token-less health ``Check`` every ``every_s`` until ``stop``: each one's latency (s)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(address, options=OWN) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while not stop.is_set():
            t = time.perf_counter()
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
            latencies.append(time.perf_counter() - t)
            await asyncio.sleep(every_s)


async def realtime_lateness(address: str, token: str, pcm: np.ndarray, timeout_s: float = 300) -> list[float]:
    """The other tenant streams ``pcm`` (16 kHz int16) in real time, 100 ms a message: how late each
    segment's result came (its arrival minus when the audio of its end was sent), seconds."""
    from translate_svc.api.v1 import translate_pb2 as pb

    step = 16 * CHUNK_MS
    sent_at: list[float] = []

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        cfg = pb.StreamingConfig(
            format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000),
            source_language="eng",
            target_languages=["spa"],
            output=pb.OutputOptions(text=True, speech=False, transcript=True),
        )
        yield pb.StreamingTranslateRequest(config=cfg)
        t0 = time.perf_counter()
        for k, i in enumerate(range(0, len(pcm), step)):
            await asyncio.sleep(max(0.0, t0 + (k + 1) * CHUNK_MS / 1000 - time.perf_counter()))
            sent_at.append(time.perf_counter())
            yield pb.StreamingTranslateRequest(audio=pcm[i : i + step].astype("<i2").tobytes())

    late: list[float] = []
    async with grpc.aio.insecure_channel(address, options=OWN) as ch:
        call = ch.stream_stream(
            STREAM,
            request_serializer=pb.StreamingTranslateRequest.SerializeToString,
            response_deserializer=pb.StreamingTranslateResponse.FromString,
        )(requests(), metadata=metadata(token), timeout=timeout_s)
        async for r in call:
            if r.HasField("segment"):
                chunk = min(len(sent_at) - 1, max(0, -(-r.segment.end_ms // CHUNK_MS) - 1))
                late.append(time.perf_counter() - sent_at[chunk])
    return late


def summary(values: list[float], digits: int = 3) -> dict[str, Any]:
    """How many, the median and the worst of ``values``."""
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(statistics.median(values), digits), "worst": round(max(values), digits)}
