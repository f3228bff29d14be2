"""Decoding client audio to float32 mono, and the errors that tell the client what to fix."""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import cast

import numpy as np
import pytest
import soundfile as sf

from translate_svc.audio import codec
from translate_svc.audio.codec import (
    ALAW_TABLE,
    CONTAINER_FORMATS,
    MULAW_TABLE,
    OGG_CODECS,
    SAMPLE_WIDTH,
    check_raw_format,
    decode_audio,
    decode_container,
    decode_raw,
)
from translate_svc.errors import InvalidInput
from translate_svc.types import AudioEncoding, AudioFormat

pytestmark = pytest.mark.unit

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
    assert "CONTAINER" in err.value.message and "raw encodings" in err.value.message and "OPUS" in err.value.message


def test_unknown_encoding() -> None:
    with pytest.raises(InvalidInput) as err:
        check_raw_format(AudioFormat(cast(AudioEncoding, "AAC"), 16000, 1))
    assert "'AAC'" in err.value.message and "LINEAR16" in err.value.message and "ALAW" in err.value.message


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
    assert err.value.message.startswith("the audio is not a WAV, FLAC, OGG, MP3 or WebM file (by its first bytes)")
    # a WAV's magic bytes and nothing sensible after them: libsndfile's refusal, in our words
    with pytest.raises(InvalidInput) as err:
        decode_audio(b"RIFF\x00\x00\x00\x00WAVE" + b"this is not audio" * 10, AudioFormat(AudioEncoding.CONTAINER))
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


# -- size and duration limits: validate before decoding --------------------------------------------

CONTAINER = AudioFormat(AudioEncoding.CONTAINER)
BOMB_RATE = 48_000
BOMB_MINUTES = 60
ACCEPTED = (
    "send WAV, FLAC, OGG (Vorbis or Opus) or MP3, or a raw encoding with its sample rate "
    "(or WebM with Opus or Vorbis audio)"
)


def _traced_peak(fn: Callable[[], object]) -> int:
    """Peak bytes traced by tracemalloc while ``fn`` runs (numpy reports its buffers to it)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
    except InvalidInput:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def _refusal(data: bytes, fmt: AudioFormat, max_seconds: float) -> str:
    with pytest.raises(InvalidInput) as err:
        decode_audio(data, fmt, max_seconds=max_seconds)
    msg = err.value.message
    assert len(msg.encode()) < 300 and "StreamingTranslate" in msg and f"at most {max_seconds:g} s" in msg
    return msg


def _without_length(flac: bytes) -> bytes:
    """The same FLAC with STREAMINFO's total-samples field 0 ("unknown", as a FLAC streamed to a pipe)."""
    assert flac[:4] == b"fLaC" and flac[4] & 0x7F == 0  # STREAMINFO comes first
    fields = int.from_bytes(flac[18:26], "big") & ~((1 << 36) - 1)  # rate|channels|bits|total(36)
    return flac[:18] + fields.to_bytes(8, "big") + flac[26:]


def _reference(data: bytes) -> tuple[np.ndarray, int]:
    """What decode_container returned before it decoded in blocks: read all, clip, average."""
    frames, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    np.clip(frames, -1.0, 1.0, out=frames)
    mono = frames[:, 0].copy() if frames.shape[1] == 1 else frames.mean(axis=1, dtype=np.float32)
    return mono, rate


def _noise(frames: int, channels: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).uniform(-0.9, 0.9, (frames, channels))).astype(np.float32)


@pytest.fixture(scope="module")
def flac_bomb() -> Iterator[bytes]:
    """60 min of 48 kHz stereo silence as FLAC: 672,918 bytes that decode to 1.38 GB of float32.

    Written once per module (about 2.3 s with libsndfile 1.2.2).
    """
    buf = io.BytesIO()
    minute = np.zeros((BOMB_RATE * 60, 2), dtype=np.int16)
    with sf.SoundFile(buf, "w", BOMB_RATE, 2, format="FLAC", subtype="PCM_16") as f:
        for _ in range(BOMB_MINUTES):
            f.write(minute)
    yield buf.getvalue()


