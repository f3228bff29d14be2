"""Opus: a call's packets in, speech for a call out, WebM/Ogg files through ``decode_container``.

The packets and files here are made with PyAV the way a client (a WebRTC stack, a browser's
MediaRecorder) would make them, and checked against the real speech they came from.
"""

from __future__ import annotations

import io
import math
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import soxr

from translate_svc.audio.codec import decode_container
from translate_svc.audio.opus import (
    MAX_CONCEAL_SAMPLES,
    OPUS_FRAME_SAMPLES,
    OPUS_PLC_STEP,
    OPUS_RATE,
    OpusSpeech,
    OpusStreamDecoder,
    decode_webm,
    encode_opus,
)
from translate_svc.errors import InvalidInput

pytestmark = pytest.mark.unit

SECONDS = 3
PACKET_HINT = "send exactly one Opus packet (RFC 6716) per audio message"
WEBM_HINT = "send WebM with Opus or Vorbis audio, or WAV/FLAC/OGG/MP3"


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech16k(shared_audio: Path) -> np.ndarray:
    """The first 3 s of silero's test file: 16 kHz mono, speech from 0.0 to 2.0 s and from 2.7 s."""
    x, rate = sf.read(shared_audio / "silero_test.wav", dtype="float32")
    assert rate == 16_000 and x.ndim == 1
    return np.ascontiguousarray(x[: SECONDS * rate])


@pytest.fixture(scope="module")
def jfk48_stereo(shared_audio: Path) -> np.ndarray:
    """The first 3 s of jfk.flac at 48 kHz, (2, samples); the right channel delayed and quieter."""
    x, rate = sf.read(shared_audio / "jfk.flac", dtype="float32", always_2d=True)
    assert x.shape[1] == 2
    x48 = soxr.resample(x[: SECONDS * rate], rate, OPUS_RATE).astype(np.float32)
    left, right = x48[:, 0], 0.5 * np.roll(x48[:, 1], 100)
    return np.ascontiguousarray(np.stack([left, right]))


def _to48(x: np.ndarray, rate: int) -> np.ndarray:
    return x if rate == OPUS_RATE else soxr.resample(x, rate, OPUS_RATE).astype(np.float32)


def _client_packets(x: np.ndarray, frame_ms: float = 20, bitrate: int = 32_000, *, fec: bool = False) -> list[bytes]:
    """Encode (channels, samples) float32 at 48 kHz to raw Opus packets, as an RTP sender would."""
    channels = x.shape[0]
    layout = "mono" if channels == 1 else "stereo"
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = OPUS_RATE
    enc.layout = layout
    enc.format = "flt"
    enc.bit_rate = bitrate * channels
    enc.time_base = Fraction(1, OPUS_RATE)
    enc.options = {"application": "voip", "frame_duration": f"{frame_ms:g}"}
    if fec:  # in-band FEC, as browsers negotiate (useinbandfec=1)
        enc.options = {**enc.options, "fec": "1", "packet_loss": "5"}
    enc.open()
    size = round(OPUS_RATE * frame_ms / 1000)
    assert enc.frame_size == size
    packets: list[bytes] = []
    for start in range(0, x.shape[1] - size + 1, size):
        packed = np.ascontiguousarray(x[:, start : start + size].T).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(packed, format="flt", layout=layout)
        frame.sample_rate = OPUS_RATE
        frame.pts = start
        packets.extend(bytes(p) for p in enc.encode(frame))
    packets.extend(bytes(p) for p in enc.encode(None))
    return packets


def _decode_all(packets: tuple[bytes, ...] | list[bytes]) -> np.ndarray:
    """An independent decode (plain PyAV libopus, mono float), to check ``encode_opus``'s contract."""
    dec = av.CodecContext.create("libopus", "r")
    dec.sample_rate = OPUS_RATE
    dec.layout = "mono"
    dec.options = {"request_sample_fmt": "flt"}
    out = [f.to_ndarray().reshape(-1) for p in packets for f in dec.decode(av.Packet(p))]
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, dtype=np.float32)


