"""Live captions of one stream: the open speech as text, every interval, as droppable engine jobs.

At most one caption is in flight; one is skipped (not queued) while the engine is behind or the
reader has unread events, or when it alone is over the engine's optional batch budget
(``engine.optional_batch_audio_s``), and dropped once its segment's final result is submitted.
Event loop only.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

import numpy as np

from translate_svc.engine.client import EngineClient
from translate_svc.engine.results import EngineResult
from translate_svc.session import results
from translate_svc.session.stream.segments import SegmentTracker
from translate_svc.session.task import inputs
from translate_svc.types import TranslationTask

logger = logging.getLogger(__name__)


class Captions:
    def __init__(
        self,
        engine: EngineClient,
        owner: str,
        task: TranslationTask,
        tracker: SegmentTracker,
        interval_ms: int,
        offset_ms: int,
    ) -> None:
        self._engine = engine
        self._owner = owner
        self._task = task
        self._tracker = tracker
        self._every = interval_ms * results.PER_MS  # 16 kHz samples of open speech per caption
        self._offset_ms = offset_ms
        self._inflight: asyncio.Future[EngineResult] | None = None
        self._seg = -1  # the segment the next caption is for ...
        self._mark = 0  # ... and where (16 kHz sample) its last caption ended
        #: captions skipped because the engine or the reader was behind (tests and benchmarks read it)
        self.skipped = 0
        self._log = {"session_id": owner}

    def maybe_start(self, open_speech: tuple[int, np.ndarray] | None) -> None:
        """Start a caption of ``open_speech`` (its first 16 kHz sample, its samples) when another
        interval of it has come in and none is in flight."""
        if self._inflight is not None or open_speech is None:
            return
        start, samples = open_speech
        next_id = self._tracker.next_id
        if self._seg != next_id:  # a new segment: count from its start
            self._seg, self._mark = next_id, start
        end = start + len(samples)
        if end - self._mark < self._every:
            return
        self._mark = end
        if self._tracker.backlog:  # the reader is behind: a caption now would only be superseded
            self.skipped += 1
            return
        per_ms = results.PER_MS
        first = -(-start // per_ms) * per_ms
        last = end // per_ms * per_ms
        item = inputs.model_input(self._task, samples[first - start : last - start], final=False)
        fut = self._engine.submit_droppable(self._owner, item)
        if fut is None:
            self.skipped += 1
            return
        self._inflight = fut
        span = (self._seg, first // per_ms + self._offset_ms, last // per_ms + self._offset_ms)
        fut.add_done_callback(functools.partial(self._done, span, self._task, time.perf_counter()))

    def retarget(self, task: TranslationTask) -> None:
        """Captions asked from now on are for ``task`` (one in flight is for the old one: dropped)."""
        self._task = task
        self.drop()

    def segment_closed(self, segment_id: int) -> None:
        """The final result of ``segment_id`` supersedes its caption in flight."""
        if self._seg == segment_id:
            self.drop()

    def drop(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()  # the engine drops it unless it is in the model already
            self._inflight = None

    def _done(
        self, span: tuple[int, int, int], task: TranslationTask, asked_at: float, fut: asyncio.Future[EngineResult]
    ) -> None:
        if self._inflight is fut:
            self._inflight = None
        t = self._tracker
        if fut.cancelled() or t.failure is not None or t.ended or span[0] < t.next_id:
            return  # superseded by the segment's final result, or the stream is over
        job = fut.exception() is None and fut.result()
        if not job or job.output is None:
            logger.debug("a live caption failed: %r", fut.exception() or fut.result().error, extra=self._log)
            return
        t.put(results.build_interim(span, task, job, job.output, asked_at))
