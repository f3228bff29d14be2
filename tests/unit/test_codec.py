"""Decoding client audio to float32 mono, and the errors that tell the client what to fix."""

from __future__ import annotations

import io
from typing import cast

import numpy as np
import pytest
import soundfile as sf

from translate_svc.audio.codec import (
    ALAW_TABLE,
    MULAW_TABLE,
    check_raw_format,
    decode_audio,
    decode_container,
    decode_raw,
)
from translate_svc.errors import InvalidInput
from translate_svc.types import AudioEncoding, AudioFormat

RATE = 16_000


def _signal(n: int = 1600, rate: int = RATE) -> np.ndarray:
    t = np.arange(n) / rate
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234 * t)).astype(np.float32)


def _search(value: int, table: tuple[int, ...]) -> int:
    return next((i for i, end in enumerate(table) if value <= end), len(table))


def _linear2ulaw(pcm: int) -> int:
    """Reference G.711 µ-law encoder (CCITT/Sun g711.c), used only to check the decoder."""
    pcm >>= 2
    mask = 0xFF
    if pcm < 0:
        pcm, mask = -pcm, 0x7F
    pcm = min(pcm, 8159) + (0x84 >> 2)
    seg = _search(pcm, (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF))
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm >> (seg + 1)) & 0xF)) ^ mask


def _linear2alaw(pcm: int) -> int:
    """Reference G.711 A-law encoder (CCITT/Sun g711.c), used only to check the decoder."""
    pcm >>= 3
    if pcm >= 0:
        mask = 0xD5
    else:
        mask, pcm = 0x55, -pcm - 1
    seg = _search(pcm, (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF))
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= (pcm >> 1) & 0xF if seg < 2 else (pcm >> seg) & 0xF
    return aval ^ mask


def _fmt(encoding: AudioEncoding, rate: int = RATE, channels: int = 1) -> AudioFormat:
    return AudioFormat(encoding=encoding, sample_rate_hz=rate, channels=channels)


# -- raw encodings -------------------------------------------------------------------------------


def test_linear16_round_trip() -> None:
    x = _signal()
    pcm = np.round(x * 32767).astype("<i2")
    y = decode_raw(pcm.tobytes(), _fmt(AudioEncoding.LINEAR16))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, pcm.astype(np.float32) / 32768)
    np.testing.assert_allclose(y, x, atol=1 / 16384)


def test_linear16_extremes() -> None:
    y = decode_raw(np.array([-32768, 0, 32767], dtype="<i2").tobytes(), _fmt(AudioEncoding.LINEAR16))
    np.testing.assert_array_equal(y, np.array([-1.0, 0.0, 32767 / 32768], dtype=np.float32))


def test_float32_round_trip_is_exact() -> None:
    x = _signal()
    y = decode_raw(x.astype("<f4").tobytes(), _fmt(AudioEncoding.FLOAT32))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x)


def test_float32_beyond_full_scale_is_clipped() -> None:
    y = decode_raw(np.array([2.0, -3.0, 0.25], dtype="<f4").tobytes(), _fmt(AudioEncoding.FLOAT32))
    np.testing.assert_array_equal(y, np.array([1.0, -1.0, 0.25], dtype=np.float32))


def test_mulaw_known_values() -> None:
    y = decode_raw(bytes([0xFF, 0x00, 0x80, 0x7F, 0xFE]), _fmt(AudioEncoding.MULAW))
    expected = np.array([0, -32124, 32124, 0, 8], dtype=np.float32) / 32768
    np.testing.assert_array_equal(y, expected)