def _lag(ref: np.ndarray, out: np.ndarray, max_lag: int) -> int:
    """The delay of ``out`` behind ``ref`` in samples (0..max_lag), by cross-correlation."""
    n = len(ref) + len(out)
    spec = np.fft.rfft(out, n) * np.conj(np.fft.rfft(ref, n))
    xcorr = np.fft.irfft(spec, n)
    return int(np.argmax(xcorr[: max_lag + 1]))


def _signed_lag(ref: np.ndarray, out: np.ndarray, max_lag: int) -> int:
    """Like ``_lag`` but either way: positive when ``out`` is late."""
    late = _lag(ref, out, max_lag)
    early = _lag(out, ref, max_lag)
    n = min(len(ref), len(out)) - max_lag
    score_late = float(np.dot(ref[:n], out[late : late + n]))
    score_early = float(np.dot(ref[early : early + n], out[:n]))
    return late if score_late >= score_early else -early


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def _db(a: np.ndarray, b: np.ndarray) -> float:
    """RMS level of ``a`` relative to ``b`` in dB."""
    return float(20 * np.log10(np.sqrt(np.mean(np.square(a, dtype=np.float64))) / np.sqrt(np.mean(np.square(b)))))


def _aligned(ref: np.ndarray, out: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """``ref`` and ``out`` shifted by ``lag`` and cut to their common length."""
    if lag >= 0:
        out = out[lag:]
    else:
        ref = ref[-lag:]
    n = min(len(ref), len(out))
    return ref[:n], out[:n]


# -- OpusStreamDecoder -----------------------------------------------------------------------------


def test_stream_packets_decode_to_the_speech(speech16k: np.ndarray) -> None:
    x48 = _to48(speech16k, 16_000)
    packets = _client_packets(x48[None])
    assert len(packets) >= SECONDS * 50
    dec = OpusStreamDecoder(channels=1)
    pieces = [dec.decode(p) for p in packets]
    assert all(p.dtype == np.float32 and p.ndim == 1 and len(p) == OPUS_FRAME_SAMPLES for p in pieces)
    out = np.concatenate(pieces)
    assert len(out) == len(packets) * OPUS_FRAME_SAMPLES
    assert np.abs(out).max() <= 1.0
    lag = _lag(x48, out, max_lag=2000)
    assert 200 <= lag <= 400  # libopus's lookahead (6.5 ms), not a lucky match elsewhere
    ref, got = _aligned(x48, out, lag)
    assert _corr(ref, got) > 0.9
    assert abs(_db(got, ref)) < 1.5


@pytest.mark.parametrize(("frame_ms", "samples"), [(2.5, 120), (10, 480), (20, 960), (60, 2880), (120, 5760)])
def test_each_packet_decodes_to_its_duration(speech16k: np.ndarray, frame_ms: float, samples: int) -> None:
    packets = _client_packets(_to48(speech16k, 16_000)[None], frame_ms=frame_ms)
    dec = OpusStreamDecoder(channels=1)
    lengths = {len(dec.decode(p)) for p in packets}
    assert lengths == {samples}


@pytest.mark.parametrize("channels", [2, 1])
def test_stereo_packets_decode_to_mono(jfk48_stereo: np.ndarray, channels: int) -> None:
    """A stereo client's packets give the average of its channels; a wrong ``channels`` still decodes."""
    packets = _client_packets(jfk48_stereo, bitrate=48_000)
    dec = OpusStreamDecoder(channels=channels)
    pieces = [dec.decode(p) for p in packets]
    assert all(p.ndim == 1 and len(p) == OPUS_FRAME_SAMPLES for p in pieces)
    out = np.concatenate(pieces)
    mid = jfk48_stereo.mean(axis=0)
    ref, got = _aligned(mid, out, _lag(mid, out, max_lag=2000))
    assert _corr(ref, got) > 0.9
    assert abs(_db(got, ref)) < 1.5


@pytest.mark.parametrize("bad", [b"", b"\xff" * 5, b"garbage, not an opus packet " * 3])
def test_a_bad_packet_is_refused_and_the_stream_goes_on(speech16k: np.ndarray, bad: bytes) -> None:
    x48 = _to48(speech16k, 16_000)
    packets = _client_packets(x48[None])
    dec = OpusStreamDecoder(channels=1)
    head = [dec.decode(p) for p in packets[:50]]
    with pytest.raises(InvalidInput) as err:
        dec.decode(bad)
    msg = err.value.message
    assert f"{len(bad)} bytes" in msg and PACKET_HINT in msg
    assert "garbage" not in msg  # the client's bytes are not echoed
    tail = [dec.decode(p) for p in packets[50:]]
    assert all(len(p) == OPUS_FRAME_SAMPLES for p in head + tail)
    out = np.concatenate(head + tail)
    ref, got = _aligned(x48, out, _lag(x48, out, max_lag=2000))
    assert _corr(ref, got) > 0.9


def _with_losses(packets: list[bytes], lost: set[int], way: str) -> np.ndarray:
    """Decode ``packets`` with those in ``lost`` missing: ``silence``, ``plc`` or ``plc+fec``."""
    dec = OpusStreamDecoder(channels=1)
    out = []
    for i, p in enumerate(packets):
        if i not in lost:
            out.append(dec.decode(p))
        elif way == "silence":
            out.append(np.zeros(OPUS_FRAME_SAMPLES, np.float32))
        else:
            out.append(dec.conceal(OPUS_FRAME_SAMPLES, packets[i + 1] if way == "plc+fec" else None))
    return np.concatenate(out)


def test_lost_packets_are_concealed_and_fec_recovers_them(speech16k: np.ndarray) -> None:
    """Every 25th packet lost: each stand-in has the lost packet's length; concealment continues
    the speech (not silence: the VAD keeps hearing it), and the next packet's FEC copy brings the
    decode far closer to the clean one than either silence or concealment alone."""
    packets = _client_packets(_to48(speech16k, 16_000)[None], fec=True)
    clean = _with_losses(packets, set(), "silence")
    lost = set(range(10, len(packets) - 1, 25))
    out = {way: _with_losses(packets, lost, way) for way in ("silence", "plc", "plc+fec")}
    assert all(len(x) == len(clean) for x in out.values())
    err = {way: float(np.sum((x - clean) ** 2)) for way, x in out.items()}
    assert err["plc+fec"] < 0.25 * min(err["plc"], err["silence"]), err
    frames = [slice(i * OPUS_FRAME_SAMPLES, (i + 1) * OPUS_FRAME_SAMPLES) for i in sorted(lost)]
    energy = {way: sum(float(np.sum(x[f] ** 2)) for f in frames) for way, x in out.items()}
    clean_energy = sum(float(np.sum(clean[f] ** 2)) for f in frames)
    assert energy["silence"] == 0.0 and energy["plc"] > 0.1 * clean_energy, (energy, clean_energy)


def test_concealment_spans_a_longer_gap_and_ignores_an_unreadable_next_packet(speech16k: np.ndarray) -> None:
    packets = _client_packets(_to48(speech16k, 16_000)[None], fec=True)
    dec = OpusStreamDecoder(channels=1)
    for p in packets[:20]:
        dec.decode(p)
    assert len(dec.conceal(3 * OPUS_FRAME_SAMPLES, packets[23])) == 3 * OPUS_FRAME_SAMPLES
    assert len(dec.conceal(OPUS_FRAME_SAMPLES, b"\xff" * 5)) == OPUS_FRAME_SAMPLES  # concealed without FEC
    with pytest.raises(InvalidInput):
        dec.decode(b"\xff" * 5)
    assert len(dec.decode(packets[24])) == OPUS_FRAME_SAMPLES  # the stream goes on
    for frames in (0, 100, MAX_CONCEAL_SAMPLES + 120):
        with pytest.raises(ValueError):
            dec.conceal(frames)


def test_packets_decode_straight_at_16_khz_to_what_48_khz_gives_resampled(speech16k: np.ndarray) -> None:
    """A live stream's decoder runs at the model's 16 kHz (issue 97 item 5): each packet gives a
    third of its 48 kHz samples, concealment a third of the gap, and the audio is the 48 kHz
    decode's resampled (libopus band-limits inside its decoder), not a worse one."""
    packets = _client_packets(_to48(speech16k, 16_000)[None], fec=True)
    at48, at16 = OpusStreamDecoder(channels=1), OpusStreamDecoder(channels=1, rate=16_000)
    assert at16.rate == 16_000
    wide = np.concatenate([at48.decode(p) for p in packets[:-3]])
    pieces = [at16.decode(p) for p in packets[:-3]]
    assert {len(p) for p in pieces} == {OPUS_FRAME_SAMPLES // 3}
    narrow = np.concatenate(pieces)
    down = soxr.resample(wide, 48_000, 16_000).astype(np.float32)
    ref, got = _aligned(down, narrow, _lag(down, narrow, max_lag=400))
    assert _corr(ref, got) > 0.97 and abs(_db(got, ref)) < 0.5
    assert len(at16.conceal(3 * OPUS_FRAME_SAMPLES, packets[-1])) == OPUS_FRAME_SAMPLES
    assert len(at16.conceal(OPUS_PLC_STEP)) == OPUS_PLC_STEP // 3
    with pytest.raises(ValueError):
        OpusStreamDecoder(channels=1, rate=44_100)


@pytest.mark.parametrize("channels", [0, 3])
def test_unsupported_channel_count(channels: int) -> None:
    with pytest.raises(InvalidInput) as err:
        OpusStreamDecoder(channels=channels)
    assert f"{channels} channels" in err.value.message


# -- encode_opus -----------------------------------------------------------------------------------


def _check_speech(speech: OpusSpeech, ref48: np.ndarray) -> None:
    assert speech.num_samples == len(ref48)
    assert speech.pre_skip > 0
    assert len(speech.packets) == math.ceil((speech.pre_skip + speech.num_samples) / OPUS_FRAME_SAMPLES)
    assert all(isinstance(p, bytes) and p for p in speech.packets)
    decoded = _decode_all(speech.packets)
    assert len(decoded) == len(speech.packets) * OPUS_FRAME_SAMPLES
    # The pre-skip is where the speech starts (to within a few samples of libopus's real delay).
    assert abs(_lag(ref48, decoded, max_lag=2000) - speech.pre_skip) <= 8
    got = decoded[speech.pre_skip : speech.pre_skip + speech.num_samples]
    assert len(got) == len(ref48)
    assert _corr(got, ref48) > 0.9
    assert abs(_db(got, ref48)) < 1.5


def test_encode_16k_speech(speech16k: np.ndarray) -> None:
    before = speech16k.copy()
    speech = encode_opus(speech16k, 16_000)
    np.testing.assert_array_equal(speech16k, before)  # the caller's array is not touched
    _check_speech(speech, _to48(speech16k, 16_000))


def test_encode_48k_speech(jfk48_stereo: np.ndarray) -> None:
    x = np.ascontiguousarray(jfk48_stereo[0])
    _check_speech(encode_opus(x, OPUS_RATE, bitrate=24_000), x)


@pytest.mark.parametrize("extra", [1, 7, 959])
def test_encode_covers_a_ragged_tail(speech16k: np.ndarray, extra: int) -> None:
    x = speech16k[: 16_000 + extra]
    _check_speech(encode_opus(x, 16_000), _to48(x, 16_000))


def test_encode_empty_gives_no_packets() -> None:
    speech = encode_opus(np.zeros(0, dtype=np.float32), 16_000)
    assert speech.packets == () and speech.num_samples == 0 and speech.pre_skip > 0


@pytest.mark.parametrize(
    ("wave", "rate", "bitrate"),
    [
        (np.zeros(160, dtype=np.float32), 4_000, 32_000),
        (np.zeros(160, dtype=np.float32), 96_000, 32_000),
        (np.zeros(160, dtype=np.float32), 16_000, 1_000),
        (np.zeros((2, 160), dtype=np.float32), 16_000, 32_000),
    ],
)
def test_encode_refuses_bad_arguments(wave: np.ndarray, rate: int, bitrate: int) -> None:
    with pytest.raises(ValueError):
        encode_opus(wave, rate, bitrate=bitrate)


# -- WebM/Opus and Ogg/Opus files through decode_container -----------------------------------------


def _file(
    x: np.ndarray,
    rate: int,
    fmt: str,
    codec: str = "libopus",
    *,
    container_options: dict[str, str] | None = None,
) -> bytes:
    """Write float32 ``x`` ((samples,) or (channels, samples)) at ``rate`` into an in-memory file,
    as a browser or ffmpeg would."""
    x = np.atleast_2d(x)
    buf = io.BytesIO()
    layout = "mono" if x.shape[0] == 1 else "stereo"
    with av.open(buf, "w", format=fmt, container_options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=rate, options={"strict": "-2"})  # FFmpeg's vorbis is "experimental"
        ctx = stream.codec_context
        ctx.layout = layout
        ctx.format = "fltp" if codec == "vorbis" else "flt"
        planar = codec == "vorbis"
        size = 1024 if codec == "vorbis" else 960
        for start in range(0, x.shape[1], size):
            piece = np.ascontiguousarray(x[:, start : start + size])
            data = piece if planar else np.ascontiguousarray(piece.T).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(data, format=ctx.format.name, layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


@pytest.fixture(scope="module")
def webm(speech16k: np.ndarray) -> bytes:
    data = _file(_to48(speech16k, 16_000), OPUS_RATE, "webm")
    assert data[:4] == b"\x1a\x45\xdf\xa3"
    return data


def _check_file(data: bytes, ref: np.ndarray, rate: int, **kwargs: float) -> None:
    out, got_rate = decode_container(data, **kwargs)
    assert got_rate == rate
    assert out.dtype == np.float32 and out.ndim == 1 and np.abs(out).max() <= 1.0
    assert abs(len(out) / rate - len(ref) / rate) <= 0.03
    lag = _signed_lag(ref, out, max_lag=rate // 50)
    assert abs(lag) <= rate // 1000  # the decoder trims the encoder's pre-skip
    r, g = _aligned(ref, out, lag)
    assert _corr(r, g) > 0.9
    assert abs(_db(g, r)) < 1.5


def test_webm_opus_decodes(webm: bytes, speech16k: np.ndarray) -> None:
    _check_file(webm, _to48(speech16k, 16_000), OPUS_RATE, max_seconds=SECONDS)


def test_webm_without_a_duration_decodes(speech16k: np.ndarray) -> None:
    """MediaRecorder writes live WebM: no Duration element, so only the decode loop can count."""
    live = _file(_to48(speech16k, 16_000), OPUS_RATE, "webm", container_options={"live": "1"})
    with av.open(io.BytesIO(live)) as probe:
        assert probe.duration is None
    _check_file(live, _to48(speech16k, 16_000), OPUS_RATE, max_seconds=60)
    with pytest.raises(InvalidInput) as err:
        decode_container(live, max_seconds=1)
    assert "longer than 1 s" in err.value.message and "at most 1 s" in err.value.message


def test_webm_vorbis_stereo_decodes_to_the_average(speech16k: np.ndarray) -> None:
    stereo = np.stack([speech16k, 0.25 * speech16k])
    data = _file(stereo, 16_000, "webm", "vorbis")
    _check_file(data, stereo.mean(axis=0), 16_000)


def test_ogg_opus_decodes_through_soundfile(speech16k: np.ndarray) -> None:
    data = _file(_to48(speech16k, 16_000), OPUS_RATE, "ogg")
    info = sf.info(io.BytesIO(data))
    assert (info.format, info.subtype) == ("OGG", "OPUS")  # libsndfile reads it: no PyAV detour
    _check_file(data, _to48(speech16k, 16_000), OPUS_RATE, max_seconds=SECONDS)


def _with_duration(webm: bytes, seconds: float) -> bytes:
    """The same WebM with its Segment Duration (EBML id 0x4489, 8-byte float in ms) set to ``seconds``."""
    at = webm.find(b"\x44\x89\x88")
    assert at > 0
    return webm[: at + 3] + struct.pack(">d", seconds * 1000) + webm[at + 11 :]


def test_webm_over_the_limit_is_refused_before_decoding(webm: bytes) -> None:
    with pytest.raises(InvalidInput) as err:
        decode_container(webm, max_seconds=1)
    assert err.value.message.startswith("the clip is 3.0 s long") and "at most 1 s" in err.value.message
    # A claim far beyond the limit is refused on the claim alone (no 10 h decode is attempted).
    with pytest.raises(InvalidInput) as err:
        decode_container(_with_duration(webm, 36_000), max_seconds=60)
    assert "36000.0 s long" in err.value.message


def test_webm_that_understates_its_duration_is_stopped_while_decoding(webm: bytes) -> None:
    lying = _with_duration(webm, 0.5)
    out, _ = decode_container(lying)  # no limit: the stated length is only a size hint
    assert abs(len(out) / OPUS_RATE - SECONDS) <= 0.03
    with pytest.raises(InvalidInput) as err:
        decode_container(lying, max_seconds=1)
    assert "longer than 1 s" in err.value.message


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda w: w[:300], id="truncated-header"),
        pytest.param(lambda w: w[:4] + np.random.default_rng(0).bytes(4000), id="garbage-after-magic"),
        pytest.param(lambda w: w[:400] + np.random.default_rng(1).bytes(1600) + w[2000:], id="garbled-middle"),
    ],
)
def test_corrupt_webm_is_invalid_input(webm: bytes, corrupt) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as err:
        decode_container(corrupt(webm))
    msg = err.value.message
    assert WEBM_HINT in msg and len(msg.encode()) < 300


def test_matroska_without_audio_is_refused() -> None:
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        stream = out.add_stream("ffv1", rate=1)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), dtype=np.uint8), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    with pytest.raises(InvalidInput) as err:
        decode_container(buf.getvalue())
    assert "no audio stream" in err.value.message and WEBM_HINT in err.value.message


@pytest.mark.parametrize(
    ("codec_id", "named"),
    [(b"A_PCM/INT/LIT", "pcm_s16le"), (b"A_XYZ/INT/LIT", "unknown")],  # the second: no FFmpeg decoder
)
def test_matroska_with_other_audio_is_refused(speech16k: np.ndarray, codec_id: bytes, named: str) -> None:
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        stream = out.add_stream("pcm_s16le", rate=16_000, layout="mono")
        frame = av.AudioFrame.from_ndarray((speech16k[None] * 32767).astype(np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 16_000, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    data = buf.getvalue()
    assert data.count(b"A_PCM/INT/LIT") == 1
    with pytest.raises(InvalidInput) as err:
        decode_container(data.replace(b"A_PCM/INT/LIT", codec_id))
    assert f"{named} is not accepted" in err.value.message and WEBM_HINT in err.value.message


def test_decode_webm_checks_its_limit(webm: bytes) -> None:
    with pytest.raises(ValueError):
        decode_webm(webm, max_seconds=0)
    out, rate = decode_webm(webm, max_seconds=None)
    assert rate == OPUS_RATE and abs(len(out) / rate - SECONDS) <= 0.03
