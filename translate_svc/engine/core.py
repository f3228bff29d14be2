"""The engine's core: the queued jobs, the next unit of work, running it, and what finished.

Synchronous and plain: no event loop, no futures, no clocks of its own (times are passed in). The
async owner (``TranslationEngine``, engine/engine.py) keeps submission, fair shares, the features
thread, futures, health, tracing and metrics; each turn of its loop it asks the core

1. ``schedule(now, finals_coming)``: the next ``Unit`` (the jobs the scheduler's rules take now, out
   of the queue) or None (wait: ``next_deadline`` says until when);
2. ``execute(unit)`` on the model thread: one ``Finished`` per job (its output, or its error);
3. ``settle(unit, finished, started, ended, preparing)``: the unit leaves the core, and the owner
   gets a ``Settled``: the batch's ``BatchStats`` and, per job, what to hand its future (queue wait,
   optional wait). Nothing of the unit stays referenced by the core after it.

As vLLM's ``EngineCore.step`` returns outputs for its async client to route to request queues, the
core returns "these finished" and the owner resolves futures. ``Core`` is the Protocol; today's
behaviour is one implementation, ``BatchCore`` ("whole batches": a unit is a batch, run by
``Runner.run`` to its end). ``StepCore`` (engine/step_core.py, ``engine.core = "steps"``: rows
joining and leaving a running decode, as TGI's batches ``filter`` and ``concatenate`` between
steps) is another implementation of the same calls; its jobs may finish in a later unit than the
one that took them.

Thread safety: ``execute`` runs on the model thread and touches only the runner and its unit; every
other method runs on the owner's thread (the event loop), never while another of them runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from translate_svc.engine.scheduler import BatchScheduler
from translate_svc.errors import ErrorCode
from translate_svc.model_api.requests import ModelInput, ModelOutput
from translate_svc.model_api.runner import Runner
from translate_svc.types import BatchStats, SegmentError

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Job:
    """One submitted segment, from ``submit`` until it is settled (or dropped). Its future is the
    owner's (by ``job_id``); the core keeps the rest."""

    job_id: int
    owner: str
    item: ModelInput
    enqueued_at: float
    droppable: bool = False
    #: a job's segment: the scheduler's background class, after every live job
    background: bool = False
    #: a final's wait behind optional batches: their model time (s) and how many
    optional_s: float = 0.0
    optional_batches: int = 0


@dataclass(frozen=True, eq=False)
class Unit:
    """One unit of work for the model: ``BatchCore``'s is one batch (its jobs, oldest first)."""

    jobs: tuple[Job, ...]

    @property
    def optional(self) -> bool:
        """Droppable or background jobs only (an optional or a background batch: finals that wait
        while it runs wait behind it)."""
        return all(j.droppable or j.background for j in self.jobs)


@dataclass(frozen=True)
class Finished:
    """A job the model is done with: its output, or the error of that one segment."""

    job_id: int
    output: ModelOutput | None
    error: SegmentError | None


@dataclass(frozen=True)
class Outcome:
    """What one settled job's future gets (besides the batch's model time and size)."""

    job_id: int
    droppable: bool
    output: ModelOutput | None
    error: SegmentError | None
    queue_ms: float
    #: the optional batches (model time, count) this final waited behind; 0 for droppable jobs
    optional_ms: float
    optional_batches: int
    #: its own model time (ms) where it is not its unit's (a steps core: from its admission to its
    #: end, across units); None: the unit's
    model_ms: float | None = None


@dataclass(frozen=True)
class Settled:
    """A unit's account: its ``BatchStats`` and one ``Outcome`` per job, in the unit's order."""

    stats: BatchStats
    outcomes: tuple[Outcome, ...]
    optional: bool


