"""A stream's clock: when its driver must wake and what is due then. Pure and synchronous, with no
clock of its own (``now`` is passed in, as ``engine/scheduler.py`` takes it).

The driver tells it what happens to the stream (``called``: the call opened; ``opened``: its
config came; ``waits``: the reader waits for the client's next message; ``took``: a message came,
``carried``: that much audio; ``drain``: a drain's deadline) and asks it two things: ``wake``, the
next time something may be due (None: nothing until the reader waits again), and ``due``, what is
due at a time: a ``Verdict``, which the driver acts on. The clock never calls back and imports
nothing of the driver or the session: what it needs of them (is the client alive, may speech be
open) is passed in as plain values, so no import circle can close through it. Two verdicts move the
clock on, as the scheduler's ``next_batch`` takes its jobs: ``STALL`` is given once a wait, and
``KEEP`` starts the idle count again.

The rules, with the settings they come from (``clock_config``):

- before the config: ``CONFIG_TIMEOUT`` once ``config_timeout_ms`` have passed since the call opened;
- a drain's deadline passed: ``DRAIN`` (the stream ends with "resume elsewhere");
- while the reader waits, ``idle_timeout_s`` after the client's last message (or after it was last
  kept): ``IDLE``; but a client its door sees alive (a muted speaker answering pings: a conference
  forwards no audio meanwhile) is ``KEEP``-t for another ``idle_timeout_s``, until
  ``max_stream_seconds`` from its config, wall clock (its audio cap never runs while nothing
  comes): ``MAX_DURATION``. A dead client stops answering and its door ends the call; without a
  door's word the idle limit ends it;
- a sender that stops while speech may be open: ``STALL`` (close the open speech, as a pause would)
  ``stall_close_ms`` after its last message's audio would have been played out, once a wait.

``ending`` words a verdict that ends the stream as its client is told it.

Not thread-safe: owned by its driver, on the event loop.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from translate_svc.errors import LimitReached, ServiceError, ShuttingDown
from translate_svc.settings import LimitsSettings

#: a timer may fire this much before its time and still count as due
EARLY_S = 0.001


class Verdict(str, enum.Enum):
    NONE = "none"  # nothing due: wait for ``wake``
    STALL = "stall"  # the sender stalled with speech open: close it
    KEEP = "keep"  # silent but alive (a muted speaker): kept, the idle count starts again
    IDLE = "idle"  # no message for ``idle_timeout_s``: end the stream
    MAX_DURATION = "max_duration"  # kept while muted until ``max_stream_s``: end the stream
    DRAIN = "drain"  # the drain's deadline passed: end the stream ("resume elsewhere")
    CONFIG_TIMEOUT = "config_timeout"  # no config within ``config_timeout_s``: refuse the call


@dataclass(frozen=True)
class ClockConfig:
    config_timeout_s: float = 5.0
    idle_timeout_s: float = 600.0
    #: 0: a stalled sender's speech is closed only by the idle limit or its end
    stall_close_s: float = 1.0
    max_stream_s: float = 4 * 3600.0

    def __post_init__(self) -> None:
        for name in ("config_timeout_s", "idle_timeout_s", "max_stream_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.stall_close_s < 0:
            raise ValueError(f"stall_close_s must be >= 0, got {self.stall_close_s}")


def clock_config(limits: LimitsSettings) -> ClockConfig:
    """``LimitsSettings`` -> the clock's config (the one mapping of these settings)."""
    return ClockConfig(
        config_timeout_s=limits.config_timeout_ms / 1000,
        idle_timeout_s=limits.idle_timeout_s,
        stall_close_s=limits.stall_close_ms / 1000,
        max_stream_s=limits.max_stream_seconds,
    )


