"""A call's RTP socket and the speech played into it.

``RtpEndpoint``: the call's UDP port (from ``sip.rtp_ports``), its packets into the call's input
queue. It latches (symmetric RTP): the first packet from the address the SDP offer named, or from
the SIP signalling's source address (a caller behind NAT), fixes where our media goes and where
the call's media may come from; packets from any other address are dropped, counted and logged
once. ``RtpOutlet``: the call's speech, one 20 ms packet per 20 ms slot on the process's one
``SlotClock`` (silence when there is nothing to say, as a phone does), marks played as their
frame goes out. ``MediaDeadline``: a call whose RTP stopped (or never came) for
``sip.media_timeout_s`` is ended. Event loop only.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
from collections.abc import Callable
from typing import cast

from translate_svc.errors import LimitReached
from translate_svc.transport.phone.audiosocket_server import PacedSpeech, SlotClock
from translate_svc.transport.phone.call import CallCodec
from translate_svc.transport.phone.loop import PhoneCall
from translate_svc.transport.sip.rtp import TRANSCODED, RtpFraming, RtpSender, WireEncoder, rtp_samples

logger = logging.getLogger(__name__)

#: packets waiting in a call's input queue, at most (2 s of 20 ms packets); beyond, dropped and counted
MAX_QUEUED_PACKETS = 100
#: the largest RTP datagram read
MAX_PACKET_BYTES = 1500


class PortsExhausted(Exception):
    """No free port in ``sip.rtp_ports``."""


class RtpEndpoint(asyncio.DatagramProtocol):
    """One call's RTP port. Event loop only."""

    def __init__(self, expected: set[str], remote: tuple[str, int], queue: asyncio.Queue[str | bytes]) -> None:
        #: the addresses latching accepts first packets from (the SDP's, the signalling's)
        self.expected = expected
        self.remote = remote
        self.latched = False
        self._queue = queue
        self.transport: asyncio.DatagramTransport | None = None
        self.foreign = 0
        self.overflow = 0
        self.sent = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # (the loop's own class: no isinstance)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.latched:
            if addr[:2] != self.remote:
                self._foreign(addr)
                return
        elif addr[0] in self.expected:
            self.remote = (addr[0], addr[1])  # latched: our media goes where theirs comes from
            self.latched = True
        else:
            self._foreign(addr)
            return
        if len(data) > MAX_PACKET_BYTES or self._queue.full():
            self.overflow += 1
            return
        self._queue.put_nowait(data)

    def _foreign(self, addr: tuple[str, int]) -> None:
        self.foreign += 1
        if self.foreign == 1:
            logger.info("RTP from %s dropped: not the call's media address (latched to %s)", addr[0], self.remote[0])

    def error_received(self, exc: Exception) -> None:
        """(An ICMP port-unreachable for a packet we sent: the media timeout ends a call gone.)"""

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, self.remote)
            self.sent += 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_endpoint(
    host: str, ports: tuple[int, int] | None, expected: set[str], remote: tuple[str, int]
) -> tuple[RtpEndpoint, asyncio.Queue[str | bytes]]:
    """A call's RTP port: an even port of ``ports`` (RFC 3550 §11), tried from a random one; any
    free port when None. PortsExhausted when none is free."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | bytes] = asyncio.Queue(MAX_QUEUED_PACKETS)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if ports is None:
        candidates = [0]
    else:
        low, high = ports[0] + ports[0] % 2, ports[1]
        candidates = list(range(low, high + 1, 2))
        start = random.randrange(len(candidates)) if candidates else 0
        candidates = candidates[start:] + candidates[:start]
    for port in candidates:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                continue
            raise
        sock.setblocking(False)
        _, endpoint = await loop.create_datagram_endpoint(lambda: RtpEndpoint(expected, remote, queue), sock=sock)
        return endpoint, queue
    raise PortsExhausted(f"no free RTP port in sip.rtp_ports {ports}")


class RtpOutlet(PacedSpeech):
    """A call's translated speech into its RTP, one packet per slot (an ``Outlet``). Event loop only."""

    def __init__(
        self,
        endpoint: RtpEndpoint,
        clock: SlotClock,
        sender: RtpSender,
        *,
        max_held_s: float,
        on_played: Callable[[str], None],
        on_stall: Callable[[str], None],
    ) -> None:
        super().__init__(clock, max_held_s=max_held_s, on_played=on_played, on_stall=on_stall)
        self._endpoint = endpoint
        self.sender = sender
        #: what the packets carry (a re-INVITE may change it; the call's stream keeps ``codec``)
        self.wire_codec: CallCodec | None = None
        #: on hold (the caller's offer is sendonly or inactive): slots pass, nothing is sent
        self.held = False
        #: the call's input (its counts go on the access line)
        self.framing: RtpFraming | None = None
        #: the wire codec's name (the SDP's); a ``TRANSCODED`` one is encoded here
        self.wire_name = ""
        self._encoders: dict[str, WireEncoder] = {}

    def begin(self, codec: CallCodec) -> None:
        if self.wire_codec is None:
            self.wire_codec = codec
        super().begin(codec)

    def _send(self, pcm: bytes) -> bool:
        codec, wire = self.codec, self.wire_codec
        assert codec is not None and wire is not None
        coded = TRANSCODED.get(self.wire_name)
        if coded is not None:  # (a call's rate never changes: the stream is the 16 kHz PCM it codes)
            encoder = self._encoders.get(self.wire_name)
            if encoder is None:
                encoder = self._encoders[self.wire_name] = coded.encoder()
            pcm = encoder.encode(pcm)
        elif wire != codec:
            pcm = wire.encode(codec.decode(pcm))
        if not self.held:
            self._endpoint.send(self.sender.packet(pcm, rtp_samples(self.wire_name, wire)))
        return True

    def fields(self) -> dict[str, int | float]:
        """The frame counts (``PacedSpeech``) and the call's packets both ways."""
        out = super().fields()
        out.update(
            rtp_sent=self._endpoint.sent, rtp_foreign=self._endpoint.foreign, rtp_overflow=self._endpoint.overflow
        )
        if self.framing is not None:
            out.update(rtp_received=self.framing.packets, rtp_unread=self.framing.dropped)
            if self.framing.digits:
                out["dtmf_digits"] = len(self.framing.digits)
        return out


class MediaDeadline:
    """Ends a call whose RTP stopped, or never came, for ``timeout_s`` (a phone sends a packet every
    20 ms, silence included; a caller on hold sends none, so a hold gets the same deadline). One
    timer per call, re-armed at most once per ``timeout_s``. Event loop only."""

    def __init__(self, call: PhoneCall, timeout_s: float) -> None:
        self._call = call
        self._timeout_s = timeout_s
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        self.fired = False
        self._timer: asyncio.TimerHandle | None = loop.call_later(timeout_s, self._check)

    def _check(self) -> None:
        loop = asyncio.get_running_loop()
        last = self._call.last_audio_at or self._started
        due = last + self._timeout_s
        if due > loop.time() + 0.001:
            self._timer = loop.call_at(due, self._check)
            return
        self._timer = None
        self.fired = True
        never = self._call.last_audio_at is None
        why = (
            f"{'no RTP came' if never else 'the RTP stopped'} for {self._timeout_s:g} s (sip.media_timeout_s): "
            "a phone sends a packet every 20 ms, silence included"
        )
        logger.info("SIP call ended: %s", why, extra={"request_id": self._call.call.request_id})
        self._call.driver.end(LimitReached(f"the call was ended: {why}", reason="media_timeout"))

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
