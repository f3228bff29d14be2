"""A WAV header read from the bytes at hand (``audio/wav.py``), on files written by the stdlib's
``wave`` and by libsndfile (soundfile), and on chunk layouts built here from the RIFF/WAVE layout."""

from __future__ import annotations

import io
import struct
import wave

import numpy as np
import pytest
import soundfile as sf

from translate_svc.audio.wav import (
    WAVE_FORMAT_EXTENSIBLE,
    WAVE_FORMAT_PCM,
    WavFormat,
    WavHeader,
    format_tag,
    is_wav,
    read_header,
    riff_chunks,
)

pytestmark = pytest.mark.unit

PCM = (np.arange(-800, 800, dtype="<i2") * 37).tobytes()


def _stdlib_wav(rate: int = 16000, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(PCM)
    return buf.getvalue()


def _sf_wav(fmt: str, subtype: str, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.frombuffer(PCM, dtype="<i2"), rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)


def _riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


FMT16 = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)


def test_a_wave_module_file_header_and_where_its_samples_begin() -> None:
    data = _stdlib_wav(rate=8000, channels=2)
    assert is_wav(data)
    header = read_header(data)
    assert header == WavHeader(WavFormat(WAVE_FORMAT_PCM, 2, 8000, 16), data_offset=44)
    assert data[header.data_offset :] == PCM


def test_libsndfile_files_wavex_and_float() -> None:
    wavex = _sf_wav("WAVEX", "PCM_16")
    header = read_header(wavex)
    assert header is not None and header.format == WavFormat(WAVE_FORMAT_EXTENSIBLE, 1, 16000, 16)
    assert wavex[header.data_offset :] == PCM
    floats = read_header(_sf_wav("WAV", "FLOAT", rate=24000))
    assert floats is not None and floats.format == WavFormat(3, 1, 24000, 32)
    assert format_tag(_sf_wav("WAV", "IMA_ADPCM")) == 0x11


def test_the_first_message_of_a_long_file_is_enough() -> None:
    first = _stdlib_wav()[:44] + bytes(3200)  # the header and the first 100 ms: a file iterator's first read
    assert read_header(first) == WavHeader(WavFormat(WAVE_FORMAT_PCM, 1, 16000, 16), 44)


def test_chunks_before_the_samples_are_skipped_by_their_padded_sizes() -> None:
    data = _riff(_chunk(b"LIST", b"odd"), _chunk(b"fmt ", FMT16), _chunk(b"fact", bytes(4)), _chunk(b"data", PCM))
    assert [(kind, size) for kind, _, size in riff_chunks(data)] == [
        (b"LIST", 3),
        (b"fmt ", 16),
        (b"fact", 4),
        (b"data", len(PCM)),
    ]
    header = read_header(data)
    assert header is not None and data[header.data_offset :] == PCM
    assert format_tag(data) == WAVE_FORMAT_PCM


def test_no_header_when_the_bytes_do_not_hold_format_and_samples() -> None:
    whole = _riff(_chunk(b"LIST", bytes(4000)), _chunk(b"fmt ", FMT16), _chunk(b"data", PCM))
    assert read_header(whole) is not None
    assert read_header(whole[:1000]) is None  # cut inside a chunk before fmt
    cut_fmt = _riff(_chunk(b"fmt ", FMT16), _chunk(b"data", PCM))[:30]
    assert read_header(cut_fmt) is None  # fmt's fields not whole
    assert read_header(_riff(_chunk(b"data", PCM), _chunk(b"fmt ", FMT16))) is None  # data before fmt
    assert read_header(_riff(_chunk(b"fmt ", FMT16))) is None  # no data chunk
    assert not is_wav(PCM) and not is_wav(b"RIFF\0\0\0\0AVI ")


def test_format_tag_looks_only_within_its_limit() -> None:
    data = _riff(_chunk(b"LIST", bytes(100)), _chunk(b"fmt ", FMT16), _chunk(b"data", PCM))
    at = data.index(b"fmt ")
    assert format_tag(data, end=at + 10) == WAVE_FORMAT_PCM
    assert format_tag(data, end=at + 9) is None and format_tag(data, end=at) is None
    assert format_tag(_riff(_chunk(b"data", PCM))) is None
