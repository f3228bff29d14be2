"""Rows of many jobs in one running decode: rows that join and leave at every step.

``SeamlessRunner.run`` (model/runner.py) runs a batch to its end: every job of it waits for its
longest row, and a job that arrives meanwhile waits for the whole batch. ``SteppingDecoder`` keeps
one persistent ``DecodeLoop`` (model/decode/loop.py) across the engine's units (the engine's
``Stepper`` Protocol, model_api/runner.py; driven by engine/step_core.py ``StepCore``):

- ``admit(key, item, priority)``: a job joins; at the next ``tick`` the jobs admitted since the last
  are **prefilled** together (``SeamlessRunner.prefill_segments``: features, the speech encoder,
  language identification, the rows' plan), one batch;
- ``tick(max_steps)``: rows waiting for a slot join the pool as slots free up (lower ``priority``
  first, then oldest: finals before captions before a job's segments), never more than the pool
  holds (the rest wait here, never an out-of-memory); then up to ``max_steps`` steps (fewer when
  the pool empties, a job fails or the finish stage has results). The jobs whose rows have all
  ended in the tick are **finished** together at its end, in one call (``SeamlessRunner.finish``,
  model/finish/outputs.py: speech, timings, profanity, confidence) or one hand-over to the finish
  stage, and returned with their ``ModelOutput``: a job that ends early in a tick waits for the
  tick's other steps (``max_steps`` bounds it: the engine's ``steps_per_turn``), and the finish's
  graph launches, copies and reads are paid once a tick, not once a job;
- ``drop(key)``: the job's rows leave the pool; the others go on.

**The finish runs beside the decode** (``finish_thread``, the setting ``model.finish_thread``):
jobs whose rows all ended are handed to a ``FinishStage`` (model/finish/stage.py), a worker thread
that finishes the oldest hand-overs, up to a cap of jobs, in one call, on a CUDA stream of its own,
while the ticks go on stepping the pool's other rows; a tick returns the results the stage has
ready, and a tick with no row to step waits for the first (``wait_s`` at most; ``wake``, which the
engine calls when it queues a job, cuts the wait short). Without it, the ended jobs are finished
inside the tick, and every other row waits.

A job that fails fails alone: a prefill that raises is retried job by job; a row the pool refuses
(``ValueError``: too many frames) or a finish that raises fails its job. A decode step that raises
cannot be laid on one row: every job with a row in the pool then fails, and the pool is emptied.

Scope (``takes``): whole segments (``WorkKind.SEGMENT``) with at least one row and without terms
that need a first pass (KEEP or glossary entries: ``RowPlan.passes``), on the fast runner (our own
loop) in a precision that batches rows (not ``SeamlessStages.exact_rows``). Everything else (texts,
simultaneous steps, terms' two passes, the exact runner) goes through ``SeamlessRunner.run``, the
whole-batch path. **One pool serves both**: the runner's stepper decodes in the fast
runner's own pool (``pool``), so one set of slots and graphs serves every route; a whole batch
that runs while the stepper's rows are in it steps them too (``DecodeLoop.run``: its own rows join
under ids of the pool's), and the stepper's rows that finish meanwhile come out at its next tick.
The jobs that arrive together join the pool in **one admission** (on CUDA one graph launch).

The jobs whose last rows end in the same tick (with the stage: the oldest hand-overs, up to its
cap of jobs) are **finished together** (``SeamlessRunner.finish``
once: text-to-unit and the vocoder batched across them, as a whole batch runs them; their
encoder outputs padded to the widest, its frames masked); a finish that raises is retried job by
job, so one bad segment fails alone.

**Background rows yield to finals.** Rows of finals (priority 0) or live captions (1) that wait for
a slot while the pool is full take the slots of background rows (priority 2: a job's segments),
newest job first: the background rows leave the pool and wait again, and decode from
their first token when they rejoin (recompute, as vLLM preempts: their encoder outputs are kept,
their tokens are not; greedy decoding gives them the same tokens). A live final so waits for at
most one step, never for a long job's rows; a background job only loses steps while live rows
fill the pool.

Model thread only (but ``wake``, and the stage's worker, which only touches the jobs handed to it).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F

from translate_svc.model.capture import upload
from translate_svc.model.decode.batch import DEFAULT_MAX_FRAMES, Decoded, decoded_of
from translate_svc.model.decode.finished import Finished
from translate_svc.model.decode.graphs import decode_pool
from translate_svc.model.decode.loop import DecodeLoop
from translate_svc.model.finish.stage import FinishStage
from translate_svc.model.prefill import Prefilled
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model_api.requests import ModelInput, ModelOutput, WorkKind
from translate_svc.model_api.rows import DecodeRow, RowPlan, needs_source, row_count
from translate_svc.model_api.runner import BACKGROUND, FINAL
from translate_svc.observability import metrics

logger = logging.getLogger(__name__)

#: a job's key and its output (None: it failed)
Result = tuple[int, ModelOutput | None]
#: ``SeamlessRunner.finish``'s signature (``SeamlessRunner.finisher``: one for another thread)
Finisher = Callable[[Sequence[ModelInput], Prefilled, Decoded], list[ModelOutput]]


class Prefills(Protocol):
    """What the stepping decoder takes of its runner (model/runner.py ``SeamlessRunner``): its
    stages, a batch's prefill, and the finish (and a finish for another thread). A Protocol, so
    the stepper does not import the runner that makes it."""

    @property
    def stages(self) -> SeamlessStages: ...

    def prefill_segments(self, inputs: Sequence[ModelInput], *, first_id: int = 0) -> Prefilled: ...

    def finish(self, inputs: Sequence[ModelInput], prefilled: Prefilled, decoded: Decoded) -> list[ModelOutput]: ...

    def finisher(self) -> Finisher: ...


#: how long a tick with no row to step waits for the finish stage at most (``wake`` cuts it short:
#: the engine's owner calls it when a job is queued, so a new job never waits for it)
DEFAULT_WAIT_S = 0.05


@dataclass(eq=False)
class _Job:
    key: int
    item: ModelInput
    priority: int
    order: int
    prefilled: Prefilled | None = None
    #: plan row indices not yet in the pool
    waiting: list[int] = field(default_factory=list)
    #: plan row index -> its finished row
    done: dict[int, Finished] = field(default_factory=dict)
    #: loop row ids of its rows in the pool
    in_pool: set[int] = field(default_factory=set)


class SteppingDecoder:
    """One running decode for the jobs of many units (see the module docstring); the engine's
    ``Stepper`` (model_api/runner.py)."""

    def __init__(
        self,
        runner: Prefills,
        *,
        slots: int = 64,
        max_frames: int = DEFAULT_MAX_FRAMES,
        read_behind: bool | None = None,
        static: bool = False,
        graphs: bool = False,
        finish_thread: bool = False,
        wait_s: float = DEFAULT_WAIT_S,
        pool: DecodeLoop | None = None,
    ) -> None:
        """``read_behind``: the pool reads its rows' finished flags one step behind (``DecodeLoop``;
        default: on CUDA). ``static``: every step a row bucket over the pool's whole windows (the
        CUDA path); ``graphs``: with it, on CUDA, the pool's step captured as CUDA graphs now.
        ``finish_thread``: ended jobs are finished on a thread of their own (``FinishStage``) while
        the decode goes on; a ``tick`` with no row to step waits up to ``wait_s`` for one of them."""
        self.runner = runner
        if pool is None:
            pool = decode_pool(
                runner.stages.decoder,
                slots=slots,
                max_frames=max_frames,
                static=static,
                graphs=graphs,
                read_behind=read_behind,
            )
        #: the decode pool: the runner's own where it shares it (``pool``: one pool for every route)
        self.loop = pool
        self._elsewhere: list[Finished] = []  # our rows that finished while the runner's ``run`` stepped
        pool.others = self._elsewhere.extend
        self._jobs: dict[int, _Job] = {}  # every job admitted and not yet returned or dropped
        self._arriving: list[_Job] = []  # admitted since the last tick: prefilled at the next
        self._rows: dict[int, tuple[_Job, int]] = {}  # loop row id -> its job and plan index
        self._ids = itertools.count()  # row ids, unique within the pool's life
        self._order = itertools.count()
        #: background rows that left the pool for live ones (``_yield``), since it was made
        self.yielded = 0
        #: the stage finishing ended jobs beside the decode; None: finished inline, in the tick
        self.stage: FinishStage[_Job, Result] | None = None
        if finish_thread:
            self.stage = FinishStage(self._finished_off, _failed, runner.stages.device)
            self._finisher = runner.finisher()
        self.wait_s = wait_s
        self._finishing: set[int] = set()  # keys of the jobs in the stage, not dropped

    # -- the Stepper Protocol ---------------------------------------------------------------

    def takes(self, item: ModelInput) -> bool:
        """Whole segments with rows and without terms' first pass (see the module docstring)."""
        return item.kind is WorkKind.SEGMENT and row_count(item) > 0 and not needs_source(item.terms)

    def admit(self, key: int, item: ModelInput, *, priority: int = FINAL) -> None:
        if key in self._jobs:
            raise ValueError(f"job {key} is already in the stepping decoder")
        if not self.takes(item):
            raise ValueError(f"job {key}: not work the stepping decoder takes ({item.kind.value})")
        job = _Job(key, item, priority, next(self._order))
        self._jobs[key] = job
        self._arriving.append(job)

    def tick(self, max_steps: int) -> list[Result]:
        out: list[Result] = []
        complete: list[_Job] = []  # the jobs whose rows all ended in this tick: finished together
        with torch.inference_mode():
            if self._elsewhere:  # rows that finished while a whole batch stepped the shared pool
                ended, self._elsewhere[:] = list(self._elsewhere), []
                self._ended([f for f in ended if f.id in self._rows], complete)
            self._prefill(self._arriving, out)
            self._arriving = []
            self._collect(out)
            for _ in range(max_steps):
                self._fill(out, complete)
                if not len(self.loop):
                    break
                try:
                    ended = self.loop.step()
                except Exception:
                    logger.exception("a decode step failed: every job with a row in the pool fails")
                    self._fail_pool(out)
                    break
                self._ended(ended, complete)
                self._collect(out)
                if out:
                    break
            self._finish_ended(complete, out)
            if not out and not len(self.loop) and self._finishing:
                self._collect(out, self.wait_s)  # nothing to step: wait a little for the stage
        metrics.decode_pool(len(self.loop), self.backlog)
        return out

    def drop(self, key: int) -> None:
        self._finishing.discard(key)  # in the stage: its result is let go when it comes
        job = self._jobs.pop(key, None)
        if job is None:
            return
        if job in self._arriving:
            self._arriving.remove(job)
        active = set(self.loop.active)
        for row_id in job.in_pool:
            if row_id in active:  # else it finished while a whole batch stepped the shared pool
                self.loop.drop(row_id)
            del self._rows[row_id]
        job.in_pool.clear()

    def clear(self) -> None:
        for key in list(self._jobs):
            self.drop(key)
        self._finishing.clear()

    def wake(self) -> None:
        """Any thread: a tick waiting for the finish stage returns now (new work is coming)."""
        if self.stage is not None:
            self.stage.wake()

    def close(self) -> None:
        """Every job leaves; the finish stage's thread ends (after what it runs now)."""
        self.clear()
        if self.stage is not None:
            self.stage.close()

    @property
    def backlog(self) -> int:
        """Rows admitted that wait for a slot or for their prefill."""
        arriving = sum(row_count(j.item) for j in self._arriving)
        return arriving + sum(len(j.waiting) for j in self._jobs.values())

    def room(self, *, live: bool = True) -> int:
        waiting = sum(row_count(j.item) for j in self._arriving if j.priority < BACKGROUND or not live)
        waiting += sum(len(j.waiting) for j in self._jobs.values() if j.priority < BACKGROUND or not live)
        held = sum(len(j.in_pool) for j in self._jobs.values() if j.priority >= BACKGROUND) if live else 0
        return self.loop.free + held - waiting

    def __len__(self) -> int:
        """Jobs in the stepping decoder (arriving, waiting for slots, decoding or finishing)."""
        return len(self._jobs) + len(self._finishing)

    # -- inside a tick ----------------------------------------------------------------------

    def _prefill(self, jobs: Sequence[_Job], out: list[Result]) -> None:
        """The jobs' prefill in one batch; a batch that raises is retried job by job."""
        if not jobs:
            return
        try:
            prefilled = self.runner.prefill_segments([j.item for j in jobs], first_id=next(self._ids))
        except Exception:
            if len(jobs) == 1:
                logger.exception("a segment's prefill failed")
                self._fail(jobs[0], out)
                return
            logger.exception("the prefill of %d segments failed; retrying them one by one", len(jobs))
            for job in jobs:
                self._prefill([job], out)
            return
        self._ids = itertools.count(max(row.id for row in prefilled.plan.rows) + 1)
        for k, job in enumerate(jobs):
            job.prefilled = _one(prefilled, k)
            job.waiting = list(range(len(job.prefilled.plan)))

    def _fill(self, out: list[Result], complete: list[_Job]) -> None:
        """Rows waiting join the pool's free slots: lower priority value first, then oldest; live
        rows that find no free slot take background rows' (``_yield``). The rows that join now,
        whatever their jobs, join in one admission (on CUDA one graph launch); if it fails, job by
        job, so that only the job the pool refuses fails."""
        taken: list[tuple[_Job, list[int]]] = []
        free = self.loop.free
        for job in sorted((j for j in self._jobs.values() if j.waiting), key=lambda j: (j.priority, j.order)):
            if job.priority < BACKGROUND and free < len(job.waiting):
                free += self._yield(len(job.waiting) - free)
            if not free:
                break
            take, job.waiting = job.waiting[:free], job.waiting[free:]
            taken.append((job, take))
            free -= len(take)
        if not taken:
            return
        try:
            self._admit(taken, complete)
        except Exception:
            if len(taken) == 1:
                logger.exception("the decode pool refused a segment's rows")
                self._fail(taken[0][0], out)
                return
            for one in taken:
                try:
                    self._admit([one], complete)
                except Exception:
                    logger.exception("the decode pool refused a segment's rows")
                    self._fail(one[0], out)

    def _admit(self, taken: Sequence[tuple[_Job, list[int]]], complete: list[_Job]) -> None:
        """``taken`` (each job's plan rows that join now) into the pool in one admission: the jobs'
        encoder rows padded to the widest (zeros past each row's own frames, which its mask hides)."""
        encs, masks, rows, frames = [], [], [], []
        known = True
        for job, take in taken:
            p = job.prefilled
            assert p is not None
            encs.append(_picked(p.row_enc, take))
            masks.append(_picked(p.row_mask, take))
            rows += [p.plan.rows[r] for r in take]
            known = known and p.row_frames is not None
            frames += [p.row_frames[r] for r in take] if p.row_frames is not None else []
        enc, mask = _stacked(encs, 1), _stacked(masks, 1)
        ended = self.loop.admit(rows, enc, mask, frames=frames if known else None)
        for job, take in taken:
            for r in take:
                p = job.prefilled
                assert p is not None
                self._rows[p.plan.rows[r].id] = (job, r)
                job.in_pool.add(p.plan.rows[r].id)
        self._ended(ended, complete)

    def _yield(self, wanted: int) -> int:
        """Up to ``wanted`` slots freed by background rows, the newest job's first: they leave the
        pool and wait again (their decode starts over when they rejoin). Returns the slots freed."""
        freed = 0
        for job in sorted(self._jobs.values(), key=lambda j: j.order, reverse=True):
            if wanted <= 0:
                return freed
            if job.priority < BACKGROUND or not job.in_pool:
                continue
            back = sorted(job.in_pool, reverse=True)[:wanted]
            for row_id in back:
                self.loop.drop(row_id)
                _, r = self._rows.pop(row_id)
                job.in_pool.discard(row_id)
                job.waiting.append(r)
            job.waiting.sort()
            self.yielded += len(back)
            metrics.rows_yielded(len(back))
            wanted -= len(back)
            freed += len(back)
        return freed

    def _ended(self, ended: Sequence[Finished], complete: list[_Job]) -> None:
        """Rows that finished; the jobs whose rows all have join ``complete`` (the tick's)."""
        for f in ended:
            job, r = self._rows.pop(f.id)
            job.in_pool.discard(f.id)
            job.done[r] = f
            p = job.prefilled
            assert p is not None
            if len(job.done) == len(p.plan):
                del self._jobs[job.key]
                complete.append(job)

    def _finish_ended(self, complete: list[_Job], out: list[Result]) -> None:
        """The jobs that ended in this tick, finished in one call (inline), or handed to the finish
        stage in one hand-over: each finish pays its graph launches, copies and reads once for all
        of them."""
        if not complete:
            return
        if self.stage is None:
            self._finish(complete, out)
        else:
            self._finishing.update(job.key for job in complete)
            self.stage.submit(complete)

    def _collect(self, out: list[Result], wait_s: float = 0.0) -> None:
        """The finish stage's results ready now (or within ``wait_s``), but those of dropped jobs
        (collected all the same, so that none is held)."""
        if self.stage is None:
            return
        for key, output in self.stage.collect(wait_s):
            if key in self._finishing:
                self._finishing.discard(key)
                out.append((key, output))

    def _finished_off(self, jobs: list[_Job]) -> list[Result]:
        """The finish stage's worker: ``jobs`` (the oldest hand-overs, up to its cap) finished together."""
        out: list[Result] = []
        self._finish(jobs, out, self._finisher)
        return out

    def _finish(self, jobs: Sequence[_Job], out: list[Result], finisher: Finisher | None = None) -> None:
        """``jobs``' outputs from one ``SeamlessRunner.finish`` (or ``finisher``: the stage's own);
        one that raises is retried job by job."""
        try:
            prefilled, decoded = _together(jobs, self.loop.pad)
            run = self.runner.finish if finisher is None else finisher
            outputs = run([j.item for j in jobs], prefilled, decoded)
        except Exception:
            if len(jobs) == 1:
                logger.exception("a segment failed after its decode")
                out.append((jobs[0].key, None))
                return
            logger.exception("finishing %d segments together failed; finishing them one by one", len(jobs))
            for job in jobs:
                self._finish([job], out, finisher)
            return
        for job, output in zip(jobs, outputs, strict=True):
            assert job.prefilled is not None  # its own identifier's time, not the merged one
            out.append((job.key, dataclasses.replace(output, language_id_ms=job.prefilled.language_id_ms)))

    def _fail(self, job: _Job, out: list[Result]) -> None:
        """``job`` fails alone: its rows leave the pool."""
        self.drop(job.key)
        out.append((job.key, None))

    def _fail_pool(self, out: list[Result]) -> None:
        for job in {job.key: job for job, _ in self._rows.values()}.values():
            self._fail(job, out)


