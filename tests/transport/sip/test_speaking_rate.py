"""A SIP call's speaking rate (issue 90 item 1: "phone and SIP calls (per call)"): the INVITE's
``X-Translate-Speed`` header, beside the other ``X-Translate-*`` call parameters. SIPp 3.6.1
(Debian's ``sip-tester``) places the same call twice against a real server on the test checkpoint,
RTP from a pcap of the shared speech, at the model's own rate and at 1.5: the call's translated
speech (the access line's ``frames_speech``, the 20 ms RTP packets that carried speech) is about
1/1.5 as long. A rate outside 0.5..2.0 is the INVITE's only answer, 400, its ``Warning`` naming the
parameter and the range."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.phone_carriers import AccessLines, access_lines, calls_ended, ulaw_bytes
from tests.support.sip_peers import PCMU, need, scenario, sipp, write_rtp_pcap
from tests.support.speech import speech_pcm16

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

SPEECH_S = 6.0
#: after the pcap, long enough for the translated tail to play whole at the model's own rate
TAIL_MS = 14000
#: segment mode: each segment's whole speech once it closes (the same segments at either rate)
HEADERS = "X-Translate-Source: eng\n      X-Translate-Target: spa\n      X-Translate-Simultaneous: 0"


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


@pytest.fixture(scope="module")
def pcap(tmp_path_factory: pytest.TempPathFactory, shared_audio: Path) -> Path:
    need("sipp")
    speech = speech_pcm16(shared_audio / "jfk.flac", SPEECH_S, 8000)
    return write_rtp_pcap(tmp_path_factory.mktemp("pcap") / "jfk_pcmu.pcap", ulaw_bytes(speech))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.sip.port = 0
    async with serving(settings) as srv:  # the test checkpoint, not a fake
        yield srv


def sip_port(live: LiveServer) -> int:
    return int(live.server.ports()["sip_port"])


async def call(live: LiveServer, tmp: Path, pcap: Path, headers: str) -> None:
    sc = scenario(
        tmp,
        "call_pcap.xml",
        pcap=str(pcap),
        pause_ms=str(int(SPEECH_S * 1000) + TAIL_MS),
        pt="0",
        codec="PCMU",
        headers=headers,
        seconds=str(SPEECH_S),
    )
    run = await sipp(tmp, sip_port(live), sc, timeout_s=60)
    assert run.returncode == 0, f"{run.stdout[-1500:]}\n{run.errors[-3000:]}"


async def test_x_translate_speed_1_5_speaks_the_calls_translation_in_two_thirds_of_the_time(
    live: LiveServer, pcap: Path, tmp_path: Path, access: AccessLines
) -> None:
    (tmp_path / "own").mkdir()
    (tmp_path / "fast").mkdir()
    await call(live, tmp_path / "own", pcap, HEADERS)
    await call(live, tmp_path / "fast", pcap, HEADERS + "\n      X-Translate-Speed: 1.5")
    await calls_ended(live.server)
    own, fast = access.of("sip")
    assert own["code"] == fast["code"] == "OK", (own, fast)
    assert own["segments_total"] == fast["segments_total"] >= 2 and own["marks_played"] == fast["marks_played"] >= 2
    # within two vocoder frames and a packet of padding per segment, and 5 %
    want = own["frames_speech"] / 1.5
    slack = 3 * own["segments_total"] + 0.05 * want
    assert abs(fast["frames_speech"] - want) <= slack, (own["frames_speech"], fast["frames_speech"])


@pytest.mark.parametrize("value", ["3", "0.25", "fast"])
async def test_a_rate_outside_half_to_double_is_400_before_anything_else(
    live: LiveServer, tmp_path: Path, access: AccessLines, value: str
) -> None:
    sc = scenario(tmp_path, "refused.xml", status="400", codecs=PCMU, retry="Warning:")
    header = f"Max-Forwards: 70\n      X-Translate-Speed: {value}\n"  # the INVITE's, the first one
    sc.write_text(sc.read_text().replace("Max-Forwards: 70\n", header, 1))
    run = await sipp(tmp_path, sip_port(live), sc, timeout_s=10)
    assert run.returncode == 0, f"{run.stdout[-1500:]}\n{run.errors[-3000:]}"
    warning = next(ln for ln in run.messages.splitlines() if ln.startswith("Warning:"))
    assert "`speed`" in warning and "0.5" in warning and "2.0" in warning, warning
    assert "SIP/2.0 100" not in run.messages  # the refusal is the INVITE's only answer
    assert access.of("sip") == []  # no call ran