class Core(Protocol):
    """What the async owner asks of a core (``BatchCore``: whole batches; later, steps)."""

    @property
    def queued(self) -> int:
        """Jobs queued (not the unit in the model)."""
        ...

    @property
    def finals(self) -> int:
        """Final (non-droppable) jobs queued."""
        ...

    @property
    def running(self) -> Sequence[Job]:
        """The jobs in the model now (scheduled, not yet settled)."""
        ...

    def queued_jobs(self) -> list[Job]:
        """The queued jobs, in arrival order (finals, then droppable jobs)."""
        ...

    def attach(self, runner: Runner) -> None:
        """The loaded model (before the first ``execute``)."""
        ...

    def prepare(self) -> None:
        """Model thread, once after ``attach``: what the core makes on the model before the first
        unit (the steps core's running decode, its CUDA graphs captured), so no live segment pays it."""
        ...

    def close(self) -> None:
        """Model thread, at the engine's stop: what ``prepare`` made that runs beside the model
        thread (the steps core's finish stage) ends."""
        ...

    def warm(self, items: Sequence[ModelInput]) -> None:
        """Model thread, after ``prepare`` (the warm-up): ``items`` through the route live jobs
        take, to its end; raises if any fails."""
        ...

    def fits_optional(self, item: ModelInput) -> bool: ...

    def add(self, job: Job) -> None: ...

    def remove(self, job_id: int) -> Job | None: ...

    def remove_owner(self, owner: str) -> list[Job]: ...

    def clear(self) -> None: ...

    def next_deadline(self, *, finals_coming: bool = False, live_coming: bool = False) -> float | None: ...

    def schedule(self, now: float, *, finals_coming: bool = False, live_coming: bool = False) -> Unit | None: ...

    def execute(self, unit: Unit) -> list[Finished]: ...

    def settle(
        self, unit: Unit, finished: Sequence[Finished], started: float, ended: float, preparing: Iterable[Job] = ()
    ) -> Settled: ...


class CoreQueue:
    """The queue every core keeps alike (owner's thread): the ``BatchScheduler``'s view of the
    queued jobs (its rules choose the next unit) and the jobs themselves, by id."""

    def __init__(self, scheduler: BatchScheduler) -> None:
        self.scheduler = scheduler
        self._jobs: dict[int, Job] = {}  # queued, by id

    @property
    def queued(self) -> int:
        return len(self.scheduler)

    @property
    def finals(self) -> int:
        return self.scheduler.finals

    def queued_jobs(self) -> list[Job]:
        return list(self._jobs.values())

    def fits_optional(self, item: ModelInput) -> bool:
        """Whether a droppable ``item`` fits an optional batch alone (one that does not must not be
        queued: it would break the bound on finals' wait)."""
        return self.scheduler.fits_optional(item.input_seconds, item.text_rows)

    def add(self, job: Job) -> None:
        """Queue ``job`` (its features, if any, are on its item); raises ``QueueFull`` (then it is
        not queued)."""
        item = job.item
        self.scheduler.add(
            job.job_id,
            job.owner,
            item.input_seconds,
            job.enqueued_at,
            droppable=job.droppable,
            rows=item.text_rows,
            background=job.background,
        )
        self._jobs[job.job_id] = job


