"""Opus in and out of the service: RTP-style packets from a call, speech for a call, WebM files.

Three jobs, none of them hand-written codec or framing code:

- :class:`OpusStreamDecoder` decodes a live stream's raw Opus packets (RFC 6716, as carried in RTP
  payloads: no Ogg framing, no extradata), one packet per audio message, to float32 mono at 48 kHz
  or straight at a lower rate libopus decodes to (a live stream's: the model's 16 kHz), with
  libopus itself through ``opuslib-next``: PyAV (FFmpeg) cannot run libopus's packet loss
  concealment or in-band FEC (an empty packet means "drain" to FFmpeg), and a stream that loses
  packets measured better concealed than filled with silence (docs/performance.md, "Lost Opus
  packets"). The system's libopus is needed (Debian/Ubuntu: ``libopus0``).
- :func:`encode_opus` encodes speech for publishing into a call: 48 kHz mono, 20 ms packets, with
  the encoder's delay (``pre_skip``) and the speech's length alongside, through PyAV (libopus).
  Measured on the development machine (AMD EPYC, 2 cores): about 27 ms for 3 s of speech at 16 kHz
  (resampling to 48 kHz takes 0.6 ms of it), about 110x real time; run it off the event loop for
  long speech.
- :func:`decode_webm` decodes a WebM/Matroska file (what browsers' MediaRecorder writes: WebM/Opus,
  which libsndfile cannot read) for the unary Translate, through PyAV; ``codec.decode_container``
  routes files that start with the EBML magic here. Ogg/Opus files stay on libsndfile's path in
  ``codec``.

This module does not import ``codec`` (``codec`` imports it on the first WebM file): what both
accept and how they refuse it is in ``audio/limits.py``.

Thread safety: :func:`encode_opus` and :func:`decode_webm` are pure and thread-safe (a fresh codec
context or container per call). :class:`OpusStreamDecoder` holds one stream's decoder state and is
not thread-safe: one instance per stream, used by one caller at a time.
"""

from __future__ import annotations

import ctypes
import io
import logging
import math
import weakref
from fractions import Fraction

import av
import av.error
import numpy as np
import soxr
from av.audio.frame import AudioFrame

from translate_svc.audio.limits import (
    MAX_CONTAINER_CHANNELS,
    MAX_SAMPLE_RATE_HZ,
    MIN_SAMPLE_RATE_HZ,
    PREALLOCATE_MAX_FRAMES,
    check_container_rate,
    check_max_seconds,
    max_frames,
    no_channel,
    too_long,
)
from translate_svc.audio.limits import OPUS_RATE as OPUS_RATE  # re-exported: callers import it from here
from translate_svc.errors import InvalidInput
from translate_svc.types import OpusSpeech
from translate_svc.wire.pcm import pcm16_to_float

try:
    from opuslib_next.api import ctl as _ctl
    from opuslib_next.api import decoder as _opus
except Exception as e:  # opuslib-next raises a bare Exception when it finds no libopus
    raise ImportError(
        f"the Opus stream decoder needs the system's libopus ({e}): install it (Debian/Ubuntu: libopus0)"
    ) from e

logger = logging.getLogger(__name__)

#: Samples of one 20 ms packet at 48 kHz: the packet size :func:`encode_opus` writes.
OPUS_FRAME_SAMPLES = 960

#: A decoded packet's most samples (120 ms, Opus's longest packet): the decoder's buffer.
_MAX_PACKET_SAMPLES = 5760
#: The longest gap ``OpusStreamDecoder.conceal`` fills (120 ms): longer gaps are a muted sender or
#: DTX, not loss, and the session fills them with silence (concealment would fade to it anyway).
MAX_CONCEAL_SAMPLES = _MAX_PACKET_SAMPLES
#: Opus's frame step (2.5 ms at 48 kHz): a concealed stretch is a whole number of them.
OPUS_PLC_STEP = 120
#: The rates libopus decodes to (RFC 6716, 2: any packet, whatever its coded band, at any of them).
OPUS_DECODE_RATES = (8000, 12000, 16000, 24000, 48000)

#: Codecs accepted inside WebM/Matroska (FFmpeg codec names; the decoder FFmpeg picks for them).
WEBM_CODECS: tuple[str, ...] = ("opus", "vorbis")
_WEBM_HINT = "send WebM with Opus or Vorbis audio, or WAV/FLAC/OGG/MP3"
#: A container's stated duration counts whole packets, the encoder's pre-skip included (a 3.000 s
#: WebM/Opus states 3.008 s), so the refusal before decoding allows the longest Opus packet on top;
#: the decoded length is then checked exactly.
_DURATION_SLACK_S = 0.12
#: Opus encoder bitrate range (libopus accepts 6 to 510 kbit/s).
_MIN_BITRATE, _MAX_BITRATE = 6_000, 510_000


