"""One recording's files as its writer thread writes them: sealed JSON lines and sealed Ogg Opus.

``Hashed`` counts and hashes the plaintext on its way into a ``SealedWriter`` (the manifest's
SHA-256 is of what an authorised caller gets back). ``OggOpusFile`` encodes mono float32 at any
rate as Ogg Opus (PyAV, FFmpeg's libopus: 48 kHz, 20 ms packets; the last packet is cut to the
audio's end, so a file decodes to the length it was given). Writer thread only.
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
from typing import BinaryIO

import av
import numpy as np
import soxr
from av.audio.frame import AudioFrame

from translate_svc.audio.resample import StreamResampler
from translate_svc.recordings.sealed import SealedWriter

OPUS_RATE = 48_000
_FRAME = 960  # 20 ms at 48 kHz
_BITRATE = 32_000


class Hashed:
    """A sealed file and the SHA-256 and length of its plaintext."""

    def __init__(self, out: BinaryIO, data_key: bytes, name: str) -> None:
        self.name = name
        self._sealed = SealedWriter(out, data_key, name)
        self._hash = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self._sealed.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self._sealed.flush()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        self._sealed.close()
        self.closed = True

    def abandon(self) -> None:
        self._sealed.abandon()


class OggOpusFile:
    """Mono float32 audio in, Ogg Opus out, into ``out``. ``push`` a continuous stream at ``rate``
    (``continuous``: one resampler keeps its state; else each push is resampled on its own, as a
    segment's speech is)."""

    def __init__(self, out: Hashed, rate: int, *, continuous: bool) -> None:
        self.out = out
        self._container = av.open(out, "w", format="ogg")
        stream = self._container.add_stream("libopus", rate=OPUS_RATE)
        stream.layout = "mono"
        stream.bit_rate = _BITRATE
        self._stream = stream
        self._rate = rate
        self._resampler = StreamResampler(rate, OPUS_RATE) if continuous and rate != OPUS_RATE else None
        self._held = np.zeros(0, np.float32)
        self._pts = 0
        #: 48 kHz samples pushed so far
        self.samples = 0

    def push(self, samples: np.ndarray, rate: int | None = None) -> None:
        rate = rate or self._rate
        x = np.asarray(samples, dtype=np.float32)
        if self._resampler is not None:
            x = self._resampler.process(x)
        elif rate != OPUS_RATE:
            x = soxr.resample(x, rate, OPUS_RATE).astype(np.float32, copy=False)
        self._frames(x)

    def _frames(self, x: np.ndarray) -> None:
        self.samples += len(x)
        held = np.concatenate([self._held, x]) if len(self._held) else x
        whole = len(held) - len(held) % _FRAME
        for i in range(0, whole, _FRAME):
            self._encode(held[i : i + _FRAME])
        self._held = held[whole:].copy()

    def _encode(self, chunk: np.ndarray | None) -> None:
        frame = None
        if chunk is not None:
            frame = AudioFrame.from_ndarray(np.ascontiguousarray(chunk[None, :]), format="flt", layout="mono")
            frame.sample_rate = OPUS_RATE
            frame.pts = self._pts
            frame.time_base = Fraction(1, OPUS_RATE)
            self._pts += len(chunk)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        """Encode what is held (the last packet cut to the audio's end), end the Ogg stream, and
        seal the file."""
        if self._resampler is not None:
            self._frames(self._resampler.process(np.zeros(0, np.float32), last=True))
        if len(self._held):
            self._encode(self._held)
            self._held = np.zeros(0, np.float32)
        self._encode(None)
        self._container.close()
        self.out.close()

    def abandon(self) -> None:
        try:
            self._container.close()
        except Exception:  # the write under it failed already
            pass
        self.out.abandon()
