"""The WebRTC door's bounds (issue 34: N9, N10, N3 for WebRTC), each attack at small scale on a real
server on loopback with aiortc as the client: offers with more audio sections than the call has
targets (each a decoder thread), calls over ``max_streams`` (refused before a peer connection
exists), calls that never connect, never open their channel, never send audio or never send their
``session.update`` (closed at their deadline, their slot released), offers whose candidates list
other hosts' ports (no STUN check goes there) and oversize offers (413). FakeRunner serves: nothing
here depends on what a model says."""

from __future__ import annotations

import asyncio
import fractions
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
import pytest_asyncio
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import LiveServer, make_settings, serving
from translate_svc.errors import InvalidInput
from translate_svc.transport.openai.webrtc import WebRtcDoor

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(25)]

CONNECT_MS = 1500  # limits.webrtc_connect_timeout_ms on these servers
CONFIG_MS = 1000  # limits.config_timeout_ms
#: the attack's addresses: the caller's own (127.0.0.1, the HTTP peer), another host's, and a
#: network the operator allowed (limits.webrtc_candidate_networks)
PEER, OTHER, ALLOWED = "127.0.0.1", "127.0.0.2", "127.0.0.3"


def settings_for(model_dir: Path, **limits: Any) -> Any:
    settings = make_settings(model_dir)
    settings.server.http_port = 0
    settings.limits.webrtc_connect_timeout_ms = CONNECT_MS
    settings.limits.config_timeout_ms = CONFIG_MS
    for name, value in limits.items():
        setattr(settings.limits, name, value)
    return settings


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def server(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    from ipaddress import ip_network

    settings = settings_for(test_model_dir, webrtc_candidate_networks=[ip_network(f"{ALLOWED}/32")])
    async with serving(settings, runner_factory=FakeRunner) as live:
        yield live


def url(live: LiveServer, query: str = "") -> str:
    assert live.server.http is not None
    return f"http://127.0.0.1:{live.server.http.port}/v1/realtime/translations/calls{query}"


def door(live: LiveServer) -> WebRtcDoor:
    assert live.server.webrtc is not None
    return live.server.webrtc


def open_slots(live: LiveServer) -> int:
    manager = live.server.app.sessions
    return int(manager.limits.max_streams - manager.counters.count("streams"))


def decoder_threads() -> int:
    return sum(t.name == "audio-decoder" for t in threading.enumerate())


async def until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Wait for ``condition`` (checked every 20 ms), failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        await asyncio.sleep(0.02)


class Microphone(MediaStreamTrack):
    """Noise in 20 ms frames of 48 kHz mono at real time; ``mute``: never a frame."""

    kind = "audio"

    def __init__(self, *, mute: bool = False) -> None:
        super().__init__()
        self.mute = mute
        self.pts = 0
        self.t0: float | None = None
        self.rng = np.random.default_rng(0)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.mute:
            await asyncio.Future()  # the sender's task is cancelled when its connection closes
        if self.t0 is None:
            self.t0 = time.perf_counter()
        await asyncio.sleep(max(0.0, self.t0 + self.pts / 48000 - time.perf_counter()))
        x = self.rng.integers(-300, 300, 960).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(x[None, :], format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self.pts, fractions.Fraction(1, 48000)
        self.pts += 960
        return frame


class Client:
    """A browser's side: a microphone, more audio sections if asked, the ``oai-events`` channel
    (``update``: its session.update when it opens), the events that come on it."""

    def __init__(
        self,
        *,
        sending: int = 1,
        receiving: int = 0,
        channel: bool = True,
        update: bool = True,
        mute: bool = False,
    ) -> None:
        # no STUN server on the client either; one transport for every section
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.pc.addTrack(Microphone(mute=mute))
        for _ in range(sending - 1):
            self.pc.addTransceiver("audio", direction="sendrecv")
        for _ in range(receiving):
            self.pc.addTransceiver("audio", direction="recvonly")
        self.events: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        if channel:
            self.channel = self.pc.createDataChannel("oai-events")
            if update:
                session = {"audio": {"output": {"language": "es"}}}
                message = json.dumps({"type": "session.update", "session": session})
                self.channel.on("open", lambda: self.channel.send(message))
            self.channel.on("message", self._message)

    def _message(self, message: str) -> None:
        self.events.append(json.loads(message))
        self.changed.set()

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def post(self, http: aiohttp.ClientSession, target: str, sdp: str | None = None) -> aiohttp.ClientResponse:
        body = sdp if sdp is not None else await self.offer()
        response = await http.post(target, data=body, headers={"Content-Type": "application/sdp"})
        await response.read()
        return response

    async def dial(self, http: aiohttp.ClientSession, target: str) -> None:
        """Post the offer and take the answer: the call connects."""
        answer = await self.post(http, target)
        assert answer.status == 201, await answer.text()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=await answer.text(), type="answer"))

    async def until(self, kind: str, timeout_s: float = 15) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                for e in self.events:
                    if e["type"] == kind:
                        return e
                self.changed.clear()
                await self.changed.wait()


