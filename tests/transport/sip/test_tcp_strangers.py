"""Strangers on SIP over TCP (issue 87, J6: H2's residual), each against a real server on loopback
whose tokens file names SIP users (so a source outside ``sip.allowed_cidrs`` is let in to answer a
digest challenge). In the review, 24 addresses sending one refused OPTIONS every 20 s per
connection held all 341 slots for 70 s and a trunk's TCP INVITE was reset at every try: a refused
request counted as activity, and strangers could take the whole cap. Now a refused request does
not move a connection's idle time, a stranger's connection that has not authenticated a dialog is
closed ``sip.tcp_unauthenticated_s`` after its accept, and strangers hold at most
``sip.tcp_strangers_share`` of the cap. Raw requests are RFC 3261 §7's over plain TCP sockets
(``tests/support/attacks/sip_tcp.py``); the trunk's call is SIPp 3.6.1's over TCP, and the digest
caller's too."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.attacks import sip as attacks
from tests.support.attacks.sip_tcp import answered, options, refused_keepalives
from tests.support.live_server import make_settings, serving
from tests.support.phone_carriers import AccessLines, access_lines, calls_ended, ulaw_bytes
from tests.support.sip_peers import need, pcap_call, scenario, sipp, write_rtp_pcap
from tests.support.speech import speech_pcm16
from translate_svc.model.testing.stable import StableTranslator
from translate_svc.settings import Settings
from translate_svc.transport.sip.door import SipDoor
from translate_svc.transport.tokens.sip import sip_password

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.slow(60)]

#: the door's cap here, the strangers' share of it, and their addresses (4 connections each)
CAP = 40
STRANGERS = [f"127.0.0.{n}" for n in range(2, 14)]


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


def digest_settings(test_model_dir: Path, tmp_path: Path) -> Settings:
    tokens = tmp_path / "tokens"
    tokens.write_text(attacks.TOKENS_FILE)
    settings = make_settings(test_model_dir)
    settings.sip.port = 0
    settings.sip.allowed_cidrs = ["127.0.0.1/32"]
    settings.auth.tokens_file = tokens
    return settings


def door_of(live) -> SipDoor:  # type: ignore[no-untyped-def]
    door = live.server.door(SipDoor)
    assert door is not None
    return door


async def test_strangers_refused_requests_leave_the_trunk_its_slots(
    test_model_dir: Path, tmp_path: Path, shared_audio: Path, access: AccessLines
) -> None:
    """12 stranger addresses, 4 connections each (48 against a cap of 40), each sending a refused
    OPTIONS every 1 s (``sip.tcp_idle_s`` 2 s) and reconnecting when closed, for 9 s; meanwhile
    the trunk (127.0.0.1) opens a new connection for an OPTIONS every 0.5 s, and places a call over
    TCP with SIPp. The trunk gets every answer and its call; the strangers held at most their share
    (20), each connection at most ~``sip.tcp_unauthenticated_s`` (2 s). Before: the strangers held
    all 40 slots for the whole run and the trunk's connections were closed at accept."""
    need("sipp")
    settings = digest_settings(test_model_dir, tmp_path)
    settings.sip.max_tcp_connections = CAP
    settings.sip.tcp_connections_per_source = 4
    settings.sip.tcp_idle_s = 2.0
    settings.sip.tcp_unauthenticated_s = 2.0
    seconds = 2.0
    pcap = write_rtp_pcap(tmp_path / "jfk.pcap", ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", seconds, 8000)))
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        sip = ("127.0.0.1", int(live.server.ports()["sip_port"]))
        door = door_of(live)
        assert door.connections is not None and door.connections.cap == CAP
        flood = asyncio.ensure_future(
            refused_keepalives(sip, sources=STRANGERS, per_source=4, every_s=1.0, seconds=9.0, trunk_every_s=0.5)
        )
        await asyncio.sleep(3.0)  # the strangers are at it
        call = await pcap_call(tmp_path, sip[1], pcap, seconds, transport="t1")
        got = await flood
        await calls_ended(live.server)
    print(f"J6: {got}; the door's counts {door.counts}")
    assert call.returncode == 0, f"{call.stdout[-1500:]}\n{call.errors[-3000:]}"
    assert got["trunk_tries"] >= 8 and got["trunk_answered_200"] == got["trunk_tries"], got
    assert got["stranger_held_peak"] <= CAP // 2, got
    assert got["stranger_lifetime_max_s"] is not None and got["stranger_lifetime_max_s"] < 5.0, got
    assert door.counts.get("tcp_strangers_share", 0) > 0 and door.counts.get("tcp_unauthenticated", 0) > 0
    assert door.counts.get("tcp_at_cap", 0) == 0, door.counts
    [line] = access.of("sip")
    assert line["code"] == "OK" and line["transport"] == "TCP", line


async def test_a_refused_request_does_not_keep_a_connection_open(test_model_dir: Path, tmp_path: Path) -> None:
    """A stranger's connection sending a refused OPTIONS every 0.4 s is closed at
    ``sip.tcp_idle_s`` (1.5 s) from its accept, though ``sip.tcp_unauthenticated_s`` is far: only
    what the door takes counts as a sign of life. Before, each 403 reset the idle time: held for
    the run's 6 s."""
    settings = digest_settings(test_model_dir, tmp_path)
    settings.sip.tcp_idle_s = 1.5
    settings.sip.tcp_unauthenticated_s = 60.0
    async with serving(settings, warmup=False) as live:
        sip = ("127.0.0.1", int(live.server.ports()["sip_port"]))
        reader, writer = await asyncio.open_connection(*sip, local_addr=("127.0.0.2", 0))
        loop = asyncio.get_running_loop()
        t0, refused = loop.time(), 0
        try:
            while loop.time() - t0 < 6.0:
                writer.write(options(sip, "127.0.0.2"))
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.4)
                except TimeoutError:
                    continue
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                refused += head.startswith(b"SIP/2.0 403 ")
                await asyncio.sleep(0.4)
            held = loop.time() - t0
        finally:
            writer.close()
        counts = door_of(live).counts
    assert refused >= 2, refused  # answered (refused) while it lived
    assert held < 4.0, (held, counts)
    assert counts.get("tcp_no_first_message", 0) == 1, counts