class StreamClock:
    """One stream's timing, from its call's start (``called``) to its end."""

    def __init__(self, config: ClockConfig) -> None:
        self.config = config
        self._called_at: float | None = None
        self._opened_at: float | None = None  # when the config came
        self._waiting = False  # the reader waits for the client's next message
        self._waiting_since = 0.0
        self._chunk_s = 0.0  # the audio the last message carried: the sender's pace
        self._stall_given = False  # this wait's STALL was given
        self._kept_at = 0.0  # when the client was last kept, silent but alive
        self._drain_at: float | None = None

    # -- what happens

    def called(self, now: float) -> None:
        """The call opened: its config is due within ``config_timeout_s``."""
        self._called_at = now

    def opened(self, now: float) -> None:
        """The config came: the stream is open (its longest muted life counts from here)."""
        self._opened_at = now

    def waits(self, now: float) -> None:
        """The reader waits for the client's next message."""
        self._waiting, self._waiting_since, self._stall_given = True, now, False

    def took(self) -> None:
        """A message came (the reader is busy with it until it ``waits`` again)."""
        self._waiting = False

    def carried(self, seconds: float) -> None:
        """The last message carried ``seconds`` of audio."""
        self._chunk_s = max(0.0, seconds)

    def drain(self, deadline: float) -> None:
        """The server drains: the stream ends at ``deadline``."""
        self._drain_at = deadline

    # -- what the driver asks

    @property
    def config_deadline(self) -> float:
        """When a call that sent no config is refused (none before the call opened)."""
        return math.inf if self._called_at is None else self._called_at + self.config.config_timeout_s

    def drain_passed(self, now: float) -> bool:
        return self._drain_at is not None and now >= self._drain_at - EARLY_S

    def wake(self, *, holds_speech: bool = False) -> float | None:
        """When to ask ``due`` next: the config's deadline, else (while the reader waits) the idle
        limit, the drain's deadline or the stall close (``holds_speech``: the stream may hold open
        speech), whichever comes first; None while the reader is busy, or before the call opened."""
        if self._called_at is None:
            return None
        if self._opened_at is None:
            return self.config_deadline
        if not self._waiting:
            return None
        when = self._idle_at()
        if self._drain_at is not None:
            when = min(when, self._drain_at)
        stall_at = self._stall_at(holds_speech)
        return when if stall_at is None else min(when, stall_at)

    def earliest_wake(self, now: float) -> float:
        """The earliest ``wake`` can say once the reader waits from ``now``, whatever the stream
        holds (the idle limit and a stall close count from then, a drain's deadline is fixed): a
        timer due by then comes first, and need not be moved."""
        soonest = now + min(self.config.idle_timeout_s, self.config.stall_close_s or math.inf)
        return soonest if self._drain_at is None else min(soonest, self._drain_at)

    def due(self, now: float, *, alive: bool = False, holds_speech: bool = False) -> Verdict:
        """What is due at ``now`` (``alive``: the door sees the client answer its pings). While the
        reader is busy nothing is (a drain's deadline is then read with ``drain_passed`` between
        messages: a stream is never ended under a message being applied)."""
        if self._opened_at is None:
            return Verdict.CONFIG_TIMEOUT if now >= self.config_deadline - EARLY_S else Verdict.NONE
        if not self._waiting:
            return Verdict.NONE
        if self.drain_passed(now):
            return Verdict.DRAIN
        if now >= self._idle_at() - EARLY_S:
            if not alive:
                return Verdict.IDLE
            if now - self._opened_at >= self.config.max_stream_s:
                return Verdict.MAX_DURATION
            self._kept_at = now
            return Verdict.KEEP
        stall_at = self._stall_at(holds_speech)
        if stall_at is not None and now >= stall_at - EARLY_S:
            self._stall_given = True
            return Verdict.STALL
        return Verdict.NONE

    def _idle_at(self) -> float:
        """The idle limit counts from the client's last message, or from when it was last kept."""
        return max(self._waiting_since, self._kept_at) + self.config.idle_timeout_s

    def _stall_at(self, holds_speech: bool) -> float | None:
        if not (self.config.stall_close_s and holds_speech) or self._stall_given:
            return None
        return self._waiting_since + self._chunk_s + self.config.stall_close_s


def ending(verdict: Verdict, limits: LimitsSettings, audio_received_ms: int) -> ServiceError:
    """The end ``verdict`` gives a stream that received ``audio_received_ms``, as its client is
    told it (what limit, and what to do)."""
    if verdict is Verdict.CONFIG_TIMEOUT:
        return LimitReached(
            f"no config came within {limits.config_timeout_ms} ms of the call's start "
            "(ServerLimits.config_timeout_ms): send the StreamingConfig as the first message as soon as the "
            "call opens",
            reason="config_timeout",
        )
    if verdict is Verdict.DRAIN:
        at = audio_received_ms
        return ShuttingDown(
            "this server shut down: the stream's open speech was translated up to "
            f"{at} ms; resume on another server (StreamingConfig.resume with this stream's "
            f"resume_token, offset_ms {at}, next_segment_id = the next id)"
        )
    if verdict is Verdict.MAX_DURATION:  # a muted client, kept while it answered its pings
        return LimitReached(
            f"the stream has been open for its maximum duration of {limits.max_stream_seconds:.0f} s "
            "(limits.max_stream_seconds) and its client sent nothing for "
            f"{limits.idle_timeout_s:g} s: open a new stream to continue",
            reason="max_stream_duration",
        )
    return LimitReached(
        f"no message for {limits.idle_timeout_s:g} s (limits.idle_timeout_seconds): the stream was "
        "closed after its open speech was translated; send audio (or silence) at least that often",
        reason="idle_timeout",
    )
