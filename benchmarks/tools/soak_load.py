"""The soak's mixed load (``benchmarks/tools/soak.py``): lanes of real-time clients and what they saw.

Each lane is one client that keeps a kind of traffic going until the soak's ``stop`` is set:

- ``grpc`` / ``grpc_captions``: a ``StreamingTranslate`` stream of the SDK (``AsyncTranslateClient``)
  playing its clip at real time in 100 ms chunks, then half-closing and reading to its
  ``StreamEnd``; then a new stream (the captioned lanes ask for live captions every 500 ms);
- ``simultaneous``: the same with ``simultaneous=True`` (commits while the speaker talks);
- ``ws``: an OpenAI-door session (``/v1/realtime/translations``, 24 kHz PCM16 in 200 ms appends,
  ``session.close``, read to ``session.closed``, close the socket), reopened when it ends;
- ``translate`` / ``translate_text``: one call every ``period_s``;
- ``misbehaving``: every ``period_s`` one client that cancels mid-stream and one that stops reading
  for ``stop_reading_s`` and then cancels (``aclose``: the SDK cancels the call).

Latency of a segment: from the moment the chunk that carried the end of its audio (``end_ms``) was
handed to the client library, to the moment its final result reached the lane. Every stream's ids
are checked against its ``segments_total``; a captioned or committed segment must get its final.
Event loop only (one loop runs every lane).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from translate_svc.client import (
    AsyncTranslateClient,
    Commit,
    Interim,
    Segment,
    StreamEnd,
)

logger = logging.getLogger("benchmarks.tools.soak")

RATE = 16000
CHUNK_MS = 100  # gRPC lanes: one 100 ms chunk per message
WS_RATE = 24000  # the OpenAI door's audio
WS_CHUNK_MS = 200  # OpenAI's frame
CAPTION_MS = 500
TARGET = "spa"
WS_TARGET = "es"
TEXT = "The quick brown fox jumps over the lazy dog, and the meeting starts at nine tomorrow."
#: how long a lane waits for the rest of its stream's results after half-closing
DRAIN_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class SegmentObs:
    """One final result as a lane saw it."""

    kind: str
    lane: int
    sent_s: float  # when the end of its audio was sent, seconds since the load started
    latency_ms: float
    ok: bool
    vad_wait_ms: float | None = None
    queue_ms: float | None = None
    model_ms: float | None = None
    total_ms: float | None = None  # server: segment closed -> result ready
    clip: str = ""
    segment_id: int = -1
    end_ms: int = -1


@dataclass
class Recorder:
    """Everything the lanes saw (event loop only)."""

    t0: float = 0.0
    segments: list[SegmentObs] = field(default_factory=list)
    sessions: Counter[str] = field(default_factory=Counter)  # sessions completed, by kind
    lost: list[dict[str, Any]] = field(default_factory=list)  # ids or finals missing, totals wrong
    errors: Counter[str] = field(default_factory=Counter)  # client-seen errors, "kind: what"
    calls: dict[str, list[float]] = field(default_factory=dict)  # unary call latencies (ms), by method
    misbehaved: Counter[str] = field(default_factory=Counter)

    def rel(self, t: float) -> float:
        return t - self.t0

    def error(self, kind: str, what: object) -> None:
        text = f"{kind}: {type(what).__name__}: {what}" if isinstance(what, BaseException) else f"{kind}: {what}"
        self.errors[text[:300]] += 1
        logger.warning("%s", text[:300])


@dataclass(frozen=True)
class Clip:
    name: str
    pcm16k: np.ndarray  # int16 mono
    pcm24k: np.ndarray  # int16 mono, for the OpenAI door


@dataclass
class Env:
    grpc_target: str
    ws_url: str | None
    rec: Recorder
    stop: asyncio.Event


class Pacer:
    """Sends chunks at real time and remembers when each went (the latency's start)."""

    def __init__(self, chunk_ms: int) -> None:
        self.chunk_ms = chunk_ms
        self.sent_at: list[float] = []
        self.start = time.perf_counter()

    async def wait_turn(self) -> None:
        due = self.start + (len(self.sent_at) + 1) * self.chunk_ms / 1000
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)

    def sent(self) -> None:
        self.sent_at.append(time.perf_counter())

    def end_sent_at(self, end_ms: int) -> float | None:
        """When the chunk holding the audio just before ``end_ms`` was sent."""
        k = max(0, math.ceil(end_ms / self.chunk_ms) - 1)
        return self.sent_at[k] if k < len(self.sent_at) else None


