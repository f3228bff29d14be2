"""The speech watermark (``model.watermark``) on more doors, each through its own real client on real
servers of the test checkpoint, one marking and one not: a gRPC ``StreamingTranslate`` (the stock
stub) in segments and in simultaneous mode (its commits' speech chunks joined), Riva's
speech-to-speech stream (``nvidia-riva-client``), MCP's ``translate_audio`` speech (the ``mcp``
SDK), a phone call's µ-law (a fake Twilio from its published Media Streams messages), a job's
dubbed track fetched over HTTP (aiohttp) and a room's listeners (gRPC ``Listen``), at the room's
rate and at a rate of their own (a rendition). The speech of each segment long enough to read
(``READ_S``: the test vocoder's output reads reliably from 4 s;
tests/transport/grpc/test_speech_watermark.py) carries the mark where marking is on and not where
it is off."""

from __future__ import annotations

import asyncio
import base64
import io
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
import numpy as np
import pytest
import pytest_asyncio
import riva.client
import soundfile as sf
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.jobs import JobsOverHttp, fresh_connections
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.mcp_door import http_client, mcp_url
from tests.support.phone_carriers import FakeTwilio, calls_ended, phone_url, ulaw_bytes
from tests.support.rooms import registry, speak, speaker_config, wait_for
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.audio.g711 import decode_mulaw
from translate_svc.marking.watermarker import shared
from translate_svc.settings import RoomSettings
from translate_svc.wire.pcm import pcm16_to_float

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

RATE = 16000
READ_S = 4.0
MARKED_OVER, UNMARKED_UNDER = 0.8, 0.2
CHUNK = 6400  # 200 ms of PCM16


