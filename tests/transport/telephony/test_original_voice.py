"""Two-party calls: the other leg's original voice kept under its translation, or removed
(``phone.original_voice``, issue 44), on a real server with two fake Twilio legs
(``phone_carriers.py``) of one call: leg B speaks (jfk.flac, segment mode), leg A is silent.

- "under" (the default): A hears B's own voice at ``original_gain`` from B's first frame on, frame
  for frame, and B's translation on top, its marks echoed; B hears nothing of its own voice.
- "removed": A hears B's translation alone (whole words of the stable translator, each followed by
  its mark); B hears nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.live_server import serving
from tests.support.phone_carriers import (
    AccessLines,
    CarrierLog,
    FakeTwilio,
    access_lines,
    calls_ended,
    phone_settings,
    phone_url,
    ulaw_bytes,
    ulaw_decode,
)
from tests.support.speech import speech_pcm16
from translate_svc.model.testing.stable import SPEECH_S, StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="function"), pytest.mark.slow(60)]

WORD_BYTES = int(SPEECH_S * 8000)


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


async def two_legs(test_model_dir: Path, b_speech: bytes, **phone: object) -> tuple[CarrierLog, CarrierLog]:
    """Leg A (silent, eng <- spa) joins first; leg B (speaking, spa -> eng... its words) half a
    second later, so that every frame B sends has a listener."""
    settings = phone_settings(test_model_dir, **phone)
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        leg_a = FakeTwilio(phone_url(live.server, "twilio", "source=spa&target=eng"), custom={"call": "c1"})
        leg_b = FakeTwilio(
            phone_url(live.server, "twilio", "source=eng&target=spa"), custom={"call": "c1", "simultaneous": "0"}
        )

        async def b_later() -> CarrierLog:
            await asyncio.sleep(0.5)
            return await leg_b.call(b_speech, linger_s=8)

        log_a, log_b = await asyncio.gather(leg_a.call(b"\xff" * len(b_speech), linger_s=8), b_later())
        await calls_ended(live.server)
    return log_a, log_b


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


async def test_under_the_other_leg_hears_the_speakers_voice_attenuated_and_its_translation(
    test_model_dir: Path, shared_audio: Path, access: AccessLines
) -> None:
    b_speech = ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 6.0, 8000))
    log_a, log_b = await two_legs(test_model_dir, b_speech)  # original_voice "under" is the default
    heard = ulaw_decode(b"".join(i for i in log_a.items if isinstance(i, bytes)))
    spoken = ulaw_decode(b_speech)
    # frame for frame from B's first: its voice at 0.25 (segment mode: no translation in the first 1.5 s)
    n = int(1.5 * 8000)
    assert len(heard) >= len(spoken)
    assert rms(spoken[:n]) > 0.01
    assert np.corrcoef(heard[:n], spoken[:n])[0, 1] > 0.95
    assert 0.2 < rms(heard[:n]) / rms(spoken[:n]) < 0.3
    # the translation came on top, its marks played; B heard none of its own voice
    assert log_a.marks and set(log_a.echoed) == set(log_a.marks)
    assert np.abs(ulaw_decode(b"".join(i for i in log_b.items if isinstance(i, bytes)))).max(initial=0) < 0.01
    lines = {line["targets"]: line for line in access.of("phone_twilio")}
    assert lines["spa"]["marks_played"] == len(log_a.marks) and lines["eng"]["marks_played"] == 0


async def test_removed_the_other_leg_hears_the_translation_alone(
    test_model_dir: Path, shared_audio: Path, access: AccessLines
) -> None:
    b_speech = ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 6.0, 8000))
    log_a, log_b = await two_legs(test_model_dir, b_speech, original_voice="removed")
    assert log_a.marks and set(log_a.echoed) == set(log_a.marks)
    run = 0
    for item in log_a.items:  # nothing but whole words of the translation, each run ended by its mark
        if isinstance(item, str):
            assert run > 0 and run % WORD_BYTES == 0, (item, run)
            run = 0
        else:
            run += len(item)
    assert run == 0
    assert log_b.speech_bytes == 0
