"""One stream's path through the shared VAD worker: 16 kHz samples in, (samples, probabilities) out.

The VAD runs behind the feed: ``score`` hands samples to the ``VadWorker`` thread without waiting,
and ``on_scored`` gets them back on the loop, in order. Samples are held back until they complete a
window (a request without a whole window is work for nothing). A stream may start from a snapshot
of silero's state (``state``), and have snapshots taken every so many samples (``snapshot_every``):
its samples are then cut at each such point, and the state after it is copied by the VAD's thread
(``VadWorker.submit(keep=...)``) and handed to ``on_snapshot`` right after its probabilities went
to ``on_scored`` (a resumable job's checkpoints, ``vad/snapshot.py``). Event loop only.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

import numpy as np

from translate_svc.types import MODEL_SAMPLE_RATE
from translate_svc.vad.segmenter import WINDOW_SAMPLES
from translate_svc.vad.silero import SileroState
from translate_svc.vad.worker import VadWorker

#: the most audio (16 kHz samples) that may wait for the VAD per stream before feeding pauses (1 s)
VAD_BACKLOG = MODEL_SAMPLE_RATE

#: (samples16k, probs or None, error or None), on the loop, in submission order
OnScored = Callable[[np.ndarray, np.ndarray | None, BaseException | None], None]


#: (the sample the state was taken at, on the bridge's stream; silero's state there, a copy)
OnSnapshot = Callable[[int, SileroState], None]


class VadBridge:
    def __init__(
        self,
        worker: VadWorker,
        on_scored: OnScored,
        on_change: Callable[[], None],
        state: SileroState | None = None,
    ) -> None:
        self._worker = worker
        self._state = state if state is not None else worker.vad.new_state()
        #: where the next snapshot is taken (16 kHz samples; 0: none), every so many after it
        self._snapshot_at = 0
        self._snapshot_every = 0
        self._on_snapshot: OnSnapshot | None = None
        self._on_scored = on_scored
        #: the backlog reached ``VAD_BACKLOG`` or fell below it (the session re-checks its room);
        #: not at every change: twice a window, that was most of a stream's room checks
        self._on_change = on_change
        self._carry: list[np.ndarray] = []
        self._carry_n = 0
        self._submitted = 0  # 16 kHz samples submitted so far
        #: 16 kHz samples submitted and not yet back
        self.backlog = 0
        self._inflight = 0
        self._idle = asyncio.Event()  # set while nothing is at the VAD
        self._idle.set()
        self.closed = False

    def snapshots(self, first: int, every: int, on_snapshot: OnSnapshot) -> None:
        """Take silero's state at sample ``first`` (past what was given so far) and every
        ``every`` samples after it, each a whole number of windows, for ``on_snapshot``."""
        if first <= self._submitted + self._carry_n or first % WINDOW_SAMPLES or every % WINDOW_SAMPLES:
            raise ValueError("snapshots are taken on window boundaries ahead of the samples given")
        self._snapshot_at, self._snapshot_every, self._on_snapshot = first, every, on_snapshot

    def score(self, samples16k: np.ndarray, *, last: bool = False, now: bool = False) -> None:
        """Queue ``samples16k``; submit once a window is complete, or at once if ``now``/``last``."""
        if self.closed:
            return
        self._carry.append(samples16k)
        self._carry_n += len(samples16k)
        window = WINDOW_SAMPLES
        if not (last or now) and (self._submitted + self._carry_n) // window <= self._submitted // window:
            return
        x = self._carry[0] if len(self._carry) == 1 else np.concatenate(self._carry)
        self._carry, self._carry_n = [], 0
        while self._snapshot_at and self._submitted < self._snapshot_at <= self._submitted + len(x):
            cut = self._snapshot_at - self._submitted
            self._snapshot_at += self._snapshot_every
            self._submit(x[:cut], last=False, at=self._submitted + cut)
            x = x[cut:]
        if not len(x) and not last:
            return
        self._submit(x, last=last)

    def _submit(self, x: np.ndarray, *, last: bool, at: int = 0) -> None:
        """``x`` to the worker; ``at``: a snapshot is taken at its end, at that sample."""
        self._submitted += len(x)
        self.backlog += len(x)
        self._inflight += 1
        self._idle.clear()
        if self.backlog >= VAD_BACKLOG:
            self._on_change()
        keep: list[SileroState] | None = [] if at else None
        self._worker.submit(self._state, x, functools.partial(self._back, x, at, keep), last=last, keep=keep)

    def _back(
        self,
        samples16k: np.ndarray,
        at: int,
        keep: list[SileroState] | None,
        probs: np.ndarray | None,
        error: BaseException | None,
    ) -> None:
        was = self.backlog
        self.backlog -= len(samples16k)
        self._inflight -= 1
        try:
            if not self.closed:
                self._on_scored(samples16k, probs, error)
                if keep and error is None and self._on_snapshot is not None and not self.closed:
                    self._on_snapshot(at, keep[0])
        finally:
            if not self._inflight:
                self._idle.set()
            if was >= VAD_BACKLOG:
                self._on_change()

    @property
    def unscored(self) -> int:
        """16 kHz samples given and not yet back from the VAD (held back or at the worker)."""
        return self.backlog + self._carry_n

    async def scored_all(self) -> None:
        """Until every sample given so far has been scored (the held-back rest is submitted now)."""
        self.score(np.zeros(0, np.float32), now=True)
        await self._idle.wait()

    async def wait_idle(self) -> None:
        """Until nothing submitted is still at the VAD."""
        await self._idle.wait()

    def close(self) -> None:
        """Nothing more is scored; results still on their way are dropped (and the session's
        callbacks let go: they would hold it in a cycle)."""
        self.closed = True
        self._on_scored = _dropped
        self._on_change = _nothing
        self._on_snapshot = None


def _dropped(samples16k: np.ndarray, probs: np.ndarray | None, error: BaseException | None) -> None:
    """A closed bridge's ``on_scored``."""


def _nothing() -> None:
    """A closed bridge's ``on_change``."""
