"""Hostile video files for the untrusted-media tests and attacks (docs/security.md, "Hardening 7:
untrusted media"), each valid as its container's specification writes it:

- ``lengthless_opus_mkv``: a Matroska (or WebM) file of Opus audio whose Segment, Info and Tracks
  state no length (no ``Duration``, no ``Cues``, the Segment of unknown size: what a muxer writing
  to a pipe leaves), its blocks one-byte Opus packets: a TOC byte of a 20 ms SILK frame of length
  0, which RFC 6716 section 3.2.1 calls a DTX frame (the decoder fills it with comfort noise). A
  few bytes a block, so megabytes hold hours. Written by hand from RFC 9559 (Matroska) and
  RFC 7845 section 5.1 (the ``OpusHead`` in ``CodecPrivate``), a cluster at a time.
- ``mp4_stating_samples``: a small MP4 (PyAV's, H.264 video and AAC audio) whose video track's
  sample tables are rewritten (ISO/IEC 14496-12 section 8.7) to state ``samples`` samples of one
  byte each, all in one chunk: a valid file of a few kB that FFmpeg's mov demuxer indexes sample
  by sample at open.
- ``mp4_with_unknown_video``: an MP4 whose video sample entry's four-character code is one no
  codec has (``zzzz``): FFmpeg knows no codec for the stream (PyAV's ``codec_context`` is None).
- ``mutations``: truncations and byte flips of a file, from a fixed seed (the fuzz tests').
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from pathlib import Path

#: one 20 ms SILK narrowband frame, mono, code 0 (one frame), of length 0: a DTX frame
DTX_PACKET = bytes([1 << 3])
FRAME_MS = 20


def _vint(n: int) -> bytes:
    """An EBML variable-size integer (RFC 8794 section 4): the shortest width that holds ``n``."""
    for width in range(1, 9):
        if n < (1 << (7 * width)) - 1:
            return (n | (1 << (7 * width))).to_bytes(width, "big")
    raise ValueError(n)


def _el(element_id: int, payload: bytes) -> bytes:
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big") + _vint(len(payload)) + payload


def _uint(element_id: int, value: int) -> bytes:
    return _el(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _opus_head(rate: int = 48000) -> bytes:
    """RFC 7845 section 5.1: version 1, mono, pre-skip 312, the input's rate, no gain, family 0."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, rate, 0, 0)


