"""A call's RTP socket and the speech played into it.

``RtpEndpoint``: the call's UDP port (from ``sip.rtp_ports``), its packets into the call's input
queue. It latches (symmetric RTP, RFC 4961): the first packet from the address and port the SDP
offer named fixes where our media goes and where the call's media may come from. Only when the
SDP names an address the SIP signalling does not come from (the caller is behind NAT and offered
its private address) does a first packet from the signalling's address latch, at whatever port the
NAT gave it: the one case in which a neighbour behind the same NAT who sends first would take the
media (security finding H11; docs/security.md). Packets from anywhere else are dropped, counted and logged
once. Nothing is sent before the call's 200 is ACKed and a packet has latched (security finding H3: an
INVITE could point RTP at a third party, multicast or broadcast from the call's first slot), so
our media only ever goes where the caller's comes from. The packets a call takes in are bounded to
``RTP_RATE_FACTOR`` times its codec's packet rate (a bucket of one second's worth); beyond,
dropped and counted. The port is read by the endpoint itself, up to ``READ_BATCH`` datagrams a
wake of the event loop (asyncio's datagram transport reads one a wake: a flood's every packet cost
a turn of the loop), and at most ``READS_PER_WINDOW`` each ``READ_WINDOW_S``, a budget taken before
any read: past it the port is not read until the window ends, and the kernel drops what comes
meanwhile (what security finding H16 left: a DTMF flood cost 6.3 s of CPU in 20 s). ``RtpOutlet``:
the call's speech, one 20 ms packet per 20 ms slot on the process's one ``SlotClock`` (silence
when there is nothing to say, as a phone does), marks played as their frame goes out (withheld,
not queued, until the endpoint may send). ``MediaDeadline``: a call whose RTP stopped (or never
came) for ``sip.media_timeout_s`` is ended. Event loop only.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
from collections.abc import Callable

from translate_svc.errors import LimitReached
from translate_svc.transport.sip.addresses import same_host
from translate_svc.transport.sip.rtp import TRANSCODED, RtpFraming, RtpSender, WireEncoder, rtp_samples
from translate_svc.transport.telephony.call import FRAME_MS, CallCodec
from translate_svc.transport.telephony.loop import PhoneCall
from translate_svc.transport.telephony.pacing import PacedSpeech, SlotClock

logger = logging.getLogger(__name__)

#: packets waiting in a call's input queue, at most (2 s of 20 ms packets); beyond, dropped and counted
MAX_QUEUED_PACKETS = 100
#: the largest RTP datagram read
MAX_PACKET_BYTES = 1500
#: the packets a call takes in, at most this many times its codec's packet rate (one per
#: ``FRAME_MS``; a 10 ms ptime and RFC 4733 events beside the audio fit), a second's worth at once
RTP_RATE_FACTOR = 4
RTP_PACKETS_PER_S = RTP_RATE_FACTOR * 1000 // FRAME_MS
#: the datagrams a call's port reads, at most, per window (4,000 a second: 80 times a phone's
#: packet rate, so a stranger's moderate flood at the port does not crowd the caller's packets out)
READ_WINDOW_S = 0.1
READS_PER_WINDOW = 400
#: datagrams read at most per wake of the event loop (then other callbacks run)
READ_BATCH = 64


class PortsExhausted(Exception):
    """No free port in ``sip.rtp_ports`` (or no file descriptor for one)."""


class RtpEndpoint:
    """One call's RTP port: its non-blocking UDP socket, read by ``_readable`` (the event loop's
    reader on it) and written by ``send``. Event loop only."""

    def __init__(
        self, sock: socket.socket, offered: tuple[str, int], signalling: str, queue: asyncio.Queue[str | bytes]
    ) -> None:
        #: where the SDP offer says the caller's media is, and where its SIP signalling comes from
        self.offered = offered
        self.signalling = signalling
        self.remote = offered
        self.latched = False
        #: the call's 200 was ACKed (``dialog.SipCall.acked``)
        self.acked = False
        self._queue = queue
        self._sock = sock
        self.port = int(sock.getsockname()[1])
        self._loop = asyncio.get_running_loop()
        self.foreign = 0
        self.overflow = 0
        self.over_rate = 0
        self.sent = 0
        #: frames not sent because the call could not send yet (no ACK, or no packet latched)
        self.withheld = 0
        #: windows in which the port's read budget ran out (the rest was left to the kernel)
        self.read_paused = 0
        self._tokens = float(RTP_PACKETS_PER_S)
        self._at = 0.0
        self._reads = 0
        self._window_end = 0.0
        self._resume: asyncio.TimerHandle | None = None
        self._closed = False
        self._loop.add_reader(sock.fileno(), self._readable)

    @property
    def sending(self) -> bool:
        """Whether our media may go out: the 200 was ACKed and the caller's media has latched."""
        return self.latched and self.acked

    def expect(self, offered: tuple[str, int], signalling: str) -> None:
        """A re-INVITE's offer: where it names something else than before, latching starts again
        (and nothing is sent until it has)."""
        if offered != self.offered:
            self.offered, self.signalling, self.remote, self.latched = offered, signalling, offered, False

    def _latches(self, source: tuple[str, int]) -> bool:
        if same_host(source[0], self.offered[0]):
            return source[1] == self.offered[1]
        return same_host(source[0], self.signalling)  # behind NAT: the offer named a private address

    def _readable(self) -> None:
        """The socket has datagrams: read what this window's budget allows, at most ``READ_BATCH``;
        with the budget spent, stop reading until the window ends."""
        now = self._loop.time()
        if now >= self._window_end:
            self._window_end, self._reads = now + READ_WINDOW_S, 0
        recv = self._sock.recvfrom
        for _ in range(min(READ_BATCH, READS_PER_WINDOW - self._reads)):
            try:
                data, addr = recv(MAX_PACKET_BYTES + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # (an ICMP error for a packet we sent: the media timeout ends a call gone)
                return
            self._reads += 1
            self.datagram_received(data, addr, now)
        if self._reads >= READS_PER_WINDOW and not self._closed:
            self.read_paused += 1
            self._loop.remove_reader(self._sock.fileno())
            self._resume = self._loop.call_at(self._window_end, self._read_again)

    def _read_again(self) -> None:
        self._resume = None
        if not self._closed:
            self._loop.add_reader(self._sock.fileno(), self._readable)

    def datagram_received(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        """One datagram: from the latched source (or one that latches), within the call's rate,
        into the call's queue; anything else counted and dropped, before any parsing."""
        source = (addr[0], addr[1])
        if self.latched:
            if source != self.remote:
                self._foreign(addr)
                return
        elif self._latches(source):
            self.remote = source  # latched: our media goes where theirs comes from
            self.latched = True
        else:
            self._foreign(addr)
            return
        self._tokens = min(float(RTP_PACKETS_PER_S), self._tokens + (now - self._at) * RTP_PACKETS_PER_S)
        self._at = now
        if self._tokens < 1.0:
            self.over_rate += 1
            return
        self._tokens -= 1.0
        if len(data) > MAX_PACKET_BYTES or self._queue.full():
            self.overflow += 1
            return
        self._queue.put_nowait(data)

    def _foreign(self, addr: tuple[str, int]) -> None:
        self.foreign += 1
        if self.foreign == 1:
            logger.info("RTP from %s dropped: not the call's media address (latched to %s)", addr[0], self.remote[0])

    def send(self, data: bytes) -> None:
        if not self.sending:
            self.withheld += 1
            return
        if self._closed:
            return
        try:
            self._sock.sendto(data, self.remote)  # (a latched source: always an IP literal)
        except OSError:  # (a full send buffer, an ICMP error: RTP drops a packet, never waits)
            return
        self.sent += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._resume is not None:
            self._resume.cancel()
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


async def open_endpoint(
    host: str, ports: tuple[int, int] | None, offered: tuple[str, int], signalling: str
) -> tuple[RtpEndpoint, asyncio.Queue[str | bytes]]:
    """A call's RTP port: an even port of ``ports`` (RFC 3550 §11), tried from a random one; any
    free port when None. PortsExhausted when none is free, or no file descriptor is."""
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
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                raise PortsExhausted(f"no file descriptor free for the call's RTP socket ({e.strerror})") from None
            raise
        try:
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                continue
            raise
        sock.setblocking(False)
        return RtpEndpoint(sock, offered, signalling, queue), queue
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
        e = self._endpoint
        out.update(rtp_sent=e.sent, rtp_foreign=e.foreign, rtp_overflow=e.overflow)
        if e.withheld:
            out["rtp_withheld"] = e.withheld
        if e.over_rate:
            out["rtp_over_rate"] = e.over_rate
        if e.read_paused:
            out["rtp_read_paused"] = e.read_paused
        if self.framing is not None:
            out.update(rtp_received=self.framing.packets, rtp_unread=self.framing.dropped)
            if self.framing.digits:
                out["dtmf_digits"] = self.framing.digits
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
