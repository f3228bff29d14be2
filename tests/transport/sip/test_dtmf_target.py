"""A DTMF digit switches a SIP call's target language (issue 60, "DTMF digits ... may switch the
target language"): with ``sip.dtmf_targets`` ``{"1": "fra"}``, SIPp plays a pcap whose first
packets are the RFC 4733 event for "1" (payload type 101, §2.5.1.4: its end packet three times)
and then the shared speech as PCMU; the call, dialled as ``eng-spa``, is translated into French
from then on: its access line names ``fra``, and the digit once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_server import make_settings, serving
from tests.support.phone_carriers import AccessLines, access_lines, calls_ended, ulaw_bytes
from tests.support.sip_peers import need, pcap_call, write_rtp_pcap
from tests.support.speech import speech_pcm16
from translate_svc.model.testing.stable import StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.slow(60)]

SPEECH_S = 4.0


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


async def test_a_dtmf_digit_switches_the_calls_target_language(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path, access: AccessLines
) -> None:
    need("sipp")
    speech = speech_pcm16(shared_audio / "jfk.flac", SPEECH_S, 8000)
    pcap = write_rtp_pcap(tmp_path / "dtmf_then_speech.pcap", ulaw_bytes(speech), dtmf="1")
    settings = make_settings(test_model_dir)
    settings.sip.port = 0
    settings.sip.dtmf_targets = {"1": "fra"}
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        run = await pcap_call(tmp_path, int(live.server.ports()["sip_port"]), pcap, SPEECH_S)
        assert run.returncode == 0, f"{run.stdout[-1500:]}\n{run.errors[-3000:]}"
        await calls_ended(live.server)
    [line] = access.of("sip")
    assert line["code"] == "OK" and line["dtmf_digits"] == 1, line
    assert line["targets"] == "fra", line  # dialled eng-spa; the digit switched it
    assert line["segments_total"] >= 1 and line["frames_speech"] > 0
