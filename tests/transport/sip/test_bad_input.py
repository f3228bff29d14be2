"""Bad input at the SIP door, beside a normal call that must complete (issue 60): garbage
datagrams, a truncated request (Content-Length past what came: 400), an oversized one (513), RTP
from an address the call did not latch to (dropped, counted), and a source outside
``sip.allowed_cidrs`` with ``sip.drop_refused`` (no answer at all). The normal call is SIPp's
(``tests/support/sip/call_pcap.xml``); the bad messages are written from RFC 3261 §7 and §20 and
RTP from RFC 3550 §5.1 and sent from a plain UDP socket."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_server import make_settings, serving
from tests.support.phone_carriers import AccessLines, access_lines, calls_ended, ulaw_bytes
from tests.support.sip_peers import ACK, G729, need, scenario, sipp, write_rtp_pcap
from tests.support.speech import speech_pcm16
from tests.support.waiting import until
from translate_svc.model.testing.stable import StableTranslator
from translate_svc.transport.sip.door import SipDoor

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.slow(60)]

SPEECH_S = 5.0


def request(method: str, port: int, *, body: bytes = b"", content_length: int | None = None, pad: int = 0) -> bytes:
    """A request as RFC 3261 §7.1 writes one (``pad``: that many bytes of an X- header)."""
    lines = [
        f"{method} sip:translate@127.0.0.1:{port} SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK" + os.urandom(6).hex(),
        "From: <sip:bad@127.0.0.1>;tag=1",
        f"To: <sip:translate@127.0.0.1:{port}>",
        "Call-ID: " + os.urandom(6).hex(),
        f"CSeq: 1 {method}",
        "Max-Forwards: 70",
    ]
    if pad:
        lines.append("X-Pad: " + "a" * pad)
    lines.append(f"Content-Length: {len(body) if content_length is None else content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def status_of(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


async def exchange(sock: socket.socket, port: int, data: bytes, wait_s: float = 1.0) -> bytes | None:
    loop = asyncio.get_running_loop()
    await loop.sock_sendto(sock, data, ("127.0.0.1", port))
    try:
        async with asyncio.timeout(wait_s):
            return await loop.sock_recv(sock, 65535)
    except TimeoutError:
        return None


async def test_garbage_truncated_oversized_and_foreign_rtp_beside_a_call_that_completes(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path, access: AccessLines, caplog: pytest.LogCaptureFixture
) -> None:
    need("sipp")
    pcap = write_rtp_pcap(tmp_path / "jfk.pcap", ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", SPEECH_S, 8000)))
    settings = make_settings(test_model_dir)
    settings.sip.port = 0
    settings.sip.ack_timeout_s = 2.0
    settings.sip.media_timeout_s = 4.0
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        port = int(live.server.ports()["sip_port"])
        sc = scenario(
            tmp_path,
            "call_pcap.xml",
            pcap=str(pcap),
            pause_ms=str(int(SPEECH_S * 1000) + 2000),
            pt="0",
            codec="PCMU",
            headers="X-Translate-Target: spa",
            seconds=str(SPEECH_S),
        )
        call = asyncio.create_task(sipp(tmp_path, port, sc, timeout_s=40))
        door = live.server.door(SipDoor)
        assert door is not None
        await until(lambda: bool(door.calls))
        [sip_call] = door.calls.values()
        beside = []  # an offer with no codec we take, a caller that never ACKs, one that sends no RTP
        for name, values in (
            ("refused.xml", {"status": "488", "codecs": G729, "retry": "Warning:"}),
            ("server_bye.xml", {"ack": "", "media": "", "reason": "no ACK", "bye_timeout_ms": "15000"}),
            ("server_bye.xml", {"ack": ACK, "media": "", "reason": "no RTP came", "bye_timeout_ms": "15000"}),
        ):
            folder = tmp_path / f"beside{len(beside)}"
            folder.mkdir()
            beside.append(asyncio.create_task(sipp(folder, port, scenario(folder, name, **values), timeout_s=30)))
        await asyncio.sleep(1.0)  # its RTP has latched
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, caplog.at_level(logging.INFO):
            sock.setblocking(False)
            sock.bind(("127.0.0.1", 0))
            for garbage in (os.urandom(200), b"\x00" * 40, b"HELLO\r\n\r\n", b"INVITE\r\n\r\n"):
                assert await exchange(sock, port, garbage, 0.3) is None  # unreadable: dropped, logged
            truncated = request("OPTIONS", port, body=b"v=0\r\n", content_length=500)
            answer = await exchange(sock, port, truncated)
            assert answer is not None and status_of(answer) == 400 and b"truncated" in answer
            oversized = request("OPTIONS", port, body=b"v=0\r\n" + b"a=x\r\n" * 2000)
            answer = await exchange(sock, port, oversized)
            assert answer is not None and status_of(answer) == 513
            no_end = request("OPTIONS", port, pad=9000)  # no head within sip.max_message_bytes: unread
            assert await exchange(sock, port, no_end, 0.3) is None
            rtp_port = sip_call.endpoint_port
            for n in range(10):  # RTP from an address the call did not latch to
                packet = bytes([0x80, 0]) + n.to_bytes(2, "big") + bytes(8) + b"\xff" * 160
                await asyncio.get_running_loop().sock_sendto(sock, packet, ("127.0.0.1", rtp_port))
            answer = await exchange(sock, port, request("OPTIONS", port))
            assert answer is not None and status_of(answer) == 200  # the port still answers
        run = await call
        assert run.returncode == 0, run.stdout[-1500:] + run.errors[-2000:]
        for other in beside:
            done = await other
            assert done.returncode == 0, done.stdout[-1500:] + done.errors[-2000:]
        await calls_ended(live.server)
    assert any("refused a SIP message" in r.getMessage() for r in caplog.records)  # the reasons were logged
    [line] = [x for x in access.of("sip") if x["rtp_received"]]  # the normal call
    assert line["code"] == "OK" and line["rtp_foreign"] == 10 and line["frames_speech"] > 0
    assert len(access.of("sip")) == 3  # and the two the door ended (no ACK, no RTP)
    assert door.counts["unreadable"] >= 7


async def test_a_source_outside_allowed_cidrs_gets_no_answer_with_drop_refused(test_model_dir: Path) -> None:
    settings = make_settings(test_model_dir)
    settings.sip.port = 0
    settings.sip.allowed_cidrs = ["10.0.0.0/8"]
    settings.sip.drop_refused = True
    async with serving(settings, warmup=False) as live:
        port = int(live.server.ports()["sip_port"])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.bind(("127.0.0.1", 0))
            assert await exchange(sock, port, request("OPTIONS", port)) is None
            assert await exchange(sock, port, request("INVITE", port, body=b"v=0\r\n")) is None
        door = live.server.door(SipDoor)
        assert door is not None and door.counts["dropped_source"] == 2
