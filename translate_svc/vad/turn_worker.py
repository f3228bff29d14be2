"""The end-of-turn model for every stream of a process, off the event loop, streams batched.

A stream's segmenter asks at a pause whether its turn is complete (``TurnQuestion``,
``vad/segmenter.py``) and processes nothing more until it is answered, so a stream has at most one
question here at a time and the queue is bounded by the streams. Sessions ``submit(samples,
on_done)`` and go on. A turn of the worker starts once its oldest question has waited ``gather_ms``
(10 ms by default; at once when it is older, as under load) and takes up to ``batch`` questions,
oldest first: their features and one model call (:meth:`SmartTurn.complete`) on one of ``threads``
threads (onnxruntime and numpy's FFT release the GIL while they compute), the answers back to each
event loop in one wake-up. A batch whose call fails is answered again question by question, so a
bad question fails alone; a failed question is answered with the error, and the session takes it as
"incomplete" (the silence rule's bound then closes the turn: the fallback).

The cost, per decision and batched, is in docs/performance.md ("The end-of-turn model's cost").
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from translate_svc.vad.turn_end import SmartTurn

logger = logging.getLogger(__name__)

#: ``on_done(probability, None)`` or ``on_done(None, error)``, called on the submitting loop
OnAnswer = Callable[[float | None, BaseException | None], None]

#: how long a turn waits for other streams' questions after its oldest came
GATHER_MS = 10


@dataclass(eq=False)
class _Question:
    samples: np.ndarray
    on_done: OnAnswer
    loop: asyncio.AbstractEventLoop
    at: float


class TurnWorker:
    def __init__(self, model: SmartTurn, *, threads: int = 1, batch: int = 8, gather_ms: int = GATHER_MS) -> None:
        if threads < 1 or batch < 1 or gather_ms < 0:
            raise ValueError("a turn worker needs threads >= 1, batch >= 1 and gather_ms >= 0")
        self.model = model
        self._batch = batch
        self._gather_s = gather_ms / 1000
        self._lock = threading.Lock()
        self._pending: list[_Question] = []
        self._threads = threads
        self._running = 0  # threads draining now
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="turn-end")
        #: model calls made, and questions answered in them (tests and benchmarks read them)
        self.calls = 0
        self.questions = 0

    def submit(self, samples16k: np.ndarray, on_done: OnAnswer) -> None:
        """Queue one turn's audio (16 kHz mono, the pause at its end); ``on_done`` gets the
        probability that the turn is complete on this event loop. Does not wait."""
        q = _Question(np.asarray(samples16k, dtype=np.float32), on_done, asyncio.get_running_loop(), time.monotonic())
        with self._lock:
            self._pending.append(q)
            start = self._running < self._threads and len(self._pending) > self._running * self._batch
            if start:
                self._running += 1
        if start:
            self._executor.submit(self._drain)

    async def complete(self, samples16k: np.ndarray) -> float:
        """:meth:`submit`, awaited (tests and one-off callers)."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()

        def done(p: float | None, exc: BaseException | None) -> None:
            if future.done():
                return
            if exc is not None:
                future.set_exception(exc)
            else:
                assert p is not None
                future.set_result(p)

        self.submit(samples16k, done)
        return await future

    def close(self) -> None:
        """Take no more questions; the threads end once what is queued is answered."""
        self._executor.shutdown(wait=False)

    def _drain(self) -> None:
        while True:
            with self._lock:
                oldest = self._pending[0].at if self._pending else None
            if oldest is not None:
                wait = oldest + self._gather_s - time.monotonic()
                if wait > 0:  # questions other streams ask meanwhile join this call
                    time.sleep(wait)
            with self._lock:
                now, self._pending = self._pending[: self._batch], self._pending[self._batch :]
                if not now:
                    self._running -= 1
                    return
            answers = self._answer(now)
            self.calls += 1
            self.questions += len(now)
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Question, float | None, BaseException | None]]] = {}
            for q, (p, exc) in zip(now, answers, strict=True):
                by_loop.setdefault(q.loop, []).append((q, p, exc))
            for loop, items in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_deliver, items)
                except RuntimeError:  # that loop is closed: nobody waits any more
                    pass

    def _answer(self, now: list[_Question]) -> list[tuple[float | None, BaseException | None]]:
        try:
            return [(p, None) for p in self.model.complete([q.samples for q in now])]
        except Exception as exc:
            if len(now) == 1:
                logger.exception("the end-of-turn model failed on a question")
                return [(None, exc)]
            logger.warning("the end-of-turn model failed on %d questions: asking each alone", len(now), exc_info=True)
        return [self._answer([q])[0] for q in now]


def _deliver(items: list[tuple[_Question, float | None, BaseException | None]]) -> None:
    for q, p, exc in items:
        try:
            q.on_done(p, exc)
        except Exception:  # a session's bug must not stop the other streams' answers
            logger.exception("an end-of-turn answer callback failed")
