"""The Riva door's speaker diarization (issue 72) with ``nvidia-riva-client``: with
``diarization_config`` on, StreamingRecognize's words carry ``speaker_tag`` (word timings on with
it: Riva has no other place for a label), one label per segment, agreeing with the voices of two
speakers taking turns in one channel; a bad ``max_speaker_count`` is refused naming it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import pytest_asyncio
import riva.client

from tests.support.ear_audio import agreement, two_voices, voice_of
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.speech import read_16k, vad_segments
from translate_svc.transport.riva.convert import parse_segment_fields

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(40)]

RATE = 16000
CHUNK_BYTES = 6400  # 200 ms of PCM16


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def door(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.server.riva = True
    async with serving(settings) as live:
        yield live


def _config(**diarization: Any) -> Any:
    return riva.client.StreamingRecognitionConfig(
        config=riva.client.RecognitionConfig(
            encoding=riva.client.AudioEncoding.LINEAR_PCM,
            sample_rate_hertz=RATE,
            language_code="en-US",
            diarization_config=riva.client.proto.riva_asr_pb2.SpeakerDiarizationConfig(**diarization),
        )
    )


def _finals(port: int, pcm: bytes, config: Any) -> list[Any]:
    service = riva.client.ASRService(riva.client.Auth(uri=f"127.0.0.1:{port}"))
    chunks = [pcm[i : i + CHUNK_BYTES] for i in range(0, len(pcm), CHUNK_BYTES)]
    return [r for r in service.streaming_response_generator(chunks, config) if r.results[0].is_final]


async def test_words_carry_the_speaker_of_their_segment(door: LiveServer, shared_audio: Path) -> None:
    files = [await vad_segments(read_16k(shared_audio / n)) for n in ("jfk.flac", "silero_test.wav")]
    clip, truth = two_voices(shared_audio, files)
    pcm = (np.clip(clip, -1, 1) * 32767).astype("<i2").tobytes()
    finals = await asyncio.to_thread(
        _finals, door.port, pcm, _config(enable_speaker_diarization=True, max_speaker_count=2)
    )
    assert len(finals) >= 12
    labels, voices = [], []
    for r in finals:
        words = list(r.results[0].alternatives[0].words)
        if not words:  # random weights may say nothing for a segment: no word to carry its label
            continue
        tags = {w.speaker_tag for w in words}
        assert len(tags) == 1 and tags <= {1, 2}, tags  # a segment's words share its label
        f = parse_segment_fields(r.id.value)
        labels.append(tags.pop())
        voices.append(voice_of(int(f["start_ms"]), int(f["end_ms"]), truth))
    assert len(labels) >= 6, "too few segments with words to check their labels"
    assert agreement(labels, voices) >= 0.9, (labels, voices)
    plain = await asyncio.to_thread(_finals, door.port, pcm[: RATE * 2 * 8], _config())
    assert all(w.speaker_tag == 0 for r in plain for w in r.results[0].alternatives[0].words)


async def test_a_bad_max_speaker_count_is_refused_naming_it(door: LiveServer) -> None:
    config = _config(enable_speaker_diarization=True, max_speaker_count=9)
    with pytest.raises(grpc.RpcError) as err:
        await asyncio.to_thread(_finals, door.port, b"\0" * 6400, config)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "diarization_config.max_speaker_count" in err.value.details()
