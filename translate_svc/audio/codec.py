"""Decode client audio (raw PCM16/F32/G.711 or a WAV/FLAC/OGG/MP3/WebM container) to float32 mono.

Everything downstream (resampler, VAD, model) works on one representation: a 1-D float32 array in
``[-1, 1]`` at a known sample rate. This module is the single place that turns bytes into it, and
the single place that tells a client what is wrong with the bytes it sent (``InvalidInput`` with a
message that says what to fix).

Containers are read by libsndfile (soundfile), except WebM/Matroska (what browsers' MediaRecorder
writes, usually with Opus), which libsndfile cannot read: those go to PyAV in ``audio/opus.py``.
What is accepted (rates, clip length) and the refusals' words live in ``audio/limits.py``, shared
with ``opus``; PCM16 scaling in ``translate_svc.wire.pcm``.

All functions are pure and thread-safe: the G.711 tables are built once at import and only read.
"""

from __future__ import annotations

import io
import logging
import math

import numpy as np
import soundfile as sf

from translate_svc.audio import wav
from translate_svc.audio.limits import (
    MAX_CONTAINER_CHANNELS,
    MAX_SAMPLE_RATE_HZ,
    MIN_SAMPLE_RATE_HZ,
    OPUS_RATE,
    PREALLOCATE_MAX_FRAMES,
    check_container_rate,
    check_max_seconds,
    max_frames,
    no_channel,
    too_long,
)
from translate_svc.errors import InvalidInput
from translate_svc.types import AudioEncoding, AudioFormat
from translate_svc.wire.pcm import pcm16_to_float

logger = logging.getLogger(__name__)

#: Bytes per sample of each raw encoding (a frame is this times the channel count).
SAMPLE_WIDTH: dict[AudioEncoding, int] = {
    AudioEncoding.LINEAR16: 2,
    AudioEncoding.FLOAT32: 4,
    AudioEncoding.MULAW: 1,
    AudioEncoding.ALAW: 1,
}

#: Container formats accepted in CONTAINER audio (soundfile's names; what the proto promises).
#: WAVEX is WAV with a WAVE_FORMAT_EXTENSIBLE header. Everything else libsndfile opens (AIFF, AU,
#: CAF, W64, RF64, ...) is refused, so the service accepts what it documents and nothing more.
CONTAINER_FORMATS: tuple[str, ...] = ("WAV", "WAVEX", "FLAC", "OGG", "MP3")
#: Codecs accepted inside an OGG container (soundfile's subtype names).
OGG_CODECS: tuple[str, ...] = ("VORBIS", "OPUS")
#: Sample formats accepted inside WAV (and WAVEX), soundfile's subtype names: PCM, float and G.711.
#: ADPCM (IMA, MS, NMS), GSM 6.10, G.721 and the rest are refused before a sample is decoded: rare
#: codecs, each a decoder of its own in libsndfile that no client of this service needs.
WAV_SUBTYPES: tuple[str, ...] = ("PCM_16", "PCM_24", "PCM_32", "PCM_U8", "FLOAT", "DOUBLE", "ULAW", "ALAW")
#: The same by the WAV header's format tag (``fmt `` chunk): PCM, IEEE float, A-law, µ-law, and
#: WAVE_FORMAT_EXTENSIBLE (whose sub-format libsndfile's subtype then names).
_WAV_FORMAT_TAGS: frozenset[int] = frozenset({wav.WAVE_FORMAT_PCM, 0x0003, 0x0006, 0x0007, wav.WAVE_FORMAT_EXTENSIBLE})
#: Names (soundfile's) of refused tags, for the message; others are named by their number.
_WAV_TAG_NAMES: dict[int, str] = {
    0x0002: "MS_ADPCM",
    0x0011: "IMA_ADPCM",
    0x0031: "GSM610",
    0x0038: "NMS_ADPCM",
    0x0040: "G721_32",
    0x0055: "MPEG_LAYER_III",
}
_WAV_HINT = "send WAV with PCM (8, 16, 24 or 32 bit), float, µ-law or A-law samples, or FLAC, OGG or MP3"