async def _server(test_model_dir: Path, watermark: str, jobs: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir, watermark=watermark)
    settings.server.riva = True
    settings.server.http_port = 0
    settings.mcp.enabled = True
    settings.jobs.dir = jobs
    settings.jobs.quiet_wait_s = 0
    settings.rooms = RoomSettings(backlog_s=600.0, rendition_wait_s=120.0)
    settings.phone.websocket = True
    async with serving(settings, warmup=False) as live:
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def marked(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    async for live in _server(test_model_dir, "perth", tmp_path_factory.mktemp("marked") / "jobs"):
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def unmarked(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    async for live in _server(test_model_dir, "off", tmp_path_factory.mktemp("unmarked") / "jobs"):
        yield live


@pytest.fixture(scope="module")
def pcm(shared_audio: Path) -> bytes:
    return bytes(speech_pcm16(shared_audio / "jfk.flac", 11.0, RATE).tobytes())


def check(waves: list[np.ndarray], marks: bool, rate: int = RATE) -> None:
    """The waves of ``READ_S`` and more (one at least) read as marked, or as unmarked."""
    long = [w for w in waves if len(w) >= READ_S * rate]
    assert long, f"no speech of {READ_S} s to read: {[len(w) / rate for w in waves]} s"
    for w in long:
        p = shared().detect(w, rate).probability
        assert p > MARKED_OVER if marks else p < UNMARKED_UNDER, (marks, p)


async def grpc_stream(live: LiveServer, pcm: bytes) -> list[np.ndarray]:
    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=RATE)
        yield pb.StreamingTranslateRequest(
            config=pb.StreamingConfig(format=fmt, source_language="eng", target_languages=["fra"])
        )
        for at in range(0, len(pcm), CHUNK):
            yield pb.StreamingTranslateRequest(audio=pcm[at : at + CHUNK])

    waves = []
    async for r in live.stub.StreamingTranslate(requests(), timeout=300):
        if r.WhichOneof("response") == "segment":
            waves += [pcm16_to_float(np.frombuffer(t.audio.content, "<i2")) for t in r.segment.translations]
    return waves


async def grpc_commits(live: LiveServer, pcm: bytes) -> list[np.ndarray]:
    """A simultaneous stream (``StreamingConfig.simultaneous``), sent at real time so that its steps
    run as it is spoken: each segment's speech as its commits carry it, their chunks joined in order
    (a segment whose result carries its speech instead, none agreed before it closed, as is)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=RATE)
        yield pb.StreamingTranslateRequest(
            config=pb.StreamingConfig(
                format=fmt,
                source_language="eng",
                target_languages=["fra"],
                simultaneous=pb.SimultaneousConfig(enabled=True),
            )
        )
        for i, at in enumerate(range(0, len(pcm), CHUNK)):
            await asyncio.sleep(max(0.0, t0 + i * CHUNK / 2 / RATE - loop.time()))
            yield pb.StreamingTranslateRequest(audio=pcm[at : at + CHUNK])

    chunks: dict[int, list[np.ndarray]] = {}
    waves = []
    async for r in live.stub.StreamingTranslate(requests(), timeout=300):
        kind = r.WhichOneof("response")
        if kind == "commit" and r.commit.speech.content:
            chunks.setdefault(r.commit.segment_id, []).append(
                pcm16_to_float(np.frombuffer(r.commit.speech.content, "<i2"))
            )
        elif kind == "segment":
            seg = r.segment
            if seg.speech_in_commits:
                waves += [np.concatenate(chunks.pop(seg.segment_id, [np.zeros(0, np.float32)]))]
            else:
                waves += [pcm16_to_float(np.frombuffer(t.audio.content, "<i2")) for t in seg.translations]
    assert any(len(w) for w in waves), "no speech"
    return waves


async def riva_s2s(live: LiveServer, pcm: bytes) -> list[np.ndarray]:
    client = riva.client.NeuralMachineTranslationClient(riva.client.Auth(uri=f"127.0.0.1:{live.port}"))
    cfg = riva.client.StreamingTranslateSpeechToSpeechConfig(
        asr_config=riva.client.StreamingRecognitionConfig(
            config=riva.client.RecognitionConfig(
                encoding=riva.client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=RATE, language_code="en-US"
            )
        ),
        translation_config=riva.client.TranslationConfig(source_language_code="en-US", target_language_code="fr-FR"),
        tts_config=riva.client.SynthesizeSpeechConfig(
            encoding=riva.client.AudioEncoding.LINEAR_PCM, sample_rate_hz=RATE
        ),
    )
    chunks = [pcm[at : at + CHUNK] for at in range(0, len(pcm), CHUNK)]
    responses = await asyncio.to_thread(lambda: list(client.streaming_s2s_response_generator(chunks, cfg)))
    return [pcm16_to_float(np.frombuffer(r.speech.audio, "<i2")) for r in responses if r.speech.audio]


async def mcp_clip(live: LiveServer, shared_audio: Path) -> list[np.ndarray]:
    async with Client(streamable_http_client(mcp_url(live), http_client=http_client(None))) as c:
        result: Any = await c.call_tool(
            "translate_audio",
            {
                "audio_base64": base64.b64encode((shared_audio / "jfk.flac").read_bytes()).decode(),
                "source_language": "eng",
                "target_languages": ["fra"],
                "speech": True,
            },
        )
    assert not result.is_error, result.content
    wavs = [block for block in result.content if isinstance(block, types.AudioContent)]
    with wave.open(io.BytesIO(base64.b64decode(wavs[0].data))) as w:
        assert w.getframerate() == RATE
        track = pcm16_to_float(np.frombuffer(w.readframes(w.getnframes()), "<i2"))
    places = [t["speech"] for s in result.structured_content["segments"] for t in s["translations"] if "speech" in t]
    return [track[p["offset_samples"] : p["offset_samples"] + p["samples"]] for p in places]


@pytest.mark.parametrize("door", ["grpc-stream", "grpc-commits", "riva-s2s"])
async def test_a_stream_s_speech_is_marked_where_marking_is_on(
    marked: LiveServer, unmarked: LiveServer, pcm: bytes, door: str
) -> None:
    run = {"grpc-stream": grpc_stream, "grpc-commits": grpc_commits, "riva-s2s": riva_s2s}[door]
    check(await run(marked, pcm), marks=True)
    check(await run(unmarked, pcm), marks=False)


async def test_mcp_s_speech_is_marked_where_marking_is_on(
    marked: LiveServer, unmarked: LiveServer, shared_audio: Path
) -> None:
    check(await mcp_clip(marked, shared_audio), marks=True)
    check(await mcp_clip(unmarked, shared_audio), marks=False)


async def dubbed_track(live: LiveServer, shared_audio: Path) -> list[np.ndarray]:
    """A job of jfk.flac into French, its dubbed track (the whole 11 s: each segment's speech at its
    start, silence between) read as one clip."""
    async with fresh_connections() as http:
        jobs = JobsOverHttp(http, live.server.ports()["http_port"], "")
        done = await jobs.run(
            {"source_language": "eng", "target_languages": ["fra"]}, (shared_audio / "jfk.flac").read_bytes()
        )
        assert done["state"] == "done", done["error"]
        status, wav = await jobs.call("GET", f"/{done['id']}/dubbed/fra")
    assert status == 200, wav
    track, rate = sf.read(io.BytesIO(wav), dtype="float32")
    assert rate == RATE
    return [track]


async def test_a_job_s_dubbed_track_is_marked_where_marking_is_on(
    marked: LiveServer, unmarked: LiveServer, shared_audio: Path
) -> None:
    check(await dubbed_track(marked, shared_audio), marks=True)
    check(await dubbed_track(unmarked, shared_audio), marks=False)


async def room_listeners(live: LiveServer, pcm: bytes) -> list[np.ndarray]:
    """jfk.flac spoken into a room over gRPC; what its French listeners hear, at the room's rate and
    at 0.75 (a rendition: the vocoder's second run of the same units)."""
    heard: dict[float | None, list[pb.ListenEvent]] = {None: [], 0.75: []}

    async def listen(speed: float | None, got: list[pb.ListenEvent]) -> None:
        request = pb.ListenRequest(room="marked", language="fra")
        if speed is not None:
            request.speed = speed
        async for ev in live.stub.Listen(request):
            got.append(ev)

    tasks = [asyncio.create_task(listen(speed, got)) for speed, got in heard.items()]
    rooms = registry(live)
    await wait_for(lambda: sum(rooms.listener_counts().values()) == 2)
    own: list[pb.SegmentResult] = []
    await speak(live.stub, speaker_config("marked"), pcm, own)
    ids = {s.segment_id for s in own}

    def segments(events: list[pb.ListenEvent]) -> dict[int, pb.SegmentResult]:
        return {e.segment.segment_id: e.segment for e in events if e.WhichOneof("event") == "segment"}

    await wait_for(lambda: all(segments(got).keys() >= ids for got in heard.values()), 180.0)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return [
        pcm16_to_float(np.frombuffer(t.audio.content, "<i2"))
        for got in heard.values()
        for seg in segments(got).values()
        for t in seg.translations
    ]


async def test_a_room_s_listeners_hear_marked_speech_where_marking_is_on(
    marked: LiveServer, unmarked: LiveServer, pcm: bytes
) -> None:
    check(await room_listeners(marked, pcm), marks=True)
    check(await room_listeners(unmarked, pcm), marks=False)


async def phone_call(live: LiveServer, shared_audio: Path) -> list[np.ndarray]:
    """A Twilio call of jfk.flac into French, in segment mode: each segment's speech, the µ-law at
    8 kHz between two marks, decoded."""
    query = "source=eng&target=fra&simultaneous=0"
    got = await FakeTwilio(phone_url(live.server, "twilio", query)).call(
        ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 11.0, 8000))
    )
    await calls_ended(live.server)
    waves, run = [], b""
    for item in got.items:
        if isinstance(item, str):
            waves.append(np.asarray(decode_mulaw(run), np.float32))
            run = b""
        else:
            run += item
    return waves


async def test_a_phone_call_hears_marked_speech_where_marking_is_on(
    marked: LiveServer, unmarked: LiveServer, shared_audio: Path
) -> None:
    check(await phone_call(marked, shared_audio), marks=True, rate=8000)
    check(await phone_call(unmarked, shared_audio), marks=False, rate=8000)
