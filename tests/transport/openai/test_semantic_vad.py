"""``turn_detection: {"type": "semantic_vad", "eagerness": ...}`` on a realtime transcription
session (issue 102), sent by the real ``openai`` package to a real server on loopback: the turns
end where the end-of-turn model (Smart Turn v3.2, real weights) says they are complete.

jfk.flac (tests/transport/grpc/test_semantic_turns.py): "And so, my fellow Americans," then "ask
not what your country can do for you, ask what you can do for your country" in three phrases.
Server VAD makes four items, one a phrase; ``low``, ``medium`` and ``auto`` make two, the second
sentence one item; ``high`` (the model need only be 30 % sure) ends at least those two and may also
end at the pause after "ask not", which the model reads 21-32 % complete (with the audio's
resampling). A server that does not run the model keeps server
VAD and says so in ``session.updated``. Spans only: never the words of the test checkpoint.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from openai import AsyncOpenAI

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(90)]

TOKEN = "tr-semantic-4b2e"
CHUNK = 4800  # 200 ms at 24 kHz
COMPLETED = "conversation.item.input_audio_transcription.completed"
#: silero's regions of jfk.flac (ms, padded), one a phrase
PHRASES = [(320, 2270), (3270, 4450), (5380, 7680), (8160, 10620)]
SENTENCES = [PHRASES[0], (PHRASES[1][0], PHRASES[3][1])]


def session(turn_detection: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": "transcription",
        "audio": {
            "input": {
                "transcription": {"model": "whisper-1", "language": "en"},
                "turn_detection": turn_detection,
            }
        },
    }


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> np.ndarray:
    """jfk.flac as 24 kHz PCM16 with a second of silence after it."""
    return np.concatenate([speech_pcm16(shared_audio / "jfk.flac", 60, 24000), np.zeros(24000, dtype="<i2")])


async def door(test_model_dir: Path, tmp: Path, **limits: int) -> AsyncIterator[LiveServer]:
    tokens = tmp / "tokens"
    tokens.write_text(f"{TOKEN} stream\n")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    for name, value in limits.items():
        setattr(settings.limits, name, value)
    async with serving(settings, warmup=False) as live:
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    async for server in door(test_model_dir, tmp_path_factory.mktemp("semantic")):
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def without_model(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    async for server in door(test_model_dir, tmp_path_factory.mktemp("no-model"), turn_threads=0):
        yield server


async def reference(live: LiveServer, pcm: np.ndarray, eagerness: str) -> list[tuple[int, int]]:
    """The spans the stream core cuts from the same audio at ``eagerness`` ("": the silence rule):
    the gRPC door's ASR-only stream, in the same 200 ms pieces."""
    cfg = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=24000, channels=1),
        source_language="eng",
        output=pb.OutputOptions(text=False, speech=False, transcript=True),
        vad=pb.VadOptions(eagerness=eagerness),
    )
    msgs = [pb.StreamingTranslateRequest(config=cfg)]
    msgs += [pb.StreamingTranslateRequest(audio=pcm[i : i + CHUNK].tobytes()) for i in range(0, len(pcm), CHUNK)]
    call = live.stub.StreamingTranslate(iter(msgs), timeout=180, metadata=(("authorization", f"Bearer {TOKEN}"),))
    return [(r.segment.start_ms, r.segment.end_ms) async for r in call if r.HasField("segment")]


async def spans_of(
    live: LiveServer, pcm: np.ndarray, turn_detection: dict[str, Any], items: int
) -> tuple[Any, list[tuple[int, int]]]:
    """The session's ``session.updated``, and the span of each item it transcribes: ``items`` of
    them closed by the turn detection (the last by the second of silence after the speech), then
    a commit that finds no speech left (an empty item)."""
    assert live.server.http is not None
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{live.server.http.port}/v1", api_key=TOKEN, max_retries=0)
    spans: list[tuple[int, int]] = []
    async with client.realtime.connect(model="gpt-4o-transcribe", extra_query={"intent": "transcription"}) as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.session.update(session=session(turn_detection))
        updated = await conn.recv()
        assert updated.type == "session.updated", updated
        for at in range(0, len(pcm), CHUNK):
            await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[at : at + CHUNK].tobytes()).decode())
        try:
            async with asyncio.timeout(180):
                while len(spans) < items:
                    ev = await conn.recv()
                    assert ev.type != "error", ev
                    if ev.type == COMPLETED:
                        x = ev.model_extra["x_segment"]
                        spans.append((x["start_ms"], x["end_ms"]))
        except TimeoutError:
            raise AssertionError(f"{items} items were expected, {spans} came") from None
        await conn.input_audio_buffer.commit()
        while (ev := await conn.recv()).type != COMPLETED:
            assert ev.type != "error", ev
        assert ev.model_extra.get("x_no_speech"), ev  # nothing was left to close
    return updated, spans


def near(got: list[tuple[int, int]], want: list[tuple[int, int]]) -> bool:
    return len(got) == len(want) and all(
        abs(a - c) <= 32 and abs(b - d) <= 32 for (a, b), (c, d) in zip(got, want, strict=True)
    )