_CONTAINER_HINT = "send WAV, FLAC, OGG or MP3, or a raw encoding with its sample rate (or WebM with Opus audio)"
_FORMATS_HINT = (
    "send WAV, FLAC, OGG (Vorbis or Opus) or MP3, or a raw encoding with its sample rate "
    "(or WebM with Opus or Vorbis audio)"
)
#: The EBML magic that starts every WebM/Matroska file.
EBML_MAGIC = b"\x1a\x45\xdf\xa3"
#: libsndfile's "length unknown" (a FLAC without a sample count, a WAV from a pipe).
_SF_COUNT_MAX = 2**63 - 1
#: Samples (frames x channels) decoded per read: 512 KiB of float32, whatever the channel count.
_BLOCK_SAMPLES = 1 << 17


def _mulaw_table() -> np.ndarray:
    """ITU-T G.711 µ-law expansion of all 256 codes to 16-bit linear values, scaled to [-1, 1].

    Same arithmetic as the reference ``ulaw2linear`` (Sun/CCITT g711.c): codes are stored
    complemented, a 3-bit segment and a 4-bit mantissa, bias 0x84.
    """
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    linear = np.where(u & 0x80, 0x84 - t, t - 0x84)
    return pcm16_to_float(linear)


def _alaw_table() -> np.ndarray:
    """ITU-T G.711 A-law expansion of all 256 codes to 16-bit linear values, scaled to [-1, 1].

    Same arithmetic as the reference ``alaw2linear``: codes are stored XOR 0x55, a 3-bit segment
    and a 4-bit mantissa; segment 0 is linear.
    """
    a = np.arange(256, dtype=np.int32) ^ 0x55
    mantissa = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, mantissa + 8, (mantissa + 0x108) << np.maximum(seg - 1, 0))
    linear = np.where(a & 0x80, t, -t)
    return pcm16_to_float(linear)


#: Lookup tables indexed by the encoded byte (no ``audioop``: it is gone in Python 3.13).
MULAW_TABLE: np.ndarray = _mulaw_table()
ALAW_TABLE: np.ndarray = _alaw_table()


def check_raw_format(fmt: AudioFormat, *, allow_container: bool = True) -> None:
    """Raise ``InvalidInput`` unless ``fmt`` describes audio this service can decode.

    Streams pass ``allow_container=False``: a container cannot be decoded chunk by chunk, so a
    stream must use a raw encoding with an explicit sample rate. For CONTAINER the rate and the
    channel count come from the bytes, so ``fmt.sample_rate_hz`` and ``fmt.channels`` are not checked.
    """
    try:
        encoding = AudioEncoding(fmt.encoding)
    except ValueError:
        allowed = ", ".join(e.value for e in AudioEncoding)
        raise InvalidInput(f"unknown audio encoding {fmt.encoding!r}: use one of {allowed}") from None
    if encoding is AudioEncoding.CONTAINER:
        if not allow_container:
            raise InvalidInput(
                "audio encoding CONTAINER is not accepted here: streams take raw encodings "
                "(LINEAR16, FLOAT32, MULAW or ALAW, with sample_rate_hz and channels set) or OPUS packets"
            )
        return
    if encoding is AudioEncoding.OPUS:
        raise InvalidInput(
            "audio encoding OPUS (one packet per message) is for StreamingTranslate: send an Ogg/Opus or "
            "WebM/Opus file as CONTAINER"
        )
    if not MIN_SAMPLE_RATE_HZ <= fmt.sample_rate_hz <= MAX_SAMPLE_RATE_HZ:
        raise InvalidInput(
            f"sample rate {fmt.sample_rate_hz} Hz is not supported: set sample_rate_hz between "
            f"{MIN_SAMPLE_RATE_HZ} and {MAX_SAMPLE_RATE_HZ} Hz for {encoding.value} audio"
        )
    if fmt.channels not in (1, 2):
        raise InvalidInput(f"{fmt.channels} channels are not supported: send mono (1) or interleaved stereo (2) audio")


