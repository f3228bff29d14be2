"""G.722 (ITU-T G.722 at 64 kbit/s, RFC 3551 §4.5.2) for a call's RTP, through FFmpeg's
``adpcm_g722`` (PyAV): 16 kHz 16-bit PCM in and out, 160 bytes a 20 ms frame. Its RTP clock runs at
8 kHz (an error of RFC 1890 that RFC 3551 keeps): a 20 ms packet advances the timestamp by 160.

The codec is ADPCM: each direction keeps its predictor's state across packets, so a call has one
``G722Decoder`` for what it hears and one ``G722Encoder`` for what it says. Not thread-safe.
"""

from __future__ import annotations

from typing import Literal

import av
import av.error
import numpy as np

#: PCM samples a second (the wire's real audio) and the RTP clock (RFC 3551 §4.5.2)
RATE = 16000
RTP_CLOCK = 8000


def _context(mode: Literal["r", "w"]) -> av.AudioCodecContext:
    ctx = av.AudioCodecContext.create("g722", mode)
    ctx.sample_rate = RATE
    ctx.layout = "mono"
    if mode == "w":
        ctx.format = "s16"
    return ctx


class G722Decoder:
    """G.722 packets -> 16 kHz 16-bit little-endian PCM (a packet FFmpeg cannot read gives none)."""

    def __init__(self) -> None:
        self._ctx = _context("r")

    def decode(self, payload: bytes) -> bytes:
        out = []
        try:
            for frame in self._ctx.decode(av.Packet(payload)):
                out.append(frame.to_ndarray().reshape(-1).astype("<i2").tobytes())
        except av.error.FFmpegError:
            return b""
        return b"".join(out)


class G722Encoder:
    """16 kHz 16-bit little-endian PCM (whole 20 ms frames: 640 bytes) -> G.722 bytes."""

    def __init__(self) -> None:
        self._ctx = _context("w")

    def encode(self, pcm: bytes) -> bytes:
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], "<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = RATE
        return b"".join(bytes(p) for p in self._ctx.encode(frame))
