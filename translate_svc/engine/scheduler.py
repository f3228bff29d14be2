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
  next optional batch;
- **background** jobs (a job's segments: ``add(background=True)``) come after both: a
  batch of background jobs (a **background batch**, held to the optional budget the same way) is
  made only when no live job (final or droppable) is queued or on its way (``live_coming``), and
  holds ``background_batch_size`` jobs (one by default), so a live final waits behind at most one
  background batch of one job segment. A background
  job is never taken along with live rows, but for the **floor**: one that has waited
  ``background_floor_s`` takes one seat of the next live finals batch (the live rows get
  ``max_batch_size - 1`` then; within the audio budget), or runs ahead of optional work, so a job
  moves at least one segment per ``background_floor_s`` however busy the streams keep the engine
  (and no more by the floor: it counts from the last background job that ran, too).

The steps core (engine/step_core.py) asks for a batch with two more facts, because its jobs join a
running decode of bounded room rather than a batch of its own: ``room``, the text rows that can
join now (a batch holds at most that many, but for its first job), and ``running``, each owner's
rows already in the decode. Then the first job is no longer the oldest but the one of the owner
with the **fewest rows in the model and the queue ahead of it** (an owner's k-th queued job ranks
``running[owner] + k``; ties go to the oldest), and the rounds follow that rank: a stream that
floods the queue while its rows fill the decode waits for the room that frees next, behind every
stream with fewer, and none starves (an owner's rank falls as its rows end). What does not fit
waits here, in the queue, under the fair shares (engine/shares.py), not in the decode.

Jobs of different streams and different target languages share batches (the runner sets the
language per row). Not thread-safe: owned by the engine loop.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    #: a background job that has waited this long takes one seat among live rows (the floor)
    background_floor_s: float = 5.0
    #: a background batch's seats: one job segment at a time, so a live final that arrives while
    #: one runs waits for one segment of a job at most
    background_batch_size: int = 1

    def __post_init__(self) -> None:
        if not self.optional_batch_audio_s > 0:
            raise ValueError(f"optional_batch_audio_s must be > 0, got {self.optional_batch_audio_s}")
        if self.background_batch_size < 1:
            raise ValueError(f"background_batch_size must be >= 1, got {self.background_batch_size}")
        if not self.background_floor_s > 0:
            raise ValueError(f"background_floor_s must be > 0, got {self.background_floor_s}")


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
    _background: dict[int, _Queued] = field(default_factory=dict)  # background jobs, the same way
    _background_at: float = float("-inf")  # when a background job last left for a batch

    def __len__(self) -> int:
        return len(self._queue) + len(self._droppable) + len(self._background)

    @property
    def background(self) -> int:
        """Background jobs queued."""
        return len(self._background)

    @property
    def finals(self) -> int:
        """Final (non-droppable) jobs queued."""
        return len(self._queue)

    @property
    def live(self) -> int:
        """Live jobs queued: finals and droppable ones (not background)."""
        return len(self._queue) + len(self._droppable)

    def fits_optional(self, audio_s: float, rows: int = 1) -> bool:
        """Whether a droppable job of ``audio_s`` seconds and ``rows`` text rows fits an optional
        batch alone: one that does not must not be queued (it would break the budget)."""
        return audio_s * rows <= self.config.optional_batch_audio_s

    def add(
        self,
        job_id: int,
        owner: str,
        audio_s: float,
        now: float,
        *,
        droppable: bool = False,
        rows: int = 1,
        background: bool = False,
    ) -> None:
        """Queue a job of ``audio_s`` seconds (a text's stand-in) and ``rows`` text decoder rows;
        ``background``: a job's segment (after every live job, bar the floor)."""
        if len(self) >= self.config.max_queued:
            raise QueueFull(f"{len(self)} segments are already waiting for the model")
        queue = self._background if background else self._droppable if droppable else self._queue
        queue[job_id] = _Queued(job_id, owner, audio_s, now, rows)

    def remove(self, job_id: int) -> bool:
        """Drop one queued job (its result is no longer wanted); False if it is not queued."""
        return any(q.pop(job_id, None) is not None for q in (self._queue, self._droppable, self._background))

    def remove_owner(self, owner: str) -> list[int]:
        """Drop every queued job of ``owner`` (its client went away); returns their ids."""
        gone = []
        for queue in (self._queue, self._droppable, self._background):
            mine = [j for j, q in queue.items() if q.owner == owner]
            for j in mine:
                del queue[j]
            gone += mine
        return gone

    def clear(self) -> None:
        self._queue.clear()
        self._droppable.clear()
        self._background.clear()
        self._background_at = float("-inf")

    def _floor_at(self) -> float | None:
        """When the floor is due: ``background_floor_s`` after the oldest background job arrived,
        or after a background job last ran, whichever is later (None: none is queued). So the
        floor gives background work one seat per ``background_floor_s``, however deep its queue."""
        oldest = next(iter(self._background.values()), None)
        if oldest is None:
            return None
        return max(oldest.enqueued_at, self._background_at) + self.config.background_floor_s

    def _overdue(self, now: float) -> _Queued | None:
        """The oldest background job if the floor is due (``_floor_at``)."""
        due = self._floor_at()
        return None if due is None or now < due else next(iter(self._background.values()))

    def _current(
        self, finals_coming: bool = False, live_coming: bool = False, now: float | None = None
    ) -> dict[int, _Queued]:
        """The queue batches come from now: finals while there are any; then an overdue background
        job (the floor) ahead of droppable jobs; droppable jobs only when no final is on its way
        either; background jobs only when no live job is queued or on its way (else nothing:
        they wait)."""
        if self._queue or finals_coming:
            return self._queue
        if now is not None and self._droppable and self._overdue(now) is not None:
            return self._background
        if self._droppable or live_coming:
            return self._droppable
        return self._background

    def next_deadline(self, *, finals_coming: bool = False, live_coming: bool = False) -> float | None:
        """When the oldest job's wait expires (None if the queue is empty, or holds only jobs that
        wait for others: droppable ones while ``finals_coming``, background ones while
        ``live_coming``); with background jobs behind live ones, their floor's deadline too."""
        oldest = next(iter(self._current(finals_coming, live_coming).values()), None)
        deadline = None if oldest is None else oldest.enqueued_at + self.config.max_wait_s
        floor = self._floor_at()
        if floor is not None and oldest is not None and oldest is not next(iter(self._background.values())):
            deadline = floor if deadline is None else min(deadline, floor)
        return deadline

    def next_batch(
        self,
        now: float,
        *,
        finals_coming: bool = False,
        live_coming: bool = False,
        room: int | None = None,
        running: Mapping[str, int] | None = None,
    ) -> list[int] | None:
        """The job ids of the batch to run now, oldest first, or None if it should wait.
        ``finals_coming``: final jobs are on their way (their features are being computed), so a
        batch of droppable jobs alone would make them wait: none is made until they are queued.
        ``live_coming``: live jobs (final or droppable) are on their way: no background batch.
        ``room`` and ``running`` (the steps core; see the module docstring): at most ``room`` text
        rows (none below 1), the owners with the fewest ``running`` rows first."""
        queue = self._current(finals_coming, live_coming, now)
        if not queue or (room is not None and room < 1):
            return None
        overdue = self._overdue(now) if queue is self._queue else None
        cfg = self.config
        seats = cfg.background_batch_size if queue is self._background else cfg.max_batch_size - (overdue is not None)
        batch, full = self._select(queue, optional=queue is not self._queue, seats=seats, room=room, running=running)
        oldest = next(iter(queue.values()))
        if not full and now < oldest.enqueued_at + self.config.max_wait_s:
            return None
        longest = max(queue[j].audio_s for j in batch)
        rows = sum(queue[j].rows for j in batch)
        for j in batch:
            del queue[j]
        if queue is self._background:
            self._background_at = now
        if (
            overdue is not None
            and (room is None or rows + overdue.rows <= room)
            and max(longest, overdue.audio_s) * (len(batch) + 1) <= cfg.max_batch_audio_s
        ):
            del self._background[overdue.job_id]
            self._background_at = now
            batch.append(overdue.job_id)  # the floor: one seat of a live batch (the newest)
        return batch

    def _select(
        self,
        queue: dict[int, _Queued],
        *,
        optional: bool = False,
        seats: int | None = None,
        room: int | None = None,
        running: Mapping[str, int] | None = None,
    ) -> tuple[list[int], bool]:
        """Pick the oldest job and its companions; say whether the batch is full. ``optional``: a
        batch of droppable jobs, held to ``optional_batch_audio_s`` row-seconds too.

        Companions go in rounds across owners: every owner's oldest queued job before any owner's
        second (so a stream that floods the queue gets one place per round, like everyone else),
        and within a round the closest in length to the oldest job first. Within one owner jobs go
        strictly oldest first: once one of its jobs does not fit, none of its later ones is taken.
        ``seats``: at most this many jobs (``max_batch_size`` unless one seat is kept for the floor).
        ``room``: at most this many text rows (the first job whatever its rows); ``running``: each
        owner's rows in the model, which rank its jobs, and the first job is the lowest ranked
        (the oldest of those) instead of the oldest (the module docstring).
        """
        cfg = self.config
        size = cfg.max_batch_size if seats is None else max(1, seats)
        before = running or {}
        seen: dict[str, int] = {}
        ranked: list[tuple[int, _Queued]] = []
        for q in queue.values():  # arrival order: an owner's k-th job has rank k (more its running rows)
            rank = seen.get(q.owner, 0)
            seen[q.owner] = rank + 1
            ranked.append((rank + before.get(q.owner, 0) if running is not None else rank, q))
        lead = min(ranked, key=lambda rq: rq[0])[1] if running is not None else ranked[0][1]  # the oldest lowest
        ranked = [rq for rq in ranked if rq[1] is not lead]
        ranked.sort(key=lambda rq: (rq[0], abs(rq[1].audio_s - lead.audio_s), rq[1].enqueued_at))
        chosen = [lead]
        longest = lead.audio_s
        rows = lead.rows
        row_budget = cfg.optional_batch_audio_s if optional else float("inf")
        room_left = float("inf") if room is None else room
        blocked: set[str] = set()  # owners with a job left out: their later jobs wait too
        full = False
        for _, q in ranked:
            if len(chosen) >= size or rows >= room_left:
                full = True
                break
            if q.owner in blocked:
                continue
            new_longest = max(longest, q.audio_s)
            over = new_longest * (len(chosen) + 1) > cfg.max_batch_audio_s or rows + q.rows > room_left
            if over or new_longest * (rows + q.rows) > row_budget:
                full = True  # over budget: waiting longer cannot make this batch bigger
                blocked.add(q.owner)
                continue  # a shorter job further down may still fit
            chosen.append(q)
            longest = new_longest
            rows += q.rows
        full = full or len(chosen) >= size or rows >= room_left
        chosen.sort(key=lambda q: q.enqueued_at)
        return [q.job_id for q in chosen], full