def check_stream_format(fmt: AudioFormat) -> None:
    """Raise ``InvalidInput`` unless a stream may send ``fmt``: a raw encoding, or OPUS packets on
    a 48 kHz timeline (Opus's RTP clock, whatever rate the sender encoded at)."""
    if fmt.encoding == AudioEncoding.OPUS:
        if fmt.sample_rate_hz != OPUS_RATE:
            raise InvalidInput(
                f"sample rate {fmt.sample_rate_hz} Hz is not supported for OPUS: its timeline runs at "
                f"{OPUS_RATE} Hz; set sample_rate_hz {OPUS_RATE} (or 0)"
            )
        if fmt.channels not in (1, 2):
            raise InvalidInput(f"{fmt.channels} channels are not supported: Opus packets carry 1 or 2 channels")
        return
    check_raw_format(fmt, allow_container=False)


def decode_raw(data: bytes, fmt: AudioFormat, *, allow_empty: bool = False, channel: int | None = None) -> np.ndarray:
    """Decode little-endian interleaved raw audio to float32 mono in ``[-1, 1]``.

    Channels are averaged (or only ``channel``'s is kept, 0-based). FLOAT32 input beyond ``[-1, 1]``
    is clipped (as a DAC would) so every
    consumer can rely on the range; NaN or Inf is rejected because it would poison the VAD state
    and the model. ``allow_empty`` lets a stream accept an empty chunk as a no-op.
    """
    check_raw_format(fmt, allow_container=False)
    encoding = AudioEncoding(fmt.encoding)
    if channel is not None and channel >= fmt.channels:
        raise InvalidInput(no_channel(fmt.channels, channel))
    if not data:
        if allow_empty:
            return np.zeros(0, dtype=np.float32)
        raise InvalidInput(f"audio is empty: send at least one frame of {encoding.value} audio")
    width = SAMPLE_WIDTH[encoding]
    frame_bytes = width * fmt.channels
    if len(data) % frame_bytes:
        raise InvalidInput(
            f"audio of {len(data)} bytes is not a whole number of frames: {encoding.value} with "
            f"{fmt.channels} channel(s) takes {frame_bytes} bytes per frame ({width} bytes per sample "
            f"x {fmt.channels} channels); send only complete frames"
        )
    if encoding is AudioEncoding.LINEAR16:
        samples = pcm16_to_float(np.frombuffer(data, dtype="<i2"))  # one float32 copy of the clip
    elif encoding is AudioEncoding.FLOAT32:
        samples = np.frombuffer(data, dtype="<f4").astype(np.float32)
        bad = np.flatnonzero(~np.isfinite(samples))
        if bad.size:
            index = int(bad[0])
            raise InvalidInput(
                f"FLOAT32 audio holds a non-finite value ({samples[index]}) at sample index {index} "
                f"(frame {index // fmt.channels}): send finite values in [-1, 1]"
            )
        np.clip(samples, -1.0, 1.0, out=samples)
    elif encoding is AudioEncoding.MULAW:
        samples = MULAW_TABLE[np.frombuffer(data, dtype=np.uint8)]
    else:  # ALAW (check_raw_format has excluded everything else)
        samples = ALAW_TABLE[np.frombuffer(data, dtype=np.uint8)]
    return _downmix(samples.reshape(-1, fmt.channels), channel=channel)


