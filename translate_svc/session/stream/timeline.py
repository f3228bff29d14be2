"""One stream's clock and decoder: wire bytes -> float32 -> 16 kHz, with gaps and the duration limit.

The timeline counts input samples, filled gaps included; a resumed stream starts at its offset.
Audio is decoded at the format's ``heard_rate``: raw PCM at its own rate, then resampled to 16 kHz;
Opus packets straight at 16 kHz (libopus resamples as it decodes), while the timeline stays on
Opus's 48 kHz clock (three of its samples a decoded one; a gap that is not a multiple of three
still fills the 16 kHz samples it covers, counted from the timeline's start, so none is lost or
doubled). Event loop only (``ingest`` may run on a worker thread while the session awaits it).

Audio costs the server about the same CPU a second whatever carried it (resampling, the VAD), but
some of it comes without bytes: a gap between packet timestamps is filled (up to the idle timeout
in one packet), and an Opus packet of a TOC byte alone decodes to 120 ms of concealment. So a
stream's audio may not run ahead of what pays for it (``pay``): its bytes at
``BYTES_PER_AUDIO_SECOND`` (Opus's lowest bitrate), the wall-clock time since it opened, and
``AHEAD_SLACK_S`` (security finding F5). A live sender never gets near it (its audio is the time that
passed, whatever its DTX gaps or mutes); neither does a sender of real audio faster than real
time (PCM carries 8,000 bytes a second or more, speech Opus 2,000 or more); audio claimed from
nothing, faster than real time, is refused.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import numpy as np

from translate_svc.audio.codec import SAMPLE_WIDTH, decode_raw
from translate_svc.audio.opus import MAX_CONCEAL_SAMPLES, OPUS_PLC_STEP, OpusStreamDecoder
from translate_svc.audio.resample import StreamResampler
from translate_svc.errors import InvalidInput, LimitReached
from translate_svc.settings import LimitsSettings
from translate_svc.types import MODEL_SAMPLE_RATE, AudioEncoding, AudioFormat
from translate_svc.wire.opus_toc import packet_samples

#: the bytes that pay for a second of audio: Opus's lowest bitrate, 6 kbit/s (RFC 6716, 2.1.1)
BYTES_PER_AUDIO_SECOND = 750
#: how far a stream's audio may run ahead of its bytes and the wall clock together (a sender
#: whose first timestamp is a little after the stream opened, a burst after a stall)
AHEAD_SLACK_S = 2.0


class Timeline:
    def __init__(
        self,
        fmt: AudioFormat,
        limits: LimitsSettings,
        offset_ms: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        channel: int | None = None,
    ) -> None:
        """``channel``: raw PCM's one channel heard (0-based), not the channels' mix: a stream of
        separate channels (``session/calls/channels.py``)."""
        self.fmt = fmt
        self._limits = limits
        self._clock = clock
        self._opened = clock()
        #: this call's audio (samples) and the bytes that carried it, as ``pay`` counted them
        self._paid_frames = 0
        self._paid_bytes = 0
        #: the stream's timeline starts this many ms before this call's first sample (a resume)
        self.offset_ms = offset_ms
        #: the rate ``decode`` gives (``AudioFormat.heard_rate``), and timeline samples per such sample
        self.heard_rate = fmt.heard_rate
        self._per = fmt.sample_rate_hz // self.heard_rate
        self._opus = OpusStreamDecoder(fmt.channels, self.heard_rate) if fmt.encoding is AudioEncoding.OPUS else None
        raw = functools.partial(decode_raw, fmt=fmt, channel=channel)
        self._decode = self._opus.decode if self._opus is not None else raw
        self._resampler = StreamResampler(self.heard_rate, MODEL_SAMPLE_RATE)
        #: the timeline's length in input samples (filled gaps included; a resume starts at its offset)
        self.input_frames = round(offset_ms * fmt.sample_rate_hz / 1000)
        #: of it, skipped by packet timestamps (concealed, or filled with silence)
        self.filled_frames = 0
        #: of those, concealed by the Opus decoder
        self.concealed_frames = 0

    @property
    def audio_received_ms(self) -> int:
        return round(self.input_frames * 1000 / self.fmt.sample_rate_hz)

    @property
    def audio_filled_ms(self) -> int:
        return round(self.filled_frames * 1000 / self.fmt.sample_rate_hz)

    @property
    def audio_concealed_ms(self) -> int:
        return round(self.concealed_frames * 1000 / self.fmt.sample_rate_hz)

    def packet_frames(self, data: bytes) -> int | None:
        """The input samples one message holds, without decoding it (Opus: its TOC byte)."""
        if self.fmt.encoding is AudioEncoding.OPUS:
            return packet_samples(data)
        return len(data) // (SAMPLE_WIDTH[self.fmt.encoding] * self.fmt.channels)

    def decode(self, data: bytes) -> np.ndarray:
        """One message's bytes -> mono float32 at ``heard_rate`` (the duration is checked)."""
        samples = self._decode(data)
        self.check_duration(len(samples) * self._per)
        return samples

    def heard(self, frames: int) -> int:
        """Samples at ``heard_rate`` that ``frames`` more timeline samples make (silence to fill)."""
        return (self.input_frames + frames) // self._per - self.input_frames // self._per

    def gap(self, timestamp: int) -> int:
        """Input samples between the timeline's end and ``timestamp`` (checked)."""
        gap = timestamp - self.input_frames
        if gap < 0:
            raise InvalidInput(  # the reorder window drops late packets before they come here
                f"packet timestamp {timestamp} goes back: the stream's audio already reaches sample {self.input_frames}"
            )
        self.check_skip(timestamp)
        return gap

    def check_skip(self, timestamp: int) -> None:
        """Refuse a timestamp further ahead of the timeline than the idle timeout."""
        gap = timestamp - self.input_frames
        most = self._limits.idle_timeout_s * self.fmt.sample_rate_hz
        if gap > most:
            raise InvalidInput(
                f"packet timestamp {timestamp} skips {gap} samples ({gap / self.fmt.sample_rate_hz:.1f} s), over "
                f"limits.idle_timeout_seconds ({self._limits.idle_timeout_s:g} s): check the timestamp's unit "
                f"(samples at {self.fmt.sample_rate_hz} Hz since the stream's first sample) or open a new stream"
            )

    def fill(self, frames: int) -> None:
        """Count a stretch of ``frames`` the client skipped as filled (checked against the duration)."""
        self.check_duration(frames)
        self.filled_frames += frames

    def conceal(self, frames: int, next_packet: bytes) -> np.ndarray | None:
        """Audio at ``heard_rate`` for ``frames`` skipped before ``next_packet`` (counted by ``fill``
        already; a multiple of 2.5 ms, so a whole number of decoded samples): lost
        Opus packets concealed by libopus, or None where the session fills silence instead (not
        Opus, no packet, or a gap that is not a whole number of 2.5 ms frames or is longer than
        120 ms: a mute or DTX, not loss)."""
        if self._opus is None or not next_packet or frames % OPUS_PLC_STEP or frames > MAX_CONCEAL_SAMPLES:
            return None
        samples = self._opus.conceal(frames, next_packet)
        self.concealed_frames += frames
        return samples

    def pay(self, frames: int, nbytes: int) -> None:
        """Count ``frames`` more samples of audio (a gap to fill, a packet to decode) carried by
        ``nbytes`` bytes; refuse them (InvalidInput) if the stream's audio would then run more than
        ``AHEAD_SLACK_S`` ahead of what its bytes (``BYTES_PER_AUDIO_SECOND``) and the time since
        it opened pay for."""
        rate = self.fmt.sample_rate_hz
        audio_s = (self._paid_frames + frames) / rate
        sent = self._paid_bytes + nbytes
        age_s = self._clock() - self._opened
        if audio_s > sent / BYTES_PER_AUDIO_SECOND + age_s + AHEAD_SLACK_S:
            raise InvalidInput(
                f"the stream's audio runs ahead of what carries it: {audio_s:.1f} s of audio from {sent} bytes "
                f"in {age_s:.1f} s (packet timestamps that skip, or Opus packets without frame data); audio may "
                f"run at most {AHEAD_SLACK_S:g} s ahead of the time since the stream opened and of its bytes at "
                f"{BYTES_PER_AUDIO_SECOND} a second (Opus's lowest bitrate): send silence and gaps in real time"
            )
        self._paid_frames += frames
        self._paid_bytes = sent

    def check_duration(self, frames: int) -> None:
        if self.input_frames + frames > self._limits.max_stream_seconds * self.fmt.sample_rate_hz:
            raise LimitReached(
                f"the stream reached its maximum duration of {self._limits.max_stream_seconds:.0f} s; audio after "
                f"{self.audio_received_ms} ms was not processed: open a new stream to continue",
                reason="max_stream_duration",
            )

    def ingest(self, samples: np.ndarray, frames: int | None = None) -> np.ndarray:
        """Samples at ``heard_rate`` onto the timeline -> their 16 kHz samples (resampler state
        kept). ``frames``: the timeline samples they stand for, when not ``len(samples)`` whole
        ones (silence made by ``heard``)."""
        self.input_frames += len(samples) * self._per if frames is None else frames
        return self._resampler.process(samples)

    def drain_resampler(self) -> np.ndarray:
        """The resampler's held-back tail (the stream's input is over)."""
        return self._resampler.process(np.zeros(0, np.float32), last=True)
