"""Wideband codecs on the SIP door (issue 60): Opus (RFC 7587: ``opus/48000/2`` on a dynamic
payload type, a 48 kHz RTP clock) and G.722 (RFC 3551 §4.5.2: payload type 9, 16 kHz speech on an
8 kHz RTP clock), each taken whenever an offer has it, Opus first, ahead of PCMU and PCMA; the
call's stream runs at 16 kHz PCM. SIPp 3.6.1 plays a G.722 pcap made here (the shared speech
encoded by FFmpeg's G.722 encoder through PyAV, 160 bytes a 20 ms packet); baresip 1.0 (its
``g722`` and ``opus`` modules) offers PCMU first and the wideband codec second, speaks the shared
speech and records what it hears: translated speech, which it decoded from our G.722 or Opus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from tests.support.live_server import make_settings, serving
from tests.support.phone_carriers import AccessLines, access_lines, calls_ended
from tests.support.sip_peers import (
    assert_paced_rtp,
    baresip_call,
    heard_energy,
    need,
    pcap_call,
    speech_wav,
    write_rtp_pcap,
)
from tests.support.speech import speech_pcm16
from translate_svc.model.testing.stable import StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.slow(60)]

SPEECH_S = 6.0
TAIL_S = 5.0


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


def g722_bytes(pcm16k: np.ndarray) -> bytes:
    """16 kHz int16 samples as G.722 (FFmpeg's encoder), 20 ms (320 samples) at a time."""
    enc = av.AudioCodecContext.create("g722", "w")
    enc.sample_rate, enc.layout, enc.format = 16000, "mono", "s16"
    out = []
    for i in range(0, len(pcm16k) - len(pcm16k) % 320, 320):
        frame = av.AudioFrame.from_ndarray(pcm16k[i : i + 320].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 16000
        out += [bytes(p) for p in enc.encode(frame)]
    return b"".join(out)


async def test_sipp_plays_g722_and_the_call_is_translated_at_16_khz(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path, access: AccessLines
) -> None:
    need("sipp")
    speech = speech_pcm16(shared_audio / "jfk.flac", SPEECH_S, 16000)
    pcap = write_rtp_pcap(tmp_path / "jfk_g722.pcap", g722_bytes(speech), payload_type=9)
    settings = make_settings(test_model_dir)
    settings.sip.port = 0
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        run = await pcap_call(tmp_path, int(live.server.ports()["sip_port"]), pcap, SPEECH_S, pt="9", codec="G722")
        assert run.returncode == 0, f"{run.stdout[-1500:]}\n{run.errors[-3000:]}"
        await calls_ended(live.server)
    assert "a=rtpmap:9 G722/8000" in run.messages  # our answer
    [line] = access.of("sip")
    assert line["code"] == "OK" and line["codec"] == "G722" and line["encoding"] == "LINEAR16", line
    assert line["rtp_received"] >= SPEECH_S / 0.02 * 0.95 and line["rtp_unread"] == 0, line
    assert line["audio_s"] == pytest.approx(SPEECH_S, abs=0.1)  # 16 kHz PCM: not half, not twice
    assert_paced_rtp(line)  # translated speech, as RTP, every slot accounted for


@pytest.mark.parametrize(
    ("offered", "module", "chosen"),
    [
        ("G722/16000/1", "g722.so", "G722"),  # (baresip names G.722 by its audio rate)
        ("opus/48000/2", "opus.so", "OPUS/48000/2"),
    ],
)
async def test_baresip_offering_pcmu_then_a_wideband_codec_gets_it_and_hears_translated_speech(
    test_model_dir: Path,
    shared_audio: Path,
    tmp_path: Path,
    access: AccessLines,
    offered: str,
    module: str,
    chosen: str,
) -> None:
    wav = speech_wav(tmp_path, shared_audio, SPEECH_S, TAIL_S)
    settings = make_settings(test_model_dir)
    settings.sip.port = 0
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        port = int(live.server.ports()["sip_port"])
        uri = f"sip:eng-spa@127.0.0.1:{port}"
        out, heard = await baresip_call(
            tmp_path, wav, uri, seconds=SPEECH_S + TAIL_S + 6, codecs=f"PCMU,{offered}", modules=(module,)
        )
        await calls_ended(live.server)
    assert "Call established" in out, out[-2000:]
    [line] = access.of("sip")
    assert line["code"] == "OK" and line["codec"] == chosen and line["encoding"] == "LINEAR16", line
    assert line["audio_s"] >= SPEECH_S and line["rtp_unread"] == 0, line  # every packet decoded
    assert line["frames_speech"] > 0
    assert heard is not None, out[-2000:]
    assert heard_energy(heard) > 0.05  # translated speech, decoded by baresip from our G.722 or Opus
