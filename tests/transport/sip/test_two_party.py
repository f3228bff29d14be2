"""A two-party call with one leg on SIP and the other on a phone framing (issue 60): the SIP leg
(SIPp, ``X-Translate-Call: c1``, English speech from a pcap) and a Twilio Media Streams leg (the
fake carrier of ``tests/support/phone_carriers.py``, from Twilio's published messages; ``call=c1``)
meet through the cluster store, and the Twilio leg hears the SIP leg's translation (the original
voice removed, so what it hears is the translation alone)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_server import serving
from tests.support.phone_carriers import (
    AccessLines,
    FakeTwilio,
    access_lines,
    calls_ended,
    phone_settings,
    phone_url,
    ulaw_bytes,
)
from tests.support.sip_peers import need, scenario, sipp, write_rtp_pcap
from tests.support.speech import speech_pcm16
from translate_svc.model.testing.stable import StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.slow(60)]

SPEECH_S = 6.0


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


async def test_a_sip_leg_and_a_twilio_leg_of_one_call_hear_each_others_translation(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path, access: AccessLines
) -> None:
    need("sipp")
    pcap = write_rtp_pcap(tmp_path / "jfk.pcap", ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", SPEECH_S, 8000)))
    settings = phone_settings(test_model_dir, original_voice="removed")
    settings.sip.port = 0
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        twilio = FakeTwilio(phone_url(live.server, "twilio", "source=spa&target=eng"), custom={"call": "c1"})
        other = asyncio.create_task(twilio.call(b"\xff" * int(8000 * (SPEECH_S + 6)), linger_s=4))
        sc = scenario(
            tmp_path,
            "call_pcap.xml",
            pcap=str(pcap),
            pause_ms=str(int(SPEECH_S * 1000) + 5000),
            pt="0",
            codec="PCMU",
            headers="X-Translate-Call: c1\n      X-Translate-Target: spa",
            seconds=str(SPEECH_S),
        )
        run = await sipp(tmp_path, int(live.server.ports()["sip_port"]), sc, timeout_s=40)
        assert run.returncode == 0, run.stdout[-1500:] + run.errors[-2000:]
        log = await other
        await calls_ended(live.server)
    assert log.speech_bytes > 8000  # over a second of the SIP leg's translation reached the Twilio leg
    [sip_line] = access.of("sip")
    [twilio_line] = access.of("phone_twilio")
    assert sip_line["code"] == "OK" and sip_line["segments_total"] >= 1 and twilio_line["code"] == "OK"
