"""Where a SIP call's media goes, and what it may send in (issue 68: H1, H3, H9, H11, H12, H16),
each attack of ``tests/support/attacks/sip.py`` against a real server on loopback, its peer a
SIP user agent on a plain UDP socket written from RFC 3261, 4566, 3550 and 4733
(``tests/support/attacks/sip_peer.py``):

- H1: an offer whose ``c=`` names a host is refused 488 (a re-INVITE naming one too, the call going
  on) and no name ever reaches a socket's ``sendto``; another caller's health ``Check`` meanwhile;
- H3: an INVITE and ACK naming a third party: not one packet reaches it (the call sends nothing
  until a packet from the offered address came); multicast, broadcast, 0.0.0.0: 488;
- H11: a neighbour at the caller's address but another port sends first: it gets nothing and the
  caller, at the offered port, gets the call's media;
- H12: ports 99999 and of 5,000 digits, an invalid room: 400 as the first and only answer;
- H9: a Call-ID with a bare LF is not answered and writes no access line; a Call-ID that is not
  RFC 3261's ``word[@word]`` gets 400;
- H16: a flood of RFC 4733 events: the digits are counted, the packets taken bounded to
  ``media.RTP_PACKETS_PER_S``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.attacks import sip as attacks
from tests.support.attacks.sip_peer import RtpSocket, SipPeer, offer, rtp_packet
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.phone_carriers import AccessLines, access_lines, calls_ended
from tests.support.waiting import eventually
from translate_svc.model.testing.stable import StableTranslator
from translate_svc.transport.sip.media import RTP_PACKETS_PER_S

pytestmark = [pytest.mark.integration, pytest.mark.slow(90)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.sip.port = 0
    settings.sip.media_timeout_s = 20.0
    settings.sip.invites_per_s = 1000.0
    settings.sip.invite_burst = 1000
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as srv:
        yield srv


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


def sip_of(live: LiveServer) -> tuple[str, int]:
    return ("127.0.0.1", int(live.server.ports()["sip_port"]))


async def test_a_host_name_in_the_offer_is_488_and_no_name_reaches_sendto(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """H1. The sendto spy sees every datagram the process sends (SIP responses, RTP): each to an
    IP literal. On eb20967 the INVITE naming a host was answered 200 and its RTP went to
    ``sendto`` with the name, 50 lookups a second on the event loop."""
    sent_to: list[str] = []
    original = socket.socket.sendto

    def spy(self: socket.socket, data: bytes, *rest: object) -> int:
        address = rest[-1]
        if isinstance(address, tuple):
            sent_to.append(str(address[0]))
        return original(self, data, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "sendto", spy)
    got = await attacks.named_host(sip_of(live), f"127.0.0.1:{live.port}", seconds=2.0)
    assert got["invite_status"] == 488, got
    assert got["literal_call_status"] == 200 and got["reinvite_status"] == 488, got  # the call goes on
    assert sent_to, "nothing was sent at all"
    for host in sent_to:
        ipaddress.ip_address(host)  # a name would raise here
    assert got["checks_during"] >= 5 and got["check_worst_during_s"] < 2.0, got  # the loop never froze
    await calls_ended(live.server)


async def test_nothing_reaches_a_third_party_and_special_addresses_are_488(live: LiveServer) -> None:
    """H3. On eb20967: 151 packets (26 KB) in 3 s to the third party, and 200 for multicast,
    broadcast and 0.0.0.0."""
    got = await attacks.third_party_rtp(sip_of(live), seconds=2.0)
    assert got["invite_status"] == 200, got  # the call is admitted: it just sends nothing there
    assert got["third_party_packets"] == 0, got
    assert (got["multicast_status"], got["broadcast_status"], got["unspecified_status"]) == (488, 488, 488), got
    await calls_ended(live.server)


async def test_a_neighbour_at_another_port_gets_nothing_and_the_caller_gets_the_media(
    live: LiveServer, access: AccessLines
) -> None:
    """H11. On eb20967 the neighbour's first packet latched the call: 111 packets to it, 0 to the
    caller."""
    got = await attacks.neighbour_latch(sip_of(live), seconds=2.0)
    assert got["invite_status"] == 200, got
    assert got["neighbour_packets"] == 0 and got["caller_packets"] > 20, got
    await calls_ended(live.server)
    [line] = access.of("sip")
    assert line["rtp_foreign"] >= 1 and line["rtp_sent"] > 20, line


async def test_bad_ports_and_an_invalid_room_are_400_before_anything_else(live: LiveServer) -> None:
    """H12. On eb20967: port 99999 and the invalid room were answered 100, 180, 200 (and ended
    after), the 5,000-digit port 100 then 500 with a traceback."""
    got = await attacks.bad_sdp(sip_of(live))
    assert got == {"port_99999": [400], "port_5000_digits": [400], "invalid_room": [400]}, got


async def test_a_call_id_with_a_bare_lf_is_not_answered_and_writes_no_line(
    live: LiveServer, access: AccessLines
) -> None:
    """H9. On eb20967 it was answered 100, 180, 200 and its access line carried the LF and the
    forged fields."""
    got = await attacks.call_id_injection(sip_of(live))
    assert got["statuses"] == [], got
    media = RtpSocket()
    try:
        async with SipPeer(sip_of(live)) as peer:  # printable, but not RFC 3261's word[@word]
            resp = await peer.invite(offer(*media.address), call_id="two words")
            assert resp is not None and resp.status == 400 and "Call-ID" in (resp.get("warning") or ""), resp
    finally:
        await media.close()
    await calls_ended(live.server)
    assert not [line for line in access.of("sip") if "\n" in str(line.get("call_id", ""))]
    assert not any("tenant=forged" in r.getMessage() for r in access.records)


async def test_a_dtmf_flood_is_counted_and_bounded(live: LiveServer, access: AccessLines) -> None:
    """H16. On eb20967 every digit was kept in a list (53,473 of 347,550 sent in 3 s; 1.6 million in
    30 s in the review) and nothing bounded the packets a call took in."""
    seconds = 2.0
    got = await attacks.dtmf_flood(sip_of(live), seconds=seconds)
    assert got["invite_status"] == 200 and got["bye_status"] == 200, got
    await calls_ended(live.server)
    [line] = access.of("sip")
    bound = RTP_PACKETS_PER_S * (seconds + 1.5) + RTP_PACKETS_PER_S  # the rate over the flood, and the burst
    assert isinstance(line["dtmf_digits"], int) and 0 < line["dtmf_digits"] <= bound, line
    assert line["rtp_over_rate"] > 0, (line, got)  # (the rest of the flood the kernel's buffer dropped)


async def test_a_normal_call_sends_only_once_its_media_came(live: LiveServer, access: AccessLines) -> None:
    """H3's other half: a caller that sends RTP from the offered port gets the call's media back,
    from its first packet on; before it, the frames are withheld (counted), not sent anywhere."""
    media = RtpSocket()
    try:
        async with SipPeer(sip_of(live)) as peer:
            resp = await peer.invite(offer(*media.address))
            assert resp is not None and resp.status == 200
            where = resp.sdp_media()
            assert where is not None
            await asyncio.sleep(0.5)
            assert media.packets == 0  # ACKed, but nothing came from the caller yet
            for n in range(50):
                await media.send(rtp_packet(0, n, n * 160, 0xCA11, b"\xff" * 160), where)
                await asyncio.sleep(0.02)
            await eventually(_async(lambda: media.packets > 10), "the caller hears the call", 5.0)
            assert media.sources == {where}  # from the port the answer named
            await peer.bye()
    finally:
        await media.close()
    await calls_ended(live.server)
    [line] = access.of("sip")
    assert line["rtp_withheld"] >= 10 and line["rtp_sent"] >= 10, line


def _async(check):  # type: ignore[no-untyped-def]
    async def run() -> bool:
        return bool(check())

    return run
