"""What an MP4's or MOV's sample tables state, checked against what the file can hold before
FFmpeg's mov demuxer sees it (``check_sample_tables``, called by ``media.open_media``).

The demuxer builds its index at open, one entry of about 24 bytes per sample the tables *state*,
before a byte of a sample is read: a valid file of 16 kB whose video track states 20 million
one-byte samples (``stsz``: sample size 1, count 20,000,000; all in one chunk) made the server
allocate 703 MB, 40 million 1.4 GB. A file cannot hold more samples than it has bytes (a sample is
at least a byte), nor samples whose stated sizes add up to more than its size; and a table cannot
state more entries than its box holds (the demuxer allocates a table for its stated count before it
reads it). So the boxes are walked (ISO/IEC 14496-12: ``moov``/``trak``/``mdia``/``minf``/``stbl``
and the fragments' ``moof``/``traf``, ``mvex``, ``edts``, ``mfra``), every table's count checked
against its box, and the samples and their bytes stated by ``stsz``/``stz2`` (the tracks) and
``trun`` (the fragments, their sizes from the ``trun``, its ``tfhd`` or its track's ``trex``) added
up, in one pass of reads of headers and of the tables that state sizes (a few MB for hours of
video). Refusals are ``InvalidInput`` saying what the file states. Pure but for reading the file;
thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from translate_svc.errors import InvalidInput

#: boxes whose children are boxes (those read here)
_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"mvex", b"moof", b"traf", b"mfra"})
#: full boxes whose payload is an entry count and that many entries of this many bytes
_TABLES = {b"stts": 8, b"ctts": 8, b"stss": 4, b"stps": 4, b"stsc": 12, b"stco": 4, b"co64": 8}
#: how deep boxes nest here at most (moov/trak/mdia/minf/stbl/stsz is 6), and how many are walked
MAX_DEPTH = 12
MAX_BOXES = 4_000_000
#: a table's entries are read this many bytes at a time to add up their sizes
_CHUNK = 4 << 20
HINT = "send the file as the application that made it wrote it"


@dataclass
class _Stated:
    """What the tables walked so far state."""

    size: int
    label: str
    samples: int = 0
    bytes: int = 0
    boxes: int = 0
    #: each track's default sample size (``trex``), and the fragment's (``tfhd``) being walked
    trex: dict[int, int] = field(default_factory=dict)
    tfhd: int | None = None

    def refuse(self, what: str) -> InvalidInput:
        return InvalidInput(f"this {self.label} file states {what}, more than its {self.size} bytes can hold: {HINT}")

    def add(self, samples: int, size: int) -> None:
        self.samples += samples
        self.bytes += size
        if self.samples > self.size:
            raise self.refuse(f"at least {self.samples} samples in its sample tables")
        if self.bytes > self.size:
            raise self.refuse(f"samples of at least {self.bytes} bytes in its sample tables")


def check_sample_tables(f: BinaryIO, size: int, label: str = "MP4") -> None:
    """``InvalidInput`` when the MP4/MOV file ``f`` (``size`` bytes) states more samples, or more
    bytes of samples, than it holds, or a table with more entries than its box (see the module)."""
    _walk(f, 0, size, 0, _Stated(size, label))


def _walk(f: BinaryIO, start: int, end: int, depth: int, st: _Stated) -> None:
    at = start
    while at + 8 <= end:
        f.seek(at)
        head = f.read(16)
        if len(head) < 8:
            return
        length, kind = int.from_bytes(head[:4], "big"), head[4:8]
        header = 8
        if length == 1:
            if len(head) < 16:
                return
            length, header = int.from_bytes(head[8:16], "big"), 16
        elif length == 0:
            length = end - at
        if length < header or at + length > end:
            return  # a box past its parent's end: the demuxer stops there too
        st.boxes += 1
        if st.boxes > MAX_BOXES:
            raise InvalidInput(f"this {st.label} file has more than {MAX_BOXES} boxes: {HINT}")
        payload, box_end = at + header, at + length
        if kind in _CONTAINERS and depth < MAX_DEPTH:
            if kind == b"traf":
                st.tfhd = None
            _walk(f, payload, box_end, depth + 1, st)
        elif kind in _TABLES:
            _table(f, payload, box_end, kind, _TABLES[kind], st)
        elif kind == b"elst":
            version = _read(f, payload, 1)[0] if box_end > payload else 0
            _table(f, payload, box_end, kind, 20 if version == 1 else 12, st)
        elif kind == b"sbgp":  # a grouping type, and its parameter in version 1, before the count
            version = _read(f, payload, 1)[0] if box_end > payload else 0
            _table(f, payload + 4 + 4 * (version == 1), box_end, kind, 8, st)
        elif kind in (b"stsz", b"stz2"):
            _sizes(f, payload, box_end, kind, st)
        elif kind == b"trex":
            fields = _read(f, payload, 24)
            if len(fields) == 24:
                st.trex[int.from_bytes(fields[4:8], "big")] = int.from_bytes(fields[16:20], "big")
        elif kind == b"tfhd":
            _tfhd(f, payload, box_end, st)
        elif kind == b"trun":
            _trun(f, payload, box_end, st)
        elif kind == b"tfra":
            _tfra(f, payload, box_end, st)
        at = box_end


def _read(f: BinaryIO, at: int, n: int) -> bytes:
    f.seek(at)
    return f.read(n)


def _fits(count: int, bits: int, room: int, kind: bytes, st: _Stated) -> None:
    """A table of ``count`` entries of ``bits`` bits each fits in its box's ``room`` bytes."""
    if count * bits > room * 8:
        raise st.refuse(f"{count} entries in the {room} bytes of its {kind.decode('latin-1')} box")


