"""The SIP door driven by SIPp 3.6.1 (Debian's ``sip-tester``) on loopback (issue 60): OPTIONS; a
call with RTP from a pcap (the shared speech as PCMU, SIPp's ``play_pcap_audio``), over UDP and
TCP, whose translated speech comes back as RTP; CANCEL while it rings; SDP with no codec we take
(488); a caller that never ACKs and one that sends no RTP (each ended by the door's BYE, its
Reason saying why); over capacity (486 with Retry-After); a source outside ``sip.allowed_cidrs``
(403); a drain (the door's BYE after the call's translated tail). The scenarios are in
``tests/support/sip/``, written from SIPp's reference (``tests/support/sip_peers.py``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.phone_carriers import AccessLines, access_lines, calls_ended, ulaw_bytes
from tests.support.sip_peers import (
    ACK,
    G729,
    PCMU,
    SippRun,
    assert_paced_rtp,
    need,
    pcap_call,
    scenario,
    sipp,
    write_rtp_pcap,
)
from tests.support.speech import speech_pcm16
from translate_svc.model.testing.stable import StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(90)]

SPEECH_S = 6.0
#: SIPp's own RFC 4733 capture: the digit 1 (payload type 101, its end packet three times)
DTMF_PCAP = "/usr/share/sip-tester/dtmf_2833_1.pcap"


def play(pcap: Path) -> str:
    return f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>'


@pytest.fixture(scope="module")
def pcap(tmp_path_factory: pytest.TempPathFactory, shared_audio: Path) -> Path:
    need("sipp")
    speech = speech_pcm16(shared_audio / "jfk.flac", SPEECH_S, 8000)
    return write_rtp_pcap(tmp_path_factory.mktemp("pcap") / "jfk_pcmu.pcap", ulaw_bytes(speech))


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


def passed(run: SippRun) -> bool:
    """SIPp's own verdict: exit 0 and one successful call per call placed."""
    return run.returncode == 0 and "Failed call" in run.stdout and " 0                 \n" in _line(run, "Failed call")


def _line(run: SippRun, name: str) -> str:
    return next((ln + "\n" for ln in run.stdout.splitlines() if ln.strip().startswith(name)), "")