@pytest.mark.parametrize("eagerness", ["low", "medium", "auto", "high"])
async def test_semantic_vad_ends_the_turns_the_model_calls_complete(
    live: LiveServer, jfk: np.ndarray, eagerness: str
) -> None:
    core = await reference(live, jfk, eagerness)
    updated, spans = await spans_of(live, jfk, {"type": "semantic_vad", "eagerness": eagerness}, len(core))
    echo = updated.session.audio.input.turn_detection
    assert (echo.type, echo.eagerness) == ("semantic_vad", eagerness)
    assert "x_notices" not in updated.session.model_extra
    assert spans == core  # an item for each segment the core cuts, the session's own turns
    if eagerness != "high":
        assert near(spans, SENTENCES), spans
    else:  # the sentences' ends, perhaps also the pause after "ask not" and the phrase after it
        assert (
            near(spans, SENTENCES)
            or near(spans, [PHRASES[0], PHRASES[1], (PHRASES[2][0], PHRASES[3][1])])
            or (near(spans, PHRASES))
        ), spans


async def test_server_vad_cuts_every_phrase(live: LiveServer, jfk: np.ndarray) -> None:
    core = await reference(live, jfk, "")
    _, spans = await spans_of(live, jfk, {"type": "server_vad"}, len(core))
    assert spans == core and near(spans, PHRASES), spans


async def test_an_eagerness_outside_semantic_vad_or_unknown_is_an_error_and_the_session_goes_on(
    live: LiveServer,
) -> None:
    assert live.server.http is not None
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{live.server.http.port}/v1", api_key=TOKEN, max_retries=0)
    async with client.realtime.connect(model="gpt-4o-transcribe", extra_query={"intent": "transcription"}) as conn:
        assert (await conn.recv()).type == "session.created"
        for td, param in [
            ({"type": "server_vad", "eagerness": "low"}, "eagerness"),
            ({"type": "semantic_vad", "eagerness": "eager"}, "eagerness"),
            ({"type": "smart_vad"}, "type"),
        ]:
            await conn.session.update(session=session(td))
            error = await conn.recv()
            assert error.type == "error", error
            assert error.error.param == f"session.audio.input.turn_detection.{param}", error
        await conn.session.update(session=session({"type": "semantic_vad"}))  # eagerness absent: auto
        updated = await conn.recv()
        td = updated.session.audio.input.turn_detection
        assert (updated.type, td.type, td.eagerness) == ("session.updated", "semantic_vad", "auto")


async def test_a_server_without_the_model_keeps_server_vad_and_says_so(
    without_model: LiveServer, jfk: np.ndarray
) -> None:
    updated, spans = await spans_of(without_model, jfk, {"type": "semantic_vad", "eagerness": "medium"}, len(PHRASES))
    assert updated.session.audio.input.turn_detection.type == "server_vad"  # the rule in force
    (notice,) = updated.session.model_extra["x_notices"]
    assert "silence" in notice and "limits.turn_threads=0" in notice
    assert near(spans, PHRASES), spans


async def test_an_eager_end_of_turn_is_said_and_resumed_and_nothing_is_lost(live: LiveServer, jfk: np.ndarray) -> None:
    """``x_eager_threshold`` beside ``semantic_vad``'s eagerness: each pause inside the second
    sentence (which the model reads 1-32 % complete) is ``input_audio_buffer.x_eager_end_of_turn``
    of the item it would close, then ``x_turn_resumed``; the items are those of medium alone."""
    assert live.server.http is not None
    core = await reference(live, jfk, "medium")
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{live.server.http.port}/v1", api_key=TOKEN, max_retries=0)
    seen: list[tuple[str, str]] = []
    spans: list[tuple[int, int]] = []
    async with client.realtime.connect(model="gpt-4o-transcribe", extra_query={"intent": "transcription"}) as conn:
        assert (await conn.recv()).type == "session.created"
        td = {"type": "semantic_vad", "eagerness": "medium", "x_eager_threshold": 0.001}
        await conn.session.update(session=session(td))
        updated = await conn.recv()
        assert updated.type == "session.updated", updated
        assert updated.session.audio.input.turn_detection.model_extra["x_eager_threshold"] == pytest.approx(0.001)
        for at in range(0, len(jfk), CHUNK):
            await conn.input_audio_buffer.append(audio=base64.b64encode(jfk[at : at + CHUNK].tobytes()).decode())
        async with asyncio.timeout(180):
            while len(spans) < len(core):
                ev = await conn.recv()
                assert ev.type != "error", ev
                if ev.type == COMPLETED:
                    x = ev.model_extra["x_segment"]
                    spans.append((x["start_ms"], x["end_ms"]))
                    seen.append(("completed", ev.item_id))
                elif ev.type.startswith("input_audio_buffer.x_"):
                    seen.append((ev.type.removeprefix("input_audio_buffer.x_"), ev.model_extra["item_id"]))
    assert spans == core and near(spans, SENTENCES), spans
    first, second = [item for kind, item in seen if kind == "completed"]
    assert first != second
    turns = [(kind, item) for kind, item in seen if kind != "completed"]
    assert turns == [("eager_end_of_turn", second), ("turn_resumed", second)] * 2, seen