def check_ids(rec: Recorder, kind: str, lane: int, got: set[int], total: int | None, must: set[int]) -> None:
    """Every id below ``segments_total`` came once, and every id in ``must`` (captioned, committed)."""
    rec.sessions[kind] += 1
    if total is None:
        rec.lost.append({"kind": kind, "lane": lane, "what": "no segments_total (the stream did not end cleanly)"})
        return
    missing = sorted(set(range(total)) - got)
    extra = sorted(got - set(range(total)))
    no_final = sorted(must - got)
    if missing or extra or no_final:
        rec.lost.append(
            {
                "kind": kind,
                "lane": lane,
                "missing": missing,
                "beyond_total": extra,
                "no_final": no_final,
                "total": total,
            }
        )


# -- gRPC streams (the SDK) ---------------------------------------------------------------------


async def grpc_lane(env: Env, kind: str, lane: int, clip: Clip) -> None:
    """A stream of ``clip`` at real time, again and again until ``stop``."""
    captions = kind == "grpc_captions"
    simultaneous = kind == "simultaneous"
    # one connection, as one caller with one stream at a time has (the SDK's pool would open a
    # connection per stream in turn, up to 16 per lane: fds that measure the client, not the server)
    async with AsyncTranslateClient(env.grpc_target, timeout_s=60, connections=1) as client:
        while not env.stop.is_set():
            try:
                await one_stream(env, client, kind, lane, clip, captions=captions, simultaneous=simultaneous)
            except Exception as e:  # recorded; the lane goes on with a new stream
                env.rec.error(kind, e)
                await asyncio.sleep(1.0)


async def one_stream(
    env: Env, client: AsyncTranslateClient, kind: str, lane: int, clip: Clip, *, captions: bool, simultaneous: bool
) -> None:
    rec = env.rec
    step = RATE * CHUNK_MS // 1000
    got: set[int] = set()
    must: set[int] = set()
    end: list[StreamEnd] = []
    stream = client.stream(
        targets=[TARGET], interim_ms=CAPTION_MS if captions else 0, simultaneous=simultaneous, timeout_s=None
    )
    async with stream:
        pacer = Pacer(CHUNK_MS)

        async def read() -> None:
            async for ev in stream:
                now = time.perf_counter()
                if isinstance(ev, Segment):
                    got.add(ev.segment_id)
                    sent = pacer.end_sent_at(ev.end_ms)
                    if sent is None:
                        rec.error(kind, f"segment {ev.segment_id} ends at {ev.end_ms} ms, after the audio sent")
                        continue
                    t = ev.timing
                    rec.segments.append(
                        SegmentObs(
                            kind,
                            lane,
                            rec.rel(sent),
                            (now - sent) * 1000,
                            ev.error is None,
                            t.vad_wait_ms,
                            t.queue_ms,
                            t.model_ms,
                            t.total_ms,
                            clip.name,
                            ev.segment_id,
                            ev.end_ms,
                        )
                    )
                    if ev.error is not None:
                        rec.error(kind, f"segment failed: {ev.error.code} {ev.error.message}")
                elif isinstance(ev, Interim):
                    must.add(ev.segment_id)
                elif isinstance(ev, Commit):
                    must.add(ev.segment_id)
                elif isinstance(ev, StreamEnd):
                    end.append(ev)

        reader = asyncio.create_task(read())
        try:
            pacer.start = time.perf_counter()
            for at in range(0, len(clip.pcm16k), step):
                if env.stop.is_set() or reader.done():
                    break
                await pacer.wait_turn()
                await stream.send(clip.pcm16k[at : at + step])
                pacer.sent()
            await stream.close()
            await asyncio.wait_for(asyncio.shield(reader), DRAIN_TIMEOUT_S)
        finally:
            if not reader.done():
                reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        reader.result()  # a failure of the stream is the lane's error
    check_ids(rec, kind, lane, got, end[0].segments_total if end else None, must)


