"""Opus on the SIP door (RFC 7587: ``opus/48000/2`` on a dynamic payload type, a 48 kHz RTP clock;
issue 60): taken whenever an offer has it, ahead of G.722, PCMU and PCMA; the call's stream runs at
16 kHz PCM. baresip 1.0 (its ``opus`` module) offers PCMU, then Opus, speaks the shared speech and
records what it hears: translated speech, which it decoded from our Opus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.live_server import make_settings, serving
from tests.support.phone_carriers import AccessLines, access_lines, calls_ended
from tests.support.sip_peers import baresip_call, speech_energy
from tests.support.speech import speech_pcm16
from translate_svc.model.stable import StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.slow(60)]

SPEECH_S = 6.0
TAIL_S = 5.0


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


async def test_baresip_offering_pcmu_then_opus_gets_opus_and_hears_translated_speech(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path, access: AccessLines
) -> None:
    speech = speech_pcm16(shared_audio / "jfk.flac", SPEECH_S, 8000)
    wav = tmp_path / "in.wav"
    sf.write(wav, np.concatenate([speech, np.zeros(int(8000 * TAIL_S), "<i2")]), 8000, subtype="PCM_16")
    settings = make_settings(test_model_dir)
    settings.sip.port = 0
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        port = int(live.server.ports()["sip_port"])
        out, heard = await baresip_call(
            tmp_path,
            wav,
            f"sip:eng-spa@127.0.0.1:{port}",
            seconds=SPEECH_S + TAIL_S + 6,
            codecs="PCMU,opus/48000/2",
            modules=("opus.so",),
        )
        await calls_ended(live.server)
    assert "Call established" in out, out[-2000:]
    [line] = access.of("sip")
    assert line["code"] == "OK" and line["codec"] == "OPUS/48000/2" and line["encoding"] == "LINEAR16", line
    assert line["audio_s"] >= SPEECH_S and line["rtp_unread"] == 0, line  # every packet decoded
    assert line["frames_speech"] > 0
    assert heard is not None, out[-2000:]
    samples, _rate = sf.read(heard, dtype="float32", always_2d=True)  # (baresip's Opus plays in stereo)
    samples = samples.mean(axis=1)
    assert speech_energy(samples) > 0.05  # translated speech, decoded from Opus by baresip