def decode_container(
    data: bytes, *, max_seconds: float | None = None, channel: int | None = None
) -> tuple[np.ndarray, int]:
    """Decode a WAV/FLAC/OGG/MP3/WebM file held in memory; returns (mono float32 in [-1, 1], rate):
    its channels averaged, or only ``channel``'s (0-based).

    Validate before you allocate: the format and the sample rate come from the header, and so does
    the length, which is checked against ``max_seconds`` before a sample is decoded. Headers can
    lie or leave the length unknown (a streamed FLAC has no sample count), so the audio is then
    decoded forward in blocks of at most ``_BLOCK_SAMPLES`` samples, each checked, clipped and
    downmixed at once, and decoding stops as soon as more than ``max_seconds`` has come out. Peak
    memory is the mono result (at most the limit) plus one block, whatever the file claims.

    Bytes that start with the EBML magic (WebM/Matroska; libsndfile cannot read them) are decoded
    by PyAV with the same checks (``opus.decode_webm``: Opus or Vorbis audio only). PyAV is
    imported on the first such file, so the raw and libsndfile paths never load FFmpeg.
    """
    check_max_seconds(max_seconds)
    if not data.startswith(EBML_MAGIC) and sniff_container(data) is None:
        # libsndfile would parse some twenty formats' headers to find out: none of them sees this
        raise InvalidInput(f"the audio is not a WAV, FLAC, OGG, MP3 or WebM file (by its first bytes): {_FORMATS_HINT}")
    if data[:4] == EBML_MAGIC:
        from translate_svc.audio.opus import decode_webm  # on first use: the other paths never load PyAV

        return decode_webm(data, max_seconds=max_seconds, channel=channel)
    _check_wav_format_tag(data)  # before libsndfile sets up a codec for it
    try:
        with _ForwardReader(io.BytesIO(data)) as f:
            return _read_clip(f, max_seconds, channel)
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
        reason = getattr(exc, "error_string", None) or "the data is not an audio file soundfile can read"
        raise InvalidInput(f"could not decode the audio container: {reason[:120]}; {_CONTAINER_HINT}") from None


def _check_wav_format_tag(data: bytes) -> None:
    """Refuse a WAV whose ``fmt `` chunk names a codec outside ``WAV_SUBTYPES``, by its header
    alone (the chunks before ``fmt `` are skipped by their sizes, within the first 64 KiB)."""
    if sniff_container(data) != "WAV":
        return
    tag = wav.format_tag(data, end=64 * 1024)
    if tag is not None and tag not in _WAV_FORMAT_TAGS:
        name = _WAV_TAG_NAMES.get(tag, "another codec's")
        raise InvalidInput(f"WAV audio with {name} samples (format tag 0x{tag:04X}) is not accepted: {_WAV_HINT}")


def sniff_container(data: bytes) -> str | None:
    """The accepted container ``data`` starts like (its magic bytes), or None: WAV (RIFF/WAVE),
    FLAC, OGG, MP3 (an ID3 tag or an MPEG audio frame sync)."""
    head = data[:12]
    if wav.is_wav(head):
        return "WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "OGG"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "MP3"
    return None


def decode_audio(
    data: bytes, fmt: AudioFormat, *, max_seconds: float | None = None, channel: int | None = None
) -> tuple[np.ndarray, int]:
    """Decode a whole clip in any accepted format; returns (mono float32 in [-1, 1], sample rate):
    its channels averaged, or with ``channel`` (0-based) that channel alone (``InvalidInput`` where
    the clip has no such channel).

    With ``max_seconds`` a clip longer than that is refused (``InvalidInput``) before it is decoded:
    raw audio by its byte count, a container by its header and then while decoding.
    """
    check_max_seconds(max_seconds)
    check_raw_format(fmt, allow_container=True)
    if not data:
        raise InvalidInput("audio is empty: send the audio bytes (a container file or raw samples)")
    encoding = AudioEncoding(fmt.encoding)
    if encoding is AudioEncoding.CONTAINER:
        return decode_container(data, max_seconds=max_seconds, channel=channel)
    if max_seconds is not None:
        frames = len(data) // (SAMPLE_WIDTH[encoding] * fmt.channels)
        if frames > max_frames(max_seconds, fmt.sample_rate_hz):
            raise InvalidInput(too_long(max_seconds, seconds=frames / fmt.sample_rate_hz))
    return decode_raw(data, fmt, channel=channel), fmt.sample_rate_hz


class _ForwardReader(sf.SoundFile):  # type: ignore[misc]  # soundfile ships no py.typed
    """A ``SoundFile`` read strictly forward, one block after another.

    soundfile calls ``tell`` and ``seek`` around every read of a seekable file to track its
    position; a FLAC whose STREAMINFO gives no length (total samples 0, as encoders writing to a
    pipe leave it) fails that seek, and every other format pays a seek per block. Nothing here
    seeks, so the file is read as the stream it is.
    """

    def seekable(self) -> bool:
        return False


