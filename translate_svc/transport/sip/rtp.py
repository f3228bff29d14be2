"""A call's RTP media (RFC 3550, RFC 4733), sans I/O where it can be: packets read and written,
and the call's framing for the telephony floor's call loop (``RtpFraming``, a ``telephony.loop.CarrierInput``).

What comes in: packets of the call's payload type are its audio (a G.722 or Opus packet decoded
to the call's 16 kHz PCM: ``TRANSCODED``; a G.711 packet of the other law, after a re-INVITE
changed the codec, turned into the call's own), ``telephone-event`` packets are DTMF digits (one
per event: its end packet, sent three times, counts once; digits are counted, not kept: security
finding H16, 1.6 million digits in 30 s were a list). A digit of ``sip.dtmf_targets`` retargets the call,
coalesced: at most one retarget per ``RETARGET_EVERY_S`` (the last digit pressed meanwhile wins,
applied with the first packet after it), and none for the language already asked for. Anything
else (comfort noise, a packet we cannot read) is counted and dropped: a peer's garbage does not
end a call. Pure (the clock passed in); not thread-safe (one per call).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from translate_svc.session.events import AudioIn, StreamRequest, Update
from translate_svc.transport.sip import g722, opus
from translate_svc.transport.sip.sdp import OPUS
from translate_svc.transport.telephony.call import FRAME_MS, CallCodec, CarrierEvent, Dtmf, Hangup, Started

HEADER = struct.Struct("!BBHII")
#: RFC 4733 §3.2's events 0-15: the DTMF digits
DIGITS = "0123456789*#ABCD"
#: what the door puts in the call's input besides packets: the call's start, and the caller's BYE
START = "start"
BYE = "bye"
#: at most one retarget (an ``Update`` of the target language) per this long
RETARGET_EVERY_S = 0.5


class WireDecoder(Protocol):
    def decode(self, payload: bytes) -> bytes: ...


class WireEncoder(Protocol):
    def encode(self, pcm: bytes) -> bytes: ...


@dataclass(frozen=True)
class Transcoded:
    """A codec whose RTP payload is decoded to, and encoded from, the call's 16 kHz PCM (one
    stateful decoder and encoder per call), with its RTP clock."""

    decoder: Callable[[], WireDecoder]
    encoder: Callable[[], WireEncoder]
    clock: int


#: by the SDP's codec name
TRANSCODED = {
    "G722": Transcoded(g722.G722Decoder, g722.G722Encoder, g722.RTP_CLOCK),
    OPUS: Transcoded(opus.OpusRtpDecoder, opus.OpusRtpEncoder, opus.RTP_CLOCK),
}


@dataclass(frozen=True)
class Packet:
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse_packet(data: bytes) -> Packet | None:
    """An RTP packet (version 2; CSRCs, header extension and padding stepped over); None: not one."""
    if len(data) < HEADER.size:
        return None
    first, second, seq, ts, ssrc = HEADER.unpack_from(data)
    if first >> 6 != 2:
        return None
    offset = HEADER.size + 4 * (first & 0x0F)
    if first & 0x10:  # a header extension: 4 bytes, then its length in 32-bit words
        if len(data) < offset + 4:
            return None
        offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
    end = len(data)
    if first & 0x20:  # padding: its length in the last byte
        end -= data[-1]
    if offset > end:
        return None
    return Packet(second & 0x7F, bool(second & 0x80), seq, ts, ssrc, bytes(data[offset:end]))


def build_packet(payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes, marker: bool) -> bytes:
    return HEADER.pack(0x80, (0x80 if marker else 0) | payload_type, sequence, timestamp, ssrc) + payload


class RtpFraming:
    """One call's media in, as the telephony floor's call loop reads a carrier (a ``CarrierInput``)."""

    carrier = "sip"
    close_is_hangup = True  # the input ends when the dialog does (a BYE, our own end)

    def __init__(
        self,
        call_id: str,
        codec: CallCodec,
        payload_types: Mapping[int, CallCodec],
        event_type: int | None,
        dtmf_targets: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._call_id = call_id
        #: the call's codec, fixed for its stream (what a re-INVITE changes is converted to it)
        self.codec: CallCodec | None = None
        self._codec = codec
        self.payload_types = dict(payload_types)
        self.event_type = event_type
        self._events_seen: set[int] = set()
        self.packets = 0
        self.dropped = 0
        #: the DTMF digits received (counted: the access line's ``dtmf_digits``)
        self.digits = 0
        #: the target language the last retarget asked for, when, and one a digit asked for since
        self.retarget: str | None = None
        self._retargeted_at = -RETARGET_EVERY_S
        self._pending: str | None = None
        self._clock = clock
        #: digits that switch the call's target language (``sip.dtmf_targets``)
        self.dtmf_targets = dict(dtmf_targets or {})
        #: each payload type's codec name (``TRANSCODED`` ones are decoded here), and their decoders
        self.names: dict[int, str] = {}
        self._decoders: dict[str, WireDecoder] = {}

    def receive(self, data: str | bytes) -> list[StreamRequest | CarrierEvent]:
        if data == START:
            self.codec = self._codec
            return [Started(self._codec, self._call_id, {})]
        if data == BYE:
            return [Hangup("bye")]
        if isinstance(data, str):
            return []
        packet = parse_packet(data)
        if packet is None:
            self.dropped += 1
            return []
        self.packets += 1
        if packet.payload_type == self.event_type:
            return self._event(packet) + self._retargets()
        codec = self.payload_types.get(packet.payload_type)
        if codec is None or not packet.payload:
            self.dropped += 1
            return []
        payload = packet.payload
        name = self.names.get(packet.payload_type, "")
        coded = TRANSCODED.get(name)
        if coded is not None:
            decoder = self._decoders.get(name)
            if decoder is None:
                decoder = self._decoders[name] = coded.decoder()
            payload = decoder.decode(payload)
            if not payload:
                return []  # (a resampler filling, or a packet the codec refused)
        audio = payload if codec == self._codec else self._codec.encode(codec.decode(payload))
        return [AudioIn(audio, field="RTP packet"), *self._retargets()]

    def _retargets(self) -> list[StreamRequest | CarrierEvent]:
        """The retarget a digit asked for, once ``RETARGET_EVERY_S`` passed since the last."""
        if self._pending is None:
            return []
        now = self._clock()
        if now - self._retargeted_at < RETARGET_EVERY_S:
            return []
        target, self._pending = self._pending, None
        if target == self.retarget:
            return []
        self.retarget, self._retargeted_at = target, now
        return [Update(target_languages=(target,))]  # (a bad one is answered, not fatal)

    def _event(self, packet: Packet) -> list[StreamRequest | CarrierEvent]:
        """RFC 4733 §2.3: event, E|R|volume, duration; the end bit on an event's last packets."""
        if len(packet.payload) < 4:
            self.dropped += 1
            return []
        event, flags = packet.payload[0], packet.payload[1]
        if not flags & 0x80 or event >= len(DIGITS) or packet.timestamp in self._events_seen:
            return []
        if len(self._events_seen) > 1024:
            self._events_seen.clear()
        self._events_seen.add(packet.timestamp)  # one event, one timestamp (§2.5.1.3)
        digit = DIGITS[event]
        self.digits += 1
        target = self.dtmf_targets.get(digit)
        if target is not None:
            self._pending = target
        return [Dtmf(digit)]


def rtp_samples(name: str, wire: CallCodec) -> int:
    """How far a 20 ms packet advances the RTP timestamp: the codec's clock (G.722's is 8 kHz,
    Opus's 48 kHz)."""
    coded = TRANSCODED.get(name)
    return (coded.clock if coded is not None else wire.rate) * FRAME_MS // 1000


class RtpSender:
    """Our side of the call's RTP: one packet per 20 ms frame, the sequence and timestamp carried on
    across silences (RFC 3550 §5.1), the marker on the first packet."""

    def __init__(self, payload_type: int, ssrc: int) -> None:
        self.payload_type = payload_type
        self.ssrc = ssrc
        self._seq = ssrc & 0xFFFF
        self._ts = (ssrc >> 8) & 0xFFFFFFFF
        self._first = True

    def packet(self, payload: bytes, samples: int) -> bytes:
        data = build_packet(self.payload_type, self._seq, self._ts, self.ssrc, payload, self._first)
        self._first = False
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + samples) & 0xFFFFFFFF
        return data