async def error_of(response: aiohttp.ClientResponse) -> dict[str, Any]:
    body = await response.json()
    return dict(body["error"])


async def test_an_offer_is_refused_with_more_audio_sections_than_targets_before_any_peer_connection(
    server: LiveServer,
) -> None:
    """N9: the attack's offer had 800 audio sections, each a decoder thread for the call's life.
    A call has one audio section per target it names (one without), exactly one sending; an
    offer beyond that is a 400 saying what to fix, before a peer connection or a thread exists."""
    threads = decoder_threads()
    async with aiohttp.ClientSession() as http:
        refusals = [
            (Client(sending=21), "", "audio sections"),  # the attack: 21 sending sections
            (Client(receiving=1), "?language=es", "audio sections"),  # a second section, one target
            (Client(sending=2), "?languages=es,fr", "exactly one must send"),
            (Client(receiving=4), "?languages=es,fr,de,it,pt", "at most 4"),  # limits.max_target_languages
        ]
        for client, query, says in refusals:
            refused = await client.post(http, url(server, query))
            assert refused.status == 400, (query, await refused.text())
            assert says in (await error_of(refused))["message"]
            await client.pc.close()
        video = Client()
        video.pc.addTransceiver("video", direction="sendrecv")
        refused = await video.post(http, url(server))
        assert refused.status == 400 and "'video' section" in (await error_of(refused))["message"]
        await video.pc.close()
        # nothing was made for them: no peer connection, no thread, no slot held
        assert not door(server)._calls and decoder_threads() == threads
        assert open_slots(server) == server.server.app.sessions.limits.max_streams
        # the page's own shape is taken: a microphone and one more (recvonly) section per further target
        page = Client(receiving=1)
        await page.dial(http, url(server, "?languages=es,fr"))
        assert (await page.until("session.updated"))["session"]["audio"]["output"]["language"] == "es"
        await page.pc.close()
    await until(lambda: not door(server)._calls, 10, "the page's call ends when it hangs up")