def _read_clip(f: sf.SoundFile, max_seconds: float | None, channel: int | None = None) -> tuple[np.ndarray, int]:
    """Check ``f``'s header, then decode it block by block (see ``decode_container``)."""
    if f.format not in CONTAINER_FORMATS or (f.format == "OGG" and f.subtype not in OGG_CODECS):
        found = f"OGG with {f.subtype} audio" if f.format == "OGG" else f.format
        raise InvalidInput(f"audio container format {found} is not accepted: {_FORMATS_HINT}")
    if f.format in ("WAV", "WAVEX") and f.subtype not in WAV_SUBTYPES:
        raise InvalidInput(f"WAV audio with {str(f.subtype)[:40]} samples is not accepted: {_WAV_HINT}")
    rate, channels = int(f.samplerate), int(f.channels)
    check_container_rate(rate)
    if channels < 1:
        raise InvalidInput(f"audio container declares no channels; {_CONTAINER_HINT}")
    if channels > MAX_CONTAINER_CHANNELS:
        raise InvalidInput(
            f"the audio file has {channels} channels; at most {MAX_CONTAINER_CHANNELS} are accepted: "
            "downmix it to mono or stereo first"
        )
    if channel is not None and channel >= channels:
        raise InvalidInput(no_channel(channels, channel))
    limit_s = math.inf if max_seconds is None else max_seconds
    limit_frames = max_frames(limit_s, rate)
    # libsndfile reports an unknown length as SF_COUNT_MAX. It never returns more frames than a
    # length it knows, but that is its behaviour, not its contract: the loop checks regardless.
    header_frames = int(f.frames) if 0 <= f.frames < _SF_COUNT_MAX else None
    if header_frames is not None and header_frames > limit_frames:
        raise InvalidInput(too_long(limit_s, seconds=header_frames / rate))

    # The mono result: one array of the header's length (capped, for a header that overstates
    # and no limit), and separate pieces only for frames beyond it (a header that understates).
    out = np.empty(min(header_frames or 0, PREALLOCATE_MAX_FRAMES), dtype=np.float32)
    extra: list[np.ndarray] = []
    block = np.empty((max(1, _BLOCK_SAMPLES // channels), channels), dtype=np.float32)
    done = 0
    while True:
        # Each block is checked, clipped and downmixed at once; never decode more than one frame
        # past the limit. A short read may come before the end: only an empty one is the end.
        got = f.read(out=block[: min(len(block), limit_frames + 1 - done)])
        n = len(got)
        if done + n > limit_frames:
            raise InvalidInput(too_long(limit_s))
        if n == 0:
            break
        finite = np.isfinite(got).all(axis=1)
        if not finite.all():
            row = int(np.argmin(finite))
            value = got[row][~np.isfinite(got[row])][0]
            raise InvalidInput(
                f"audio container holds a non-finite value ({value}) at frame {done + row}: "
                "send finite samples in [-1, 1]"
            )
        np.clip(got, -1.0, 1.0, out=got)
        if not extra and done + n <= len(out):
            _downmix(got, out=out[done : done + n], channel=channel)
        else:
            extra.append(_downmix(got, out=np.empty(n, dtype=np.float32), channel=channel))
        done += n
    if done == 0:
        raise InvalidInput(f"audio container holds no audio frames; {_CONTAINER_HINT} with at least one frame")
    if extra:
        in_out = done - sum(len(piece) for piece in extra)
        return np.concatenate([out[:in_out], *extra]), rate
    return (out if done == len(out) else out[:done].copy()), rate


def _downmix(frames: np.ndarray, out: np.ndarray | None = None, channel: int | None = None) -> np.ndarray:
    """(frames, channels) -> contiguous float32 (frames,), averaging the channels, or ``channel``'s
    alone (into ``out``)."""
    if channel is not None or frames.shape[1] == 1:
        column = frames[:, channel or 0]
        if out is not None:
            out[:] = column
            return out
        return np.ascontiguousarray(column, dtype=np.float32)
    if out is not None:
        frames.mean(axis=1, dtype=np.float32, out=out)
        return out
    mono: np.ndarray = frames.mean(axis=1, dtype=np.float32)
    return mono
