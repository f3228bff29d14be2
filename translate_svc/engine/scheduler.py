"""Dynamic batching policy: pure, synchronous, no clocks of its own (``now`` is passed in).

Like Triton's dynamic batcher, a batch is dispatched when it is full (``max_batch_size`` jobs, or
the padded-audio budget) or when the oldest job has waited ``max_wait_s``. Which jobs go together:

- the **oldest** job always goes first, so no job starves: every job eventually becomes the oldest;
- the rest are taken in **rounds across owners** (streams): every owner's oldest job before any
  owner's second, so a stream that sends faster than real time gets one place per round and cannot
  crowd out the others; within a round, the jobs **closest in length** to the oldest come first
  (length bucketing: padding costs compute in the encoder and memory in the decoder), added while
  ``len(batch) * longest <= budget``;
- within one owner, jobs go strictly oldest first;
- **droppable** jobs (live captions, simultaneous steps: optional work) never go ahead of, or
  along with, a final one: a batch is made of droppable jobs only when no final job is queued or
  on its way (``finals_coming``: the engine is computing its features), and the engine skips a new
  droppable job while finals wait, so droppables only use time the finals leave (but one already
  in the model when a final arrives runs to its end: hence the budget below);
- a batch of droppable jobs (an **optional batch**) is also bounded by ``optional_batch_audio_s``,
  in **row-seconds**: its text decoder rows (``rows`` per job: one per target language, the
  transcript's included) times its longest input. A final that arrives while one runs waits for
  that batch only (no other starts while it waits), so this budget bounds what optional work can
  add to a final's queue wait; a job that does not fit the budget alone is refused before it is
  queued (``fits_optional``: the engine skips it). Droppable jobs beyond the budget wait for the
  next optional batch.

Jobs of different streams and different target languages share batches (the runner sets the
language per row). Not thread-safe: owned by the engine loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class QueueFull(Exception):
    """The queue holds ``max_queued`` jobs; the caller should refuse new work."""


@dataclass(frozen=True)
class SchedulerConfig:
    max_batch_size: int = 16
    max_wait_s: float = 0.010
    max_batch_audio_s: float = 240.0
    max_queued: int = 512
    #: an optional batch's budget: its text rows x its longest input, in seconds (row-seconds)
    optional_batch_audio_s: float = 80.0

    def __post_init__(self) -> None:
        if not self.optional_batch_audio_s > 0:
            raise ValueError(f"optional_batch_audio_s must be > 0, got {self.optional_batch_audio_s}")


@dataclass(frozen=True)
class _Queued:
    job_id: int
    owner: str
    audio_s: float
    enqueued_at: float
    rows: int = 1


@dataclass
class BatchScheduler:
    config: SchedulerConfig
    _queue: dict[int, _Queued] = field(default_factory=dict)  # final jobs; insertion order = arrival order
    _droppable: dict[int, _Queued] = field(default_factory=dict)  # droppable jobs, the same way

    def __len__(self) -> int:
        return len(self._queue) + len(self._droppable)

    @property
    def finals(self) -> int:
        """Final (non-droppable) jobs queued."""
        return len(self._queue)

    def fits_optional(self, audio_s: float, rows: int = 1) -> bool:
        """Whether a droppable job of ``audio_s`` seconds and ``rows`` text rows fits an optional
        batch alone: one that does not must not be queued (it would break the budget)."""
        return audio_s * rows <= self.config.optional_batch_audio_s

    def add(
        self, job_id: int, owner: str, audio_s: float, now: float, *, droppable: bool = False, rows: int = 1
    ) -> None:
        """Queue a job of ``audio_s`` seconds (a text's stand-in) and ``rows`` text decoder rows."""
        if len(self) >= self.config.max_queued:
            raise QueueFull(f"{len(self)} segments are already waiting for the model")
        (self._droppable if droppable else self._queue)[job_id] = _Queued(job_id, owner, audio_s, now, rows)

    def remove(self, job_id: int) -> bool:
        """Drop one queued job (its result is no longer wanted); False if it is not queued."""
        return self._queue.pop(job_id, None) is not None or self._droppable.pop(job_id, None) is not None

    def remove_owner(self, owner: str) -> list[int]:
        """Drop every queued job of ``owner`` (its client went away); returns their ids."""
        gone = []
        for queue in (self._queue, self._droppable):
            mine = [j for j, q in queue.items() if q.owner == owner]
            for j in mine:
                del queue[j]
            gone += mine
        return gone

    def clear(self) -> None:
        self._queue.clear()
        self._droppable.clear()

    def _current(self, finals_coming: bool = False) -> dict[int, _Queued]:
        """The queue batches come from now: finals while there are any; droppable jobs only when
        no final is on its way either (else nothing: they wait)."""
        if self._queue or finals_coming:
            return self._queue
        return self._droppable

    def next_deadline(self, *, finals_coming: bool = False) -> float | None:
        """When the oldest job's wait expires (None if the queue is empty, or holds droppable jobs
        only while ``finals_coming``: they wait for those finals)."""
        oldest = next(iter(self._current(finals_coming).values()), None)
        return None if oldest is None else oldest.enqueued_at + self.config.max_wait_s

    def next_batch(self, now: float, *, finals_coming: bool = False) -> list[int] | None:
        """The job ids of the batch to run now, oldest first, or None if it should wait.
        ``finals_coming``: final jobs are on their way (their features are being computed), so a
        batch of droppable jobs alone would make them wait: none is made until they are queued."""
        queue = self._current(finals_coming)
        if not queue:
            return None
        batch, full = self._select(queue, optional=queue is self._droppable)
        deadline = self.next_deadline()
        if not full and deadline is not None and now < deadline:
            return None
        for j in batch:
            del queue[j]
        return batch

    def _select(self, queue: dict[int, _Queued], *, optional: bool = False) -> tuple[list[int], bool]:
        """Pick the oldest job and its companions; say whether the batch is full. ``optional``: a
        batch of droppable jobs, held to ``optional_batch_audio_s`` row-seconds too.

        Companions go in rounds across owners: every owner's oldest queued job before any owner's
        second (so a stream that floods the queue gets one place per round, like everyone else),
        and within a round the closest in length to the oldest job first. Within one owner jobs go
        strictly oldest first: once one of its jobs does not fit, none of its later ones is taken.
        """
        cfg = self.config
        jobs = list(queue.values())
        oldest = jobs[0]
        seen: dict[str, int] = {oldest.owner: 1}
        ranked: list[tuple[int, _Queued]] = []
        for q in jobs[1:]:  # arrival order: an owner's k-th job has rank k
            rank = seen.get(q.owner, 0)
            seen[q.owner] = rank + 1
            ranked.append((rank, q))
        ranked.sort(key=lambda rq: (rq[0], abs(rq[1].audio_s - oldest.audio_s), rq[1].enqueued_at))
        chosen = [oldest]
        longest = oldest.audio_s
        rows = oldest.rows
        row_budget = cfg.optional_batch_audio_s if optional else float("inf")
        blocked: set[str] = set()  # owners with a job left out: their later jobs wait too
        full = False
        for _, q in ranked:
            if len(chosen) >= cfg.max_batch_size:
                full = True
                break
            if q.owner in blocked:
                continue
            new_longest = max(longest, q.audio_s)
            over = new_longest * (len(chosen) + 1) > cfg.max_batch_audio_s
            if over or new_longest * (rows + q.rows) > row_budget:
                full = True  # over budget: waiting longer cannot make this batch bigger
                blocked.add(q.owner)
                continue  # a shorter job further down may still fit
            chosen.append(q)
            longest = new_longest
            rows += q.rows
        full = full or len(chosen) >= cfg.max_batch_size
        chosen.sort(key=lambda q: q.enqueued_at)
        return [q.job_id for q in chosen], full
