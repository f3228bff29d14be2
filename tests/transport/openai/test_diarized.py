"""Speaker labels through the OpenAI-compatible transcription endpoint (issue 72): the official
SDK asks for ``diarized_json`` and gets each segment's speaker (``A``, ``B``, ...), which agree
with the voices of two speakers taking turns in one channel."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import openai
import pytest
import pytest_asyncio
import soundfile as sf
from openai import AsyncOpenAI

from tests.support.ear_audio import agreement, two_voices, voice_of
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.speech import read_16k, vad_segments

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(30)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def door(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    async with serving(settings) as live:
        yield live


async def test_diarized_json_labels_two_voices(door: LiveServer, shared_audio: Path) -> None:
    files = [await vad_segments(read_16k(shared_audio / n)) for n in ("jfk.flac", "silero_test.wav")]
    clip, truth = two_voices(shared_audio, files)
    wav = io.BytesIO()
    sf.write(wav, clip, 16000, format="WAV", subtype="PCM_16")
    assert door.server.http is not None
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{door.server.http.port}/v1", api_key="x", max_retries=0)
    for extra in ({}, {"x_speakers": "2"}):
        answer = await client.audio.transcriptions.create(
            file=("two.wav", wav.getvalue(), "audio/wav"),
            model="gpt-4o-transcribe-diarize",
            language="en",
            response_format="diarized_json",
            extra_body=extra,
        )
        segments = answer.segments
        assert len(segments) >= 12
        assert {s.speaker for s in segments} <= {"A", "B", "C", "D"} and segments[0].speaker == "A"
        voices = [voice_of(round(s.start * 1000), round(s.end * 1000), truth) for s in segments]
        labels = [ord(s.speaker) - ord("A") + 1 for s in segments]
        assert agreement(labels, voices) >= 12 / 13  # measured 13 of 13 (docs/performance.md)


async def test_separate_channels_are_the_speakers_of_a_stereo_file(door: LiveServer, shared_audio: Path) -> None:
    """``x_channels=separate`` (our extension): a stereo file of two speakers, one per channel: each
    segment is one channel's (its speaker A or B: the channel), with the spans of that channel sent
    alone, in time order; beside ``x_speakers`` it is refused."""
    n = 11 * 16000
    left, right = read_16k(shared_audio / "jfk.flac")[:n], read_16k(shared_audio / "silero_test.wav")[:n]
    left = np.pad(left, (0, n - len(left)))

    def wav(samples: np.ndarray) -> bytes:
        out = io.BytesIO()
        sf.write(out, samples, 16000, format="WAV", subtype="PCM_16")
        return out.getvalue()

    assert door.server.http is not None
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{door.server.http.port}/v1", api_key="x", max_retries=0)

    async def spans(content: bytes, **extra: str) -> list[tuple[int, int, str]]:
        answer = await client.audio.transcriptions.create(
            file=("talk.wav", content, "audio/wav"),
            model="gpt-4o-transcribe-diarize",
            language="en",
            response_format="diarized_json",
            extra_body=extra,
        )
        return [(round(s.start * 1000), round(s.end * 1000), s.speaker) for s in answer.segments]

    both = await spans(wav(np.stack([left, right], axis=1)), x_channels="separate")
    for speaker, alone in (("A", left), ("B", right)):
        mine = [(a, b) for a, b, who in both if who == speaker]
        assert mine == [(a, b) for a, b, _ in await spans(wav(alone), x_speakers="1")], speaker
    assert [a for a, _, _ in both] == sorted(a for a, _, _ in both)
    with pytest.raises(openai.BadRequestError) as e:
        await spans(wav(np.stack([left, right], axis=1)), x_channels="separate", x_speakers="2")
    assert "each channel is its own speaker" in str(e.value)
