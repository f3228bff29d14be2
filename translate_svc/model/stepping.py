"""Rows of many jobs in one running decode (issue 70 item 2: rows that join and leave at every step).

``SeamlessRunner.run`` (model/runner.py) runs a batch to its end: every job of it waits for its
longest row, and a job that arrives meanwhile waits for the whole batch. ``SteppingDecoder`` keeps
one persistent ``DecodeLoop`` (model/decode_loop.py) across the engine's units (the engine's
``Stepper`` Protocol, engine/runner.py; driven by engine/step_core.py ``StepCore``):

- ``admit(key, item, priority)``: a job joins; at the next ``tick`` the jobs admitted since the last
  are **prefilled** together (``SeamlessRunner.prefill_segments``: features, the speech encoder,
  language identification, the rows' plan), one batch;
- ``tick(max_steps)``: rows waiting for a slot join the pool as slots free up (lower ``priority``
  first, then oldest: finals before captions before a job's segments), never more than the pool
  holds (the rest wait here, never an out-of-memory); then up to ``max_steps`` steps, stopping
  after the step at which some job's rows have all finished. Each such job is **finished** alone
  (``SeamlessRunner.finish``, model/finish.py: speech, timings, profanity, confidence) and returned
  with its ``ModelOutput``;
- ``drop(key)``: the job's rows leave the pool; the others go on.

A job that fails fails alone: a prefill that raises is retried job by job; a row the pool refuses
(``ValueError``: too many frames) or a finish that raises fails its job. A decode step that raises
cannot be laid on one row: every job with a row in the pool then fails, and the pool is emptied.

Scope (``takes``): whole segments (``WorkKind.SEGMENT``) with at least one row and without terms
that need a first pass (KEEP or glossary entries: ``RowPlan.passes``), on the fast runner (our own
loop) in a precision that batches rows (not ``SeamlessStages.exact_rows``). Everything else (texts,
simultaneous steps, terms' two passes, the exact runner) goes through ``SeamlessRunner.run``, the
whole-batch path. The pool is the stepping decoder's own (its slots beside the fast runner's), so
a whole batch never drains the rows of the running decode.

Finished jobs are finished one by one (text-to-unit and the vocoder batched per job, not across
the jobs that end at the same step: a later step).

Model thread only.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from translate_svc.engine.requests import ModelInput, ModelOutput, WorkKind
from translate_svc.engine.rows import RowPlan, needs_source, row_count
from translate_svc.model.decode_loop import DecodeLoop, Finished
from translate_svc.model.fast import DEFAULT_MAX_FRAMES, decoded_of
from translate_svc.model.finish import Prefilled

if TYPE_CHECKING:
    from translate_svc.model.runner import SeamlessRunner

logger = logging.getLogger(__name__)


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
    ``Stepper`` (engine/runner.py)."""

    def __init__(
        self,
        runner: SeamlessRunner,
        *,
        slots: int = 64,
        max_frames: int = DEFAULT_MAX_FRAMES,
        read_behind: bool | None = None,
    ) -> None:
        """``read_behind``: the pool reads its rows' finished flags one step behind (``DecodeLoop``;
        default: on CUDA)."""
        self.runner = runner
        self.loop = DecodeLoop(runner.stages.decoder, slots=slots, max_frames=max_frames, read_behind=read_behind)
        self._jobs: dict[int, _Job] = {}  # every job admitted and not yet returned or dropped
        self._arriving: list[_Job] = []  # admitted since the last tick: prefilled at the next
        self._rows: dict[int, tuple[_Job, int]] = {}  # loop row id -> its job and plan index
        self._ids = itertools.count()  # row ids, unique within the pool's life
        self._order = itertools.count()

    # -- the Stepper Protocol ---------------------------------------------------------------

    def takes(self, item: ModelInput) -> bool:
        """Whole segments with rows and without terms' first pass (see the module docstring)."""
        return item.kind is WorkKind.SEGMENT and row_count(item) > 0 and not needs_source(item.terms)

    def admit(self, key: int, item: ModelInput, *, priority: int = 0) -> None:
        if key in self._jobs:
            raise ValueError(f"job {key} is already in the stepping decoder")
        if not self.takes(item):
            raise ValueError(f"job {key}: not work the stepping decoder takes ({item.kind.value})")
        job = _Job(key, item, priority, next(self._order))
        self._jobs[key] = job
        self._arriving.append(job)

    def tick(self, max_steps: int) -> list[tuple[int, ModelOutput | None]]:
        out: list[tuple[int, ModelOutput | None]] = []
        with torch.inference_mode():
            self._prefill(self._arriving, out)
            self._arriving = []
            for _ in range(max_steps):
                self._fill(out)
                if not len(self.loop):
                    break
                try:
                    ended = self.loop.step()
                except Exception:
                    logger.exception("a decode step failed: every job with a row in the pool fails")
                    self._fail_pool(out)
                    break
                self._ended(ended, out)
                if out:
                    break
        return out

    def drop(self, key: int) -> None:
        job = self._jobs.pop(key, None)
        if job is None:
            return
        if job in self._arriving:
            self._arriving.remove(job)
        for row_id in job.in_pool:
            self.loop.drop(row_id)
            del self._rows[row_id]
        job.in_pool.clear()

    def clear(self) -> None:
        for key in list(self._jobs):
            self.drop(key)

    @property
    def backlog(self) -> int:
        """Rows admitted that wait for a slot or for their prefill."""
        arriving = sum(row_count(j.item) for j in self._arriving)
        return arriving + sum(len(j.waiting) for j in self._jobs.values())

    def __len__(self) -> int:
        """Jobs in the stepping decoder (arriving, waiting for slots or decoding)."""
        return len(self._jobs)

    # -- inside a tick ----------------------------------------------------------------------

    def _prefill(self, jobs: Sequence[_Job], out: list[tuple[int, ModelOutput | None]]) -> None:
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

    def _fill(self, out: list[tuple[int, ModelOutput | None]]) -> None:
        """Rows waiting join the pool's free slots: lower priority value first, then oldest."""
        for job in sorted((j for j in self._jobs.values() if j.waiting), key=lambda j: (j.priority, j.order)):
            free = self.loop.free
            if not free:
                return
            p = job.prefilled
            assert p is not None
            take, job.waiting = job.waiting[:free], job.waiting[free:]
            index = torch.tensor(take, device=p.row_enc.device)
            rows = [p.plan.rows[r] for r in take]
            try:
                ended = self.loop.admit(rows, p.row_enc.index_select(0, index), p.row_mask.index_select(0, index))
            except Exception:
                logger.exception("the decode pool refused a segment's rows")
                self._fail(job, out)
                continue
            for row, r in zip(rows, take, strict=True):
                self._rows[row.id] = (job, r)
                job.in_pool.add(row.id)
            self._ended(ended, out)

    def _ended(self, ended: Sequence[Finished], out: list[tuple[int, ModelOutput | None]]) -> None:
        """Rows that finished; a job whose rows all have is finished and returned."""
        for f in ended:
            job, r = self._rows.pop(f.id)
            job.in_pool.discard(f.id)
            job.done[r] = f
            p = job.prefilled
            assert p is not None
            if len(job.done) < len(p.plan):
                continue
            del self._jobs[job.key]
            try:
                got = [job.done[i] for i in range(len(p.plan))]
                decoded = decoded_of([(g.tokens, g.hidden) for g in got], [g.logprobs for g in got], self.loop.pad)
                output: ModelOutput | None = self.runner.finish([job.item], p, decoded)[0]
            except Exception:
                logger.exception("a segment failed after its decode")
                output = None
            out.append((job.key, output))

    def _fail(self, job: _Job, out: list[tuple[int, ModelOutput | None]]) -> None:
        """``job`` fails alone: its rows leave the pool."""
        self.drop(job.key)
        out.append((job.key, None))

    def _fail_pool(self, out: list[tuple[int, ModelOutput | None]]) -> None:
        for job in {job.key: job for job, _ in self._rows.values()}.values():
            self._fail(job, out)


def _one(prefilled: Prefilled, k: int) -> Prefilled:
    """Input ``k``'s part of a batch's prefill, as the prefill of that input alone (its rows' item
    0; their ids, unique in the pool, kept)."""
    picked = prefilled.plan.of(k)
    index = torch.tensor([r for r, _ in picked], device=prefilled.row_enc.device)
    plan = RowPlan(tuple(dataclasses.replace(row, item=0) for _, row in picked), (prefilled.plan.spoken[k],))
    detected = {0: prefilled.detected[k]} if k in prefilled.detected else {}
    return Prefilled(
        prefilled.row_enc.index_select(0, index),
        prefilled.row_mask.index_select(0, index),
        plan,
        detected,
        prefilled.language_id_ms,
    )