# -- OpenAI door sessions -----------------------------------------------------------------------


async def ws_lane(env: Env, lane: int, clip: Clip) -> None:
    """OpenAI-door sessions of ``clip`` at real time, each reopened when it ends, until ``stop``."""
    while not env.stop.is_set():
        try:
            await one_ws_session(env, lane, clip)
        except Exception as e:
            env.rec.error("ws", e)
            await asyncio.sleep(1.0)


async def one_ws_session(env: Env, lane: int, clip: Clip) -> None:
    import websockets

    assert env.ws_url is not None
    rec = env.rec
    step = WS_RATE * WS_CHUNK_MS // 1000
    got: set[int] = set()
    must: set[int] = set()
    closed: list[dict[str, Any]] = []
    async with websockets.connect(env.ws_url, max_size=64 * 1024 * 1024) as ws:
        created = json.loads(await ws.recv())
        if created.get("type") != "session.created":
            raise RuntimeError(f"first event {created.get('type')!r}, not session.created")
        await ws.send(json.dumps({"type": "session.update", "session": {"audio": {"output": {"language": WS_TARGET}}}}))
        pacer = Pacer(WS_CHUNK_MS)

        async def read() -> None:
            async for raw in ws:
                now = time.perf_counter()
                ev = json.loads(raw)
                kind = ev.get("type")
                seg = ev.get("x_segment") or {}
                if kind == "session.output_transcript.delta" and "x_timing" in ev:  # a segment's final
                    sid = int(seg["segment_id"])
                    if sid in got:
                        continue  # one event per target; one target here
                    got.add(sid)
                    sent = pacer.end_sent_at(int(seg["end_ms"]))
                    if sent is not None:
                        timing = ev["x_timing"]
                        rec.segments.append(
                            SegmentObs(
                                "ws",
                                lane,
                                rec.rel(sent),
                                (now - sent) * 1000,
                                True,
                                model_ms=timing.get("model_ms"),
                                total_ms=timing.get("latency_ms"),
                                clip=clip.name,
                                segment_id=sid,
                                end_ms=int(seg["end_ms"]),
                            )
                        )
                elif "x_commit" in ev:
                    must.add(int(seg["segment_id"]))
                elif kind == "error":
                    if seg:
                        got.add(int(seg["segment_id"]))  # a failed segment is accounted for
                    rec.error("ws", f"error event: {ev.get('error', {}).get('code')}")
                elif kind == "session.closed":
                    closed.append(ev)
                    return

        reader = asyncio.create_task(read())
        try:
            pacer.start = time.perf_counter()
            for at in range(0, len(clip.pcm24k), step):
                if env.stop.is_set() or reader.done():
                    break
                await pacer.wait_turn()
                chunk = clip.pcm24k[at : at + step].astype("<i2").tobytes()
                await ws.send(json.dumps({"type": "session.input_audio_buffer.append", "audio": b64(chunk)}))
                pacer.sent()
            await ws.send(json.dumps({"type": "session.close"}))
            await asyncio.wait_for(asyncio.shield(reader), DRAIN_TIMEOUT_S)
        finally:
            if not reader.done():
                reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        reader.result()
    total = int(closed[0]["x_segments_total"]) if closed else None
    if closed and closed[0].get("x_reason") != "closed":
        rec.error("ws", f"session.closed with x_reason {closed[0].get('x_reason')!r}")
    check_ids(rec, "ws", lane, got, total, must)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- unary calls ----------------------------------------------------------------------------------