def _failed(jobs: list[_Job]) -> list[Result]:
    """Every job of a batch the finish stage could not run, failed."""
    return [(job.key, None) for job in jobs]


def _together(jobs: Sequence[_Job], pad: int) -> tuple[Prefilled, Decoded]:
    """Finished jobs (each with its own prefill: one input, item 0) as one batch for ``finish``:
    job ``k`` is input ``k``; encoder outputs and masks padded (zeros: masked frames) to the widest."""
    parts = [j.prefilled for j in jobs]
    assert all(p is not None for p in parts)
    ready = [p for p in parts if p is not None]
    rows: list[DecodeRow] = []
    spoken: list[str | None] = []
    detected: dict[int, dict[str, float]] = {}
    got: list[Finished] = []
    for k, (job, p) in enumerate(zip(jobs, ready, strict=True)):
        rows += [dataclasses.replace(row, item=k) for row in p.plan.rows]
        spoken += p.plan.spoken
        if 0 in p.detected:
            detected[k] = p.detected[0]
        got += [job.done[i] for i in range(len(p.plan))]
    enc, mask = _stacked([p.row_enc for p in ready], 1), _stacked([p.row_mask for p in ready], 1)
    prefilled = Prefilled(enc, mask, RowPlan(tuple(rows), tuple(spoken)), detected, ready[0].language_id_ms)
    decoded = decoded_of([(g.tokens, g.hidden) for g in got], [g.logprobs for g in got], pad)
    return prefilled, decoded


