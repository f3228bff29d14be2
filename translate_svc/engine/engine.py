"""The async owner of the model: one queue for all streams, one model thread.

Sessions ``join`` and ``submit`` segments and await their results. Who may wait in the queue is
decided by the pure ``QueueShares`` (each session's fair share, node-wide: ``engine/shares.py``).
The queued jobs, the next unit of work and running it belong to the synchronous core
(``engine/core.py``: ``BatchCore``, whole batches of the pure ``BatchScheduler``'s choosing; or,
with ``core="steps"``, ``StepCore``, engine/step_core.py: rows joining a running decode). The
engine loop (on the event loop) asks the core for the next unit (``schedule``), hands it to the
single model thread with ``run_in_executor`` (``execute``), has the core settle it and resolves each
finished job's future with its result. It sleeps on an event ("a job arrived") with a timeout ("the
oldest job's wait expires"), never polling.

Each segment's input features are computed on a separate CPU thread as soon as it is submitted,
so that their work overlaps with the model's instead of running on the model thread; the job
enters the scheduler when they are ready. A runner that computes them itself, on its device
inside its encoder's call (``FeaturesInRun``: the CUDA plan), gets the segment queued as it comes,
and the features thread stays idle.

Optional work (live captions, simultaneous steps: ``submit_droppable``) runs only in batches of
its own, only when no final is queued or computing its features, and each such batch is bounded by
the scheduler's ``optional_batch_audio_s``: so a final waits behind at most one optional batch, of
at most that budget. Each final's result says what it waited behind (``EngineResult.optional_ms``,
``optional_batches``): the model time of the optional batches that ended while it waited.
A job's session is a **background** owner (``background``): its segments run after every
live job, one a batch, with a floor (engine/scheduler.py); they count as optional batches there.

Failure isolation: if a batch raises, each of its segments is retried alone, so one bad segment
gets its own error and the others still return. If the loop itself dies, every waiting job fails
and ``healthy`` turns False (the server then reports NOT_SERVING).

With tracing on, each batch gets a span (``observability/tracing.py``) whose ids go back with every
job's result (``EngineResult.batch_trace``), for the segment spans to link to.

Thread safety: every public method must be called on the event loop. Only ``BatchCore.execute`` runs
on the model thread, and it touches nothing but the runner and its unit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from translate_svc.engine.core import BatchCore, Core, Job, Settled, Unit
from translate_svc.engine.results import EngineResult, EngineStats
from translate_svc.engine.scheduler import BatchScheduler, QueueFull, SchedulerConfig
from translate_svc.engine.shares import QueueShares
from translate_svc.engine.step_core import DEFAULT_STEPS, StepCore
from translate_svc.engine.warmup import WarmShape, WarmupConfig, WarmupMode, WarmupReport, plan
from translate_svc.errors import ErrorCode, NotReady, Overloaded
from translate_svc.model_api.requests import Features, ModelInput
from translate_svc.model_api.runner import FeaturesInRun, Runner, ShapeWarmable, Warmable
from translate_svc.observability import metrics, tracing, warmup_metrics
from translate_svc.types import MODEL_SAMPLE_RATE, BatchStats, ModelCard, SegmentError, TraceRef

logger = logging.getLogger(__name__)


class TranslationEngine:
    """The in-process engine; implements ``EngineClient`` (engine/client.py)."""

    def __init__(
        self,
        runner_factory: Callable[[], Runner],
        config: SchedulerConfig,
        *,
        on_batch: Callable[[BatchStats], None] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        warmup: WarmupConfig | None = None,
        core: str = "batch",
        steps_per_turn: int = DEFAULT_STEPS,
    ) -> None:
        """``runner_factory`` runs on the model thread at ``start`` (loading takes a while and may
        want that thread's CUDA context). ``on_failure`` is called once, on the loop, if the
        engine loop dies. ``clock`` (seconds) times queue waits and model time (tests pass one
        that only a fake runner advances, so their timings are exact). ``warmup``: the batches
        ``start`` runs before the engine says it is healthy (engine/warmup.py; None: one short batch).
        ``core``: "batch" (``BatchCore``: whole batches) or "steps" (``StepCore``, engine/step_core.py:
        rows joining a running decode, ``steps_per_turn`` decode steps a turn of the loop)."""
        self._runner_factory = runner_factory
        self._warmup_config = warmup or WarmupConfig()
        self._clock = clock
        self._config = config
        self._scheduler = BatchScheduler(config)
        self._core: Core  # queued jobs and the work in the model
        if core == "steps":
            self._core = StepCore(self._scheduler, steps=steps_per_turn)
        elif core == "batch":
            self._core = BatchCore(self._scheduler)
        else:
            raise ValueError(f"engine core {core!r}: expected 'batch' or 'steps'")
        self._shares = QueueShares(config.max_queued)  # every job from submit until a batch takes it
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._prep_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="features")
        self._preparing: dict[int, Job] = {}  # features being computed, by id
        self._background: set[str] = set()  # owners whose finals are background work (jobs)
        self._futures: dict[int, asyncio.Future[EngineResult]] = {}  # every job until settled or dropped
        self._ids = itertools.count()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing is preparing, queued or in the model
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._on_batch = on_batch
        self._on_failure = on_failure
        self._runner: Runner | None = None
        self._features_ahead = True  # features computed on the features thread (else in ``run``)
        self._closed = False  # the core closed (``stop``)
        self.healthy = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, *, warmup: bool = True) -> None:
        """Load the model on the model thread, run the warm-up plan (``warmup``: the config's,
        engine/warmup.py), then start the loop and say healthy."""
        loop = asyncio.get_running_loop()
        self._runner = await loop.run_in_executor(self._executor, self._runner_factory)
        self._features_ahead = not (isinstance(self._runner, FeaturesInRun) and self._runner.features_in_run)
        self._core.attach(self._runner)
        await loop.run_in_executor(self._executor, self._core.prepare)
        if warmup:
            await loop.run_in_executor(self._executor, self._warmup)
        self._task = asyncio.create_task(self._loop(), name="engine-loop")
        self._task.add_done_callback(self._on_loop_done)
        self.healthy = True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # a loop that died already reported its failure (_on_loop_done)
            await asyncio.gather(self._task, return_exceptions=True)
        self._fail_all(NotReady("the server is shutting down"))
        if self._runner is not None and not self._closed:
            self._closed = True  # a second stop finds the model thread's executor shut down
            await asyncio.get_running_loop().run_in_executor(self._executor, self._core.close)
        self._prep_executor.shutdown(wait=True)
        self._executor.shutdown(wait=True)
        self.healthy = False

    def _warmup(self) -> list[WarmShape]:
        """Model thread: each planned batch once, until the plan ends or its time budget is spent
        (no batch starts after it), then the runner's own buckets. Returns the batches run; logs
        what ran (at WARNING when the budget cut it) and sets the warm-up gauges."""
        assert self._runner is not None
        config = self._warmup_config
        shapes = plan(config, self._config.max_batch_size, self._config.max_batch_audio_s)
        card = self._runner.card
        lang = sorted(card.speech_codes or card.text_codes)[0]
        rng = np.random.default_rng(0)

        def item(seconds: float) -> ModelInput:
            audio = (0.01 * rng.standard_normal(round(seconds * MODEL_SAMPLE_RATE))).astype(np.float32)
            return ModelInput(audio, (lang,), lang, speech=bool(card.speech_codes))

        t0 = time.perf_counter()
        deadline = None if config.max_s is None else t0 + config.max_s
        done: list[WarmShape] = []
        for shape in shapes:
            if deadline is not None and done and time.perf_counter() >= deadline:
                break
            first = item(shape.seconds)
            rest = first if shape.rest_s is None else item(shape.rest_s)
            self._core.warm([first] + [rest] * (shape.rows - 1))  # the route live segments take (the stepper's)
            done.append(shape)
        calls, stages_cut = 0, False
        if config.mode is WarmupMode.BUCKETS and isinstance(self._runner, ShapeWarmable):
            most = self._config.max_batch_size * config.rows_per_segment
            row_seconds = self._config.max_batch_audio_s * config.rows_per_segment  # what a batch brings
            calls = self._runner.warm_shapes(most, config.longest_s, deadline, row_seconds=row_seconds)
            stages_cut = deadline is not None and time.perf_counter() >= deadline
        report = WarmupReport(
            config.mode, len(shapes), len(done), calls, time.perf_counter() - t0, config.max_s,
            cut=len(done) < len(shapes) or stages_cut,
        )  # fmt: skip
        warmup_metrics.warmed_up(report.planned, report.run, report.stage_calls, report.seconds, cut=report.cut)
        if isinstance(self._runner, Warmable):
            self._runner.warmed()
        rows = sorted({s.rows for s in done}) or [0]
        lengths = "/".join(f"{s:g}" for s in sorted({s.seconds for s in done}))
        logger.log(
            logging.WARNING if report.cut else logging.INFO,
            "%s; batch sizes %d-%d (%d sizes), %s s a segment",
            report.line(), rows[0], rows[-1], len(rows), lengths,
        )  # fmt: skip
        return done

    # -- public API (event loop only) -----------------------------------------------------

    @property
    def runner(self) -> Runner | None:
        """The loaded runner (benchmarks describe it); only the model thread may call ``run``."""
        return self._runner

    @property
    def card(self) -> ModelCard:
        """The loaded model's languages, voices and identity; NotReady before ``start`` or after a failure."""
        if not self.healthy or self._runner is None:
            raise NotReady("the model is still loading (or has failed); retry when health reports SERVING")
        return self._runner.card

    @property
    def max_queued(self) -> int:
        """Segments the queue holds at most (beyond it ``submit`` raises Overloaded)."""
        return self._config.max_queued

    def stats(self) -> EngineStats:
        return EngineStats(
            queued=self.queued,
            max_queued=self._config.max_queued,
            running=len(self._core.running),
            share=self._shares.share,
            sessions=self._shares.sessions,
        )

    @property
    def queued(self) -> int:
        """Jobs waiting for the model (not counting the batch in the model right now)."""
        return self._core.queued + len(self._preparing)

    @property
    def preparing(self) -> int:
        """Jobs computing their features (submitted, not yet in the scheduler's queue)."""
        return len(self._preparing)

    def join(self, owner: str) -> None:
        """``owner`` (a session) counts in the queue's shares until it ``leave``s."""
        self._shares.join(owner)

    def leave(self, owner: str) -> None:
        """``owner`` is gone: its queued jobs are dropped (``abort``) and it no longer counts."""
        self.abort(owner)
        self._shares.leave(owner)
        self._background.discard(owner)

    def background(self, owner: str) -> None:
        """``owner``'s segments from now on are background work (a job's): the
        scheduler's background class, taken only when no live job waits (engine/scheduler.py)."""
        self._background.add(owner)

    def submit(self, owner: str, item: ModelInput) -> asyncio.Future[EngineResult]:
        """Queue one segment; raises Overloaded when the queue is full (a joined owner within its
        share always gets a place: ``QueueShares``), NotReady if not running. Cancelling the future
        drops the job if it has not reached the model yet."""
        if not self.healthy or self._runner is None:
            raise NotReady("the model is still loading (or has failed); retry when health reports SERVING")
        place = self._shares.place(owner)
        if not place.admit:
            raise Overloaded(
                f"server busy: {self.queued} segments are already waiting for the model; retry shortly",
                retry_after_ms=self._retry_hint_ms(),
            )
        if place.evict is not None:
            self._evict(place.evict)
        return self._enqueue(owner, item, droppable=False)

    def submit_droppable(
        self, owner: str, item: ModelInput, *, behind_finals: bool = False
    ) -> asyncio.Future[EngineResult] | None:
        """Queue best-effort work (a live caption, a simultaneous step), or return None when the
        engine is behind (a final job is waiting, queued or computing its features; the queue is
        full) or when the job alone is over the optional batch budget (it would break the bound on
        finals' wait). Droppable jobs run only in batches of their own, when no final job is queued
        (scheduler). ``behind_finals`` (a room's rendition): queued while finals wait as well; it
        runs once none does (``EngineClient.submit_droppable``)."""
        if not self.healthy or self._runner is None or not self._shares.place(owner, droppable=True).admit:
            return None
        finals = self._core.finals or any(not (j.droppable or j.background) for j in self._preparing.values())
        if finals and not behind_finals:
            return None
        if not self._core.fits_optional(item):
            metrics.optional_over_budget()  # it would break the optional batch's budget alone
            return None
        return self._enqueue(owner, item, droppable=True)

    def _enqueue(self, owner: str, item: ModelInput, *, droppable: bool) -> asyncio.Future[EngineResult]:
        assert self._runner is not None
        loop = asyncio.get_running_loop()
        job = Job(next(self._ids), owner, item, self._clock(), droppable, background=owner in self._background)
        future: asyncio.Future[EngineResult] = loop.create_future()
        self._futures[job.job_id] = future
        self._preparing[job.job_id] = job
        self._shares.add(job.job_id, owner, droppable=droppable)
        self._idle.clear()
        future.add_done_callback(functools.partial(self._forget_cancelled, job))
        prep: asyncio.Future[Features | None]
        if item.text is not None or item.respeak or not self._features_ahead:
            # text and a respeak have no features, and a runner that computes them in ``run``
            # needs none: it queues at once (on the loop, as below)
            prep = loop.create_future()
            prep.set_result(None)
        else:
            prep = loop.run_in_executor(self._prep_executor, self._runner.extract_features, item.audio)
        prep.add_done_callback(functools.partial(self._prepared, job))  # runs on the loop
        return future

    def _forget_cancelled(self, job: Job, future: asyncio.Future[EngineResult]) -> None:
        """A job whose future was cancelled leaves the queue (a batch already running finishes)."""
        if future.cancelled():
            self._core.remove(job.job_id)
            self._shares.remove(job.job_id)
            self._preparing.pop(job.job_id, None)
            self._futures.pop(job.job_id, None)  # in the model, it runs to its end for nobody
            self._check_idle()
            self._wakeup.set()

    def _prepared(self, job: Job, prep: asyncio.Future[Features | None]) -> None:
        try:
            self._queue_prepared(job, prep)
        finally:
            self._check_idle()
            self._wakeup.set()  # queued, or failed: droppable jobs waiting for it may go now

    def _queue_prepared(self, job: Job, prep: asyncio.Future[Features | None]) -> None:
        future = self._futures.get(job.job_id)
        if self._preparing.pop(job.job_id, None) is None or future is None or future.done():
            return  # aborted (or failed, or evicted) while its features were computed
        if prep.cancelled() or prep.exception() is not None:
            self._shares.remove(job.job_id)
            logger.error("features failed: %r", None if prep.cancelled() else prep.exception())
            error = SegmentError(ErrorCode.INTERNAL.value, "could not compute this segment's features")
            del self._futures[job.job_id]
            future.set_result(EngineResult(None, error, 0.0, 0.0, 0))
            return
        features = prep.result()
        if features is not None:
            job.item = dataclasses.replace(job.item, features=features)
        try:
            self._core.add(job)
        except QueueFull:  # cannot happen: submit reserved the place; fail loudly rather than drop
            self._shares.remove(job.job_id)
            del self._futures[job.job_id]
            future.set_exception(Overloaded("server busy; retry shortly", retry_after_ms=self._retry_hint_ms()))
            return
        self._wakeup.set()

    def abort(self, owner: str) -> int:
        """Drop ``owner``'s queued jobs (client gone). A batch already running finishes first."""
        jobs = self._core.remove_owner(owner)
        for j in [j for j, job in self._preparing.items() if job.owner == owner]:
            jobs.append(self._preparing.pop(j))
        for job in jobs:
            self._shares.remove(job.job_id)
            self._futures.pop(job.job_id).cancel()
        if jobs:
            logger.info("dropped %d queued segments", len(jobs), extra={"session_id": owner})
        self._check_idle()
        return len(jobs)

    def _evict(self, job_id: int) -> None:
        """A job beyond its session's share leaves the full queue for a job within one: a
        droppable job is dropped (a cancelled future), a final one fails ``Overloaded``."""
        self._shares.remove(job_id)
        job = self._core.remove(job_id) or self._preparing.pop(job_id)
        future = self._futures.pop(job_id)
        if job.droppable:
            future.cancel()
        else:
            future.set_exception(
                Overloaded(
                    "server busy: this stream sent more than its share of the queue; retry shortly",
                    retry_after_ms=self._retry_hint_ms(),
                )
            )
        logger.info("evicted a segment beyond its share of the queue", extra={"session_id": job.owner})

    async def wait_idle(self) -> None:
        """Until nothing is preparing, queued or in the model: after it, no work submitted (or
        aborted) before the call can still be computed. For drains and tests; never polls."""
        await self._idle.wait()

    def _check_idle(self) -> None:
        if not (self._preparing or self._core.queued or self._core.running):
            self._idle.set()

    def _retry_hint_ms(self) -> int:
        return int(max(100, self._config.max_wait_s * 10_000))

    # -- the loop ---------------------------------------------------------------------------

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wakeup.clear()
            now = self._clock()
            coming = any(not (j.droppable or j.background) for j in self._preparing.values())  # live finals
            live = coming or any(not j.background for j in self._preparing.values())
            unit = self._core.schedule(now, finals_coming=coming, live_coming=live)
            if unit is None:
                deadline = self._core.next_deadline(finals_coming=coming, live_coming=live)
                timeout = None if deadline is None else max(0.0, deadline - now)
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout)
                except TimeoutError:
                    pass
                continue
            await self._run_next(loop, unit)
            del unit  # nothing of the batch stays referenced while the loop waits for the next

    async def _run_next(self, loop: asyncio.AbstractEventLoop, unit: Unit) -> None:
        """Run one unit on the model thread and hand out its results. A method of its own, so that
        nothing of the batch (its audio, features, outputs) stays referenced by the loop while it
        waits for the next one."""
        for job in unit.jobs:
            self._shares.remove(job.job_id)
        started, started_ns = self._clock(), time.time_ns()
        finished = await loop.run_in_executor(self._executor, self._core.execute, unit)
        settled = self._core.settle(unit, finished, started, self._clock(), self._preparing.values())
        self._check_idle()
        self._hand_out(settled, started_ns)

    def _hand_out(self, settled: Settled, started_ns: int) -> None:
        """Each settled job's future gets its ``EngineResult`` (unless it was cancelled meanwhile);
        then the batch's span, metrics and observer. A unit in which no job ended (``StepCore``'s
        turns while rows decode) reports nothing."""
        stats = settled.stats
        if not settled.outcomes:
            return
        trace = self._trace(started_ns, settled) if tracing.enabled() else None
        for o in settled.outcomes:
            future = self._futures.pop(o.job_id, None)
            if future is not None and not future.done():  # None: cancelled while in the model
                model_ms = stats.model_ms if o.model_ms is None else o.model_ms
                result = EngineResult(
                    o.output, o.error, o.queue_ms, model_ms, stats.size, trace, o.optional_ms, o.optional_batches
                )
                future.set_result(result)
            if not o.droppable:
                metrics.final_optional_wait(o.optional_ms)
        if self._on_batch is not None:
            self._on_batch(stats)

    @staticmethod
    def _trace(started_ns: int, settled: Settled) -> TraceRef | None:
        """The batch's span (tracing on): its ids go back with every result of the batch."""
        out = next((o.output for o in settled.outcomes if o.output is not None), None)
        return tracing.batch_span(
            started_ns,
            settled.stats,
            failed=sum(o.error is not None for o in settled.outcomes),
            captions=settled.optional,
            speech_ms=out.speech_ms if out is not None else 0.0,
            language_id_ms=out.language_id_ms if out is not None else 0.0,
        )

    def _on_loop_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.error("engine loop died: %r", exc, exc_info=exc)
            self.healthy = False
            self._fail_all(NotReady(f"the model worker failed ({exc!r}); the server must be restarted"))
            if self._on_failure is not None:
                self._on_failure(exc)

    def _fail_all(self, exc: Exception) -> None:
        for job in [*self._preparing.values(), *self._core.queued_jobs(), *self._core.running]:
            future = self._futures.get(job.job_id)
            if future is not None and not future.done():
                future.set_exception(exc)
        self._futures.clear()
        self._preparing.clear()
        self._core.clear()
        self._shares.clear()
        self._idle.set()
