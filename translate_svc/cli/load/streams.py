"""One bench stream, through one door, paced at real time: what it measured.

Latency of a segment: from the moment the audio up to its ``end_ms`` was due to be sent (the
stream's start plus ``end_ms``: a live speaker's clock) to the arrival of its final result. A send
that the server holds back (flow control) is late; the most it was late is ``max_lag_ms``, and that
lateness counts against latency, as it would for a live speaker.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from translate_svc.cli.load.clips import SAMPLE_RATE, Clip

if TYPE_CHECKING:
    from translate_svc.client import AsyncTranslateClient

#: audio per gRPC message; the OpenAI door takes 200 ms frames of 24 kHz PCM16 (OpenAI's own)
CHUNK_MS = 100
OPENAI_RATE = 24000
OPENAI_CHUNK_MS = 200
OPENAI_PATH = "/v1/realtime/translations"


class Mode(str, Enum):
    """A door and the way it is driven."""

    SEGMENT = "segment"  # gRPC StreamingTranslate, one final per segment
    SIMULTANEOUS = "simultaneous"  # gRPC, simultaneous interpretation (commits, then the final)
    OPENAI = "openai"  # the OpenAI-compatible realtime translation session (simultaneous by default)


@dataclass(frozen=True)
class SegmentObs:
    """One final result as the client saw it; queue and model time are the server's own."""

    latency_ms: float
    ok: bool
    queue_ms: float | None  # None: the door does not report it
    model_ms: float | None


@dataclass(frozen=True)
class StreamObs:
    audio_s: float
    segments: tuple[SegmentObs, ...]
    max_lag_ms: float
    commits: int = 0
    error: str | None = None


class _Pacer:
    """Real time from ``start``: the due time of the audio up to ``ms``, and how late sends were."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.lag_ms = 0.0

    async def wait(self, ms: float) -> None:
        due = self.start + ms / 1000.0
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)

    def sent(self, ms: float) -> None:
        self.lag_ms = max(self.lag_ms, (time.perf_counter() - self.start - ms / 1000.0) * 1000.0)

    def latency_ms(self, end_ms: float) -> float:
        return (time.perf_counter() - self.start) * 1000.0 - end_ms


async def grpc_stream(client: AsyncTranslateClient, clip: Clip, target: str, *, simultaneous: bool) -> StreamObs:
    """One ``StreamingTranslate`` call through the SDK, text and speech (the server's default
    output: the vocoder is part of the work a GPU carries)."""
    from translate_svc.client import Commit, Segment, TranslateError

    segments: list[SegmentObs] = []
    commits = 0
    pacer = _Pacer()
    step = SAMPLE_RATE * CHUNK_MS // 1000
    total_ms = clip.seconds * 1000.0
    try:
        async with client.stream(targets=target, simultaneous=simultaneous, speech=True, transcript=False) as s:

            async def send() -> None:
                pacer.start = time.perf_counter()
                for at in range(0, len(clip.pcm), step):
                    ms = min(at + step, len(clip.pcm)) * 1000.0 / SAMPLE_RATE
                    await pacer.wait(ms)
                    await s.send(clip.pcm[at : at + step])
                    pacer.sent(ms)
                await s.close()

            sender = asyncio.create_task(send())
            try:
                async for ev in s:
                    if isinstance(ev, Segment):
                        t = ev.timing
                        segments.append(SegmentObs(pacer.latency_ms(ev.end_ms), ev.ok, t.queue_ms, t.model_ms))
                    elif isinstance(ev, Commit):
                        commits += 1
            finally:
                if not sender.done():
                    sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
    except TranslateError as e:  # recorded: the other streams go on
        return StreamObs(total_ms / 1000.0, tuple(segments), pacer.lag_ms, commits, f"{e.code}: {e}")
    return StreamObs(total_ms / 1000.0, tuple(segments), pacer.lag_ms, commits)


def pcm24k(clip: Clip) -> np.ndarray[Any, Any]:
    import soxr

    x = soxr.resample(clip.pcm.astype(np.float32) / 32768.0, SAMPLE_RATE, OPENAI_RATE)
    return np.asarray(np.clip(np.round(x * 32767), -32768, 32767).astype("<i2"))


async def openai_stream(http: Any, base_url: str, token: str | None, clip: Clip, language: str) -> StreamObs:
    """One realtime translation session on the OpenAI door (aiohttp's WebSocket client, JSON
    events as OpenAI documents them). A segment's final is its ``session.output_transcript.done``
    (``x_segment``: its span; ``x_timing``: the server's latency and model time)."""
    import aiohttp

    audio = pcm24k(clip)
    step = OPENAI_RATE * OPENAI_CHUNK_MS // 1000
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = base_url.rstrip("/").replace("http", "ws", 1) + OPENAI_PATH + "?model=translate-svc-bench"
    pacer = _Pacer()
    segments: list[SegmentObs] = []
    commits = 0
    error: str | None = None
    try:
        async with http.ws_connect(url, headers=headers, heartbeat=None) as ws:
            update = {"type": "session.update", "session": {"audio": {"output": {"language": language}}}}
            await ws.send_str(json.dumps(update))

            async def send() -> None:
                pacer.start = time.perf_counter()
                for at in range(0, len(audio), step):
                    ms = min(at + step, len(audio)) * 1000.0 / OPENAI_RATE
                    await pacer.wait(ms)
                    chunk = base64.b64encode(audio[at : at + step].tobytes()).decode()
                    await ws.send_str(json.dumps({"type": "session.input_audio_buffer.append", "audio": chunk}))
                    pacer.sent(ms)
                await ws.send_str(json.dumps({"type": "session.close"}))

            sender: asyncio.Task[None] | None = None
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                ev = json.loads(msg.data)
                kind = ev.get("type")
                if kind == "session.updated" and sender is None:
                    sender = asyncio.create_task(send())
                elif kind == "session.output_transcript.done":
                    timing = ev.get("x_timing") or {}
                    latency = pacer.latency_ms(ev["x_segment"]["end_ms"])
                    segments.append(SegmentObs(latency, not ev.get("x_failed"), None, timing.get("model_ms")))
                elif kind == "session.output_transcript.delta" and ev.get("x_commit"):
                    commits += 1
                elif kind == "error":
                    error = str((ev.get("error") or {}).get("message", ev))
                elif kind == "session.closed":
                    break
            if sender is not None:
                if not sender.done():
                    sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
    except (aiohttp.ClientError, OSError) as e:
        error = f"{type(e).__name__}: {e}"
    return StreamObs(len(audio) / OPENAI_RATE, tuple(segments), pacer.lag_ms, commits, error)
