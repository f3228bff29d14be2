"""The "steps" core (``engine.core = "steps"``): rows that join and leave at every step.

``BatchCore`` (engine/core.py) runs a batch to its end: each job waits for the batch's longest row,
and a final that arrives meanwhile waits for the whole batch. ``StepCore`` implements the same
``Core`` Protocol over the runner's ``Stepper`` (model_api/runner.py; model/stepping.py
``SteppingDecoder``): one running decode that outlives the owner's units, as vLLM's scheduler
admits requests into a running batch at every iteration. Each turn of the owner's loop:

1. ``schedule``: the jobs the ``BatchScheduler``'s rules take now (finals first, fair rounds across
   streams, optional and background work last: the same choice ``BatchCore`` runs, not a second
   policy), or none; a unit is made while jobs are in the running decode even when nothing new is
   taken, so that it goes on. **Only as many rows as the pool has room for are taken**
   (``Stepper.room`` after the last turn; a live row counts background rows' slots as room, as
   it takes them: their rows decode again later, model/stepping.py), and the streams with the
   fewest rows in the running decode first (the scheduler's ``room`` and ``running``): the rest
   waits in the queue, under the fair shares and the overload answers, never in the decode (an
   idle decode too takes at most its slots; the slots of jobs removed since the last turn count as
   room, as the unit drops them before its rows join). So a stream that floods the engine holds at
   most the slots the others leave, and a final of another stream takes the next slot that frees,
   ahead of the flood's older segments (the flood test, tests/service/test_fair_share.py, under
   both cores). Taken rows join the pool finals first (``FINAL``, ``LIVE_OPTIONAL``,
   ``BACKGROUND``: model_api/runner.py);
2. ``execute`` (model thread): the jobs the stepper does not take (texts, simultaneous steps,
   terms' first pass, the exact runner: ``Stepper.takes``) run through ``Runner.run`` as a whole
   batch; the others are admitted into the stepper, which then ticks at most ``steps`` decode steps
   (fewer once none is left to step), so a new final waits for at most that many steps before it joins;
   ``Finished`` for every job that ended, whichever unit took it;
3. ``settle``: the ended jobs leave, each with its queue wait (until the unit that took it began)
   and its own model time (from then until its end, ``Outcome.model_ms``). A unit in which no job
   ended settles with no outcome.

Jobs removed while in the running decode (a cancelled future, an aborted owner, ``clear``) are
dropped from it at the next ``execute``: the owner hands the drops to the model thread in the
unit (``StepUnit.drops``), so no call crosses threads. A runner without a stepper (the exact
runner; the tests' fake) runs every job as a whole batch: then ``StepCore`` is ``BatchCore`` with
units of one turn. The optional-wait accounting of ``BatchCore`` (a final's wait behind an
optional batch) does not apply: finals join the running decode within ``steps`` steps, so
``Outcome.optional_ms`` is 0.

Thread safety: as ``BatchCore``: ``execute`` (and ``prepare``) run on the model thread and touch the
runner, the stepper, its unit and ``_room`` (read by the owner only after ``execute`` returned);
every other method runs on the owner's thread.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from translate_svc.engine.core import CoreQueue, Finished, Job, Outcome, Settled, Unit, run_items
from translate_svc.engine.scheduler import BatchScheduler
from translate_svc.errors import ErrorCode
from translate_svc.model_api.requests import ModelInput
from translate_svc.model_api.runner import BACKGROUND, FINAL, LIVE_OPTIONAL, Runner, Steppable, Stepper
from translate_svc.types import BatchStats, SegmentError

#: decode steps one ``execute`` ticks at most (``engine.steps_per_turn``)
DEFAULT_STEPS = 4

#: a job the stepper failed (it logged why)
FAILED = SegmentError(ErrorCode.INTERNAL.value, "the model failed on this segment")


@dataclass(frozen=True, eq=False)
class StepUnit(Unit):
    """One turn of ``StepCore``: the jobs taken now (``jobs``), and the jobs to drop from the
    running decode (removed since the last turn); ``reset``: every job leaves it first (``clear``)."""

    drops: tuple[int, ...] = ()
    reset: bool = False


def _priority(job: Job) -> int:
    """Rows of finals join the pool first, then droppable (live optional) work, then background."""
    return BACKGROUND if job.background else LIVE_OPTIONAL if job.droppable else FINAL


class StepCore(CoreQueue):
    """Rows joining and leaving a running decode (see the module docstring)."""

    def __init__(self, scheduler: BatchScheduler, runner: Runner | None = None, *, steps: int = DEFAULT_STEPS) -> None:
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        super().__init__(scheduler)
        self.steps = steps
        self._runner: Runner | None = None
        self._stepper: Stepper | None = None
        self._asked = False  # the runner was asked for its stepper (model thread)
        self._model: dict[int, Job] = {}  # taken by a unit, not yet settled: in the running decode
        self._taken_at: dict[int, float] = {}  # when the unit that took each began (owner's clock)
        self._drops: list[int] = []  # removed from the running decode since the last unit
        self._reset = False
        self._room: tuple[int, int] | None = None  # the stepper's room for live, background rows (last execute)
        self._freed = 0  # rows of the jobs in ``_drops`` (or cleared): slots they give back at the next unit
        if runner is not None:
            self.attach(runner)

    def attach(self, runner: Runner) -> None:
        """The loaded model; its stepper is made at the first ``execute``, on the model thread."""
        self._runner = runner
        self._stepper = None
        self._asked = False

    def prepare(self) -> None:
        """Model thread: the runner's stepper made now (its pool allocated, its CUDA graphs
        captured), not at the first unit."""
        assert self._runner is not None
        if not self._asked:
            self._asked = True
            self._stepper = self._runner.stepper() if isinstance(self._runner, Steppable) else None
            self._measure_room()

    def _measure_room(self) -> None:
        """Model thread: the stepper's room now, for the owner's next ``schedule``."""
        if self._stepper is not None:
            self._room = (self._stepper.room(live=True), self._stepper.room(live=False))

    def close(self) -> None:
        """Model thread: the stepper's jobs leave and its finish stage ends."""
        if self._stepper is not None:
            self._stepper.close()

    def warm(self, items: Sequence[ModelInput]) -> None:
        """Model thread, before the first unit (the engine's warm-up): ``items`` through the route
        live jobs take, so that every stage's shapes run where they will (the stepper's own pool,
        its admission, its finish stage's thread); what the stepper does not take runs as a whole
        batch, as ``execute`` runs it. Raises if any fails."""
        assert self._runner is not None
        stepper = self._stepper
        if stepper is None or not all(stepper.takes(i) for i in items):
            self._runner.run(items)
            return
        for key, item in enumerate(items):
            stepper.admit(-1 - key, item)  # keys no job of the owner's has
        left = len(items)
        while left:
            done = stepper.tick(self.steps)
            if any(out is None for _, out in done):
                raise RuntimeError("a warm-up segment failed in the stepping decoder")
            left -= len(done)

    # -- the queue (owner's thread; the rest is ``CoreQueue``'s) ---------------------------

    def add(self, job: Job) -> None:
        """Queue ``job``, and cut short a tick that waits for the stepper's finish stage."""
        super().add(job)
        if self._stepper is not None:
            self._stepper.wake()

    @property
    def running(self) -> Sequence[Job]:
        """Every job taken and not settled: those of the unit in the model and those decoding."""
        return tuple(self._model.values())

    def remove(self, job_id: int) -> Job | None:
        """Drop one job, queued or in the running decode (its rows leave at the next unit)."""
        if self.scheduler.remove(job_id):
            return self._jobs.pop(job_id, None)
        job = self._model.pop(job_id, None)
        if job is not None:
            self._taken_at.pop(job_id, None)
            self._drops.append(job_id)
            self._freed += job.item.text_rows
        return job

    def remove_owner(self, owner: str) -> list[Job]:
        """Drop every job of ``owner``, queued or in the running decode; returns them."""
        gone = [self._jobs.pop(j) for j in self.scheduler.remove_owner(owner)]
        for job_id in [j for j, job in self._model.items() if job.owner == owner]:
            removed = self.remove(job_id)
            assert removed is not None
            gone.append(removed)
        return gone

    def clear(self) -> None:
        """Forget every job; the running decode drops them all at the next unit."""
        self.scheduler.clear()
        self._jobs.clear()
        self._freed += sum(job.item.text_rows for job in self._model.values())
        self._model.clear()
        self._taken_at.clear()
        self._drops.clear()
        self._reset = True

    # -- a unit's life ----------------------------------------------------------------------

    def next_deadline(self, *, finals_coming: bool = False, live_coming: bool = False) -> float | None:
        return self.scheduler.next_deadline(finals_coming=finals_coming, live_coming=live_coming)

    def schedule(self, now: float, *, finals_coming: bool = False, live_coming: bool = False) -> Unit | None:
        """The jobs the scheduler's rules take now, as a unit; a unit with none while jobs are in
        the running decode (or drops are due); None: nothing to do until ``next_deadline``."""
        room, running = None, None
        if self._room is not None:
            # the room after the last unit, and the slots the jobs removed since give back when this
            # unit drops them (before its rows join); an empty decode is bounded by its slots too
            live = self.scheduler.live or finals_coming or live_coming
            room = (self._room[0] if live else self._room[1]) + self._freed
            if not self._model:  # nothing of ours decodes: whatever the stepper still counts, go on
                room = max(room, 1)
            running = Counter[str]()
            for job in self._model.values():
                running[job.owner] += job.item.text_rows
        ids = self.scheduler.next_batch(
            now, finals_coming=finals_coming, live_coming=live_coming, room=room, running=running
        )
        if ids is None and not (self._model or self._drops or self._reset):
            return None
        jobs = tuple(self._jobs.pop(j) for j in ids or ())
        unit = StepUnit(jobs, drops=tuple(self._drops), reset=self._reset)
        self._drops, self._reset, self._freed = [], False, 0
        self._model.update((j.job_id, j) for j in jobs)
        return unit

    def execute(self, unit: Unit) -> list[Finished]:
        """Model thread: the unit's jobs the stepper does not take as one whole batch; the others
        join the running decode, which ticks up to ``steps`` steps. ``Finished`` for every job that
        ended (of this unit or an earlier one)."""
        self.prepare()
        assert self._runner is not None
        stepper = self._stepper
        stepped: list[Job] = []
        whole = list(unit.jobs)
        if stepper is not None:
            if isinstance(unit, StepUnit):
                if unit.reset:
                    stepper.clear()
                for key in unit.drops:
                    stepper.drop(key)
            stepped = [j for j in unit.jobs if stepper.takes(j.item)]
            whole = [j for j in unit.jobs if not stepper.takes(j.item)]
        finished = []
        if whole:
            results = run_items(self._runner, [j.item for j in whole])
            finished += [Finished(j.job_id, out, err) for j, (out, err) in zip(whole, results, strict=True)]
        if stepper is not None:
            for job in stepped:
                stepper.admit(job.job_id, job.item, priority=_priority(job))
            for key, out in stepper.tick(self.steps):
                error = (
                    None
                    if out is not None
                    else SegmentError(ErrorCode.INTERNAL.value, "the model failed on this segment")
                )
                finished.append(Finished(key, out, error))
            self._measure_room()
        return finished

    def settle(
        self, unit: Unit, finished: Sequence[Finished], started: float, ended: float, preparing: Iterable[Job] = ()
    ) -> Settled:
        """The jobs that ended leave (a job removed meanwhile is answered to nobody); the unit's
        account: the ended jobs' outcomes (none where none ended)."""
        for taken_now in unit.jobs:
            if taken_now.job_id in self._model:
                self._taken_at[taken_now.job_id] = started
        outcomes, jobs = [], []
        for f in finished:
            job = self._model.pop(f.job_id, None)
            taken = self._taken_at.pop(f.job_id, started)
            if job is None:
                continue  # removed while in the model: its rows were dropped, or it ended first
            jobs.append(job)
            waited = (taken - job.enqueued_at) * 1000
            outcomes.append(
                Outcome(job.job_id, job.droppable, f.output, f.error, waited, 0.0, 0, (ended - taken) * 1000)
            )
        longest = max((j.item.input_seconds for j in jobs), default=0.0)
        rows = sum(j.item.text_rows for j in jobs)
        stats = BatchStats(
            len(jobs), longest * len(jobs), (ended - started) * 1000, tuple(o.queue_ms for o in outcomes), rows
        )
        optional = bool(jobs) and all(j.droppable or j.background for j in jobs)
        return Settled(stats, tuple(outcomes), optional)
