"""Ogg pages in, however their bytes are cut, and their packets out (RFC 3533); for Ogg Opus, the
header packets read and checked (RFC 7845) and the Opus packets passed on.

Push-style and sans-I/O: ``feed(bytes) -> packets``, for a stream whose bytes arrive in messages
cut anywhere (NVIDIA Riva's ``AudioChunkFileIterator`` sends a file N bytes at a time). Fed whole
or one byte at a time, a stream gives the same packets. Between calls an instance holds at most
one page not yet whole (a page is at most 65,307 bytes) and one packet continued on the next page.

Written from the RFCs, not on a library: none parses pages pushed in pieces without a thread or
copies of its own, and each would still need this module's refusals on top (docs/decisions.md,
"Streamed Ogg pages and a streamed WAV header are read from the specs"). Files held whole are
libsndfile's and PyAV's (``codec``, ``opus``). Not read, as before this module: the page CRC, the
header-type flags and the serial number (one logical stream is assumed), ``OpusTags``' content.

Pure; not thread-safe: one instance per stream, used by one caller at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from translate_svc.errors import InvalidInput

#: the longest packet taken (RFC 6716: 120 ms of Opus at 510 kbit/s is under 8 KB)
MAX_PACKET_BYTES = 64 * 1024
#: a page's fixed header: capture pattern, version, type, granule position, serial, sequence,
#: CRC, then the number of segments (RFC 3533, section 6)
_PAGE_HEADER = 27
_CAPTURE = b"OggS"
_OPUS_HEAD = b"OpusHead"
_OPUS_HEAD_BYTES = 19  # with channel mapping family 0 (RFC 7845, 5.1)


class NotAtPage(InvalidInput):
    """Where a page should begin, the bytes do not start with the capture pattern ``OggS``."""


class PacketTooLarge(InvalidInput):
    """A packet grew past ``limit`` bytes before it ended."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"an Ogg packet is over {limit} bytes")
        self.limit = limit


class NotOpus(InvalidInput):
    """An Ogg stream whose first packet is not an ``OpusHead``."""


class OpusChannelsDiffer(InvalidInput):
    """An ``OpusHead`` that is not the stream's: another channel count, or a multistream mapping."""

    def __init__(self, head: OpusHead, expected: int) -> None:
        super().__init__(
            f"the OpusHead says {head.channels} channel(s) (mapping family {head.mapping_family}), "
            f"the stream {expected}"
        )
        self.head = head
        self.expected = expected


@dataclass(frozen=True)
class OpusHead:
    """What this service reads of an Ogg Opus stream's identification header (RFC 7845, 5.1)."""

    channels: int
    #: 0: mono or stereo in one Opus stream; others: several streams, which this service does not decode
    mapping_family: int


def opus_head(packet: bytes) -> OpusHead | None:
    """The packet as an ``OpusHead``; None when it is none (another magic, or too short)."""
    if packet[:8] != _OPUS_HEAD or len(packet) < _OPUS_HEAD_BYTES:
        return None
    return OpusHead(channels=packet[9], mapping_family=packet[18])


class OggPackets:
    """An Ogg stream's bytes in, its packets out, in order (the lacing values of each page's
    segment table: a value under 255 ends a packet; 255 continues it, on this page or the next)."""

    def __init__(self, *, max_packet_bytes: int = MAX_PACKET_BYTES) -> None:
        self._max = max_packet_bytes
        self._pending = bytearray()  # bytes of a page not yet whole
        self._packet = bytearray()  # a packet continued on the next page

    def feed(self, data: bytes) -> list[bytes]:
        """The packets that the pages completed by ``data`` end. Raises ``NotAtPage`` or
        ``PacketTooLarge`` (and what ``_packet_out`` raises); the stream is then unusable."""
        self._pending += data
        out: list[bytes] = []
        while len(self._pending) >= _PAGE_HEADER:
            page = self._pending
            if page[:4] != _CAPTURE:
                raise NotAtPage("the bytes are not an Ogg stream where a page should begin")
            header = _PAGE_HEADER + page[26]
            if len(page) < header:
                break
            lacing = page[_PAGE_HEADER:header]
            end = header + sum(lacing)
            if len(page) < end:
                break
            at = header
            for size in lacing:
                self._packet += page[at : at + size]
                at += size
                if len(self._packet) > self._max:
                    raise PacketTooLarge(self._max)
                if size < 255:  # the packet ends here
                    out += self._packet_out(bytes(self._packet))
                    self._packet.clear()
            del self._pending[:end]
        return out

    @property
    def unfinished(self) -> int:
        """Bytes held that are not yet a whole packet (at the stream's end: a file cut short)."""
        return len(self._pending) + len(self._packet)

    def _packet_out(self, packet: bytes) -> list[bytes]:
        """What a finished packet gives the caller (here: itself), checked as it ends."""
        return [packet]


class OggOpusPackets(OggPackets):
    """An Ogg Opus stream's bytes in, its Opus packets out: one per packet, as an OPUS stream takes
    them. The header packets are checked and not passed on: the ``OpusHead`` (its channel count
    must be ``channels``, its mapping family 0) and the ``OpusTags`` after it; empty packets are
    dropped."""

    def __init__(self, channels: int, *, max_packet_bytes: int = MAX_PACKET_BYTES) -> None:
        super().__init__(max_packet_bytes=max_packet_bytes)
        self._channels = channels
        self._headers = 0  # header packets seen (2: OpusHead, OpusTags)

    def _packet_out(self, packet: bytes) -> list[bytes]:
        if self._headers == 0:
            self._headers = 1
            head = opus_head(packet)
            if head is None:
                raise NotOpus("the Ogg stream's first packet is not an OpusHead")
            if head.channels != self._channels or head.mapping_family != 0:
                raise OpusChannelsDiffer(head, self._channels)
            return []
        if self._headers == 1:
            self._headers = 2
            return []  # OpusTags
        return [packet] if packet else []