def _bad_packet(size: int) -> str:
    return (
        f"audio message of {size} bytes is not a decodable Opus packet: "
        "send exactly one Opus packet (RFC 6716) per audio message"
    )


class OpusStreamDecoder:
    """Decodes one stream's Opus packets, one at a time, to float32 mono at ``rate`` (48 kHz by
    default), and conceals the packets that never came.

    Why a class: Opus frames depend on the previous ones (prediction, overlap), so one libopus
    decoder state lives for the whole stream. ``channels`` is the layout the client says it sends
    (1 or 2); the decoder always runs in mono, which libopus does as the average of a stereo
    packet's channels. Opus packets carry their own mono/stereo flag, so a mismatch between
    ``channels`` and the packets still decodes.

    ``rate``: one of ``OPUS_DECODE_RATES``. libopus decodes any packet to any of them (it
    band-limits and resamples inside the decoder), so a stream whose audio goes to the model at
    16 kHz decodes there directly: cheaper than 48 kHz (45.9 against 57.5 µs a 20 ms packet here)
    and with no resampler after it (12.7 µs more a packet; docs/performance.md, "A live Opus stream
    decoded straight at 16 kHz").

    ``decode`` returns exactly the packet's duration (any legal Opus duration, 2.5 to 120 ms). A
    packet libopus refuses raises ``InvalidInput``; the state is reset, so later good packets still
    decode. ``conceal`` stands in for lost packets: libopus's packet loss concealment, and for the
    last lost frame before a received packet, that packet's in-band FEC copy when it carries one.

    libopus is reached through ``opuslib-next`` (ctypes over the system's libopus: PyAV cannot
    run concealment or FEC). Not thread-safe: one instance per stream, used by one caller at a time.
    """

    __slots__ = ("__weakref__", "_buf", "_per", "_ptr", "_state", "rate")

    def __init__(self, channels: int, rate: int = OPUS_RATE) -> None:
        if channels not in (1, 2):
            raise InvalidInput(f"{channels} channels are not supported for Opus: send mono (1) or stereo (2)")
        if rate not in OPUS_DECODE_RATES:
            raise ValueError(f"libopus decodes to {', '.join(map(str, OPUS_DECODE_RATES))} Hz, not {rate}")
        self.rate = rate
        #: samples of the 48 kHz clock (Opus's packet durations, RTP timestamps) per decoded sample
        self._per = OPUS_RATE // rate
        self._state = _opus.create_state(rate, 1)
        weakref.finalize(self, _opus.destroy, self._state)
        self._buf = np.empty(_MAX_PACKET_SAMPLES // self._per, np.float32)
        self._ptr = self._buf.ctypes.data_as(ctypes.POINTER(ctypes.c_float))

    def decode(self, packet: bytes) -> np.ndarray:
        """Decode one Opus packet; returns its audio as float32 mono in ``[-1, 1]`` at ``rate``.

        An empty packet is refused: to libopus it would mean "conceal a lost packet"."""
        if not packet:
            raise InvalidInput(_bad_packet(0))
        return self._run(packet, len(self._buf), fec=False)

    def conceal(self, frames: int, next_packet: bytes | None = None) -> np.ndarray:
        """Audio at ``rate`` for ``frames`` samples of the 48 kHz clock (a multiple of 2.5 ms, at most
        ``MAX_CONCEAL_SAMPLES``) of packets that were lost: libopus's concealment, whose last frame
        libopus recovers from ``next_packet``'s in-band FEC copy when it carries one (the packet
        received after the gap; ``decode`` it afterwards as usual). A ``next_packet`` libopus cannot
        read is ignored here (``decode`` then refuses it)."""
        if frames % OPUS_PLC_STEP or not 0 < frames <= MAX_CONCEAL_SAMPLES:
            raise ValueError(f"frames must be a multiple of {OPUS_PLC_STEP} up to {MAX_CONCEAL_SAMPLES}, not {frames}")
        if next_packet:
            try:
                return self._run(next_packet, frames // self._per, fec=True)
            except InvalidInput:
                pass
        return self._run(None, frames // self._per, fec=False)

    def _run(self, packet: bytes | None, frames: int, *, fec: bool) -> np.ndarray:
        n = _opus.libopus_decode_float(self._state, packet, len(packet or b""), self._ptr, frames, int(fec))
        if n < 0:
            _opus.decoder_ctl(self._state, _ctl.reset_state)  # start afresh: later packets still decode
            raise InvalidInput(_bad_packet(len(packet or b"")))
        return self._buf[:n].copy()


def encode_opus(wave: np.ndarray, rate: int, *, bitrate: int = 32_000) -> OpusSpeech:
    """Encode float32 mono speech at ``rate`` Hz to 20 ms Opus packets at 48 kHz (see :class:`OpusSpeech`).

    The wave is resampled to 48 kHz with soxr when needed and clipped to ``[-1, 1]``; libopus runs
    in its VoIP mode (tuned for speech) with 20 ms frames, the usual RTP packet time. The encoder
    is flushed, so the speech's tail is in the packets, and packets past the speech are dropped.
    An empty wave gives no packets (nothing to play). Thread-safe: a fresh encoder per call.
    """
    if not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
        raise ValueError(f"rate must be {MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ} Hz, not {rate}")
    if not _MIN_BITRATE <= bitrate <= _MAX_BITRATE:
        raise ValueError(f"bitrate must be {_MIN_BITRATE}..{_MAX_BITRATE} bit/s, not {bitrate}")
    if wave.ndim != 1:
        raise ValueError(f"wave must be 1-D (mono), not of shape {wave.shape}")
    x = np.asarray(wave, dtype=np.float32)
    if rate != OPUS_RATE and len(x):
        x = soxr.resample(x, rate, OPUS_RATE).astype(np.float32, copy=False)
    x = np.clip(x, -1.0, 1.0)  # a fresh array: the caller's wave is not touched
    n = len(x)

    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = OPUS_RATE
    enc.layout = "mono"
    enc.format = "flt"
    enc.bit_rate = bitrate
    enc.time_base = Fraction(1, OPUS_RATE)
    enc.options = {"application": "voip", "frame_duration": "20"}
    enc.open()
    head = bytes(enc.extradata or b"")
    if len(head) < 12 or head[:8] != b"OpusHead":
        raise RuntimeError(f"libopus gave no OpusHead extradata ({len(head)} bytes)")
    pre_skip = int.from_bytes(head[10:12], "little")
    if n == 0:
        return OpusSpeech(packets=(), pre_skip=pre_skip, num_samples=0)

    needed = math.ceil((pre_skip + n) / OPUS_FRAME_SAMPLES)
    padded = np.zeros(math.ceil(n / OPUS_FRAME_SAMPLES) * OPUS_FRAME_SAMPLES, dtype=np.float32)
    padded[:n] = x
    packets: list[bytes] = []
    for start in range(0, len(padded), OPUS_FRAME_SAMPLES):
        frame = AudioFrame.from_ndarray(padded[None, start : start + OPUS_FRAME_SAMPLES], format="flt", layout="mono")
        frame.sample_rate = OPUS_RATE
        frame.pts = start
        packets.extend(bytes(p) for p in enc.encode(frame))
    packets.extend(bytes(p) for p in enc.encode(None))  # flush: the last pre_skip samples
    if len(packets) < needed:
        raise RuntimeError(f"libopus gave {len(packets)} packets for {n} samples, {needed} needed")
    return OpusSpeech(packets=tuple(packets[:needed]), pre_skip=pre_skip, num_samples=n)


#: FFmpeg opens untrusted Matroska narrowly: only these decoders may ever be opened (while probing
#: too: another track, video above all, is never decoded), and probing reads little.
_NARROW = {
    "codec_whitelist": "opus,libopus,vorbis,libvorbis,pcm_s16le,pcm_f32le",
    "probesize": str(256 * 1024),
    "fpsprobesize": "0",
}


def decode_webm(data: bytes, *, max_seconds: float | None, channel: int | None = None) -> tuple[np.ndarray, int]:
    """Decode a WebM/Matroska file held in memory; returns (mono float32 in [-1, 1], sample rate):
    its channels averaged, or only ``channel``'s (0-based; ``InvalidInput`` if it has none such).

    Only the first audio stream is read, and only Opus or Vorbis (what browsers record). Bombs are
    refused early: a stated duration beyond ``max_seconds`` (plus one packet of slack) is refused
    before decoding, and since the duration can lie or be absent (MediaRecorder's live WebM has
    none), decoding goes forward frame by frame and stops as soon as more than ``max_seconds`` came
    out. Memory: the result is allocated once from the stated duration (capped at the limit), plus
    one frame; frames beyond a stated duration, or all of them when there is none, are kept as
    pieces and joined at the end (then briefly twice the result, which is at most the limit).
    Corrupt data raises ``InvalidInput``, never a raw FFmpeg error. Thread-safe.
    """
    check_max_seconds(max_seconds)
    try:
        with av.open(
            io.BytesIO(data), "r", format="matroska", metadata_errors="ignore", container_options=_NARROW
        ) as container:
            streams = container.streams.audio
            if not streams:
                raise InvalidInput(f"the WebM/Matroska file holds no audio stream; {_WEBM_HINT}")
            stream = streams[0]
            ctx = stream.codec_context  # None when FFmpeg has no decoder for the track's codec
            codec = "unknown" if ctx is None else ctx.codec.name
            if codec not in WEBM_CODECS and codec not in ("libopus", "libvorbis"):
                raise InvalidInput(f"WebM/Matroska audio codec {codec[:24]} is not accepted: {_WEBM_HINT}")
            rate = int(ctx.sample_rate)
            check_container_rate(rate)
            if ctx.channels > MAX_CONTAINER_CHANNELS:
                raise InvalidInput(
                    f"the WebM audio has {ctx.channels} channels; at most {MAX_CONTAINER_CHANNELS} are accepted: "
                    "downmix it to mono or stereo first"
                )
            if channel is not None and channel >= ctx.channels:
                raise InvalidInput(no_channel(ctx.channels, channel))
            limit_s = math.inf if max_seconds is None else max_seconds
            limit_frames = max_frames(limit_s, rate)
            stated_s = _stated_seconds(container.duration, stream.duration, stream.time_base)
            if stated_s is not None and stated_s > limit_s + _DURATION_SLACK_S:
                raise InvalidInput(too_long(limit_s, seconds=stated_s))
            stated_frames = 0 if stated_s is None else math.floor(stated_s * rate)
            out = np.empty(min(stated_frames, limit_frames, PREALLOCATE_MAX_FRAMES), dtype=np.float32)
            extra: list[np.ndarray] = []
            done = 0
            for frame in container.decode(stream):
                mono = _mono(frame, channel)
                n = len(mono)
                if done + n > limit_frames:
                    raise InvalidInput(too_long(limit_s))
                if not extra and done + n <= len(out):
                    out[done : done + n] = mono
                else:
                    extra.append(mono)
                done += n
    except (av.error.FFmpegError, ValueError, OSError, UnicodeDecodeError) as exc:
        reason = str(getattr(exc, "strerror", None) or "the data is not a WebM/Matroska file FFmpeg can read")
        raise InvalidInput(f"could not decode the WebM audio: {reason[:120]}; {_WEBM_HINT}") from None
    if done == 0:
        raise InvalidInput(f"the WebM/Matroska file holds no audio frames; {_WEBM_HINT}")
    if extra:
        in_out = done - sum(len(piece) for piece in extra)
        return np.concatenate([out[:in_out], *extra]), rate
    if done < len(out):
        out.resize(done, refcheck=False)  # shrinks in place (no copy): ``out`` has no views left
    return out, rate


def _stated_seconds(container_us: int | None, stream_duration: int | None, time_base: Fraction | None) -> float | None:
    """The duration a container states (its own, else its stream's), or None when it states none."""
    if container_us is not None and container_us > 0:
        return container_us / 1_000_000  # AV_TIME_BASE units
    if stream_duration is not None and stream_duration > 0 and time_base is not None:
        return float(stream_duration * time_base)
    return None


def _mono(frame: AudioFrame, channel: int | None = None) -> np.ndarray:
    """One decoded frame -> a fresh contiguous float32 mono array in ``[-1, 1]`` (channels averaged,
    or only ``channel``'s).

    Float frames (what the Opus and Vorbis decoders give) are read straight from their planes: this
    runs once per 20 ms packet of every stream. Non-finite samples (a corrupt Vorbis stream) are
    refused: they would poison the VAD state and the model.
    """
    n, channels, fmt = frame.samples, frame.layout.nb_channels, frame.format
    mono: np.ndarray
    if channel is not None and channel >= channels:
        raise InvalidInput(no_channel(channels, channel))
    if fmt.name == "flt":  # packed: one plane of samples x channels
        a = np.frombuffer(memoryview(frame.planes[0]), dtype=np.float32, count=n * channels)
        if channel is not None:
            mono = np.ascontiguousarray(a.reshape(n, channels)[:, channel])
        else:
            mono = a.copy() if channels == 1 else a.reshape(n, channels).mean(axis=1, dtype=np.float32)
    elif fmt.name == "fltp":  # planar: one plane per channel
        planes = [np.frombuffer(memoryview(p), dtype=np.float32, count=n) for p in frame.planes[:channels]]
        if channel is not None:
            mono = planes[channel].copy()
        else:
            mono = planes[0].copy() if channels == 1 else np.vstack(planes).mean(axis=0, dtype=np.float32)
    else:  # not expected from these decoders; to_ndarray knows every packed/planar layout
        raw: np.ndarray = frame.to_ndarray()
        if raw.dtype == np.int16:
            raw = pcm16_to_float(raw)
        frames = raw.T if fmt.is_planar else raw.reshape(n, channels)
        mono = (
            np.ascontiguousarray(frames[:, channel]) if channel is not None else frames.mean(axis=1, dtype=np.float32)
        )
    if not np.isfinite(mono).all():
        raise InvalidInput("the audio decodes to non-finite samples: the stream is corrupt; send valid audio")
    np.clip(mono, -1.0, 1.0, out=mono)
    return mono
