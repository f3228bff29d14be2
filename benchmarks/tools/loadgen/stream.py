"""One client stream: a real ``StreamingTranslate`` call on a connection of its own, paced (or
not), every response observed with its arrival time."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from benchmarks.tools.loadgen.clips import OPUS_FRAME_MS, OPUS_RATE, Clip
from benchmarks.tools.loadgen.options import RunOptions
from benchmarks.tools.report import InterimObs, SegmentObs, StreamObs
from translate_svc.client_cli.load.clips import SAMPLE_RATE

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamParams:
    """What every stream of a run asks for."""

    targets: tuple[str, ...]
    speech: bool
    encoding: str = "linear16"
    interim_ms: int = 0
    vad_threshold: float | None = None
    timeout_s: float = 1800.0
    vad_min_speech_ms: int | None = None
    vad_eagerness: str | None = None
    vad_eager_threshold: float | None = None

    @classmethod
    def of(cls, opts: RunOptions) -> StreamParams:
        return cls(
            opts.targets,
            opts.speech,
            opts.encoding,
            opts.interim_ms,
            opts.vad_threshold,
            opts.timeout_s,
            opts.vad_min_speech_ms,
            opts.vad_eagerness,
            opts.vad_eager_threshold,
        )


def stream_config(params: StreamParams) -> Any:
    from translate_svc.api.v1 import translate_pb2 as pb

    if params.encoding == "opus":
        fmt = pb.AudioFormat(encoding=pb.OPUS, sample_rate_hz=OPUS_RATE, channels=1)
    else:
        fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=SAMPLE_RATE, channels=1)
    cfg = pb.StreamingConfig(
        format=fmt,
        target_languages=list(params.targets),
        output=pb.OutputOptions(text=True, speech=params.speech, transcript=False),
        interim_interval_ms=params.interim_ms,
    )
    if params.vad_threshold is not None:
        cfg.vad.threshold = params.vad_threshold
    if params.vad_min_speech_ms is not None:
        cfg.vad.min_speech_ms = params.vad_min_speech_ms
    if params.vad_eagerness is not None:
        cfg.vad.eagerness = params.vad_eagerness
    if params.vad_eager_threshold is not None:
        cfg.vad.eager_threshold = params.vad_eager_threshold
    return cfg


async def drive_stream(
    target: str,
    index: int,
    clip: Clip,
    params: StreamParams,
    *,
    chunk_ms: int,
    speed: float | None,
    start_at: float,
    on_started: Callable[[Any], None] | None = None,
    counter: list[int] | None = None,
    stop: asyncio.Event | None = None,
    keep_sent: bool = False,
) -> StreamObs:
    """One StreamingTranslate call; ``speed=None`` sends as fast as gRPC takes it.

    ``counter[0]`` counts the audio messages sent (all streams of a phase share it); ``stop`` ends
    the sending early (a half-close, as if the audio ended); ``keep_sent`` records the actual send
    time of every message (flood streams: their latency is measured from it).
    """
    from translate_svc.api.v1 import translate_pb2 as pb
    from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

    await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
    packets = clip.packets
    if packets is not None:
        chunk_ms = OPUS_FRAME_MS
        n_msgs = len(packets)
    else:
        step = SAMPLE_RATE * chunk_ms // 1000
        n_msgs = math.ceil(len(clip.pcm) / step)
    total_ms = clip.audio_ms
    state = {"start": time.perf_counter(), "last_audio": math.nan, "lag": 0.0}
    sent: list[float] = []
    n_sent = 0
    count = counter if counter is not None else [0]

    async def requests() -> AsyncIterator[Any]:
        nonlocal n_sent
        yield pb.StreamingTranslateRequest(config=stream_config(params))
        for k in range(n_msgs):
            if stop is not None and stop.is_set():
                return
            if speed is not None:
                due = state["start"] + min((k + 1) * chunk_ms, total_ms) / 1000.0 / speed
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                state["lag"] = max(state["lag"], (time.perf_counter() - due) * 1000.0)
                state["last_audio"] = due
            else:
                state["last_audio"] = time.perf_counter()
            data = packets[k] if packets is not None else clip.pcm[k * step : (k + 1) * step].tobytes()
            if keep_sent:
                sent.append(time.perf_counter())
            n_sent += 1
            count[0] += 1
            yield pb.StreamingTranslateRequest(audio=data)

    segments: list[SegmentObs] = []
    interims: list[InterimObs] = []
    ended: float | None = None
    segments_total: int | None = None
    error: str | None = None
    # a connection per stream, as separate callers have (gRPC would share one among equal
    # channels): a node of several front-end workers then gets them spread by the kernel
    ch = grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.use_local_subchannel_pool", 1),
        ],
    )
    try:
        stub = pb_grpc.TranslatorStub(ch)
        state["start"] = time.perf_counter()
        call = stub.StreamingTranslate(requests(), timeout=params.timeout_s)
        async for resp in call:
            now = time.perf_counter()
            kind = resp.WhichOneof("response")
            if kind == "segment":
                s = resp.segment
                segments.append(
                    SegmentObs(
                        segment_id=s.segment_id,
                        end_ms=s.end_ms,
                        arrival_s=now,
                        ok=s.status.code == 0,
                        speech_ms=sum(t.audio.duration_ms for t in s.translations),
                        server_total_ms=s.timing.total_ms,
                        vad_wait_ms=s.timing.vad_wait_ms,
                        queue_ms=s.timing.queue_ms,
                        model_ms=s.timing.model_ms,
                        failure=None if s.status.code == 0 else _code_name(s.status.code),
                        start_ms=s.start_ms,
                    )
                )
            elif kind == "interim":
                it = resp.interim
                interims.append(InterimObs(it.segment_id, it.start_ms, it.end_ms, now))
            elif kind == "ended":
                ended = now
                segments_total = resp.ended.segments_total
            elif kind == "started" and on_started is not None:
                on_started(resp.started)
    except grpc.aio.AioRpcError as e:  # recorded; the other streams go on
        error = f"{e.code().name}: {e.details()}"
        logger.warning("stream %d (%s) failed: %s", index, clip.name, error)
    finally:
        await ch.close()
    return StreamObs(
        index=index,
        file=clip.name,
        audio_ms=total_ms,
        start_s=state["start"],
        last_audio_s=state["last_audio"],
        ended_s=ended,
        segments=tuple(segments),
        error=error,
        max_send_lag_ms=state["lag"],
        interims=tuple(interims),
        segments_total=segments_total,
        audio_messages=n_sent,
        chunk_ms=float(chunk_ms),
        sent_s=tuple(sent),
    )


def _code_name(code: int) -> str:
    return next((c.name for c in grpc.StatusCode if c.value[0] == code), str(code))
