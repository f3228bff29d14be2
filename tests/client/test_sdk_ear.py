"""The SDK's noise suppression and speaker labels (issue 72) against a real server: ``translate``
and ``stream`` pass the options on, and results carry ``Segment.speaker`` (and each transcript
word's, with word timings)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from tests.support.ear_audio import agreement, mix, speech_with_pauses, two_voices, voice_of, white
from tests.support.live_server import make_settings, serving
from tests.support.speech import read_16k, vad_segments
from translate_svc.client.aio import AsyncTranslateClient
from translate_svc.client.types import Segment

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def address(test_model_dir: Path) -> AsyncIterator[str]:
    async with serving(make_settings(test_model_dir)) as live:
        yield f"127.0.0.1:{live.port}"


async def test_translate_passes_noise_suppression_on(address: str, shared_audio: Path) -> None:
    clean = speech_with_pauses(shared_audio)
    noisy = mix(clean, white(len(clean)), -8.0)
    async with AsyncTranslateClient(address) as client:
        plain = await client.translate(noisy, sample_rate=16000, targets=(), source="eng")
        cleaned = await client.translate(noisy, sample_rate=16000, targets=(), source="eng", noise_suppression=True)
    assert len(plain.segments) == 0  # measured: the VAD finds none of the 12 spans in this noise
    assert len(cleaned.segments) >= 10


async def test_a_stream_labels_its_speakers_and_their_words(address: str, shared_audio: Path) -> None:
    files = [await vad_segments(read_16k(shared_audio / n)) for n in ("jfk.flac", "silero_test.wav")]
    clip, truth = two_voices(shared_audio, files)
    pcm = (np.clip(clip, -1, 1) * 32767).astype("<i2")
    got: list[Segment] = []
    async with AsyncTranslateClient(address) as client:
        async with client.stream(targets=(), source="eng", speakers=2, word_timings=True) as s:
            for i in range(0, len(pcm), 3200):
                await s.send(pcm[i : i + 3200].tobytes())
            await s.close()
            async for ev in s:
                if isinstance(ev, Segment):
                    got.append(ev)
    assert len(got) >= 12 and {g.speaker for g in got} <= {1, 2}
    voices = [voice_of(g.start_ms, g.end_ms, truth) for g in got]
    assert agreement([g.speaker for g in got], voices) >= 12 / 13
    assert all(w.speaker == g.speaker for g in got for w in g.transcript_words)