def test_alaw_known_values() -> None:
    y = decode_raw(bytes([0xD5, 0x55, 0xAA, 0x2A]), _fmt(AudioEncoding.ALAW))
    expected = np.array([8, -8, 32256, -32256], dtype=np.float32) / 32768
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize(
    ("encoding", "encoder", "table"),
    [(AudioEncoding.MULAW, _linear2ulaw, MULAW_TABLE), (AudioEncoding.ALAW, _linear2alaw, ALAW_TABLE)],
)
def test_g711_round_trip(encoding: AudioEncoding, encoder, table: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    # Every code decodes to a value the reference encoder maps back to the same code
    # (µ-law's "negative zero" 0x7F is the one code that re-encodes as +0, 0xFF).
    for code in range(256):
        back = encoder(round(float(table[code]) * 32768))
        assert back == code or (encoding is AudioEncoding.MULAW and code == 0x7F and back == 0xFF), hex(code)
    # A known signal survives encode -> decode within G.711's quantisation error (< 1/16 relative).
    x = _signal()
    codes = bytes(encoder(int(v)) for v in np.round(x * 32767).astype(int))
    y = decode_raw(codes, _fmt(encoding))
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.all(np.abs(y - x) <= np.abs(x) / 16 + 2 / 4096)
    assert np.corrcoef(x, y)[0, 1] > 0.999


def test_stereo_is_averaged() -> None:
    left = np.array([1000, -2000, 300], dtype="<i2")
    right = np.array([3000, 2000, -301], dtype="<i2")
    data = np.stack([left, right], axis=1).tobytes()
    y = decode_raw(data, _fmt(AudioEncoding.LINEAR16, channels=2))
    np.testing.assert_allclose(y, (left.astype(np.float32) + right) / 2 / 32768, atol=1e-7)
    f = np.stack([left / 32768, right / 32768], axis=1).astype("<f4")
    np.testing.assert_allclose(decode_raw(f.tobytes(), _fmt(AudioEncoding.FLOAT32, channels=2)), y, atol=1e-7)
    mu = decode_raw(bytes([0xFF, 0x00]), _fmt(AudioEncoding.MULAW, channels=2))
    np.testing.assert_allclose(mu, [-32124 / 65536], atol=1e-7)


def test_decode_audio_raw_returns_the_given_rate() -> None:
    x = _signal(800, 8000)
    y, rate = decode_audio(x.tobytes(), _fmt(AudioEncoding.FLOAT32, rate=8000))
    assert rate == 8000
    np.testing.assert_array_equal(y, x)


# -- containers ----------------------------------------------------------------------------------


def _container(x: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "subtype"), [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_24")])
def test_lossless_containers(fmt: str, subtype: str) -> None:
    x = _signal(4410, 44100)
    y, rate = decode_audio(_container(x, 44100, fmt, subtype), AudioFormat(AudioEncoding.CONTAINER))
    assert rate == 44100
    assert y.dtype == np.float32 and y.ndim == 1 and y.size == x.size
    np.testing.assert_allclose(y, x, atol=1 / 16384)


@pytest.mark.parametrize(("fmt", "subtype"), [("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_lossy_containers(fmt: str, subtype: str) -> None:
    x = _signal(16000, 16000)
    y, rate = decode_container(_container(x, 16000, fmt, subtype))
    assert rate == 16000
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(y.size - x.size) < 2000
    # Lossy codecs add delay; compare the spectra: the 440 Hz tone must dominate.
    spectrum = np.abs(np.fft.rfft(y[:8000]))
    assert abs(np.argmax(spectrum) * 16000 / 8000 - 440) <= 4


def test_stereo_container_is_averaged() -> None:
    x = _signal(1600)
    stereo = np.stack([x, -0.5 * x], axis=1)
    y, _ = decode_container(_container(stereo, RATE, "WAV", "FLOAT"))
    np.testing.assert_allclose(y, 0.25 * x, atol=1e-7)


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [7999, 48001, 0, 96000])
def test_rate_out_of_range(rate: int) -> None:
    with pytest.raises(InvalidInput) as err:
        check_raw_format(_fmt(AudioEncoding.LINEAR16, rate=rate))
    assert f"{rate} Hz" in err.value.message
    assert "8000" in err.value.message and "48000" in err.value.message


@pytest.mark.parametrize("channels", [0, 3, 6])
def test_bad_channel_count(channels: int) -> None:
    with pytest.raises(InvalidInput) as err:
        decode_raw(b"\x00" * 12, _fmt(AudioEncoding.MULAW, channels=channels))
    assert f"{channels} channels" in err.value.message and "mono (1)" in err.value.message
    assert "stereo (2)" in err.value.message


def test_container_not_allowed_for_streams() -> None:
    check_raw_format(AudioFormat(AudioEncoding.CONTAINER))  # allowed by default (Translate)
    with pytest.raises(InvalidInput) as err:
        check_raw_format(AudioFormat(AudioEncoding.CONTAINER), allow_container=False)
    assert "CONTAINER" in err.value.message and "raw encodings only" in err.value.message


def test_unknown_encoding() -> None:
    with pytest.raises(InvalidInput) as err:
        check_raw_format(AudioFormat(cast(AudioEncoding, "OPUS"), 16000, 1))
    assert "'OPUS'" in err.value.message and "LINEAR16" in err.value.message and "ALAW" in err.value.message


@pytest.mark.parametrize(
    ("encoding", "channels", "nbytes", "frame"),
    [
        (AudioEncoding.LINEAR16, 1, 3, 2),
        (AudioEncoding.LINEAR16, 2, 6, 4),
        (AudioEncoding.FLOAT32, 1, 6, 4),
        (AudioEncoding.FLOAT32, 2, 12, 8),
        (AudioEncoding.MULAW, 2, 5, 2),
        (AudioEncoding.ALAW, 2, 3, 2),
    ],
)
def test_partial_frame(encoding: AudioEncoding, channels: int, nbytes: int, frame: int) -> None:
    with pytest.raises(InvalidInput) as err:
        decode_raw(b"\x00" * nbytes, _fmt(encoding, channels=channels))
    msg = err.value.message
    assert f"{nbytes} bytes" in msg and f"{frame} bytes per frame" in msg and encoding.value in msg


@pytest.mark.parametrize(("bad", "name"), [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_float32_non_finite(bad: float, name: str) -> None:
    data = np.array([0.0, 0.1, 0.2, bad, 0.0], dtype="<f4").tobytes()
    with pytest.raises(InvalidInput) as err:
        decode_raw(data, _fmt(AudioEncoding.FLOAT32))
    assert f"non-finite value ({name}) at sample index 3" in err.value.message
    with pytest.raises(InvalidInput) as err:
        decode_raw(data + b"\x00" * 4, _fmt(AudioEncoding.FLOAT32, channels=2))
    assert "sample index 3" in err.value.message and "frame 1" in err.value.message


def test_empty_audio() -> None:
    with pytest.raises(InvalidInput) as err:
        decode_raw(b"", _fmt(AudioEncoding.LINEAR16))
    assert "audio is empty" in err.value.message
    empty = decode_raw(b"", _fmt(AudioEncoding.LINEAR16), allow_empty=True)
    assert empty.dtype == np.float32 and empty.size == 0
    for fmt in (_fmt(AudioEncoding.ALAW), AudioFormat(AudioEncoding.CONTAINER)):
        with pytest.raises(InvalidInput) as err:
            decode_audio(b"", fmt)
        assert err.value.message.startswith("audio is empty: ")


def test_undecodable_container() -> None:
    with pytest.raises(InvalidInput) as err:
        decode_audio(b"this is not audio" * 10, AudioFormat(AudioEncoding.CONTAINER))
    msg = err.value.message
    assert msg.startswith("could not decode the audio container: ")
    assert "send WAV, FLAC, OGG or MP3, or a raw encoding with its sample rate" in msg
    assert "BytesIO" not in msg  # no Python object reprs in client messages


def test_container_without_frames() -> None:
    with pytest.raises(InvalidInput) as err:
        decode_container(_container(np.zeros((0, 1), dtype=np.float32), RATE, "WAV"))
    assert "no audio frames" in err.value.message


@pytest.mark.parametrize("rate", [96000, 6000])
def test_container_rate_out_of_range(rate: int) -> None:
    with pytest.raises(InvalidInput) as err:
        decode_container(_container(_signal(rate // 10, rate), rate, "WAV"))
    assert f"{rate} Hz" in err.value.message and "8000" in err.value.message and "48000" in err.value.message


@pytest.mark.parametrize(("bad", "name"), [(np.nan, "nan"), (np.inf, "inf")])
def test_container_non_finite(bad: float, name: str) -> None:
    x = _signal(100)
    x[42] = bad
    with pytest.raises(InvalidInput) as err:
        decode_container(_container(x, RATE, "WAV", "FLOAT"))
    assert f"non-finite value ({name}) at frame 42" in err.value.message
