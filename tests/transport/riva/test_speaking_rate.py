"""The speaking rate on the Riva door (issue 90 item 1): ``tts_config.prosody_rate``, the field
Riva's published ``SynthesizeSpeechConfig`` has for it (SSML's ``<prosody rate>``: a percentage of
the voice's own rate), read by the unmodified ``nvidia-riva-client`` against a real server on
loopback (docs/riva-compat.md, docs/decisions.md).

The same audio translated speech to speech with no rate, at "150%" and at "50%": each segment's
speech 1/1.5 and twice as long as at 100% (within two vocoder frames and 5 %,
``tests/support/speaking_rate.py``), on the same segments. A rate out of 50%..200%, a signed
percentage and a named rate are INVALID_ARGUMENT naming the field and the range."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
import riva.client

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.speaking_rate import at_rate, long_enough, rate_failure
from tests.support.speech import speech_pcm16
from translate_svc.transport.riva.convert import parse_segment_fields

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(30)]

RATE = 16000
CHUNK_BYTES = 6400  # 200 ms of PCM16 at 16 kHz


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def door(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.server.riva = True
    async with serving(settings) as live:
        yield live


def s2s_config(prosody_rate: str) -> Any:
    return riva.client.StreamingTranslateSpeechToSpeechConfig(
        asr_config=riva.client.StreamingRecognitionConfig(
            config=riva.client.RecognitionConfig(
                encoding=riva.client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=RATE, language_code="en-US"
            )
        ),
        translation_config=riva.client.TranslationConfig(source_language_code="en-US", target_language_code="es-ES"),
        tts_config=riva.client.SynthesizeSpeechConfig(
            encoding=riva.client.AudioEncoding.LINEAR_PCM, sample_rate_hz=RATE, prosody_rate=prosody_rate
        ),
    )


async def speech_lengths(live: LiveServer, pcm: bytes, prosody_rate: str) -> dict[tuple[int, int], int]:
    """Each segment's span (from the response's id) -> its speech's samples."""
    client = riva.client.NeuralMachineTranslationClient(riva.client.Auth(uri=f"127.0.0.1:{live.port}"))
    chunks = [pcm[i : i + CHUNK_BYTES] for i in range(0, len(pcm), CHUNK_BYTES)]
    cfg = s2s_config(prosody_rate)
    responses = await asyncio.to_thread(lambda: list(client.streaming_s2s_response_generator(chunks, cfg)))
    out = {}
    for r in responses:
        fields = parse_segment_fields(r.id.value)
        assert "status" not in fields, fields
        out[(int(fields["start_ms"]), int(fields["end_ms"]))] = len(r.speech.audio) // 2
    return out


async def test_prosody_rate_150_and_50_percent_speak_in_two_thirds_and_twice_the_time(
    door: LiveServer, shared_audio: Path
) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 12.0, RATE).tobytes()
    own = await speech_lengths(door, pcm, "")
    assert own == await speech_lengths(door, pcm, "100%")  # 100%: the model's own rate, exactly
    assert any(long_enough(n, RATE) for n in own.values()), own
    for text, speed in (("150%", 1.5), ("50%", 0.5)):
        got = await speech_lengths(door, pcm, text)
        assert got.keys() == own.keys()  # the same segments
        for span, n in own.items():
            assert at_rate(n, got[span], speed, RATE), (text, span, rate_failure(n, got[span], speed, RATE))


@pytest.mark.parametrize("prosody_rate", ["30%", "250%", "+50%", "high", "1.5"])
async def test_a_rate_riva_could_mean_otherwise_or_out_of_range_is_invalid_argument(
    door: LiveServer, shared_audio: Path, prosody_rate: str
) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 1.0, RATE).tobytes()
    with pytest.raises(grpc.RpcError) as err:
        await speech_lengths(door, pcm, prosody_rate)
    message = err.value.details()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tts_config.prosody_rate" in message and "50% to 200%" in message and prosody_rate in message, message