async def test_a_digest_callers_call_outlives_the_unauthenticated_deadline(
    test_model_dir: Path, tmp_path: Path, access: AccessLines
) -> None:
    """What the deadline spares: a caller outside the networks that answers the digest challenge
    on its TCP connection keeps it past ``sip.tcp_unauthenticated_s`` (1 s): SIPp's call of 3 s
    ends with its own BYE on that connection. A trunk's connection is never asked to
    authenticate (its OPTIONS answered 200 after 2 s of quiet)."""
    need("sipp")
    settings = digest_settings(test_model_dir, tmp_path)
    settings.sip.allowed_cidrs = ["10.0.0.0/8"]  # SIPp on 127.0.0.1 is a stranger here
    settings.sip.tcp_unauthenticated_s = 1.0
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        port = int(live.server.ports()["sip_port"])
        sc = scenario(tmp_path, "digest_call.xml")
        sc.write_text(sc.read_text().replace('<pause milliseconds="1000"/>', '<pause milliseconds="3000"/>'))
        run = await sipp(tmp_path, port, sc, transport="t1", extra=("-au", "acme1", "-ap", _password("acme")))
        assert run.returncode == 0, run.stdout[-1500:] + run.errors[-2000:]
        await calls_ended(live.server)
        counts = door_of(live).counts
    assert counts.get("tcp_unauthenticated", 0) == 0, counts
    [line] = access.of("sip")
    assert line["code"] == "OK" and line["transport"] == "TCP" and line["tenant"] == "acme", line


async def test_the_trunk_is_not_asked_to_authenticate(test_model_dir: Path, tmp_path: Path) -> None:
    """An allowed source's connection keeps the idle rule alone: an OPTIONS, 2 s of quiet
    (past ``sip.tcp_unauthenticated_s``, 1 s), then another on the same connection."""
    settings = digest_settings(test_model_dir, tmp_path)
    settings.sip.tcp_unauthenticated_s = 1.0
    async with serving(settings, warmup=False) as live:
        sip = ("127.0.0.1", int(live.server.ports()["sip_port"]))
        assert await answered(sip, "127.0.0.1") == 200
        reader, writer = await asyncio.open_connection(*sip, local_addr=("127.0.0.1", 0))
        try:
            writer.write(options(sip, "127.0.0.1"))
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"SIP/2.0 200 ")
            await asyncio.sleep(2.0)
            writer.write(options(sip, "127.0.0.1"))
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"SIP/2.0 200 ")
        finally:
            writer.close()


def _password(tenant: str) -> str:
    return sip_password(attacks.TOKENS[tenant], {"acme": "acme1", "rival": "rival1"}[tenant])
