"""Opus in a call's RTP (RFC 7587: ``opus/48000/2`` in the SDP, the RTP clock at 48 kHz whatever
the audio's band) for a call whose stream is 16 kHz PCM. What comes in is decoded by libopus
straight to 16 kHz (``audio.opus.OpusStreamDecoder``: mono, a stereo packet averaged; libopus
band-limits and resamples inside its decoder, so each packet gives its whole duration); what we say
is encoded by FFmpeg's libopus (PyAV) from 16 kHz mono, 20 ms a packet, at 32 kbit/s. One
decoder and one encoder per call (Opus frames depend on the ones before). Not thread-safe.
"""

from __future__ import annotations

import av
import numpy as np

from translate_svc.audio.opus import OPUS_RATE, OpusStreamDecoder
from translate_svc.errors import InvalidInput
from translate_svc.wire.pcm import float_to_pcm16

#: the call's PCM rate, and the RTP clock (RFC 7587 §4.1: always 48 kHz)
RATE = 16000
RTP_CLOCK = OPUS_RATE
BITRATE = 32_000


class OpusRtpDecoder:
    """Opus packets -> 16 kHz 16-bit little-endian PCM (a packet libopus refuses gives none)."""

    def __init__(self) -> None:
        self._decoder = OpusStreamDecoder(1, RATE)

    def decode(self, payload: bytes) -> bytes:
        try:
            wave = self._decoder.decode(payload)
        except InvalidInput:
            return b""
        return bytes(float_to_pcm16(wave).astype("<i2").tobytes())


class OpusRtpEncoder:
    """16 kHz 16-bit little-endian PCM (whole 20 ms frames: 640 bytes) -> one Opus packet."""

    def __init__(self) -> None:
        ctx = av.AudioCodecContext.create("libopus", "w")
        ctx.sample_rate = RATE
        ctx.layout = "mono"
        ctx.format = "s16"
        ctx.bit_rate = BITRATE
        self._ctx = ctx

    def encode(self, pcm: bytes) -> bytes:
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], "<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = RATE
        return b"".join(bytes(p) for p in self._ctx.encode(frame))
