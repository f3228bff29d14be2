"""One bench stream, through one door, paced at real time: what it measured.

Latency of a segment: from the moment the audio up to its ``end_ms`` was due to be sent (the
stream's start plus ``end_ms``: a live speaker's clock) to the arrival of its final result. A send
that the server holds back (flow control) is late; the most it was late is ``max_lag_ms``, and that
lateness counts against latency, as it would for a live speaker.

Commit lag (simultaneous mode), the same clock: a commit's ``source_ms`` (gRPC ``Commit.source_ms``;
the OpenAI door's ``x_commit.source_ms``) is the stream's audio, in ms, that the server had received
when it committed the words, so the audio the commit covers is the stream's first ``source_ms`` ms.
Its lag is its arrival less the moment that audio was due to be sent (the stream's start plus
``source_ms``). The server had that audio before it committed, so the lag is positive: the time
from the commit to the client (the commit's speech encoded, the wait behind an earlier segment's
result, the network), plus how long the server held the last chunk it had read (under one chunk,
``CHUNK_MS``, while it reads at real time) and any lateness of that chunk's send. A step's own
queue wait and model time come before ``source_ms`` is taken: a slow step commits with a later
``source_ms``, and a step that could not run is skipped (counted on the server's /metrics only).
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

from translate_svc.client_cli.load.clips import SAMPLE_RATE, Clip

if TYPE_CHECKING:
    from translate_svc.client import AsyncTranslateClient

#: audio per gRPC message; the OpenAI door takes 200 ms frames of 24 kHz PCM16 (OpenAI's own)
CHUNK_MS = 100
OPENAI_RATE = 24000
OPENAI_CHUNK_MS = 200
OPENAI_PATH = "/v1/realtime/translations"
#: the largest OpenAI event taken (a segment's speech as one base64 delta can pass 1 MiB)
OPENAI_MAX_EVENT_BYTES = 16 * 2**20


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
    #: each commit's lag (module docstring), in arrival order
    commit_lags_ms: tuple[float, ...] = ()
    error: str | None = None

    @property
    def commits(self) -> int:
        return len(self.commit_lags_ms)


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

    def since_due_ms(self, ms: float) -> float:
        """Now less the moment the audio up to ``ms`` was due to be sent."""
        return (time.perf_counter() - self.start) * 1000.0 - ms


async def grpc_stream(client: AsyncTranslateClient, clip: Clip, target: str, *, simultaneous: bool) -> StreamObs:
    """One ``StreamingTranslate`` call through the SDK, text and speech (the server's default
    output: the vocoder is part of the work a GPU carries)."""
    from translate_svc.client import Commit, Segment, TranslateError

    segments: list[SegmentObs] = []
    commit_lags: list[float] = []
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
                        segments.append(SegmentObs(pacer.since_due_ms(ev.end_ms), ev.ok, t.queue_ms, t.model_ms))
                    elif isinstance(ev, Commit):
                        commit_lags.append(pacer.since_due_ms(ev.source_ms))
            finally:
                if not sender.done():
                    sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
    except TranslateError as e:  # recorded: the other streams go on
        return StreamObs(total_ms / 1000.0, tuple(segments), pacer.lag_ms, tuple(commit_lags), f"{e.code}: {e}")
    return StreamObs(total_ms / 1000.0, tuple(segments), pacer.lag_ms, tuple(commit_lags))


def pcm24k(clip: Clip) -> np.ndarray[Any, Any]:
    import soxr

    x = soxr.resample(clip.pcm.astype(np.float32) / 32768.0, SAMPLE_RATE, OPENAI_RATE)
    return np.asarray(np.clip(np.round(x * 32767), -32768, 32767).astype("<i2"))


async def openai_stream(base_url: str, token: str | None, clip: Clip, language: str) -> StreamObs:
    """One realtime translation session on the OpenAI door (the ``websockets`` client, JSON events
    as OpenAI documents them). A segment's final is its ``session.output_transcript.done``
    (``x_segment``: its span; ``x_timing``: the server's latency and model time); a commit is a
    ``session.output_transcript.delta`` with ``x_commit`` (one per commit that carries text)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import WebSocketException

    audio = pcm24k(clip)
    step = OPENAI_RATE * OPENAI_CHUNK_MS // 1000
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = base_url.rstrip("/").replace("http", "ws", 1) + OPENAI_PATH + "?model=translate-svc-bench"
    pacer = _Pacer()
    segments: list[SegmentObs] = []
    commit_lags: list[float] = []
    error: str | None = None
    try:
        async with connect(
            url, additional_headers=headers, ping_interval=None, max_size=OPENAI_MAX_EVENT_BYTES, open_timeout=10
        ) as ws:
            update = {"type": "session.update", "session": {"audio": {"output": {"language": language}}}}
            await ws.send(json.dumps(update))

            async def send() -> None:
                pacer.start = time.perf_counter()
                for at in range(0, len(audio), step):
                    ms = min(at + step, len(audio)) * 1000.0 / OPENAI_RATE
                    await pacer.wait(ms)
                    chunk = base64.b64encode(audio[at : at + step].tobytes()).decode()
                    await ws.send(json.dumps({"type": "session.input_audio_buffer.append", "audio": chunk}))
                    pacer.sent(ms)
                await ws.send(json.dumps({"type": "session.close"}))

            sender: asyncio.Task[None] | None = None
            try:
                async for msg in ws:
                    if not isinstance(msg, str):
                        break
                    ev = json.loads(msg)
                    kind = ev.get("type")
                    if kind == "session.updated" and sender is None:
                        sender = asyncio.create_task(send())
                    elif kind == "session.output_transcript.done":
                        timing = ev.get("x_timing") or {}
                        latency = pacer.since_due_ms(ev["x_segment"]["end_ms"])
                        segments.append(SegmentObs(latency, not ev.get("x_failed"), None, timing.get("model_ms")))
                    elif kind == "session.output_transcript.delta" and ev.get("x_commit"):
                        commit_lags.append(pacer.since_due_ms(ev["x_commit"]["source_ms"]))
                    elif kind == "error":
                        error = str((ev.get("error") or {}).get("message", ev))
                    elif kind == "session.closed":
                        break
            finally:
                if sender is not None:
                    if not sender.done():
                        sender.cancel()
                    await asyncio.gather(sender, return_exceptions=True)
    except (WebSocketException, OSError, TimeoutError) as e:
        error = f"{type(e).__name__}: {e}"
    return StreamObs(len(audio) / OPENAI_RATE, tuple(segments), pacer.lag_ms, tuple(commit_lags), error)
