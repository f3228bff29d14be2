"""Silero VAD for every stream on one thread, streams that wait together scored together.

Sessions ``await VadWorker.probabilities(state, samples)``. Requests queue while the thread is
busy; it then takes all of them and scores them with :meth:`SileroVad.probabilities_many` (one
model call per window index across the streams, bit-identical to scoring each stream alone).
So the event loop, which also serves gRPC, never runs the model; and under load, when many
streams wait at once, a window costs about half as much (measured in docs/performance.md). Idle,
a request waits only for the hand-off to the thread.

Thread safety: ``probabilities`` is called from the event loop; the thread owns the states while
it scores them. A stream must await each call before making the next (its state carries on from
one call to the next), which a session does; a cancelled call leaves its state undefined, so the
stream must not be fed again (a cancelled session never is).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from translate_svc.vad.silero import SileroState, SileroVad

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Request:
    state: SileroState
    samples: np.ndarray
    future: asyncio.Future[np.ndarray]
    loop: asyncio.AbstractEventLoop


class VadWorker:
    def __init__(self, vad: SileroVad, *, on_call: Callable[[int], None] | None = None) -> None:
        """``on_call(streams)`` runs on the worker thread after each model-call batch (metrics)."""
        self.vad = vad
        self._on_call = on_call
        self._lock = threading.Lock()
        self._pending: list[_Request] = []
        self._running = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="vad")
        #: model-call batches run and requests they served (tests and benchmarks read them)
        self.batches = 0
        self.requests = 0

    async def probabilities(self, state: SileroState, samples16k: np.ndarray) -> np.ndarray:
        """:meth:`SileroVad.probabilities` for one stream, scored on the worker thread."""
        x = np.ascontiguousarray(samples16k, dtype=np.float32)
        if x.ndim != 1:  # checked here, so a bad request fails alone, not its whole batch
            raise ValueError(f"expected 1-D mono samples, got shape {x.shape}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        with self._lock:
            self._pending.append(_Request(state, x, future, loop))
            start = not self._running
            self._running = True
        if start:
            self._executor.submit(self._drain)
        return await future

    def close(self) -> None:
        """Finish queued requests, then stop the thread."""
        self._executor.shutdown(wait=True)

    def _drain(self) -> None:
        while True:
            with self._lock:
                batch = [r for r in self._pending if not r.future.cancelled()]
                self._pending = []
                if not batch:
                    self._running = False
                    return
                # one request per stream per call: a second one (not made by sessions) waits a turn
                seen: set[int] = set()
                now: list[_Request] = []
                later: list[_Request] = []
                for r in batch:
                    (later if id(r.state) in seen else now).append(r)
                    seen.add(id(r.state))
                self._pending = later
            try:
                probs = self.vad.probabilities_many([r.state for r in now], [r.samples for r in now])
            except Exception as exc:  # handed to every waiting caller
                logger.exception("VAD batch of %d streams failed", len(now))
                for r in now:
                    _hand_back(r, None, exc)
                continue
            self.batches += 1
            self.requests += len(now)
            for r, p in zip(now, probs, strict=True):
                _hand_back(r, p, None)
            if self._on_call is not None:
                self._on_call(len(now))


def _hand_back(r: _Request, result: np.ndarray | None, exc: BaseException | None) -> None:
    try:
        r.loop.call_soon_threadsafe(_resolve, r.future, result, exc)
    except RuntimeError:  # that loop is closed: nobody waits any more; keep serving the others
        pass


def _resolve(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():  # cancelled meanwhile
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