def _table(f: BinaryIO, payload: int, end: int, kind: bytes, entry: int, st: _Stated) -> None:
    """A full box's entry count (after its version and flags) and its ``entry``-byte entries."""
    head = _read(f, payload, 8)
    if len(head) == 8:
        _fits(int.from_bytes(head[4:8], "big"), entry * 8, end - payload - 8, kind, st)


def _sizes(f: BinaryIO, payload: int, end: int, kind: bytes, st: _Stated) -> None:
    """``stsz`` (a size for every sample, or their one size) or ``stz2`` (4-, 8- or 16-bit sizes)."""
    head = _read(f, payload, 12)
    if len(head) < 12:
        return
    count = int.from_bytes(head[8:12], "big")
    room = end - payload - 12
    if kind == b"stsz":
        one = int.from_bytes(head[4:8], "big")
        if one:
            st.add(count, count * one)
            return
        bits = 32
    else:
        bits = head[7]
        if bits not in (4, 8, 16):
            return
    _fits(count, bits, room, kind, st)
    st.add(count, 0)
    st.add(0, _table_sum(f, payload + 12, count, bits))


def _table_sum(f: BinaryIO, at: int, count: int, bits: int) -> int:
    """The sum of ``count`` big-endian unsigned fields of ``bits`` bits from ``at``."""
    total = 0
    per_chunk = _CHUNK * 8 // bits
    for first in range(0, count, per_chunk):
        n = min(per_chunk, count - first)
        data = _read(f, at + first * bits // 8, (n * bits + 7) // 8)
        if bits == 4:
            raw = np.frombuffer(data, np.uint8)
            total += int((raw >> 4).sum(dtype=np.uint64)) + int((raw & 15).sum(dtype=np.uint64))
        else:
            total += int(np.frombuffer(data, {8: "u1", 16: ">u2", 32: ">u4"}[bits]).sum(dtype=np.uint64))
    return total


def _tfhd(f: BinaryIO, payload: int, end: int, st: _Stated) -> None:
    head = _read(f, payload, min(end - payload, 40))
    if len(head) < 8:
        return
    flags = int.from_bytes(head[1:4], "big")
    track = int.from_bytes(head[4:8], "big")
    at = 8 + 8 * bool(flags & 0x1) + 4 * bool(flags & 0x2) + 4 * bool(flags & 0x8)
    st.tfhd = int.from_bytes(head[at : at + 4], "big") if flags & 0x10 and len(head) >= at + 4 else st.trex.get(track)


def _trun(f: BinaryIO, payload: int, end: int, st: _Stated) -> None:
    head = _read(f, payload, 8)
    if len(head) < 8:
        return
    flags = int.from_bytes(head[1:4], "big")
    count = int.from_bytes(head[4:8], "big")
    first = 8 + 4 * bool(flags & 0x1) + 4 * bool(flags & 0x4)
    fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit]
    entry = 4 * len(fields)
    room = end - payload - first
    if entry:
        _fits(count, entry * 8, room, b"trun", st)
    if flags & 0x200:
        st.add(count, 0)
        column, rows = fields.index(0x200), max(1, _CHUNK // entry)
        for top in range(0, count, rows):
            data = _read(f, payload + first + top * entry, min(rows, count - top) * entry)
            table = np.frombuffer(data[: len(data) // entry * entry], ">u4").reshape(-1, len(fields))
            st.add(0, int(table[:, column].sum(dtype=np.uint64)))
    else:
        st.add(count, count * (st.tfhd or 0))


def _tfra(f: BinaryIO, payload: int, end: int, st: _Stated) -> None:
    head = _read(f, payload, 16)
    if len(head) < 16:
        return
    sizes = int.from_bytes(head[8:12], "big")
    entry = (16 if head[0] == 1 else 8) + ((sizes >> 4) & 3) + ((sizes >> 2) & 3) + (sizes & 3) + 3
    _fits(int.from_bytes(head[12:16], "big"), entry * 8, end - payload - 16, b"tfra", st)
