"""baresip 1.0 (Debian 12's) calls the SIP door end to end (issue 60): it dials
``sip:eng-spa@host:port`` (the languages from the Request-URI's user part), speaks the shared
speech through its ``aufile`` source, and what it hears back is dumped by its ``sndfile`` filter;
that recording must carry speech energy (never words: the test model's are random), and the
door's access line must show the call translated and played back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf

from tests.support.live_server import make_settings, serving
from tests.support.phone_carriers import AccessLines, access_lines, calls_ended
from tests.support.sip_peers import baresip_call, speech_energy, speech_wav
from translate_svc.model.testing.stable import StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.slow(60)]

SPEECH_S = 6.0
#: silence after the speech, while the translation's tail plays (the call ends with the file)
TAIL_S = 5.0


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


async def test_baresip_speaks_a_wav_and_hears_translated_speech(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path, access: AccessLines
) -> None:
    wav = speech_wav(tmp_path, shared_audio, SPEECH_S, TAIL_S)
    settings = make_settings(test_model_dir)
    settings.sip.port = 0
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        port = int(live.server.ports()["sip_port"])
        out, heard = await baresip_call(tmp_path, wav, f"sip:eng-spa@127.0.0.1:{port}", seconds=SPEECH_S + TAIL_S + 6)
        await calls_ended(live.server)
    assert "Call established" in out, out[-2000:]
    [line] = access.of("sip")
    assert line["code"] == "OK" and line["targets"] == "spa" and line["audio_s"] >= SPEECH_S
    assert line["frames_speech"] > 0
    assert heard is not None, out[-2000:]
    samples, rate = sf.read(heard, dtype="float32")
    assert rate == 8000 and len(samples) >= 8000 * SPEECH_S  # the whole call was heard
    assert speech_energy(samples) > 0.05  # translated speech, not silence