def ok(run: SippRun) -> None:
    assert passed(run), f"SIPp failed (exit {run.returncode}):\n{run.stdout[-1500:]}\n{run.errors[-3000:]}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def short(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    """Short timers and one call at once: it rings 0.5 s, a 200 unACKed for 2 s or RTP missing
    for 3 s ends a call."""
    settings = make_settings(test_model_dir)
    settings.sip.port = 0
    settings.sip.ring_s = 0.5
    settings.sip.ack_timeout_s = 2.0
    settings.sip.media_timeout_s = 3.0
    settings.sip.max_calls = 1
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as srv:
        yield srv


def sip_port(live: LiveServer) -> int:
    return int(live.server.ports()["sip_port"])


async def test_options_is_answered_with_what_the_door_allows(short: LiveServer, tmp_path: Path) -> None:
    ok(await sipp(tmp_path, sip_port(short), scenario(tmp_path, "options.xml"), timeout_s=10))


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_a_call_with_rtp_from_a_pcap_is_translated_and_its_speech_comes_back_as_rtp(
    test_model_dir: Path, tmp_path: Path, pcap: Path, access: AccessLines, transport: str
) -> None:
    settings = make_settings(test_model_dir)
    settings.sip.port = 0
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        run = await pcap_call(tmp_path, sip_port(live), pcap, SPEECH_S, transport=transport)
        ok(run)
        await calls_ended(live.server)
    [line] = access.of("sip")
    assert line["code"] == "OK" and line["transport"] == ("UDP" if transport == "u1" else "TCP")
    assert line["targets"] == "spa" and line["encoding"] == "MULAW"
    assert line["rtp_received"] >= SPEECH_S / 0.02 * 0.95, line  # the pcap's packets reached the call
    assert line["audio_s"] == pytest.approx(SPEECH_S, abs=0.1)
    assert line["segments_total"] >= 1
    assert_paced_rtp(line)  # translated speech, as RTP, every slot accounted for
    assert line["marks_played"] >= 1 and "ear_voice_lag_p50_ms" in line


async def test_cancel_while_ringing_ends_the_invite_with_487(
    short: LiveServer, tmp_path: Path, access: AccessLines
) -> None:
    ok(await sipp(tmp_path, sip_port(short), scenario(tmp_path, "cancel.xml"), timeout_s=15))
    await calls_ended(short.server)
    assert access.of("sip") == []  # never answered: no call ran
    held = await short.server.app.sessions.counters.acquire([("sip_calls", 1)])  # its slot came back
    assert not isinstance(held, str)
    short.server.app.sessions.counters.release(held)


async def test_an_offer_with_no_codec_we_take_gets_488(short: LiveServer, tmp_path: Path) -> None:
    sc = scenario(tmp_path, "refused.xml", status="488", codecs=G729, retry="Warning:")
    ok(await sipp(tmp_path, sip_port(short), sc, timeout_s=10))


async def test_a_caller_that_never_acks_gets_the_doors_bye(
    short: LiveServer, tmp_path: Path, access: AccessLines, caplog: pytest.LogCaptureFixture
) -> None:
    sc = scenario(tmp_path, "server_bye.xml", ack="", media="", reason="no ACK", bye_timeout_ms="15000")
    with caplog.at_level(logging.INFO, logger="translate_svc.transport.sip"):
        ok(await sipp(tmp_path, sip_port(short), sc, timeout_s=20))
        await calls_ended(short.server)
    assert any("no ACK came" in r.getMessage() for r in caplog.records)
    [line] = access.of("sip")
    assert line["code"] != "OK"


async def test_a_call_without_rtp_ends_at_the_media_timeout(
    short: LiveServer, tmp_path: Path, access: AccessLines
) -> None:
    sc = scenario(tmp_path, "server_bye.xml", ack=ACK, media="", reason="no RTP came", bye_timeout_ms="15000")
    started = asyncio.get_running_loop().time()
    ok(await sipp(tmp_path, sip_port(short), sc, timeout_s=20))
    assert asyncio.get_running_loop().time() - started >= 3.0  # sip.media_timeout_s
    await calls_ended(short.server)
    [line] = access.of("sip")
    assert line["rtp_received"] == 0


async def test_over_capacity_is_486_with_retry_after_and_the_call_in_progress_goes_on(
    short: LiveServer, tmp_path: Path, access: AccessLines
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    holder = scenario(tmp_path / "a", "server_bye.xml", ack=ACK, media="", reason="no RTP came", bye_timeout_ms="15000")
    first = asyncio.create_task(sipp(tmp_path / "a", sip_port(short), holder, timeout_s=20))
    await asyncio.sleep(1.5)  # the first call is answered (sip.max_calls is 1)
    busy = scenario(tmp_path / "b", "refused.xml", status="486", codecs=PCMU, retry="Retry-After:")
    ok(await sipp(tmp_path / "b", sip_port(short), busy, timeout_s=10))
    ok(await first)
    await calls_ended(short.server)
    assert len(access.of("sip")) == 1


async def test_an_invite_from_outside_allowed_cidrs_gets_403(test_model_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(test_model_dir)
    settings.sip.port = 0
    settings.sip.allowed_cidrs = ["10.0.0.0/8"]
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        sc = scenario(tmp_path, "refused.xml", status="403", codecs=PCMU, retry="Warning:")
        ok(await sipp(tmp_path, sip_port(live), sc, timeout_s=10))
        held = await live.server.app.sessions.counters.acquire([("sip_calls", 64)])
        assert not isinstance(held, str)  # the refused INVITE took no slot
        live.server.app.sessions.counters.release(held)


async def test_a_drain_ends_the_call_with_the_doors_bye_after_its_translated_tail(
    test_model_dir: Path, tmp_path: Path, pcap: Path, access: AccessLines
) -> None:
    settings = make_settings(test_model_dir)
    settings.sip.port = 0
    settings.server.drain_s = 1.0
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        sc = scenario(tmp_path, "server_bye.xml", ack=ACK, media=play(pcap), reason="shut down", bye_timeout_ms="30000")
        call = asyncio.create_task(sipp(tmp_path, sip_port(live), sc, timeout_s=40))
        await asyncio.sleep(4.0)  # mid-speech
        await live.server.stop(grace=20)  # what SIGTERM runs
        ok(await call)
    [line] = access.of("sip")
    assert line["frames_speech"] > 0 and line["audio_s"] > 1.0


async def test_a_reinvite_changes_the_codec_and_holds_and_rfc4733_digits_are_counted(
    test_model_dir: Path, tmp_path: Path, pcap: Path, access: AccessLines, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(test_model_dir)
    settings.sip.port = 0
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        sc = scenario(
            tmp_path,
            "reinvite.xml",
            pcap=str(pcap),
            dtmf=DTMF_PCAP,
            pause_ms=str(int(SPEECH_S * 1000)),
            pt="0",
            codec="PCMU",
            headers="X-Translate-Target: spa",
            seconds=str(SPEECH_S),
        )
        with caplog.at_level(logging.INFO, logger="translate_svc.transport.sip"):
            ok(await sipp(tmp_path, sip_port(live), sc, timeout_s=40))
            await calls_ended(live.server)
    assert any("re-INVITE: PCMA, recvonly" in r.getMessage() for r in caplog.records)
    [line] = access.of("sip")
    assert line["code"] == "OK" and line["dtmf_digits"] == 1  # one event, its end packet sent three times
