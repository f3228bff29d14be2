"""A stage on a thread of its own: what follows a job's decode runs beside the running decode
(finished rows leave at once for t2u and the vocoder, which run as their own stage in
batches).

The stepping decoder (model/stepping.py) hands the jobs whose rows all ended to ``FinishStage.submit``
and goes on stepping the other rows; one worker thread runs ``run`` on the oldest hand-overs it has
not taken, up to ``max_jobs`` jobs (one batch: text-to-unit and the vocoder batched across them;
a backlog so makes larger batches, the cap bounds what a job waits for the others), and the
results wait in ``collect`` for the model thread's next look. Inline, those stages stopped every
row of the pool for as long as they took: on the test checkpoint on CPU the vocoder is 83 % of
the model's busy time (docs/performance.md), and on CUDA the model thread waited for the
vocoder's copy to the host while no decode step was launched.

- **CUDA:** the worker runs on a stream of its own. ``submit`` records an event on the caller's
  current stream after the rows' last work, and the worker's stream waits for it (on the device:
  the host does not wait), so the worker reads the decode's tensors only once they are written.
  The worker holds each batch's jobs (and so their tensors) until an event recorded after the
  batch's last work on its stream has passed, asked without waiting at its next batch: none
  returns to the caching allocator while a kernel of this stream may still read it, and the
  host never waits for the stream (its only waits are the batch's reads of results).
- **CPU:** the worker's operators run on its own thread (PyTorch releases the GIL inside them),
  so the stage can take a second core where the model thread has one; on the 2-core test machine
  that measured no faster (the finish is most of a burst's work there: docs/performance.md), so
  the setting leaves it off on CPU.
- ``run`` must not raise for one bad job (the stepping decoder retries job by job); if it raises
  all the same, ``failed`` gives every job of that batch its failure, so nothing is lost.

The worker is a one-thread ``ThreadPoolExecutor``, made at the first hand-over: ``close`` joins it
(the engine's stop), and it ends by itself if the stage is forgotten.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

import torch

from translate_svc.model import capture, regions

logger = logging.getLogger(__name__)

W = TypeVar("W")
R = TypeVar("R")
T = TypeVar("T")


class FinishStage(Generic[W, R]):
    """Jobs run on a worker thread in batches (see the module docstring). ``submit`` and ``collect``
    are the model thread's; ``run`` and ``failed`` run on the worker."""

    def __init__(
        self,
        run: Callable[[list[W]], list[R]],
        failed: Callable[[list[W]], list[R]],
        device: torch.device,
        *,
        max_jobs: int = 8,
        name: str = "finish",
    ) -> None:
        self._run = run
        self._failed = failed
        self._ready_cv = threading.Condition()  # guards the three lists below
        self._pending: list[tuple[list[W], torch.cuda.Event | None]] = []
        self._ready: list[R] = []
        self._running = 0  # jobs handed over whose results are not in _ready yet
        self._woken = False  # ``wake`` since the last ``collect``
        self._stream = torch.cuda.Stream(device) if device.type == "cuda" else None  # type: ignore[no-untyped-call]
        self._name = name
        #: a call takes the oldest hand-over and the next ones while their jobs stay within this
        #: (each job waits for its whole call's speech: larger calls trade latency for batching)
        self.max_jobs = max_jobs
        self._executor: ThreadPoolExecutor | None = None  # made at the first hand-over
        #: the worker's batches whose work on its stream may still run: their event and jobs
        self._held: deque[tuple[torch.cuda.Event, list[W]]] = deque()
        #: batches the worker ran, and the jobs in them (what batching across hand-overs gave)
        self.batches = 0
        self.jobs = 0

    def submit(self, jobs: Sequence[W]) -> None:
        """Model thread: ``jobs`` run on the worker, after the work queued on this thread so far."""
        event = None
        if self._stream is not None:
            event = torch.cuda.Event()  # type: ignore[no-untyped-call]
            event.record()  # on the caller's current stream: the worker's waits for it
        with self._ready_cv:
            self._pending.append((list(jobs), event))
            self._running += len(jobs)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        self._executor.submit(self._drain)

    def call(self, fn: Callable[[], T]) -> T:
        """Model thread: ``fn()`` on the worker (its thread, and on CUDA its stream), waited for:
        the warm-up of what the worker runs (cuDNN's plans and CUDA graphs are per thread)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)

        def run() -> T:
            with torch.inference_mode():
                if self._stream is None:
                    return fn()
                try:
                    with torch.cuda.stream(self._stream):
                        return fn()
                finally:
                    regions.note_wait("finish stage call")
                    self._stream.synchronize()
                    capture.waited_past(capture.copies_mark())  # the worker's staging copies ran

        return self._executor.submit(run).result()

    def collect(self, wait_s: float = 0.0) -> list[R]:
        """Model thread: the results ready now; with ``wait_s``, and none ready while jobs run,
        waits up to that long for the first, or until ``wake``."""
        with self._ready_cv:
            if wait_s > 0:
                self._ready_cv.wait_for(lambda: self._ready or not self._running or self._woken, wait_s)
            self._woken = False
            out, self._ready = self._ready, []
        return out

    def wake(self) -> None:
        """Any thread: a ``collect`` waiting now (or the next one) returns at once."""
        with self._ready_cv:
            self._woken = True
            self._ready_cv.notify_all()

    def __len__(self) -> int:
        """Jobs handed over whose results were not collected yet."""
        with self._ready_cv:
            return self._running + len(self._ready)

    def close(self) -> None:
        """Run what was handed over, then end the worker (results stay for ``collect``; a later
        ``submit`` starts a new one)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        if self._held and self._stream is not None:
            regions.note_wait("finish stage close")
            self._stream.synchronize()
        self._held.clear()

    def _drain(self) -> None:
        """Worker: the oldest hand-overs not yet taken, up to ``max_jobs`` jobs, as one batch."""
        while self._held and self._held[0][0].query():  # type: ignore[no-untyped-call]  # their work has run
            self._held.popleft()
        with self._ready_cv:
            batches: list[tuple[list[W], torch.cuda.Event | None]] = []
            size = 0
            while self._pending and (not batches or size + len(self._pending[0][0]) <= self.max_jobs):
                batches.append(self._pending.pop(0))
                size += len(batches[-1][0])
        if not batches:
            return  # an earlier look took them
        jobs = [job for part, _ in batches for job in part]
        try:
            with torch.inference_mode():
                results = self._run(jobs) if self._stream is None else self._on_stream(self._stream, batches, jobs)
        except Exception:
            logger.exception("the finish stage failed on a batch of %d jobs", len(jobs))
            results = self._failed(jobs)
        with self._ready_cv:
            self.batches += 1
            self.jobs += len(jobs)
            self._ready.extend(results)
            self._running -= len(jobs)
            self._ready_cv.notify_all()

    def _on_stream(
        self, stream: torch.cuda.Stream, batches: list[tuple[list[W], torch.cuda.Event | None]], jobs: list[W]
    ) -> list[R]:
        """Worker, CUDA: ``run`` on the stage's stream after each hand-over's event (a wait of the
        stream, not of the host); the jobs held until an event after the batch's work has passed,
        also when ``run`` raises."""
        try:
            with torch.cuda.stream(stream):
                for _, event in batches:
                    if event is not None:
                        stream.wait_event(event)
                return self._run(jobs)
        finally:
            done = torch.cuda.Event()  # type: ignore[no-untyped-call]
            done.record(stream)
            self._held.append((done, jobs))
