"""The pacing of a call whose carrier does not time what it is sent (AudioSocket, SIP's RTP): we are
the player. ``PacedSpeech`` sends one 20 ms frame per 20 ms slot from the call's first audio frame
on, the translation's speech when there is some and silence when there is none, never ahead of its
slot (a wake late by less than ``playout.CATCH_UP_S`` sends the slots it missed; a slot later than
that is skipped, not made up in a long burst); a mark is played when the frame with the end of its
speech has gone out. What a frame becomes on the wire is the carrier's (``_open``, ``_send``):
AudioSocket's ``PacedOutlet`` (``phone/audiosocket_server.py``), the SIP door's RTP outlet
(``sip/media.py``). ``SlotClock`` is the one timer of a process's paced calls: it wakes on one
20 ms grid of the loop's monotonic clock and writes every due call's frames, so 50 calls cost one
wake per 20 ms, not 50 tasks each woken on its own. Event loop only.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Protocol

from translate_svc.observability import metrics
from translate_svc.transport.telephony.call import FRAME_MS, CallCodec
from translate_svc.transport.telephony.playout import EARLY_S, FramePacer, SpeechQueue

logger = logging.getLogger(__name__)

FRAME_S = FRAME_MS / 1000


class Paced(Protocol):
    """A call the clock paces (``PacedOutlet``; the SIP door's RTP outlet)."""

    def tick(self, now: float) -> None:
        """Send the frames now due."""

    def fail(self, why: str) -> None:
        """Sending failed: end the call."""


class SlotClock:
    """The one timer of a process's paced calls: wakes on a grid of ``frame_s`` steps of the loop's
    monotonic clock (from the first call of a busy spell) and has every member send the frames now
    due. A call's slots start on the grid, so each wake serves every call. Event loop only."""

    def __init__(self, frame_s: float = FRAME_S) -> None:
        self.frame_s = frame_s
        self._members: dict[Paced, None] = {}
        self._origin = 0.0
        self._timer: asyncio.TimerHandle | None = None
        #: wakes so far (for tests: one per grid step, however many calls)
        self.wakes = 0

    def join(self, outlet: Paced) -> float:
        """Add a call; the time of its first slot (the grid step now due, or the next one)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._members:
            self._origin = now
        self._members[outlet] = None
        start = self._origin + math.ceil((now - EARLY_S - self._origin) / self.frame_s) * self.frame_s
        if self._timer is None:
            self._timer = loop.call_at(start, self._tick)
        return start

    def leave(self, outlet: Paced) -> None:
        self._members.pop(outlet, None)
        if not self._members and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.wakes += 1
        for outlet in list(self._members):
            try:
                outlet.tick(now)
            except Exception:  # one call's failure must not stop every other call's frames
                logger.exception("AudioSocket pacing failed; the call is ended")
                self.leave(outlet)
                outlet.fail("the pacer failed")
        if self._members:
            step = math.floor((now + EARLY_S - self._origin) / self.frame_s) + 1
            self._timer = loop.call_at(self._origin + step * self.frame_s, self._tick)
        else:
            self._timer = None


class PacedSpeech:
    """A call's speech, one 20 ms frame per slot of the ``SlotClock`` (an ``Outlet``), silence when
    there is nothing to say; a mark is played when the frame with the end of its speech has gone
    out. What a frame becomes on the wire is the subclass's (``_open``, ``_send``): AudioSocket's
    ``PacedOutlet`` (``phone/audiosocket_server.py``), the SIP door's ``RtpOutlet``. Event loop only."""

    def __init__(
        self,
        clock: SlotClock,
        *,
        max_held_s: float,
        on_played: Callable[[str], None],
        on_stall: Callable[[str], None],
    ) -> None:
        self._clock = clock
        self._max_held_s = max_held_s
        self._on_played = on_played
        self._on_stall = on_stall
        self.queue = SpeechQueue()
        self.codec: CallCodec | None = None
        self.pacer: FramePacer | None = None
        self.speech_frames = 0
        self.late_max_s = 0.0
        self.stalled = False

    def begin(self, codec: CallCodec) -> None:
        self.codec = codec
        self.pacer = FramePacer(self._clock.join(self), self._clock.frame_s)

    def speech(self, audio: bytes) -> None:
        self.queue.put(audio)
        assert self.codec is not None
        if self.codec.seconds(self.queue.held_bytes) > self._max_held_s:
            self._stall(f"more than {self._max_held_s:g} s of speech waited for its slots (phone.max_held_s)")

    def mark(self, name: str) -> None:
        self.queue.put_mark(name)

    def played(self, name: str) -> None:
        """(We play the marks ourselves: the queue knows what is unplayed.)"""

    def clear(self) -> float:
        assert self.codec is not None
        return self.codec.seconds(self.queue.clear())

    def unplayed(self) -> float:
        return self.codec.seconds(self.queue.held_bytes) if self.codec is not None else 0.0

    def pause(self, paused: bool) -> None:
        """(No flow control: we are the player.)"""

    def _stall(self, why: str) -> None:
        if not self.stalled:
            self.stalled = True
            self._clock.leave(self)
            self._on_stall(why)

    def fail(self, why: str) -> None:
        self._stall(why)

    def _open(self) -> bool:
        """Whether the call's socket still takes frames."""
        return True

    def _send(self, pcm: bytes) -> bool:
        """Send one frame of the call's codec; False: the call stalled (it was ended)."""
        raise NotImplementedError

    def tick(self, now: float) -> None:
        """The clock's wake: a frame for each slot now due (``SlotClock``)."""
        codec, pacer = self.codec, self.pacer
        if codec is None or pacer is None or self.stalled:
            return
        if not self._open():
            self._clock.leave(self)
            return
        n = codec.frame_bytes
        for late in pacer.slots(now):
            speech, passed = self.queue.take(n)
            if speech:
                self.speech_frames += 1
            if not self._send(speech + codec.silence(n - len(speech))):
                return
            self.late_max_s = max(self.late_max_s, late)
            metrics.phone_frame_late(late)
            for name in passed:
                self._on_played(name)

    def fields(self) -> dict[str, int | float]:
        """The call's frame counts, read once its stream has ended: the outlet leaves the clock
        first, so no frame is written after it is counted (the access line equals what was sent)."""
        self._clock.leave(self)
        pacer = self.pacer
        if pacer is None:
            return {}
        return {
            "frame_slots": pacer.k,
            "frames_sent": pacer.sent,
            "frames_speech": self.speech_frames,
            "frames_skipped": pacer.skipped,
            "frame_late_max_ms": round(1000 * self.late_max_s, 1),
        }

    def leave(self) -> None:
        self._clock.leave(self)