def _one(prefilled: Prefilled, k: int) -> Prefilled:
    """Input ``k``'s part of a batch's prefill, as the prefill of that input alone (its rows' item
    0; their ids, unique in the pool, kept)."""
    picked = prefilled.plan.of(k)
    at = [r for r, _ in picked]
    plan = RowPlan(tuple(dataclasses.replace(row, item=0) for _, row in picked), (prefilled.plan.spoken[k],))
    detected = {0: prefilled.detected[k]} if k in prefilled.detected else {}
    frames = prefilled.row_frames
    return Prefilled(
        _picked(prefilled.row_enc, at),
        _picked(prefilled.row_mask, at),
        plan,
        detected,
        prefilled.language_id_ms,
        row_frames=None if frames is None else tuple(frames[r] for r, _ in picked),
    )


def _picked(t: torch.Tensor, rows: Sequence[int]) -> torch.Tensor:
    """``t``'s ``rows`` (along its first dimension): a view where they are neighbours in order (a
    plan's rows of one input are: model_api/rows.py), else one gather (an upload of the index)."""
    if list(rows) == list(range(rows[0], rows[0] + len(rows))):
        return t[rows[0] : rows[0] + len(rows)]
    return t.index_select(0, upload(list(rows), torch.long, t.device))


def _stacked(parts: Sequence[torch.Tensor], dim: int) -> torch.Tensor:
    """``parts`` stacked along their first dimension, each zero-padded along ``dim`` to the widest
    (a part as wide as that is not copied first)."""
    width = max(t.shape[dim] for t in parts)
    padded = [
        t if t.shape[dim] == width else F.pad(t, (0, 0) * (t.dim() - 1 - dim) + (0, width - t.shape[dim]))
        for t in parts
    ]
    return padded[0] if len(padded) == 1 else torch.cat(padded)
