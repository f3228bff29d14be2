"""The stream protocol without gRPC: an in-memory door drives ``StreamDriver`` with typed requests
and gets the same events, ids and spans as the gRPC stream of the same audio (a second door needs
nothing more than this)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.support.live_server import LiveServer
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.errors import InvalidInput
from translate_svc.session import (
    AudioIn,
    Draining,
    Flush,
    SegmentResult,
    SpeechEvent,
    StreamConfig,
    StreamDriver,
    StreamEnded,
    StreamRequest,
    StreamStarted,
)
from translate_svc.transport.grpc import convert
from translate_svc.types import AudioEncoding, AudioFormat, OutputOptions

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

CHUNK = 1600  # 100 ms at 16 kHz


def pcm_chunks(shared_audio: Path) -> list[bytes]:
    samples, rate = sf.read(shared_audio / "silero_test.wav", dtype="int16")
    assert rate == 16000 and samples.ndim == 1
    data = samples.tobytes()
    return [data[i : i + 2 * CHUNK] for i in range(0, len(data), 2 * CHUNK)]


async def in_memory(live: LiveServer, requests: list[StreamRequest]) -> list[Any]:
    """The in-memory door: typed requests in, typed events out."""

    async def gen() -> AsyncIterator[StreamRequest]:
        for r in requests:
            yield r

    driver = StreamDriver(live.server.app.sessions)
    async with contextlib.aclosing(driver.run(gen())) as events:
        return [ev async for ev in events]


async def over_grpc(live: LiveServer, msgs: list[pb.StreamingTranslateRequest]) -> list[pb.StreamingTranslateResponse]:
    async def gen() -> AsyncIterator[pb.StreamingTranslateRequest]:
        for m in msgs:
            yield m

    return [r async for r in live.stub.StreamingTranslate(gen(), timeout=120)]


def summary_of_domain(events: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"speech": [], "segments": [], "ended": [], "order": []}
    for ev in events:
        if isinstance(ev, StreamStarted):
            out["order"].append("started")
        elif isinstance(ev, SpeechEvent):
            out["speech"].append((ev.started, ev.offset_ms))
        elif isinstance(ev, SegmentResult):
            out["order"].append(("segment", ev.segment_id))
            out["segments"].append(
                (
                    ev.segment_id,
                    ev.start_ms,
                    ev.end_ms,
                    ev.transcript.text if ev.transcript else None,
                    tuple(
                        (t.target_language, t.text, None if t.audio is None else len(t.audio)) for t in ev.translations
                    ),
                    ev.error is None,
                )
            )
        elif isinstance(ev, StreamEnded):
            out["order"].append("ended")
            out["ended"].append((ev.segments_total, ev.audio_received_ms, ev.limit, ev.resume_offset_ms))
        elif isinstance(ev, Draining):
            out["order"].append("draining")
    return out


def summary_of_grpc(responses: list[pb.StreamingTranslateResponse]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"speech": [], "segments": [], "ended": [], "order": []}
    for r in responses:
        kind = r.WhichOneof("response")
        if kind == "started":
            out["order"].append("started")
        elif kind == "speech_event":
            out["speech"].append((r.speech_event.type == pb.SpeechEvent.SPEECH_STARTED, r.speech_event.offset_ms))
        elif kind == "segment":
            s = r.segment
            out["order"].append(("segment", s.segment_id))
            out["segments"].append(
                (
                    s.segment_id,
                    s.start_ms,
                    s.end_ms,
                    s.transcript.text if s.HasField("transcript") else None,
                    tuple(
                        (t.target_language, t.text, t.audio.num_samples if t.HasField("audio") else None)
                        for t in s.translations
                    ),
                    s.status.code == 0,
                )
            )
        elif kind == "ended":
            e = r.ended
            out["order"].append("ended")
            out["ended"].append((e.segments_total, e.audio_received_ms, None, e.resume_offset_ms))
    return out


async def test_an_in_memory_door_gets_the_grpc_streams_events(live: LiveServer, shared_audio: Path) -> None:
    chunks = pcm_chunks(shared_audio)
    fmt = AudioFormat(AudioEncoding.LINEAR16, 16000, 1)
    cfg = StreamConfig(
        format=fmt,
        source_language="eng",
        target_languages=("spa", "fra"),
        output=OutputOptions(),
        vad=live.server.app.sessions.vad_defaults,
    )
    half = len(chunks) // 2
    domain_requests: list[StreamRequest] = [
        cfg,
        *(AudioIn(c) for c in chunks[:half]),
        Flush(),
        *(AudioIn(c) for c in chunks[half:]),
    ]
    wire = pb.StreamingTranslateRequest(
        config=pb.StreamingConfig(
            format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1),
            source_language="eng",
            target_languages=["spa", "fra"],
        )
    )
    wire_requests = [
        wire,
        *(pb.StreamingTranslateRequest(audio=c) for c in chunks[:half]),
        pb.StreamingTranslateRequest(control=pb.FLUSH),
        *(pb.StreamingTranslateRequest(audio=c) for c in chunks[half:]),
    ]
    # the two doors at once, on the same server: they share its engine and its batches
    domain, grpc_responses = await asyncio.gather(in_memory(live, domain_requests), over_grpc(live, wire_requests))

    a, b = summary_of_domain(domain), summary_of_grpc(grpc_responses)
    assert len(a["segments"]) >= 15  # silero_test.wav: 19 regions at the default settings
    assert a["speech"] == b["speech"]
    assert a["segments"] == b["segments"]
    assert a["ended"] == b["ended"]
    assert a["order"][0] == b["order"][0] == "started" and a["order"][-1] == b["order"][-1] == "ended"
    assert a["order"] == b["order"]
    # what the gRPC door renders from the in-memory events is what the gRPC client received
    started = domain[0]
    assert isinstance(started, StreamStarted)
    rendered = convert.stream_event_to_pb(started).started
    got = grpc_responses[0].started
    assert rendered.config == got.config and rendered.model == got.model and rendered.limits == got.limits
    # event for event: the same kinds, as many of each (speech events and results interleave as the
    # model's timing falls; within each kind the order is asserted above)
    rendered_kinds = Counter(convert.stream_event_to_pb(ev).WhichOneof("response") for ev in domain)
    assert rendered_kinds == Counter(r.WhichOneof("response") for r in grpc_responses)
    assert np.all(np.diff([s[1] for s in a["segments"]]) > 0)


async def test_the_driver_refuses_audio_before_its_config_once_the_client_stopped_sending(live: LiveServer) -> None:
    read: list[int] = []

    async def gen() -> AsyncIterator[StreamRequest]:
        for i in range(6):  # a client that goes on sending after its bad first message
            read.append(i)
            await asyncio.sleep(0.01)
            yield AudioIn(b"\0\0" * 160)

    driver = StreamDriver(live.server.app.sessions, error_drain_s=5.0)
    with pytest.raises(InvalidInput, match="first message must be `config`, got `audio`"):
        async with contextlib.aclosing(driver.run(gen())) as events:
            async for _ in events:
                pass
    assert read == list(range(6))  # everything it sent was read (and dropped) before the error went out
