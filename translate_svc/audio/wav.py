"""A WAV file's header (RIFF/WAVE) read from the bytes at hand: what its samples are, and where they begin;
and the canonical header of the PCM16 files the service writes (``pcm16_header``).

For a stream that sends a WAV file from its first byte as raw samples (NVIDIA Riva's
``AudioChunkFileIterator`` does): the header is checked and cut, never taken for samples; and for
``codec``, which refuses a WAV's codec by its format tag before libsndfile sets one up.

Read by hand from the RIFF/WAVE layout (little-endian chunks: a 4-byte id, a 4-byte size, the
body, padded to an even size; ``fmt `` before ``data``): the stdlib ``wave`` (Python 3.11) refuses
every format but PCM, WAVE_FORMAT_EXTENSIBLE included, without the fields a refusal names, and
soundfile tells neither the format tag nor where the samples begin (docs/decisions.md, "Streamed
Ogg pages and a streamed WAV header are read from the specs"). Decoding WAV files is libsndfile's
(``codec``). Pure and thread-safe.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

WAVE_FORMAT_PCM = 0x0001
#: the sub-format (PCM, float, ...) is named by a GUID later in the ``fmt `` chunk
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
#: ``fmt `` fields read: format tag, channels, rate, byte rate, block align, bits per sample
_FMT_BYTES = 16


@dataclass(frozen=True)
class WavFormat:
    """The ``fmt `` chunk's fields that say what the samples are."""

    format_tag: int
    channels: int
    sample_rate_hz: int
    bits_per_sample: int


@dataclass(frozen=True)
class WavHeader:
    format: WavFormat
    #: where the samples begin: the ``data`` chunk's body
    data_offset: int


def is_wav(data: bytes) -> bool:
    """``data`` starts like a WAV file (``RIFF`` .... ``WAVE``)."""
    return data[:4] == b"RIFF" and data[8:12] == b"WAVE"


def riff_chunks(data: bytes, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(id, body offset, size as declared) of each chunk of a WAV file whose 8-byte chunk header
    lies within ``data[:end]``, in order; a body may run past the bytes at hand."""
    end = len(data) if end is None else min(end, len(data))
    at = 12  # after "RIFF", the file's size and "WAVE"
    while at + 8 <= end:
        size = struct.unpack_from("<I", data, at + 4)[0]
        yield bytes(data[at : at + 4]), at + 8, size
        at += 8 + size + (size & 1)  # chunks are padded to an even size


def read_header(data: bytes) -> WavHeader | None:
    """A WAV file's format and where its samples begin, when ``data`` holds both: a ``fmt ``
    chunk's fields whole, then the ``data`` chunk's header. None when it does not (the header is
    cut short, or ``data`` comes before ``fmt ``). The last ``fmt `` before ``data`` counts."""
    described: WavFormat | None = None
    for chunk, body, _ in riff_chunks(data):
        if chunk == b"fmt " and body + _FMT_BYTES <= len(data):
            tag, channels, rate = struct.unpack_from("<HHI", data, body)
            described = WavFormat(tag, channels, rate, struct.unpack_from("<H", data, body + 14)[0])
        elif chunk == b"data":
            return None if described is None else WavHeader(described, body)
    return None


def format_tag(data: bytes, end: int | None = None) -> int | None:
    """The first ``fmt `` chunk's format tag, if its chunk header and tag lie within ``data[:end]``."""
    limit = len(data) if end is None else min(end, len(data))
    for chunk, body, _ in riff_chunks(data, limit):
        if chunk == b"fmt ":
            return int.from_bytes(data[body : body + 2], "little") if body + 2 <= limit else None
    return None


def pcm16_header(data_bytes: int, rate: int, channels: int = 1) -> bytes:
    """A canonical 44-byte RIFF header of PCM16 (``channels`` interleaved) whose samples take
    ``data_bytes``."""
    block = 2 * channels
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, WAVE_FORMAT_PCM, channels, rate, rate * block, block, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )
