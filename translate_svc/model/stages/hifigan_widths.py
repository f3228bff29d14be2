"""The widths HiFi-GAN's groups are made at: under graphs each graph has one key per
(rows, frames) bucket, so a group's units are cut or padded to what its frames can hold
(``unit_span``, ``to_width``), and its frames are guessed on the host (``FrameGuess``) instead of
read from the device; the results' one read (``results``) says each group's longest row
(``most_frames``: a group that outgrew its guess is made again) and what the guess learns
(``made``). Plain values and tensors; the vocoder (``vocoder.py``) uses them.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Sequence

import numpy as np
import torch

from translate_svc.model.capture import host_read
from translate_svc.observability import metrics
from translate_svc.types import SPEED_MAX, SPEED_MIN


def results(done: Sequence[tuple[torch.Tensor, ...]]) -> list[tuple[np.ndarray, ...]]:
    """Each group's waveforms, cuts, frames per unit and rates on the host: one read for all."""
    host = host_read([t for wav, cut, dur, rate in done for t in (wav.float(), cut, dur, rate)])
    return [tuple(host[4 * k : 4 * k + 4]) for k in range(len(done))]


def most_frames(got: tuple[np.ndarray, ...], own: Sequence[int]) -> int:
    """A group's longest row in frames, from its frames per unit as read."""
    dur = got[2]
    return max(int(dur[n, :units].sum()) for n, units in enumerate(own))


def made(got: tuple[np.ndarray, ...], own: Sequence[int]) -> list[tuple[int, float, int]]:
    """Each row's frames, the rate it was made at and its units (what ``FrameGuess`` learns from)."""
    dur, rate = got[2], got[3]
    return [(int(dur[n, :units].sum()), float(rate[n]), units) for n, units in enumerate(own) if units]


class FrameGuess:
    """HiFi-GAN's width for a group, guessed on the host from its rows' units and rates, so that
    the vocoder reads the device once (with its results) instead of twice ("host syncs
    ≤ 2 a batch"; t2u's read of its unit totals is the other). The frames a unit takes at the
    model's own rate are learned from the rows made (the most of the last ``window`` rows; at the
    start ``first``); a group is guessed at ``ceil(units * that / slowest rate) + 1`` for its
    longest row (in benchmark mode, whose frames per unit are fixed, exactly), and its bucket
    then leaves room. A group whose rows outgrow the guess is made again at its own width after
    the read (``misses``: a second read and a second HiFi-GAN). Thread-safe (the finish thread
    and the model thread both vocode)."""

    def __init__(self, *, first: float = 2.0, window: int = 256) -> None:
        self._lock = threading.Lock()
        self._seen: deque[float] = deque(maxlen=window)
        self._first = first
        #: groups made again because the guess was short
        self.misses = 0

    @property
    def per_unit(self) -> float:
        """Frames a unit takes at the model's own rate, at most (recently)."""
        with self._lock:
            return max(self._seen, default=self._first)

    def frames(self, units: Sequence[int], slowest: Sequence[float], unit_frames: int | None = None) -> int:
        """A group's guessed width in frames: enough for each row's units at its slowest rate."""
        # a unit takes at least one frame at rate 1 (the durations' floor)
        per = float(unit_frames) if unit_frames is not None else max(1.0, self.per_unit)
        return max(math.ceil(n * per / max(r, SPEED_MIN)) + 1 for n, r in zip(units, slowest, strict=True))

    def saw(self, made: Sequence[tuple[int, float, int]]) -> None:
        """Rows made: (frames, rate, units) each; their frames at rate 1 per unit are learned."""
        with self._lock:
            self._seen.extend(frames * rate / units for frames, rate, units in made)

    def missed(self, groups: int) -> None:
        with self._lock:
            self.misses += groups
        metrics.width_guess_missed("vocoder", groups)


def unit_span(frames: int) -> int:
    """The units a row of at most ``frames`` frames can hold: every unit is at least one frame
    at the model's rate, at most ``SPEED_MAX`` times faster after ``at_rate`` (whose rounding
    keeps a row's frames within half a frame of its units over its rate)."""
    return math.ceil(SPEED_MAX * frames) + 1


def to_width(x: torch.Tensor, width: int) -> torch.Tensor:
    """``x`` along its last dimension cut to ``width`` (a view) or zero-padded up to it."""
    if x.shape[-1] >= width:
        return x[..., :width]
    return torch.nn.functional.pad(x, (0, width - x.shape[-1]))
