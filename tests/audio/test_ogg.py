"""Ogg pages in, cut anywhere, packets out (``audio/ogg.py``), checked against FFmpeg's Ogg demuxer
(PyAV) on files written by libsndfile and on pages written here from RFC 3533."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from translate_svc.audio.ogg import (
    MAX_PACKET_BYTES,
    NotAtPage,
    NotOpus,
    OggOpusPackets,
    OggPackets,
    OpusChannelsDiffer,
    OpusHead,
    PacketTooLarge,
    opus_head,
)

pytestmark = pytest.mark.unit


def _crc_table() -> list[int]:
    """RFC 3533, 6: CRC-32 with generator 0x04c11db7, MSB first, initial value and final XOR 0."""
    table = []
    for byte in range(256):
        r = byte << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else r << 1
        table.append(r & 0xFFFFFFFF)
    return table


_CRC = _crc_table()


def _page(segments: list[int], body: bytes, *, seq: int, flags: int, granule: int) -> bytes:
    """One Ogg page (RFC 3533, 6): header, segment table, body; CRC over the page with it zeroed."""
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, 0x5EED, seq, 0, len(segments))
    page = bytearray(header + bytes(segments) + body)
    crc = 0
    for b in page:
        crc = ((crc << 8) ^ _CRC[((crc >> 24) & 0xFF) ^ b]) & 0xFFFFFFFF
    struct.pack_into("<I", page, 22, crc)
    return bytes(page)


def _ogg(*groups: list[bytes], per_page: int = 255) -> bytes:
    """Packets laced into pages of at most ``per_page`` segments, each group from a new page (RFC
    7845, 3: OpusHead alone on the first page, OpusTags from the second, ending its page). A packet
    of 255*k bytes ends with a 0 lacing value; one longer than a page continues on the next (RFC 3533, 5)."""
    pages: list[bytes] = []
    continued, granule = False, 0
    for group in groups:
        lacing: list[tuple[int, bytes]] = []
        for p in group:
            sizes = [255] * (len(p) // 255) + [len(p) % 255]
            lacing += [(size, p[at : at + size]) for at, size in zip(range(0, len(p) + 1, 255), sizes, strict=True)]
        while lacing:
            chunk, lacing = lacing[:per_page], lacing[per_page:]
            ends = sum(size < 255 for size, _ in chunk)  # packets that end on this page
            granule += 960 * ends if len(pages) >= 2 else 0
            flags = (1 if continued else 0) | (0 if pages else 2)  # continued packet; beginning of stream
            body = b"".join(b for _, b in chunk)
            pages.append(
                _page([s for s, _ in chunk], body, seq=len(pages), flags=flags, granule=granule if ends else -1)
            )
            continued = chunk[-1][0] == 255
    return b"".join(pages)


_HEAD = b"OpusHead" + bytes([1, 1]) + struct.pack("<HIhB", 312, 48000, 0, 0)
_TAGS = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)


def _demuxed(data: bytes) -> list[bytes]:
    """FFmpeg's Ogg demuxer's packets (the reference), header packets not included."""
    with av.open(io.BytesIO(data), mode="r", format="ogg") as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def _opus_file(tmp_path: Path, channels: int = 1) -> bytes:
    path = tmp_path / "tone.opus"
    tone = (0.3 * np.sin(np.arange(48000) / 7)).astype(np.float32)
    sf.write(path, np.stack([tone] * channels, axis=1), 48000, format="OGG", subtype="OPUS")
    return path.read_bytes()


def _fed(reader: OggPackets, data: bytes, cuts: list[int]) -> list[bytes]:
    out: list[bytes] = []
    at = 0
    for cut in [*sorted(cuts), len(data)]:
        out += reader.feed(data[at:cut])
        at = max(at, cut)
    return out


def test_a_libsndfile_ogg_opus_file_gives_ffmpegs_packets_however_it_is_cut(tmp_path: Path) -> None:
    data = _opus_file(tmp_path)
    want = _demuxed(data)
    assert len(want) > 40
    for step in (len(data), 4096, 37, 1):
        reader = OggOpusPackets(1)
        got = [p for at in range(0, len(data), step) for p in reader.feed(data[at : at + step])]
        assert got == want, step
        assert reader.unfinished == 0


def test_stereo_opus_is_taken_when_the_stream_says_2(tmp_path: Path) -> None:
    data = _opus_file(tmp_path, channels=2)
    assert OggOpusPackets(2).feed(data) == _demuxed(data)
    with pytest.raises(OpusChannelsDiffer) as e:
        OggOpusPackets(1).feed(data)
    assert (e.value.head, e.value.expected) == (OpusHead(channels=2, mapping_family=0), 1)


# packets of 0, 255 and 510 bytes (ended by a 0 lacing value) and one over a page (continued)
_ODD_PACKETS = [
    bytes([0xFC]) + bytes(254),
    bytes([0xFC]) + bytes(509),
    bytes([0xFC, 1, 2]),
    bytes([0xFC]) + bytes(20_000),
]


@given(st.lists(st.integers(0, 21_000), max_size=12))
def test_pages_written_from_the_rfc_give_the_same_packets_wherever_they_are_cut(cuts: list[int]) -> None:
    data = _ogg([_HEAD], [_TAGS], _ODD_PACKETS, per_page=40)
    assert _fed(OggOpusPackets(1), data, cuts) == _ODD_PACKETS
    assert _fed(OggPackets(), data, cuts) == [_HEAD, _TAGS, *_ODD_PACKETS]


def test_the_rfc_pages_here_are_ones_ffmpeg_reads() -> None:
    """The test's own page writer checked against a real demuxer (FFmpeg verifies each page's CRC)."""
    data = _ogg([_HEAD], [_TAGS], _ODD_PACKETS, per_page=40)
    assert _demuxed(data) == _ODD_PACKETS


def test_empty_audio_packets_are_dropped_and_header_packets_are_not_passed_on() -> None:
    data = _ogg([_HEAD], [_TAGS], [b"", bytes([0xFC, 7]), b""])
    assert OggOpusPackets(1).feed(data) == [bytes([0xFC, 7])]
    assert OggPackets().feed(data) == [_HEAD, _TAGS, b"", bytes([0xFC, 7]), b""]


def test_a_stream_cut_short_leaves_bytes_unfinished(tmp_path: Path) -> None:
    data = _opus_file(tmp_path)
    reader = OggOpusPackets(1)
    got = reader.feed(data[:-100])
    assert got == _demuxed(data)[: len(got)] and reader.unfinished > 0
    continued = OggPackets()
    continued.feed(_ogg([bytes(70_000)], per_page=100)[:30_000])  # a packet begun on a page whole
    assert continued.unfinished > 25_000


def test_bytes_that_are_not_a_page_are_refused_where_a_page_should_begin(tmp_path: Path) -> None:
    data = _opus_file(tmp_path)
    with pytest.raises(NotAtPage):
        OggOpusPackets(1).feed(b"RIFF" + data)
    reader = OggOpusPackets(1)
    reader.feed(data[:100])
    with pytest.raises(NotAtPage):  # a page's end, then junk where the next should begin
        reader.feed(data[100:] + bytes(27))
    assert OggPackets().feed(b"RIFF" * 6) == []  # under a page header: nothing to say yet


def test_a_packet_over_the_limit_is_refused_before_it_ends() -> None:
    data = _ogg([_HEAD], [_TAGS], [bytes(MAX_PACKET_BYTES + 1)], per_page=100)
    with pytest.raises(PacketTooLarge, match=str(MAX_PACKET_BYTES)) as e:
        OggOpusPackets(1).feed(data)
    assert e.value.limit == MAX_PACKET_BYTES
    assert OggPackets(max_packet_bytes=1000).feed(_ogg([bytes(1000)])) == [bytes(1000)]
    with pytest.raises(PacketTooLarge):
        OggPackets(max_packet_bytes=1000).feed(_ogg([bytes(1001)]))


def test_an_ogg_stream_without_opus_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tone.ogg"
    sf.write(path, np.zeros(4800, dtype=np.float32), 48000, format="OGG", subtype="VORBIS")
    with pytest.raises(NotOpus):
        OggOpusPackets(1).feed(path.read_bytes())
    with pytest.raises(NotOpus):  # too short to be an OpusHead
        OggOpusPackets(1).feed(_ogg([_HEAD[:18]]))


def test_a_multistream_opus_head_is_refused() -> None:
    family1 = _HEAD[:9] + bytes([2]) + _HEAD[10:18] + bytes([1, 1, 1, 0, 1])
    assert opus_head(family1) == OpusHead(channels=2, mapping_family=1)
    with pytest.raises(OpusChannelsDiffer, match="mapping family 1"):
        OggOpusPackets(2).feed(_ogg([family1]))
    assert opus_head(_TAGS) is None and opus_head(_HEAD) == OpusHead(channels=1, mapping_family=0)