async def every(env: Env, period_s: float, first_s: float, action: Callable[[], Awaitable[None]]) -> None:
    """``action`` every ``period_s`` (starting ``first_s`` in) until ``stop``; each runs as its
    own task, so a slow one does not shift the schedule."""
    running: set[asyncio.Task[None]] = set()
    n = 0
    while True:
        due = env.rec.t0 + first_s + n * period_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(env.stop.wait(), max(0.0, due - time.perf_counter()))
        if env.stop.is_set():
            break
        t = asyncio.create_task(action())
        running.add(t)
        t.add_done_callback(running.discard)
        n += 1
    await asyncio.gather(*running, return_exceptions=True)


async def translate_lane(env: Env, clip_path: Path, period_s: float) -> None:
    async with AsyncTranslateClient(env.grpc_target, timeout_s=120, connections=1) as client:

        async def once() -> None:
            t = time.perf_counter()
            try:
                result = await client.translate(clip_path, targets=TARGET)
                env.rec.calls.setdefault("Translate", []).append((time.perf_counter() - t) * 1000)
                failed = [s for s in result.segments if s.error is not None]
                if not result.segments or failed:
                    env.rec.error("translate", f"{len(result.segments)} segments, {len(failed)} failed")
            except Exception as e:
                env.rec.error("translate", e)

        await every(env, period_s, period_s / 2, once)


async def text_lane(env: Env, period_s: float) -> None:
    async with AsyncTranslateClient(env.grpc_target, timeout_s=120, connections=1) as client:

        async def once() -> None:
            t = time.perf_counter()
            try:
                result = await client.translate_text(TEXT, source="eng", targets=TARGET)
                env.rec.calls.setdefault("TranslateText", []).append((time.perf_counter() - t) * 1000)
                if len(result.results) != 1:
                    env.rec.error("translate_text", f"{len(result.results)} results for 1 text")
            except Exception as e:
                env.rec.error("translate_text", e)

        await every(env, period_s, 1.0, once)


# -- clients that misbehave ---------------------------------------------------------------------


async def misbehaving_lane(env: Env, clip: Clip, period_s: float, cancel_after_s: float, stop_reading_s: float) -> None:
    """Every ``period_s``: one client cancels its stream ``cancel_after_s`` in (while reading), one
    sends at real time without reading for ``stop_reading_s`` and then cancels."""

    async def once() -> None:
        await asyncio.gather(cancel_mid_stream(env, clip, cancel_after_s), stop_reading(env, clip, stop_reading_s))

    await every(env, period_s, period_s / 2, once)


async def _send_for(stream: Any, clip: Clip, seconds: float) -> None:
    step = RATE * CHUNK_MS // 1000
    pacer = Pacer(CHUNK_MS)
    n = min(len(clip.pcm16k), int(seconds * RATE))
    for at in range(0, n, step):
        await pacer.wait_turn()
        await stream.send(clip.pcm16k[at : at + step])  # waits once the server stops taking audio
        pacer.sent()


async def cancel_mid_stream(env: Env, clip: Clip, after_s: float) -> None:
    async with AsyncTranslateClient(env.grpc_target, timeout_s=60) as client:
        try:
            stream = client.stream(targets=[TARGET])
            await stream.start()

            async def read() -> None:
                async for _ in stream:
                    pass

            reader = asyncio.create_task(read())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_send_for(stream, clip, after_s + 5), after_s)
            await stream.aclose()  # cancels the call mid-stream
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            env.rec.misbehaved["cancelled_mid_stream"] += 1
        except Exception as e:
            env.rec.error("misbehaving", e)


async def stop_reading(env: Env, clip: Clip, seconds: float) -> None:
    async with AsyncTranslateClient(env.grpc_target, timeout_s=60) as client:
        try:
            stream = client.stream(targets=[TARGET])
            await stream.start()  # never iterated: the SDK reads a few events ahead, then stops
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_send_for(stream, clip, seconds + 5), seconds)
            await stream.aclose()
            env.rec.misbehaved["stopped_reading_then_cancelled"] += 1
        except Exception as e:
            env.rec.error("misbehaving", e)
