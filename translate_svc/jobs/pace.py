"""A job's share of the engine: pure, no clock of its own.

A job's segments are the engine's background class (taken only when no live job waits, one at a
time: engine/scheduler.py), but a job segment in the model is not preempted: a live final arriving
then waits for it, and the job's VAD, resampling and features share the CPU with the streams'. So a
job also paces itself to ``jobs.engine_share`` of the engine's time: each of its segments' model
time ``m`` is followed by a pause of ``m * (1 / share - 1)`` before it feeds again, which bounds
both how often a live final can meet a job segment in the model and the CPU a job takes from the
streams' VAD and features. (``model_ms`` is the batch's: a job segment batched with live rows counts
them too, so the pace errs on the side of the streams.) A job alone on the node pauses not at all:
the worker makes the pause only while other sessions are open.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the longest single pause (a pathological segment's model time does not stall a job for long)
MAX_PAUSE_S = 30.0


@dataclass
class EnginePace:
    share: float
    #: the pause owed before the next feed
    owed_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise ValueError(f"share must be in (0, 1], got {self.share}")

    def spent(self, model_s: float) -> None:
        """One of the job's segments took ``model_s`` of the model's time."""
        self.owed_s += max(0.0, model_s) * (1 / self.share - 1)

    def take(self) -> float:
        """The pause to make before the next feed (at most ``MAX_PAUSE_S``); owed no more after it."""
        pause, self.owed_s = min(self.owed_s, MAX_PAUSE_S), 0.0
        return pause