def lengthless_opus_mkv(out: Path, hours: float, *, doctype: str = "matroska", attachment_mb: int = 0) -> Path:
    """``hours`` of DTX Opus (``DTX_PACKET`` every 20 ms) in a Matroska file that states no length;
    ``attachment_mb``: with an attached file of that many MB before the clusters (RFC 9559's
    ``Attachments``), which FFmpeg's demuxer reads whole at open."""
    header = _el(
        0x1A45DFA3,
        _uint(0x4286, 1) + _uint(0x42F7, 1) + _uint(0x42F2, 4) + _uint(0x42F3, 8)
        + _el(0x4282, doctype.encode()) + _uint(0x4287, 4) + _uint(0x4285, 2),
    )  # fmt: skip
    info = _el(0x1549A966, _uint(0x2AD7B1, 1_000_000) + _el(0x4D80, b"hostile") + _el(0x5741, b"hostile"))
    audio = _el(0xE1, _el(0xB5, struct.pack(">d", 48000.0)) + _uint(0x9F, 1))
    track = _el(
        0xAE,
        _uint(0xD7, 1) + _uint(0x73C5, 1) + _uint(0x83, 2) + _el(0x86, b"A_OPUS")
        + _el(0x63A2, _opus_head()) + _uint(0x56BB, 80_000_000) + audio,
    )  # fmt: skip
    tracks = _el(0x1654AE6B, track)
    per_cluster = 1500  # 30 s of 20 ms blocks: block timestamps are 16-bit ms from the cluster's
    blocks = b"".join(
        _el(0xA3, b"\x81" + struct.pack(">hB", k * FRAME_MS, 0x80) + DTX_PACKET) for k in range(per_cluster)
    )
    total = round(hours * 3600 * 1000 / FRAME_MS)
    with open(out, "wb") as f:
        # the Segment of unknown size (all ones), as a muxer that cannot seek back writes it
        f.write(header + bytes.fromhex("18538067") + b"\x01\xff\xff\xff\xff\xff\xff\xff" + info + tracks)
        if attachment_mb:
            data = bytes(attachment_mb << 20)
            named = _el(0x466E, b"cover.bin") + _el(0x4660, b"application/octet-stream") + _uint(0x46AE, 1)
            f.write(_el(0x1941A469, _el(0x61A7, named + _el(0x465C, data))))
        for first in range(0, total, per_cluster):
            n = min(per_cluster, total - first)
            body = blocks if n == per_cluster else blocks[: n * len(blocks) // per_cluster]
            f.write(_el(0x1F43B675, _uint(0xE7, first * FRAME_MS) + body))
    return out


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, start, header length, end) of each box in ``data[start:end]`` (32-bit sizes)."""
    at = start
    while at + 8 <= end:
        size = int.from_bytes(data[at : at + 4], "big")
        yield data[at + 4 : at + 8], at, 8, at + size
        at += size


def _box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def mp4_stating_samples(out: Path, source: Path, samples: int) -> Path:
    """``source`` (an MP4 whose moov comes after its mdat, as PyAV writes it, with a video track
    first) with its video track's sample tables saying ``samples`` samples of one byte, one chunk
    holding them all at the start of the video's data, each lasting one tick (``stts``), every
    one a sync sample (no ``stss``)."""
    data = source.read_bytes()
    top = {kind: (at, head, end) for kind, at, head, end in _boxes(data, 0, len(data))}
    m_at, m_head, m_end = top[b"moov"]
    assert top[b"mdat"][0] < m_at, "the moov must follow the mdat (its offsets then stay)"
    trak = next(c for c in _boxes(data, m_at + m_head, m_end) if c[0] == b"trak" and b"vide" in data[c[1] : c[3]])
    chain = [(b"moov", m_at, m_head, m_end), trak]  # moov, trak, mdia, minf, stbl
    for kind in (b"mdia", b"minf", b"stbl"):
        _, at, head, end = chain[-1]
        chain.append(next(c for c in _boxes(data, at + head, end) if c[0] == kind))
    _, s_at, s_head, s_end = chain[-1]
    tables = {kind: data[at:end] for kind, at, _, end in _boxes(data, s_at + s_head, s_end)}
    offset = int.from_bytes(tables[b"stco"][16:20], "big")  # the video's first chunk, where it was
    full = b"\x00\x00\x00\x00"
    new = _box(
        b"stbl",
        tables[b"stsd"]
        + _box(b"stts", full + struct.pack(">III", 1, samples, 1))
        + _box(b"stsc", full + struct.pack(">IIII", 1, 1, samples, 1))
        + _box(b"stsz", full + struct.pack(">II", 1, samples))
        + _box(b"stco", full + struct.pack(">II", 1, offset)),
    )
    # each box around it grows or shrinks by as much: rewritten with its size, inside out
    for (kind, at, head, end), (_, c_at, _, c_end) in zip(reversed(chain[:-1]), reversed(chain[1:]), strict=True):
        new = _box(kind, data[at + head : c_at] + new + data[c_end:end])
    moov = new
    out.write_bytes(data[:m_at] + moov + data[m_end:])
    return out


def mp4_with_unknown_video(out: Path, source: Path) -> Path:
    """``source`` (PyAV's MP4 of H.264 video) with its video sample entry's code ``avc1`` (the last
    one in the file: the first is among the ``ftyp``'s brands) set to ``zzzz``."""
    data = source.read_bytes()
    at = data.rfind(b"avc1")
    assert at > 32, "no avc1 sample entry"
    out.write_bytes(data[:at] + b"zzzz" + data[at + 4 :])
    return out


def header_span(data: bytes) -> tuple[int, int]:
    """Where a file's container states its streams: an MP4's ``moov`` box, a Matroska file's
    first 1,024 bytes (its EBML header, Info and Tracks as muxers write them)."""
    if data[4:8] == b"ftyp":
        for kind, at, _, end in _boxes(data, 0, len(data)):
            if kind == b"moov":
                return at, end
    return 64, min(len(data), 1024)


def mutations(data: bytes, count: int, seed: int, span: tuple[int, int] | None = None) -> Iterator[tuple[str, bytes]]:
    """``count`` damaged copies of ``data`` (its first 64 bytes kept, so each is still sniffed as
    its container): a truncation, or a few bytes set at random (within ``span``, default the whole
    file after those 64), from ``seed``."""
    rng = random.Random(seed)
    lo, hi = span or (64, len(data))
    lo = max(lo, 64)
    for n in range(count):
        if n % 3 == 0:
            cut = rng.randrange(64, len(data))
            yield f"cut at {cut}", data[:cut]
        else:
            damaged = bytearray(data)
            flips = []
            for _ in range(rng.randint(1, 8)):
                at = rng.randrange(lo, hi)
                damaged[at] = rng.randrange(256)
                flips.append(at)
            yield f"bytes set at {flips}", bytes(damaged)