def test_container_formats_are_the_documented_ones() -> None:
    assert CONTAINER_FORMATS == ("WAV", "WAVEX", "FLAC", "OGG", "MP3")
    assert OGG_CODECS == ("VORBIS", "OPUS")


@pytest.mark.parametrize(
    ("fmt", "subtype"),
    [
        ("WAV", "PCM_16"),
        ("WAV", "ULAW"),
        ("WAVEX", "FLOAT"),
        ("FLAC", "PCM_16"),
        ("OGG", "VORBIS"),
        ("OGG", "OPUS"),
        ("MP3", "MPEG_LAYER_III"),
    ],
)
def test_every_accepted_container_decodes(fmt: str, subtype: str) -> None:
    data = _container(_signal(48000, 48000), 48000, fmt, subtype)
    with sf.SoundFile(io.BytesIO(data)) as f:
        assert f.format in CONTAINER_FORMATS and f.format == fmt
    y, rate = decode_audio(data, CONTAINER, max_seconds=1.0)
    assert rate == 48000 and y.dtype == np.float32 and y.ndim == 1
    assert abs(y.size - 48000) < 2000
    np.testing.assert_array_equal(y, _reference(data)[0])


@pytest.mark.parametrize(
    ("fmt", "subtype"), [("AIFF", "PCM_16"), ("AU", "PCM_16"), ("CAF", "PCM_16"), ("W64", "PCM_16"), ("RF64", "PCM_16")]
)
def test_other_containers_are_refused_by_their_first_bytes(
    fmt: str, subtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _container(_signal(1600), RATE, fmt, subtype)
    assert sf.read(io.BytesIO(data))[0].size == 1600  # soundfile itself would decode it

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("libsndfile was handed a file of another format")

    monkeypatch.setattr(codec, "_ForwardReader", never)
    for max_seconds in (None, 10.0):
        with pytest.raises(InvalidInput) as err:
            decode_audio(data, CONTAINER, max_seconds=max_seconds)
        msg = err.value.message
        assert err.value.code.value == "INVALID_ARGUMENT"
        assert msg == f"the audio is not a WAV, FLAC, OGG, MP3 or WebM file (by its first bytes): {ACCEPTED}"


@pytest.mark.parametrize(("fmt", "subtype"), [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_more_than_two_channels_are_refused_before_decoding(fmt: str, subtype: str) -> None:
    signal = np.tile(_signal(1600)[:, None], (1, 8))
    buf = io.BytesIO()
    sf.write(buf, signal, RATE, format=fmt, subtype=subtype)
    with pytest.raises(InvalidInput, match="8 channels; at most 2 are accepted: downmix"):
        decode_audio(buf.getvalue(), CONTAINER, max_seconds=10.0)


def test_the_sniffer_knows_each_accepted_container() -> None:
    assert codec.sniff_container(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "WAV"
    assert codec.sniff_container(b"fLaC\x00") == "FLAC" and codec.sniff_container(b"OggS\x00") == "OGG"
    assert codec.sniff_container(b"ID3\x04") == "MP3" and codec.sniff_container(b"\xff\xfb\x90") == "MP3"
    assert codec.sniff_container(b"FORM\x00\x00AIFF") is None and codec.sniff_container(b"") is None


def test_flac_bomb_is_refused_from_its_header(flac_bomb: bytes) -> None:
    """The header says 3600 s: refused before a single block is decoded.

    Measured (libsndfile 1.2.2, numpy 2): bomb 672,918 bytes; traced peak 3,578 bytes (the
    SoundFile object and its header reads), against 1.38 GB for the whole clip as stereo float32.
    The old decoder read all of it (+2 GB RSS) before the caller's length check.
    """
    max_seconds = 60.0
    limit_bytes = int(max_seconds * BOMB_RATE) * 4
    msg = _refusal(flac_bomb, CONTAINER, max_seconds)
    assert msg.startswith("the clip is 3600.0 s long; Translate takes at most 60 s")
    peak = _traced_peak(lambda: decode_audio(flac_bomb, CONTAINER, max_seconds=max_seconds))
    assert peak < 3 * len(flac_bomb) + limit_bytes
    assert peak < 64 * 1024  # nothing decoded at all


def test_flac_bomb_without_a_length_stops_at_the_limit(flac_bomb: bytes) -> None:
    """A FLAC that gives no length (total samples 0) is decoded block by block up to the limit.

    Measured (libsndfile 1.2.2, numpy 2, 60 s limit): traced peak 12,010,915 bytes = the 60 s of
    mono float32 kept (11,520,000) + one 512 KiB block and its finiteness masks, below the bound
    3 x 672,918 + 11,520,000 = 13,538,754; about 0.1 s. Decoding it all would take 691 MB (mono)
    or 1.38 GB (stereo float32).
    """
    bomb = _without_length(flac_bomb)
    with sf.SoundFile(io.BytesIO(bomb)) as f:
        assert f.frames == 2**63 - 1  # libsndfile's "unknown": the header cannot help
    max_seconds = 60.0
    limit_bytes = int(max_seconds * BOMB_RATE) * 4
    started = time.perf_counter()
    msg = _refusal(bomb, CONTAINER, max_seconds)
    assert time.perf_counter() - started < 2.0  # 60 s decoded, not 3600 s
    assert msg.startswith("the clip is longer than 60 s; Translate takes at most 60 s")
    peak = _traced_peak(lambda: decode_audio(bomb, CONTAINER, max_seconds=max_seconds))
    assert peak < 3 * len(bomb) + limit_bytes


def test_clip_without_a_length_decodes_up_to_exactly_the_limit() -> None:
    x = _noise(3 * 48000, 2)  # 3 s: several blocks
    flac = _container(x, 48000, "FLAC", "PCM_24")
    bomb = _without_length(flac)
    expected, _ = _reference(flac)
    y, rate = decode_audio(bomb, CONTAINER, max_seconds=3.0)  # 144000 frames, the limit exactly
    assert rate == 48000
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(decode_container(bomb)[0], expected)
    assert "longer than 2.9999 s" in _refusal(bomb, CONTAINER, 2.9999)


def _wav_claiming(data: bytes, data_bytes: int) -> bytes:
    """``data`` (a canonical 44-byte-header WAV) with its data chunk's size field set to ``data_bytes``."""
    at = data.index(b"data")
    return data[: at + 4] + struct.pack("<I", data_bytes) + data[at + 8 :]


def test_wav_header_understating_its_length_decodes_only_what_it_declares() -> None:
    # 10 s held, 2 s declared: libsndfile reads the declared data chunk and nothing after it, so the
    # undeclared tail can never slip past the limit.
    x = _noise(10 * RATE, 1)
    wav = _container(x, RATE, "WAV", "PCM_16")
    liar = _wav_claiming(wav, 2 * RATE * 2)
    y, rate = decode_audio(liar, CONTAINER, max_seconds=5.0)
    assert rate == RATE
    np.testing.assert_array_equal(y, _reference(wav)[0][: 2 * RATE])


def test_wav_streamed_header_is_measured_from_the_bytes() -> None:
    # A WAV written to a pipe declares 0xFFFFFFFF bytes; its length comes from the file size.
    wav = _container(_noise(10 * RATE, 2), RATE, "WAV", "PCM_16")
    streamed = _wav_claiming(wav, 0xFFFFFFFF)
    assert _refusal(streamed, CONTAINER, 5.0).startswith("the clip is 10.0 s long;")
    np.testing.assert_array_equal(decode_audio(streamed, CONTAINER, max_seconds=10.0)[0], _reference(wav)[0])


def test_header_that_understates_still_stops_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # libsndfile itself caps reads at the length it reports; this makes the reported length lie
    # (1 s for 10 s held) to check that the block loop, not libsndfile, enforces the limit.
    wav = _container(_noise(10 * 48000, 2), 48000, "WAV", "FLOAT")
    monkeypatch.setattr(codec._ForwardReader, "frames", property(lambda self: 48000))
    assert _refusal(wav, CONTAINER, 5.0).startswith("the clip is longer than 5 s;")
    peak = _traced_peak(lambda: decode_audio(wav, CONTAINER, max_seconds=5.0))
    assert peak < 3 * len(wav) // 2  # 5 s of mono is a quarter of the 10 s stereo request
    y, _ = decode_audio(wav, CONTAINER, max_seconds=20.0)  # frames past the header's count kept
    np.testing.assert_array_equal(y, _reference(wav)[0])


@pytest.mark.parametrize(
    ("fmt", "subtype", "channels", "rate"),
    [
        ("WAV", "PCM_16", 2, 48000),
        ("WAV", "FLOAT", 1, 44100),
        ("WAV", "PCM_24", 1, 16000),
        ("FLAC", "PCM_16", 2, 48000),
        ("OGG", "VORBIS", 2, 48000),
        ("MP3", "MPEG_LAYER_III", 2, 44100),
    ],
)
def test_clip_just_under_the_limit_decodes_as_before(fmt: str, subtype: str, channels: int, rate: int) -> None:
    x = _noise(3 * rate, channels) * 1.2  # several blocks; some samples beyond full scale (clipped)
    data = _container(x, rate, fmt, subtype)
    expected, expected_rate = _reference(data)
    for max_seconds in (expected.size / rate + 0.01, None):
        y, got_rate = decode_audio(data, CONTAINER, max_seconds=max_seconds)
        assert got_rate == expected_rate == rate
        assert y.dtype == np.float32 and y.flags.c_contiguous
        np.testing.assert_array_equal(y, expected)


def test_container_at_the_limit_passes_and_one_frame_more_is_refused() -> None:
    at_limit = _container(_signal(RATE), RATE, "WAV", "PCM_16")
    assert decode_audio(at_limit, CONTAINER, max_seconds=1.0)[0].size == RATE
    over = _container(_signal(RATE + 1), RATE, "WAV", "PCM_16")
    assert _refusal(over, CONTAINER, 1.0).startswith("the clip is 1.0001 s long;")


def test_container_non_finite_in_a_later_block() -> None:
    x = _noise(5 * 48000, 2)
    x[200_000, 1] = np.nan
    with pytest.raises(InvalidInput) as err:
        decode_audio(_container(x, 48000, "WAV", "FLOAT"), CONTAINER, max_seconds=10.0)
    assert "non-finite value (nan) at frame 200000" in err.value.message


def test_container_decode_keeps_one_mono_copy() -> None:
    """A whole 30 s stereo clip peaks at its mono result plus a block, not at a stereo copy.

    Measured: request 5,760,044 bytes (WAV PCM_16); traced peak 6,551,380 bytes (5,760,000 of mono
    float32 + a 512 KiB block and its masks); the old read-all-then-average took 17,413,219.
    """
    data = _container(np.zeros((30 * 48000, 2), dtype=np.int16), 48000, "WAV", "PCM_16")
    mono_bytes = 30 * 48000 * 4
    peak = _traced_peak(lambda: decode_audio(data, CONTAINER, max_seconds=60.0))
    assert peak < mono_bytes + 1024 * 1024


def test_raw_over_the_limit_is_refused_without_decoding() -> None:
    data = bytes(120 * RATE * 2)  # 120 s of LINEAR16 mono
    msg = _refusal(data, _fmt(AudioEncoding.LINEAR16), 60.0)
    assert msg.startswith("the clip is 120.0 s long; Translate takes at most 60 s")
    peak = _traced_peak(lambda: decode_audio(data, _fmt(AudioEncoding.LINEAR16), max_seconds=60.0))
    assert peak < 64 * 1024  # decoding would allocate 7.7 MB of float32


@pytest.mark.parametrize(
    "encoding", [AudioEncoding.LINEAR16, AudioEncoding.FLOAT32, AudioEncoding.MULAW, AudioEncoding.ALAW]
)
@pytest.mark.parametrize("channels", [1, 2])
def test_raw_limit_counts_frames(encoding: AudioEncoding, channels: int) -> None:
    fmt = _fmt(encoding, rate=8000, channels=channels)
    frame = SAMPLE_WIDTH[encoding] * channels
    fill = b"\xd5" if encoding is AudioEncoding.ALAW else b"\xff" if encoding is AudioEncoding.MULAW else b"\x00"
    y, rate = decode_audio(fill * (8000 * frame), fmt, max_seconds=1.0)
    assert rate == 8000 and y.size == 8000
    np.testing.assert_array_equal(y, decode_raw(fill * (8000 * frame), fmt))
    assert _refusal(fill * (8001 * frame), fmt, 1.0).startswith("the clip is 1.0001 s long;")


def test_raw_decode_keeps_one_float_copy() -> None:
    """LINEAR16 stereo: the float32 frames and the mono result, not a second float32 copy.

    Measured: 10 s of 48 kHz stereo (1,920,000 bytes in); traced peak 5,892,992 bytes (3,840,000 of
    frames + 1,920,000 mono + numpy's reduction buffer); dividing out of place adds 3,840,000.
    """
    data = _noise(10 * 48000, 2).__mul__(32767).astype("<i2").tobytes()
    frames_bytes = 10 * 48000 * 2 * 4
    peak = _traced_peak(lambda: decode_audio(data, _fmt(AudioEncoding.LINEAR16, 48000, 2), max_seconds=60.0))
    assert peak < frames_bytes * 3 // 2 + 256 * 1024


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_max_seconds_must_be_positive(bad: float) -> None:
    for fmt in (CONTAINER, _fmt(AudioEncoding.LINEAR16)):
        with pytest.raises(ValueError, match="max_seconds"):
            decode_audio(b"\x00\x00", fmt, max_seconds=bad)


@pytest.mark.parametrize(
    ("subtype", "tag"), [("IMA_ADPCM", 0x11), ("MS_ADPCM", 0x02), ("GSM610", 0x31), ("G721_32", 0x40)]
)
def test_wav_codecs_other_than_pcm_float_and_g711_are_refused_before_decoding(
    subtype: str, tag: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    buf = io.BytesIO()
    sf.write(buf, _signal(), RATE, format="WAV", subtype=subtype)
    data = buf.getvalue()
    opened: list[object] = []
    monkeypatch.setattr(codec, "_ForwardReader", lambda *a: opened.append(a))  # libsndfile never sees it
    with pytest.raises(InvalidInput) as refused:
        decode_container(data)
    assert subtype in refused.value.message and f"0x{tag:04X}" in refused.value.message
    assert "PCM" in refused.value.message and "FLAC" in refused.value.message  # what to send instead
    assert opened == []


def test_the_wav_subtype_is_checked_again_once_libsndfile_opens_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.BytesIO()
    sf.write(buf, _signal(), RATE, format="WAV", subtype="IMA_ADPCM")
    reads: list[int] = []
    real_read = codec._ForwardReader.read

    def read(self: sf.SoundFile, *args: object, **kwargs: object) -> np.ndarray:
        reads.append(1)
        return cast(np.ndarray, real_read(self, *args, **kwargs))

    monkeypatch.setattr(codec, "_check_wav_format_tag", lambda data: None)  # as if the header check missed it
    monkeypatch.setattr(codec._ForwardReader, "read", read)
    with pytest.raises(InvalidInput, match="WAV audio with IMA_ADPCM samples is not accepted"):
        decode_container(buf.getvalue())
    assert reads == []  # refused from the header, before a sample was decoded


@pytest.mark.parametrize("subtype", codec.WAV_SUBTYPES)
@pytest.mark.parametrize("fmt", ["WAV", "WAVEX"])
def test_every_accepted_wav_subtype_still_decodes(fmt: str, subtype: str) -> None:
    buf = io.BytesIO()
    sf.write(buf, _signal(), RATE, format=fmt, subtype=subtype)
    audio, rate = decode_container(buf.getvalue())
    assert rate == RATE and len(audio) == 1600 and np.abs(audio - _signal()).max() < 0.05
