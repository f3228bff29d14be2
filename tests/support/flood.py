"""The flood beside real-time streams (tests/service/test_fair_share.py on CPU under both cores,
tests/gpu/test_fair_share_cuda.py on CUDA): a stream flooding at 20x real time beside 8 real-time
streams, with the server at its stream capacity refusing the next one. The real-time streams lose
nothing and keep their latency: with whole batches, waiting at most one batch more than the same
streams alone (and then in a batch the flood fills); with the steps core, within one segment's
time in the running decode.

The server runs in the test's process (its batches are read from there); every client runs in a
separate process (``python -m tests.support.flood PORT PHASE AUDIO_DIR``), as a measured server
is loaded in benchmarks/: clients in the server's own process would share its interpreter lock and
event loop, so the flood's client work would count as the server's latency."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
from google.rpc import code_pb2, error_details_pb2
from grpc_status import rpc_status
from prometheus_client import REGISTRY

from tests.support.live_server import serving
from tests.support.paths import REPO
from tests.support.raw import channel
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.client_cli.decode import load_pcm16k
from translate_svc.settings import Settings

REALTIME = 8
SECONDS = 15  # audio per real-time stream
CHUNK_MS = 100
FMT = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)
TEXT = pb.OutputOptions(text=True, speech=False, transcript=False)


def cfg() -> pb.StreamingTranslateRequest:
    return pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=FMT, target_languages=["spa"], output=TEXT))


#: one real-time stream's segments: their spans, latencies and model times; where each one's wait
#: went (its ``timing.queue_ms`` and ``vad_wait_ms``), and how late the client sent its chunks at
#: most (ms past their schedule: a starved client process's share of a latency)
Stream = tuple[list[tuple[int, int]], list[float], list[float], list[tuple[float, float]], float]


async def realtime_stream(stub: pb_grpc.TranslatorStub, pcm: np.ndarray) -> Stream:
    """Send ``pcm`` at real time in 100 ms chunks; the segments' spans, their latencies (ms from
    the scheduled send of the chunk holding end_ms to the result) and their own model times (the
    result's ``timing.model_ms``)."""
    step = 16 * CHUNK_MS
    t0 = time.perf_counter()
    late = [0.0]

    async def gen() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield cfg()
        for i, at in enumerate(range(0, len(pcm), step)):
            due = t0 + i * CHUNK_MS / 1000
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            late[0] = max(late[0], (time.perf_counter() - due) * 1000)
            yield pb.StreamingTranslateRequest(audio=pcm[at : at + step].tobytes())

    spans, latencies, model, waits = [], [], [], []
    async for r in stub.StreamingTranslate(gen(), timeout=120):
        if r.HasField("segment"):
            s = r.segment
            assert s.status.code == code_pb2.OK, s.status.message
            sent = t0 + (s.end_ms - 1) // CHUNK_MS * CHUNK_MS / 1000  # the chunk with the audio before end_ms
            spans.append((s.start_ms, s.end_ms))
            latencies.append((time.perf_counter() - sent) * 1000)
            model.append(s.timing.model_ms)
            waits.append((s.timing.queue_ms, s.timing.vad_wait_ms))
    return spans, latencies, model, waits, late[0]


async def flood(
    stub: pb_grpc.TranslatorStub, pcm: np.ndarray, stop: asyncio.Event, speed: float = 20.0
) -> dict[str, float]:
    """Send ``pcm`` over and over at ``speed`` x real time until ``stop``; read every result."""
    step = 16 * CHUNK_MS
    sent = 0
    t0 = time.perf_counter()

    async def gen() -> AsyncIterator[pb.StreamingTranslateRequest]:
        nonlocal sent
        yield cfg()
        i = 0
        while not stop.is_set():
            await asyncio.sleep(max(0.0, t0 + i * CHUNK_MS / 1000 / speed - time.perf_counter()))
            at = (i * step) % (len(pcm) - step)
            yield pb.StreamingTranslateRequest(audio=pcm[at : at + step].tobytes())
            sent += 1
            i += 1

    segments = 0
    async for r in stub.StreamingTranslate(gen(), timeout=120):
        segments += r.HasField("segment")
    return {"audio_s": sent * CHUNK_MS / 1000, "wall_s": time.perf_counter() - t0, "segments": segments}


def stall_closes() -> float:
    """This process's segments closed because their sender seemed to stall (limits.stall_close_ms)."""
    return REGISTRY.get_sample_value("translate_svc_stall_closes_total") or 0.0


def p95(xs: list[float]) -> float:
    return float(np.percentile(xs, 95))


def load_clips(audio: Path) -> list[np.ndarray]:
    pcm = load_pcm16k(audio / "silero_test.wav")
    return [np.roll(pcm, -16000 * 5 * i)[: 16000 * SECONDS] for i in range(REALTIME)]


async def run_realtime(stub: pb_grpc.TranslatorStub, clips: list[np.ndarray]) -> list[Stream]:
    async def one(i: int) -> Stream:
        await asyncio.sleep(i * 0.25)  # staggered starts, as callers join
        return await realtime_stream(stub, clips[i])

    return await asyncio.gather(*(one(i) for i in range(len(clips))))


async def knock(stub: pb_grpc.TranslatorStub) -> list[dict[str, object]]:
    """Once every admitted stream is open, try 20 more streams, one every 250 ms; how each ended."""
    await asyncio.sleep(3)  # the staggered real-time streams are all open by now
    ends: list[dict[str, object]] = []
    for _ in range(20):
        try:
            async for _ in stub.StreamingTranslate(iter([cfg()]), timeout=10):
                pass
            ends.append({"code": "OK"})
        except grpc.aio.AioRpcError as e:
            status = rpc_status.from_call(e)
            info = error_details_pb2.RetryInfo()
            retry = status is not None and bool(status.details) and status.details[0].Unpack(info)
            ends.append(
                {
                    "code": e.code().name,
                    "message": status.message if status else e.details(),
                    "retry_ms": info.retry_delay.ToMilliseconds() if retry else None,
                }
            )
        await asyncio.sleep(0.25)
    return ends


async def clients(port: int, phase: str, audio: Path) -> dict[str, object]:
    """The client side of one phase: ``alone`` (the real-time streams) or ``beside`` (the same
    streams beside the flood, with callers knocking past capacity)."""
    clips = load_clips(audio)
    async with channel(f"127.0.0.1:{port}") as ch:
        stub = pb_grpc.TranslatorStub(ch)
        if phase == "alone":
            return {"realtime": await run_realtime(stub, clips)}
        stop = asyncio.Event()
        flooding = asyncio.create_task(flood(stub, clips[0], stop))
        beside, refused = await asyncio.gather(run_realtime(stub, clips), knock(stub))
        stop.set()
        return {"realtime": beside, "refused": refused, "flood": await flooding}


async def in_a_client_process(port: int, phase: str, audio: Path) -> dict:  # type: ignore[type-arg]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.flood", str(port), phase, str(audio),
        cwd=REPO, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0, f"the {phase} client process failed ({proc.returncode})"
    return json.loads(out)  # type: ignore[no-any-return]


async def flood_beside_real_time(settings: Settings, shared_audio: Path) -> None:
    """The test on a server of ``settings`` (tests/gpu runs it on CUDA: test_fair_share_cuda.py)."""
    core = settings.engine.core
    # one baseline for both claims (the serial part's longest wait): the real-time streams alone,
    # then again beside the flood with the server at capacity (8 + the flood) and callers knocking
    settings.limits.max_streams = REALTIME + 1
    async with serving(settings) as live:
        port = live.port
        alone = (await in_a_client_process(port, "alone", shared_audio))["realtime"]
        live.batches.clear()
        stalls = stall_closes()
        loaded_run = await in_a_client_process(port, "beside", shared_audio)
        stalls = stall_closes() - stalls
    beside, refused, flooded = loaded_run["realtime"], loaded_run["refused"], loaded_run["flood"]
    batch_ms = max(b.model_ms for b in live.batches)
    segment_ms = max(x for s in beside for x in s[2])
    base = p95([x for s in alone for x in s[1]])
    loaded = p95([x for s in beside for x in s[1]])
    # a real-time final's wait: its latency less its own time in the model
    base_wait = p95([x - m for s in alone for x, m in zip(s[1], s[2], strict=True)])
    loaded_wait = p95([x - m for s in beside for x, m in zip(s[1], s[2], strict=True)])
    # where the wait went (found under four busy loops: p95 326 -> 6,736 ms with the steps core)
    where = {
        run: {
            "queue_p95_ms": round(p95([q for s in streams for q, _ in s[3]])),
            "vad_wait_p95_ms": round(p95([v for s in streams for _, v in s[3]])),
            "client_late_max_ms": round(max(s[4] for s in streams)),
        }
        for run, streams in (("alone", alone), ("beside", beside))
    }
    print(
        f"\nflood ({core}): real-time p95 {base:.0f} -> {loaded:.0f} ms, its wait (less its own model time) "
        f"{base_wait:.0f} -> {loaded_wait:.0f} ms (longest unit {batch_ms:.0f} ms, longest real-time segment in the "
        f"model {segment_ms:.0f} ms); flood {flooded}; where {where}"
    )
    # every real-time stream gets every segment: the same spans as without the flood
    # (a segment cut where no pause is: a sender seen stalled, limits.stall_close_ms, wall clock)
    differ = [(i, a[0], b[0]) for i, (a, b) in enumerate(zip(alone, beside, strict=True)) if a[0] != b[0]]
    assert not differ, {"stall closes": stalls, "streams whose segments differ": differ}
    assert sum(len(spans) for spans, *_ in alone) >= 8 * 4
    # ... no later than without it plus what a flood may take. With whole batches: the final waits
    # for the batch in the model (one batch more wait), then shares its own batch with the flood's
    # rows, which fill its empty seats (rounds across owners, engine/scheduler.py) and make it as
    # long as a full one (on a CPU a batch's time grows with its rows; on a GPU hardly): so its
    # wait grows by at most one batch, and its own time in the model to at most one batch.
    # With the steps core, one segment's time in the running decode (a turn is only a few steps:
    # it waits for a slot that frees and shares its steps with the flood's rows, engine/step_core.py)
    if core == "batch":
        assert loaded_wait <= base_wait + batch_ms, (loaded_wait, base_wait, batch_ms, where)
    else:
        assert loaded <= base + segment_ms, (loaded, base, segment_ms, where)
    # the flood got its share and was slowed on its own stream, not refused elsewhere
    assert flooded["segments"] > 0
    # at capacity, the next stream is refused with a retry delay; the admitted ones keep going
    assert len(refused) == 20 and {e["code"] for e in refused} == {"RESOURCE_EXHAUSTED"}, refused
    assert "capacity" in refused[0]["message"] and refused[0]["retry_ms"] >= 1000, refused[0]


if __name__ == "__main__":  # the client process: PORT PHASE AUDIO_DIR -> JSON on stdout
    print(json.dumps(asyncio.run(clients(int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])))))
