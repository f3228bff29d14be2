"""Fair share of the engine's queue: pure, synchronous, no clocks (the engine asks, then acts).

The queue holds ``max_queued`` jobs. Every session open on the node ``join``s (a front-end worker's
sessions through the engine process, so the count is node-wide) and has an equal **share**:
``max_queued // sessions`` places, at least one. Sessions read the share for flow control (they stop
reading a client's audio at it); the engine enforces it here, because a session's view may be a
message old (another worker's session just joined) and one message of audio can close several
segments at once:

- a final job of a session **within its share** (fewer of its finals waiting than the share) always
  gets a place: while the queue is full, the newest job **beyond a share** leaves to make room (a
  droppable job first, else the newest final of the session furthest beyond its share, which fails
  ``Overloaded``). One always exists while the node has no more sessions than ``max_queued``: the
  shares then add up to at most ``max_queued``, so a full queue holds a job beyond some share;
- any other job (beyond its session's share, a droppable one, or an owner that never joined) gets a
  place only while the queue has a free one, and is the first to leave when a share needs it.

So the queue never holds more than ``max_queued`` jobs, and what one session sends beyond its share
can delay or cost only its own segments and captions, never another session's final within its share.
Waiting jobs are counted from ``submit`` until they leave for a batch or are dropped (features being
computed count: they hold memory and a place). Not thread-safe: owned by the engine loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Place:
    """``QueueShares.place``'s answer: admit the job or not, and which waiting job must leave first."""

    admit: bool
    evict: int | None = None


@dataclass
class QueueShares:
    max_queued: int
    _owners: set[str] = field(default_factory=set)  # sessions that joined (each counts in the share)
    _finals: dict[str, dict[int, None]] = field(default_factory=dict)  # owner -> final job ids, arrival order
    _droppable: dict[int, str] = field(default_factory=dict)  # droppable job id -> owner, arrival order
    _owner_of: dict[int, str] = field(default_factory=dict)  # every waiting job's owner

    @property
    def sessions(self) -> int:
        """Sessions that joined and have not left."""
        return len(self._owners)

    @property
    def share(self) -> int:
        """Places one session may count on: an equal share of the queue, at least one."""
        return max(1, self.max_queued // max(1, len(self._owners)))

    @property
    def total(self) -> int:
        """Jobs waiting (finals and droppable), every owner."""
        return len(self._owner_of)

    def waiting(self, owner: str) -> int:
        """``owner``'s final jobs waiting."""
        return len(self._finals.get(owner, ()))

    def join(self, owner: str) -> None:
        self._owners.add(owner)

    def leave(self, owner: str) -> None:
        """``owner`` no longer counts (its jobs, if any are still here, are beyond any share now)."""
        self._owners.discard(owner)

    def place(self, owner: str, *, droppable: bool = False) -> Place:
        """May a new job of ``owner`` wait in the queue, and must another one leave for it?"""
        if self.total < self.max_queued:
            return Place(True)
        if droppable or owner not in self._owners or self.waiting(owner) >= self.share:
            return Place(False)
        evict = self._beyond_a_share()
        # None only with more sessions than places (each share is then 1): nothing is beyond a share
        return Place(evict is not None, evict)

    def _beyond_a_share(self) -> int | None:
        """The job to drop for a share: the newest droppable job, else the newest final of the
        owner furthest beyond its share (an owner that never joined has a share of nothing)."""
        if self._droppable:
            return next(reversed(self._droppable))
        share = self.share
        worst: tuple[int, int] | None = None  # (jobs beyond the share, owner's newest job)
        for owner, jobs in self._finals.items():
            beyond = len(jobs) - (share if owner in self._owners else 0)
            if beyond > 0 and jobs:
                newest = next(reversed(jobs))
                if worst is None or (beyond, newest) > worst:
                    worst = (beyond, newest)
        return None if worst is None else worst[1]

    def add(self, job_id: int, owner: str, *, droppable: bool = False) -> None:
        """A job admitted by ``place`` (after its eviction, if any) waits from now on."""
        self._owner_of[job_id] = owner
        if droppable:
            self._droppable[job_id] = owner
        else:
            self._finals.setdefault(owner, {})[job_id] = None

    def remove(self, job_id: int) -> bool:
        """The job left (a batch took it, or it was cancelled, aborted, failed or evicted); False if
        it was not waiting."""
        owner = self._owner_of.pop(job_id, None)
        if owner is None:
            return False
        if self._droppable.pop(job_id, None) is None:
            jobs = self._finals[owner]
            del jobs[job_id]
            if not jobs:
                del self._finals[owner]
        return True

    def clear(self) -> None:
        """Every waiting job is gone (the engine stopped or failed); joined sessions stay counted."""
        self._finals.clear()
        self._droppable.clear()
        self._owner_of.clear()
