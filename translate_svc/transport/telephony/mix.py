"""Two-party calls with ``phone.original_voice = "under"``: the speaking leg's own voice kept under
its translation in what the other leg hears, sans I/O.

The listener's audio is paced by the speaker's own: each chunk the speaker's carrier sends (at
real time; a phone line sends silence too) becomes the same length of the listener's audio, the
original at ``phone.original_gain`` with the translation's next samples on top, in the
listener's codec and rate, in whole 20 ms frames (a carrier such as chan_websocket pads a partial
frame with silence: a stream of partial frames would drift). A mark passes with the chunk that
carries the end of its speech (that chunk goes out whole, frame or not). When the speaker's leg
ends, what is left of the translation goes out alone (``rest``).

Not thread-safe: one per direction of a two-party call, on the event loop.
"""

from __future__ import annotations

import numpy as np

from translate_svc.audio.resample import StreamResampler
from translate_svc.transport.telephony.call import FRAME_MS, CallCodec
from translate_svc.transport.telephony.playout import SpeechQueue
from translate_svc.wire.pcm import float_to_pcm16, pcm16_to_float


class UnderMix:
    """One direction of a two-party call: the speaker's original and its translation for the
    listener."""

    def __init__(self, speaker: CallCodec, listener: CallCodec, gain: float) -> None:
        self.speaker = speaker
        self.listener = listener
        self.gain = gain
        self._resampler = StreamResampler(speaker.rate, listener.rate)
        #: the translation, PCM16 at the listener's rate, and the marks between it
        self._queue = SpeechQueue()
        #: mixed samples short of a whole frame, held for the next chunk
        self._pending = np.zeros(0, np.float32)
        self._frame = listener.rate * FRAME_MS // 1000

    @property
    def held_s(self) -> float:
        """Translation waiting for the speaker's audio to carry it."""
        return self._queue.held_bytes / (2 * self.listener.rate)

    def speech(self, samples: np.ndarray) -> None:
        """Translated speech (float, at the listener's rate)."""
        self._queue.put(float_to_pcm16(samples).astype("<i2").tobytes())

    def mark(self, name: str) -> None:
        self._queue.put_mark(name)

    def clear(self) -> float:
        return self._queue.clear() / (2 * self.listener.rate)

    def under(self, original: bytes) -> tuple[bytes, list[str]]:
        """The speaker's chunk (its codec) -> as long a chunk for the listener (its codec): the
        original at ``gain`` with the translation on top; and the marks passed."""
        x = self._resampler.process(self.speaker.decode(original)) * np.float32(self.gain)
        speech, passed = self._queue.take(2 * len(x))
        if speech:
            x[: len(speech) // 2] += pcm16_to_float(np.frombuffer(speech, "<i2"))
        mixed = np.concatenate([self._pending, x])
        n = len(mixed) if passed else len(mixed) // self._frame * self._frame
        self._pending = mixed[n:]
        return (self.listener.encode(np.clip(mixed[:n], -1.0, 1.0)) if n else b""), passed

    def rest(self) -> tuple[bytes, list[str]]:
        """What is held and what is left of the translation, alone (the speaker's leg ended)."""
        speech, passed = self._queue.take(self._queue.held_bytes)
        audio = np.concatenate([self._pending, pcm16_to_float(np.frombuffer(speech, "<i2"))])
        self._pending = np.zeros(0, np.float32)
        return (self.listener.encode(np.clip(audio, -1.0, 1.0)) if len(audio) else b""), passed