async def test_an_oversize_offer_is_refused_with_413_before_it_is_parsed(server: LiveServer) -> None:
    """N10: the attack's offer was 118 KiB; the door reads at most limits.webrtc_max_offer_bytes."""
    limit = server.server.app.sessions.limits.webrtc_max_offer_bytes
    sdp = await Client().offer()
    line = "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"
    big = sdp + line * (limit // len(line) + 1)

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the door counts as it reads
        for at in range(0, len(big), 4096):
            yield big[at : at + 4096].encode()

    async with aiohttp.ClientSession() as http:
        for body in (big, chunked()):
            refused = await http.post(url(server), data=body, headers={"Content-Type": "application/sdp"})
            assert refused.status == 413, await refused.text()
            assert "limits.webrtc_max_offer_bytes" in (await error_of(refused))["message"]
    assert not door(server)._calls and open_slots(server) == server.server.app.sessions.limits.max_streams


async def test_stun_checks_go_only_to_the_callers_address_and_allowed_networks_and_no_public_stun(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N10: an offer listing other hosts' ports made the server send STUN checks to each of them
    (6,668 packets to 1,329 ports from one offer), and it asked Google's STUN server. Here an
    offer lists 12 ports on each of three addresses: the caller's own, another host's and an
    allowed network's. Checks go to at most limits.webrtc_max_candidates (8) of the caller's and
    the allowed ones, never to the other host; no STUN server is looked up."""
    lookups: list[str] = []

    def gethostbyname(name: str) -> str:  # aioice resolves its STUN server with this
        lookups.append(name)
        raise socket.gaierror(socket.EAI_NONAME, "not in this test")

    monkeypatch.setattr(socket, "gethostbyname", gethostbyname)
    loop = asyncio.get_running_loop()
    hits: dict[tuple[str, int], int] = {}

    class Victim(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.address: tuple[str, int] = ("", 0)

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            hits[self.address] = hits.get(self.address, 0) + 1

    victims = []
    for _ in range(12):
        for host in (PEER, OTHER, ALLOWED):
            transport, protocol = await loop.create_datagram_endpoint(Victim, local_addr=(host, 0))
            protocol.address = transport.get_extra_info("sockname")[:2]
            victims.append((transport, protocol.address))
    try:
        client = Client()
        sdp = await client.offer()
        listed = "".join(
            f"a=candidate:{n} 1 udp {2130706431 - n} {host} {port} typ host\r\n"
            for n, (_, (host, port)) in enumerate(victims)
        )
        first_section = sdp.index("m=", sdp.index("m=") + 1) if sdp.count("m=") > 1 else len(sdp)
        attack = sdp[:first_section] + listed + sdp[first_section:]
        async with aiohttp.ClientSession() as http:
            answered = await client.post(http, url(server), attack)
        assert answered.status == 201, await answered.text()
        assert len(door(server)._calls) == 1
        pc = next(iter(door(server)._calls))
        # the client never takes the answer: the call ends at its connect deadline, its checks with it
        await until(lambda: not door(server)._calls, CONNECT_MS / 1000 + 10, "the unconnected call ends")
        assert pc.connectionState == "closed"
        await client.pc.close()
    finally:
        for transport, _ in victims:
            transport.close()
    checked = {address for address, count in hits.items() if count}
    assert not [a for a in checked if a[0] == OTHER], hits  # never a host the call does not use
    assert len(checked) <= 8, hits  # limits.webrtc_max_candidates
    assert {a[0] for a in checked} == {PEER, ALLOWED}, hits  # the checks did run, to these
    assert "stun.l.google.com" not in lookups and not lookups, lookups


async def test_calls_are_admitted_before_their_peer_connection_and_release_their_slot_on_every_way_out(
    test_model_dir: Path,
) -> None:
    """N9 and N3 for WebRTC, with max_streams 1: a call over it is a 429 (Retry-After) before any
    peer connection exists, 503 while draining. A call that never connects, never opens its
    channel, never sends audio, or never sends its session.update holds the slot until its
    deadline, then is closed and its slot released; so is one that hangs up."""
    settings = settings_for(test_model_dir, max_streams=1)
    async with serving(settings, runner_factory=FakeRunner) as live, aiohttp.ClientSession() as http:
        calls = door(live)._calls
        first = Client()
        await first.dial(http, url(live))
        assert (await first.until("session.updated"))["session"]["audio"]["output"]["language"] == "es"
        assert open_slots(live) == 0 and len(calls) == 1
        threads = decoder_threads()
        over = Client()
        refused = await over.post(http, url(live))
        assert refused.status == 429 and refused.headers["Retry-After"] == "1", await refused.text()
        error = await error_of(refused)
        assert error["code"] == "server_overloaded" and "limits.max_streams" in error["message"]
        assert len(calls) == 1 and decoder_threads() == threads  # nothing was made for it
        await over.pc.close()
        first.channel.send(json.dumps({"type": "session.close"}))
        await first.until("session.closed")
        await until(lambda: not calls and open_slots(live) == 1, 10, "a closed call's slot is released")
        await first.pc.close()

        async def held_until_deadline(client: Client, *, answer: bool, deadline_ms: int) -> None:
            started = time.monotonic()
            if answer:
                await client.dial(http, url(live))
            else:
                assert (await client.post(http, url(live))).status == 201
            (pc,) = calls
            assert open_slots(live) == 0
            over = Client()
            assert (await over.post(http, url(live))).status == 429  # the slot is held meanwhile
            await over.pc.close()
            await until(
                lambda: not calls and open_slots(live) == 1, deadline_ms / 1000 + 10, "the call ends, its slot released"
            )
            assert time.monotonic() - started >= deadline_ms / 1000 * 0.9
            assert pc.connectionState == "closed"
            await client.pc.close()

        # never connects: the client does not take the answer
        await held_until_deadline(Client(), answer=False, deadline_ms=CONNECT_MS)
        # connects, but opens no oai-events channel
        await held_until_deadline(Client(channel=False), answer=True, deadline_ms=CONNECT_MS)
        # connects, opens the channel, its microphone sends nothing: told why on the channel
        mute = Client(mute=True)
        await held_until_deadline(mute, answer=True, deadline_ms=CONNECT_MS)
        assert (await mute.until("error"))["error"]["code"] == "connect_timeout"
        # connects, sends audio, never its session.update: the stream's config deadline ends it
        silent = Client(update=False)
        await held_until_deadline(silent, answer=True, deadline_ms=CONFIG_MS)
        assert (await silent.until("error"))["error"]["code"] == "config_timeout"

        # while draining: 503, before any peer connection
        live.server.app.sessions.drain(5.0)
        draining = Client()
        refused = await draining.post(http, url(live))
        assert refused.status == 503 and refused.headers["Retry-After"], await refused.text()
        assert (await error_of(refused))["code"] == "server_shutting_down" and not calls
        await draining.pc.close()


async def test_screen_offer_keeps_the_callers_and_allowed_candidates_up_to_the_cap() -> None:
    """The pure check under the door: sections counted, candidates filtered and capped, and
    ``a=end-of-candidates`` dropped once a candidate was (the client's checks then find it)."""
    from ipaddress import ip_network

    from translate_svc.transport.openai.webrtc_offer import screen_offer

    def section(kind: str, direction: str, *candidates: str) -> list[str]:
        lines = [f"m={kind} 9 UDP/TLS/RTP/SAVPF 111", f"a={direction}"]
        lines += [f"a=candidate:{n} 1 udp 100 {host} {9000 + n} typ host" for n, host in enumerate(candidates)]
        return [*lines, "a=end-of-candidates"]

    hosts = ["10.0.0.5", "8.8.8.8", "abc.local", "::ffff:10.0.0.5", "192.168.1.2", "10.0.0.5", "garbage"]
    sdp = "\r\n".join(["v=0", *section("audio", "sendrecv", *hosts), *section("audio", "recvonly")]) + "\r\n"
    kept = screen_offer(
        sdp, max_audio_sections=2, peer="::ffff:10.0.0.5", networks=[ip_network("192.168.0.0/16")], max_candidates=3
    )
    lines = kept.sdp.split("\r\n")
    assert [ln.split()[4] for ln in lines if ln.startswith("a=candidate:")] == [
        "10.0.0.5",
        "::ffff:10.0.0.5",
        "192.168.1.2",
    ]
    assert (kept.candidates, kept.dropped, kept.audio_sections) == (3, 4, 2)
    assert "a=end-of-candidates" not in lines
    untouched = screen_offer(sdp.replace("8.8.8.8", "10.0.0.5"), max_audio_sections=2, peer="10.0.0.5")
    assert (untouched.candidates, untouched.dropped) == (4, 3)  # abc.local, 192.168.1.2, garbage dropped
    everything = "\r\n".join(["v=0", *section("audio", "sendrecv", "10.0.0.5")]) + "\r\n"
    assert screen_offer(everything, max_audio_sections=1, peer="10.0.0.5").sdp == everything
    with pytest.raises(InvalidInput, match="audio sections"):
        screen_offer(sdp, max_audio_sections=1, peer=None)
    with pytest.raises(InvalidInput, match="microphone"):
        screen_offer("v=0\r\n" + "\r\n".join(section("application", "sendrecv")), max_audio_sections=1, peer=None)
