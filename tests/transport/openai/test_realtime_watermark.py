"""The watermark on the OpenAI-compatible realtime door's speech (``model.watermark`` on), with the
real ``openai`` SDK: jfk.flac streamed at real time in segment mode into French, each segment's
``session.output_audio.delta`` chunks (24 kHz PCM16) joined, and the detector reads the mark on
every segment's speech of 4 s and more. The door has no marking code: the finish marked it.

The test checkpoint's vocoder needs 4 s for a reliable reading (tests/transport/grpc/
test_speech_watermark.py's docstring: marked 0.93-1.0 there, unmarked 0.001 and under)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.realtime import MODEL, openai_client
from tests.support.speech import speech_pcm16
from translate_svc.marking.watermarker import shared

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(30)]

TOKEN = "rt-mark-token-3f1a9c"
CHUNK = 4800  # 200 ms at 24 kHz: OpenAI's frame
READ_S = 4.0


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def door(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{TOKEN} stream\n")
    settings = make_settings(test_model_dir, watermark="perth")
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    async with serving(settings) as live:
        yield live


async def test_the_realtime_door_s_speech_carries_the_mark(door: LiveServer, shared_audio: Path) -> None:
    pcm24k = speech_pcm16(shared_audio / "jfk.flac", 11, 24000)
    events: list[Any] = []
    async with openai_client(door, TOKEN).realtime.translations.connect(model=MODEL) as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.session.update(
            session={"audio": {"output": {"language": "fr"}}, "x_simultaneous_step_ms": 0}  # segment mode
        )

        async def send() -> None:
            t0 = time.perf_counter()
            for n, at in enumerate(range(0, len(pcm24k), CHUNK)):
                await asyncio.sleep(max(0.0, t0 + n * 0.2 - time.perf_counter()))
                await conn.session.input_audio_buffer.append(audio=base64.b64encode(pcm24k[at : at + CHUNK]).decode())
            await conn.session.close()

        sender = asyncio.create_task(send())
        async with asyncio.timeout(120):
            async for ev in conn:
                events.append(ev)
                if ev.type == "session.closed":
                    break
        await sender
    assert "error" not in [e.type for e in events]
    speech: dict[int, list[bytes]] = {}
    for e in events:
        if e.type == "session.output_audio.delta":
            assert e.sample_rate == 24000 and e.format == "pcm16"
            speech.setdefault(e.x_segment["segment_id"], []).append(base64.b64decode(e.delta))
    waves = [np.frombuffer(b"".join(parts), "<i2").astype(np.float32) / 32768.0 for parts in speech.values()]
    long = [w for w in waves if len(w) >= READ_S * 24000]
    assert long, f"no segment with {READ_S} s of speech: {[len(w) / 24000 for w in waves]} s"
    detector = shared()
    for wave in long:
        assert detector.detect(wave, 24000).probability > 0.8
