"""Our own MP4's or MOV's boxes changed in place after FFmpeg's muxer wrote it (ISO/IEC 14496-12):
what the muxer cannot be told. Our own output only (trusted; the walk is bounded by the file).
Pure but for the file; thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any


def subtitles_off(path: Path) -> int:
    """An MP4 or MOV whose subtitle tracks are not enabled (``tkhd`` flags' bit 1 cleared in place):
    FFmpeg's muxer enables the first track of each kind when none is marked default, so players
    showed the first language's subtitles over its own dub. The subtitles stay, for a viewer to turn
    on. Returns the tracks changed. Our own muxer's output only (trusted; the walk is bounded)."""
    changed = 0
    with open(path, "r+b") as f:
        for moov in _boxes(f, 0, f.seek(0, 2), b"moov"):
            for trak in _boxes(f, moov[0], moov[1], b"trak"):
                tkhd = next(_boxes(f, trak[0], trak[1], b"tkhd"), None)
                handler = b""
                for mdia in _boxes(f, trak[0], trak[1], b"mdia"):
                    for hdlr in _boxes(f, mdia[0], mdia[1], b"hdlr"):
                        f.seek(hdlr[0] + 8)  # past version and flags, pre_defined
                        handler = f.read(4)
                if tkhd is not None and handler in (b"sbtl", b"text", b"subt"):
                    f.seek(tkhd[0] + 3)  # the last byte of its flags: bit 0 is "enabled"
                    flags = f.read(1)[0]
                    if flags & 1:
                        f.seek(tkhd[0] + 3)
                        f.write(bytes([flags & 0xFE]))
                        changed += 1
    return changed


def _boxes(f: Any, at: int, end: int, kind: bytes) -> Iterator[tuple[int, int]]:
    """The boxes of type ``kind`` in [at, end) of ``f`` (ISO/IEC 14496-12): each one's payload
    (past its header) and end."""
    while at + 8 <= end:
        f.seek(at)
        head = f.read(16)
        n, header = int.from_bytes(head[:4], "big"), 8
        if n == 1:
            n, header = int.from_bytes(head[8:16], "big"), 16
        elif n == 0:
            n = end - at
        if n < header or at + n > end:
            return
        if head[4:8] == kind:
            yield at + header, at + n
        at += n