class BatchCore(CoreQueue):
    """Whole batches: a unit is one batch of the ``BatchScheduler``'s choosing, run to its end by
    ``Runner.run``; a failing batch is retried item by item, so one bad segment fails alone."""

    def __init__(self, scheduler: BatchScheduler, runner: Runner | None = None) -> None:
        """``runner``: the loaded model (``attach`` it later when it loads on the model thread)."""
        super().__init__(scheduler)
        self._runner = runner
        self._running: tuple[Job, ...] = ()  # the unit in the model now

    def attach(self, runner: Runner) -> None:
        self._runner = runner

    def prepare(self) -> None:
        """Nothing: whole batches need nothing made before the first."""

    def close(self) -> None:
        """Nothing: whole batches run on the model thread alone."""

    def warm(self, items: Sequence[ModelInput]) -> None:
        assert self._runner is not None
        self._runner.run(items)

    # -- the queue (owner's thread; the rest is ``CoreQueue``'s) ---------------------------

    @property
    def running(self) -> Sequence[Job]:
        return self._running

    def remove(self, job_id: int) -> Job | None:
        """Drop one queued job; None if it is not queued (a job in the model runs to its end)."""
        self.scheduler.remove(job_id)
        return self._jobs.pop(job_id, None)

    def remove_owner(self, owner: str) -> list[Job]:
        """Drop every queued job of ``owner``; returns them."""
        return [self._jobs.pop(j) for j in self.scheduler.remove_owner(owner)]

    def clear(self) -> None:
        """Forget every job, queued or running (the owner failed them)."""
        self.scheduler.clear()
        self._jobs.clear()
        self._running = ()

    # -- a unit's life ----------------------------------------------------------------------

    def next_deadline(self, *, finals_coming: bool = False, live_coming: bool = False) -> float | None:
        """When the oldest queued job's wait expires (None: nothing to wait for)."""
        return self.scheduler.next_deadline(finals_coming=finals_coming, live_coming=live_coming)

    def schedule(self, now: float, *, finals_coming: bool = False, live_coming: bool = False) -> Unit | None:
        """The batch to run now, out of the queue, or None if it should wait (engine/scheduler.py's
        rules; ``finals_coming``: finals are computing their features, so no optional batch;
        ``live_coming``: live jobs are, so no background batch)."""
        batch_ids = self.scheduler.next_batch(now, finals_coming=finals_coming, live_coming=live_coming)
        if batch_ids is None:
            return None
        unit = Unit(tuple(self._jobs.pop(j) for j in batch_ids))
        self._running = unit.jobs
        return unit

    def execute(self, unit: Unit) -> list[Finished]:
        """Model thread: the runner's output for each job of ``unit``, in order; touches nothing
        but the runner and the unit."""
        results = self._run([j.item for j in unit.jobs])
        return [Finished(j.job_id, out, err) for j, (out, err) in zip(unit.jobs, results, strict=True)]

    def _run(self, items: Sequence[ModelInput]) -> list[tuple[ModelOutput | None, SegmentError | None]]:
        assert self._runner is not None
        return run_items(self._runner, items)

    def settle(
        self, unit: Unit, finished: Sequence[Finished], started: float, ended: float, preparing: Iterable[Job] = ()
    ) -> Settled:
        """``unit`` ran from ``started`` to ``ended`` (the owner's clock, seconds) and gave
        ``finished``: it leaves the core. An optional batch counts against every final waiting now,
        queued here or ``preparing`` (computing its features, the owner's). Returns its account."""
        if self._running is unit.jobs:
            self._running = ()
        model_s = ended - started
        jobs = unit.jobs
        if unit.optional:  # every final waiting waited behind it
            for waiting in [*preparing, *self._jobs.values()]:
                if not (waiting.droppable or waiting.background):
                    waiting.optional_s += model_s
                    waiting.optional_batches += 1
        by_id = {f.job_id: f for f in finished}
        queue_ms = tuple((started - j.enqueued_at) * 1000 for j in jobs)
        longest = max(j.item.input_seconds for j in jobs)
        rows = sum(j.item.text_rows for j in jobs)
        stats = BatchStats(len(jobs), longest * len(jobs), model_s * 1000, queue_ms, rows)
        outcomes = tuple(
            Outcome(
                j.job_id,
                j.droppable,
                by_id[j.job_id].output,
                by_id[j.job_id].error,
                q_ms,
                j.optional_s * 1000,
                j.optional_batches,
            )
            for j, q_ms in zip(jobs, queue_ms, strict=True)
        )
        return Settled(stats, outcomes, unit.optional)


def run_items(runner: Runner, items: Sequence[ModelInput]) -> list[tuple[ModelOutput | None, SegmentError | None]]:
    """``Runner.run`` on ``items``; a failing batch is retried item by item so one bad segment
    fails alone (model thread)."""
    try:
        return [(out, None) for out in runner.run(items)]
    except Exception:
        if len(items) == 1:
            logger.exception("segment failed in the model")
            return [(None, SegmentError(ErrorCode.INTERNAL.value, "the model failed on this segment"))]
        logger.exception("batch of %d failed; retrying its segments one by one", len(items))
    return [run_items(runner, [item])[0] for item in items]
