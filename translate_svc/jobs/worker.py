"""Runs the node's jobs: its queue (claims fair across tenants, in two stages: a URL job's fetch,
then its translation), its workers, a job's status long poll, cancel, end and retention. One job's
run is ``translation.py``'s (a stream's pipeline fed from the job's file, admitted as its tenant's
work, its turn a slice while other tenants' jobs wait).

Which process runs a job is a lease in the store (``store.claim``): a node's workers (or, with
``cluster.redis_url``, the pods: ``redis_store.py``) never run one job twice, and a job left
``running`` by a process that stopped or died is resumed by the next claim (its lease given back,
or lapsed; ``jobs.lease_s``), from the end of its last finished segment
(``store.resume_point``), its later segments numbered on; finished segments are never redone. One
that cannot finish ends ``failed`` with why. A job that gives its worker back (``Yielded``: its
slice is over while another tenant's job waits, or its tenant's budget or Translate calls are
full) goes back to ``queued`` and is claimed again (from the time it names) in its tenant's turn.

A URL job's audio is fetched first, by a stage of its own (``jobs.max_fetching`` fetches at once a
process, beside the ``jobs.max_running`` workers that translate: a slow host never holds a
worker), under the job's lease (``intake.py``): a process stopped or killed mid-fetch leaves it
to the next claim, which fetches it again from the start; fetched whole and checked, the job is
``queued`` for a worker. A job's audio is deleted once it ends (done, failed or cancelled): what
is kept after it is its results and dubbed tracks, for its retention, and a done job's video
upload (the dubbed video is made from it on request; ``tracks.keep_video``). Its
``job.failed`` webhook says why in the server's words only (``FAILURES``), never the caller's
(security finding J10): the job's status has the whole message. Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from translate_svc.errors import NotFound, ServiceError
from translate_svc.jobs.credentials import JobCredentials
from translate_svc.jobs.edits import JobEditor
from translate_svc.jobs.intake import fetched, take_in
from translate_svc.jobs.keeper import JobKeeper
from translate_svc.jobs.media import JobMedia
from translate_svc.jobs.model import JobState, JobStatus
from translate_svc.jobs.store import LeaseLost, StoreLost
from translate_svc.jobs.translation import LEAD_GRID_MS, JobTranslation, Yielded, resume_lead_ms
from translate_svc.jobs.video import VideoMaker
from translate_svc.sandbox.pool import SandboxStopped
from translate_svc.session.manager import SessionManager
from translate_svc.session.tenants.tenant import Tenant
from translate_svc.settings.jobs import JobSettings
from translate_svc.settings.media import MediaSettings
from translate_svc.webhooks.events import JOB_COMPLETED, JOB_FAILED, Event

logger = logging.getLogger(__name__)

__all__ = ["FAILURES", "LEAD_GRID_MS", "JobWorker", "resume_lead_ms"]

#: how often finished jobs past their retention (and abandoned uploads) are swept
SWEEP_S = 60.0
#: how often a status long poll reads again a job another worker runs
OTHERS_S = 1.0
#: a job's two stages: its audio fetched (URL jobs), then translated
FETCH, RUN = "fetch", "run"
#: why a job failed, as its ``job.failed`` webhook says it (``reason``, ``error``): the server's
#: words only, by the failure's reason; the caller reads the whole message from the job's status
FAILURES = {
    "fetch_failed": "the job's audio could not be fetched",
    "url_not_allowed": "the job's url is not one this server fetches",
    "clip_too_large": "the job's audio is over this server's limit",
    "over_cap": "the job is over its tenant's caps",
    "invalid_input": "the job's audio or options were refused",
    "not_found": "something the job names is not there",
    "internal": "the server could not finish the job",
}
#: a failure's reason by its error's code, where the error names none of ``FAILURES``
_BY_CODE = {"RESOURCE_EXHAUSTED": "over_cap", "NOT_FOUND": "not_found", "INVALID_ARGUMENT": "invalid_input"}


class _Outcome:
    """What a stage's work on a job came to (``JobWorker._outcome``)."""

    done = False


def failure_reason(e: ServiceError | None) -> str:
    """The ``FAILURES`` key of a job's failure."""
    if e is None:
        return "internal"
    if e.reason in FAILURES:
        return str(e.reason)
    return _BY_CODE.get(e.code.value, "internal")


class JobWorker:
    """The node's job queue and its workers; one per process that serves jobs."""

    def __init__(
        self,
        store: JobKeeper,
        manager: SessionManager,
        settings: JobSettings,
        *,
        tenant_of: Callable[[str], Tenant] = Tenant,
        retention_of: Callable[[str], float | None] = lambda tenant: None,
        clock: Callable[[], float] = time.time,
        media: MediaSettings | None = None,
        credentials: JobCredentials | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        #: signs the dubbed tracks and videos made for callers (None: the operator set no key)
        self.credentials = credentials
        self._m = manager
        #: every open of an upload: in media processes of the node's own (``media.py``)
        self.media = JobMedia(media or MediaSettings())
        #: a job's tenant by name, and its retention in seconds (None: ``jobs.retention_s``): the
        #: host sets them from the tokens file
        self.tenant_of = tenant_of
        self.retention_of = retention_of
        self._clock = clock
        #: this process, as the leases name it
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        #: a job's lease (``store.claim``, ``jobs.lease_s``): renewed every third of it while this
        #: process runs it; killed mid-job, it holds it at most this long, then another process
        #: (this node's, or with ``cluster.redis_url`` another pod's) takes it over
        self.lease_s = settings.lease_s
        #: each stage's workers: how many, their queue, the jobs claimed waiting for one, and the
        #: jobs they run now (a URL job's fetch, a job's translation)
        self._slots = {FETCH: settings.max_fetching, RUN: settings.max_running}
        self._queues: dict[str, asyncio.Queue[str]] = {FETCH: asyncio.Queue(), RUN: asyncio.Queue()}
        self._claimed: dict[str, set[str]] = {FETCH: set(), RUN: set()}
        self._tasks_of: dict[str, dict[str, asyncio.Task[None]]] = {FETCH: {}, RUN: {}}
        #: the jobs translated now (one stage's tasks)
        self._running = self._tasks_of[RUN]
        self._wake = asyncio.Event()
        self._cancelled: set[str] = set()
        #: a job that gave its worker back, claimable again from this time (``Yielded``)
        self._until: dict[str, float] = {}
        #: set when a job changes here (a segment finished; done, failed, cancelled): ``wait``'s signal
        self._changed: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._stopped = asyncio.Event()
        #: one job's run (``translation.py``)
        self.translator = JobTranslation(
            store,
            manager,
            settings,
            owner=self.owner,
            running=lambda: len(self._running),
            signal=self._signal,
            cancelled=lambda job_id: job_id in self._cancelled,
            clock=clock,
            media=self.media,
        )
        #: a test's fetch checks for URL jobs (``allowed=``, ``ssl_context=``: ``intake.py``);
        #: production's otherwise
        self.fetch_checks: dict[str, object] = {}
        #: done video jobs' dubbed videos (``video.py``)
        self.videos = VideoMaker(settings, self.media, credentials)
        #: done jobs' segments edited (``edits.py``), each edit holding its job as this process
        self.editor = JobEditor(store, manager, owner=self.owner, lease_s=self.lease_s, clock=clock)

    async def start(self) -> None:
        """Open the store; from now on this process claims jobs no live lease holds: queued ones,
        and those a stopped (or killed) process left running, which resume."""
        await self.store.start()
        for stage, slots in self._slots.items():
            for n in range(slots):
                self._tasks.append(asyncio.create_task(self._work(stage), name=f"job-{stage}-{n}"))
        self._tasks.append(asyncio.create_task(self._claims(), name="job-claims"))
        self._tasks.append(asyncio.create_task(self._sweep(), name="job-sweeper"))

    async def stop(self) -> None:
        """Stop the workers; a job running stays ``running`` in the store, its lease given back, and
        is resumed by the next process that claims it (this one restarted, or another worker)."""
        # a loop whose cancel a store call swallowed (redis-py can) ends too, at once
        self._stopping = True
        self._stopped.set()
        self._wake.set()
        for stage, slots in self._slots.items():
            for _ in range(slots):
                self._queues[stage].put_nowait("")  # a worker back at its queue
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for job_id in self._mine():
            await self.store.release(self.owner, job_id)
        self.videos.close()
        await self.media.close()
        await self.store.close()

    def stop_media_calls(self) -> None:
        """The server stops: the probes and remuxes in progress end at once (never waited for: a
        ``complete``'s job stays uploading, a URL job's is fetched and probed again by its next
        claim); the running jobs' readers end with their runs (``stop``)."""
        self.media.stop_calls()

    @property
    def on_segment(self) -> Callable[[str, int], None] | None:
        """Called with each finished segment's job id and number (tests count them across restarts)."""
        return self.translator.on_segment

    @on_segment.setter
    def on_segment(self, call: Callable[[str, int], None] | None) -> None:
        self.translator.on_segment = call

    def _mine(self) -> list[str]:
        """The jobs this process holds: claimed, fetched or translated now."""
        return [job_id for stage in (FETCH, RUN) for job_id in (*self._claimed[stage], *self._tasks_of[stage])]

    def enqueue(self, job_id: str) -> None:
        """A job was queued: claim it (here, or another worker of the node does) without waiting."""
        self._wake.set()

    async def _claims(self) -> None:
        """Renew this process's leases, drop a job another took over or that was cancelled
        elsewhere, and claim as many jobs as there are idle workers; every third of a lease, or at
        once when a job is queued here."""
        while not self._stopping:
            try:
                await self._renew_and_claim()
            except ServiceError as e:  # the store did not answer (Redis lost): try again shortly
                logger.warning("jobs: leases not renewed: %s", e.message)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.lease_s / 3)
            except TimeoutError:
                pass

    async def _renew_and_claim(self) -> None:
        now = self._clock()
        mine = self._mine()
        held = await self.store.renew(self.owner, mine, now + self.lease_s) if mine else {}
        for tasks in self._tasks_of.values():
            for job_id, task in list(tasks.items()):
                state = held.get(job_id)
                if state is None or state is JobState.CANCELLED:
                    self._cancelled.add(job_id)
                    task.cancel()
        for stage, slots in self._slots.items():
            free = slots - len(self._tasks_of[stage]) - len(self._claimed[stage])
            for job_id in await self.store.claim(self.owner, now, self.lease_s, free, fetch=stage == FETCH):
                self._claimed[stage].add(job_id)
                self._queues[stage].put_nowait(job_id)

    async def wait(self, job_id: str, timeout_s: float) -> JobStatus:
        """The job once it changes (a segment finishes, it ends), or as it stands after ``timeout_s``
        (a long poll: a progress bar's, or a wait for the end). A job this process runs signals its
        changes; one another worker of the node runs is read again every ``OTHERS_S`` (the store
        is the only thing the workers share)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        # the signal is listened for before each read: a change while the store answers (the job
        # ending then) sets it, where an event made after the read would miss it and wait it all
        changed = self._changed.setdefault(job_id, asyncio.Event())
        job = await self.store.get(job_id)
        while not job.state.finished and (left := end - loop.time()) > 0:
            try:
                here = any(job_id in tasks for tasks in self._tasks_of.values())
                await asyncio.wait_for(changed.wait(), left if here else min(left, OTHERS_S))
            except TimeoutError:
                pass
            fired = changed.is_set()
            changed = self._changed.setdefault(job_id, asyncio.Event())
            now = await self.store.get(job_id)
            if fired or changed.is_set() or (now.state, now.segments) != (job.state, job.segments):
                job = now
                break
            job = now
        if job.state.finished:
            self._changed.pop(job_id, None)  # no signal comes after the end
        return job

    def _signal(self, job_id: str) -> None:
        changed = self._changed.pop(job_id, None)
        if changed is not None:
            changed.set()

    async def cancel(self, job: JobStatus) -> JobStatus:
        """Cancel a job not finished (a finished one is returned as it is)."""
        if job.state.finished:
            return job
        expires = self._clock() + self._retention(job.tenant)
        moved = await self.store.set_state(
            job.job_id,
            JobState.CANCELLED,
            error="cancelled by its owner",
            expires=expires,
            only_from=(JobState.UPLOADING, JobState.QUEUED, JobState.RUNNING),
        )
        task = self._running.get(job.job_id) or self._tasks_of[FETCH].get(job.job_id)
        if moved and task is not None:
            self._cancelled.add(job.job_id)
            task.cancel()
            await asyncio.wait({task})
        if moved:
            await self.store.drop_audio(job.job_id)  # what a cancelled job keeps: its results so far
            self._signal(job.job_id)
        return await self.store.get(job.job_id)

    async def fail_upload(self, job_id: str, cause: ServiceError) -> None:
        """An upload that can no longer be completed (a part over the upload's limit, or over the
        bytes its tenant's jobs may keep; a ``complete`` refused after its probe: never probed
        again) fails with the refusal's words: its slot and the bytes
        its parts hold are freed at once, not when the abandoned upload expires. (A store that
        does not answer leaves it to expire: the refusal still goes out.)"""
        try:
            await self._end(job_id, JobState.FAILED, cause.message, cause, from_state=JobState.UPLOADING)
        except ServiceError as e:
            logger.warning("jobs: job %s's refused upload left to expire: %s", job_id, e.message)

    def _retention(self, tenant: str) -> float:
        kept = self.retention_of(tenant)
        return kept if kept is not None and kept > 0 else self.settings.retention_s

    # -- the workers ------------------------------------------------------------------------------

    async def _work(self, stage: str) -> None:
        queue, claimed, tasks = self._queues[stage], self._claimed[stage], self._tasks_of[stage]
        one = self._fetch_one if stage == FETCH else self._run_one
        while not self._stopping:
            job_id = await queue.get()
            if not job_id:
                continue
            claimed.discard(job_id)
            if job_id in tasks:
                continue
            task = asyncio.create_task(one(job_id), name=f"job-{stage}-{job_id}")
            tasks[job_id] = task
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise
            finally:
                tasks.pop(job_id, None)
                self._cancelled.discard(job_id)
                until = self._until.pop(job_id, 0.0)
                if task.done():
                    with contextlib.suppress(StoreLost):  # else its lease lapses
                        await self.store.release(self.owner, job_id, until)
                self._wake.set()  # a worker is free: claim the next job

    async def _fetch_one(self, job_id: str) -> None:
        """A URL job's audio, fetched under the job's lease (again from the start, when a process
        stopped or died mid-fetch), checked, and the job queued for a worker; a fetch that fails
        fails the job, saying why."""
        async with self._outcome(job_id):
            job = await self.store.get(job_id)
            if job.state not in (JobState.QUEUED, JobState.RUNNING) or fetched(job):
                return
            await self.store.set_state(job_id, JobState.RUNNING, only_from=(JobState.QUEUED, JobState.RUNNING))
            await take_in(self.store, self.settings, job, self.tenant_of(job.tenant), self.fetch_checks, self.media)
            await self.store.set_state(job_id, JobState.QUEUED, only_from=(JobState.RUNNING,))
            self._signal(job_id)

    async def _run_one(self, job_id: str) -> None:
        async with self._outcome(job_id) as outcome:
            job = await self.store.get(job_id)
            if job.state not in (JobState.QUEUED, JobState.RUNNING) or not fetched(job):
                return
            await self.store.set_state(job_id, JobState.RUNNING, only_from=(JobState.QUEUED, JobState.RUNNING))
            await self.translator.run(job, self.tenant_of(job.tenant))
            outcome.done = True

    @contextlib.asynccontextmanager
    async def _outcome(self, job_id: str) -> AsyncIterator[_Outcome]:
        """How a stage's work on a job ends: ``done`` when the block says so (the job's
        translation ran to its end), ``failed`` with why on a ``ServiceError`` (or a bug), back to
        ``queued`` when it gives its worker back, and left as it is when the process stops or
        loses the job."""
        outcome = _Outcome()
        try:
            yield outcome
        except asyncio.CancelledError:
            if job_id in self._cancelled:
                return  # cancel() moved it to cancelled already
            raise  # the process stops: the job stays running, resumed at the next start
        except Yielded as e:
            # back to queued, claimed again in its tenant's turn (from ``until``)
            await self.store.set_state(job_id, JobState.QUEUED, only_from=(JobState.RUNNING,))
            self._until[job_id] = e.until
            self._signal(job_id)
        except StoreLost as e:
            # the store is lost mid-job: the job stays running, resumed (here or elsewhere) once it
            # is back and the lease lapsed; never failed for it
            logger.warning("job %s: paused, its store is lost: %s", job_id, e.message, extra={"job_id": job_id})
        except SandboxStopped:
            # the server stops under its probe or its reader: the job stays as it is, probed (or
            # read) again by the next claim
            logger.info("job %s: its media process ended as the server stops", job_id, extra={"job_id": job_id})
        except LeaseLost:
            # its lease lapsed and another process took the job over (its segment was refused):
            # that process finishes it
            logger.warning("job %s: taken over by another process", job_id, extra={"job_id": job_id})
        except ServiceError as e:
            await self._end(job_id, JobState.FAILED, e.message, e)
        except Exception as e:
            logger.exception("job %s failed", job_id, extra={"job_id": job_id})
            await self._end(job_id, JobState.FAILED, f"internal error ({type(e).__name__}): the job cannot finish")
        else:
            if outcome.done:
                await self._end(job_id, JobState.DONE, "")

    async def _end(
        self,
        job_id: str,
        state: JobState,
        error: str,
        cause: ServiceError | None = None,
        from_state: JobState = JobState.RUNNING,
    ) -> None:
        job = await self.store.get(job_id)
        if job.state is not from_state:
            return
        expires = self._clock() + self._retention(job.tenant)
        # a video upload is kept for its dubbed video, before the job says it is done: a
        # client that sees it done and asks for its video at once finds it
        kept = state is JobState.DONE and await asyncio.to_thread(self.store.keep_video, job_id)
        # what an ended job keeps: its results and dubbed tracks. A job this process runs has its
        # audio dropped before it says it ended, so a client that sees it done or failed never finds
        # its audio; meanwhile only a cancel or a delete can move it, and they drop it too (a process
        # that dies just here leaves it running without its audio, as ``keep_video`` does: resumed,
        # it fails). Another state's job (an upload) may move on meanwhile: dropped once it ended.
        early = from_state is JobState.RUNNING
        if early:
            await self.store.drop_audio(job_id)
        if not await self.store.set_state(job_id, state, error=error, expires=expires, only_from=(from_state,)):
            if kept:  # cancelled or deleted as it ended: it keeps nothing (its canceller's drop may be done)
                await asyncio.to_thread(self.store.unkeep_video, job_id)
                await self.store.drop_audio(job_id)
            return
        if not early:
            await self.store.drop_audio(job_id)
        try:
            job = await self.store.get(job_id)
        except NotFound:  # deleted by its owner as it ended
            return
        data: dict[str, Any] = {
            "job_id": job_id,
            "state": state.value,
            "duration_ms": job.duration_ms,
            "segments": job.segments,
            "target_languages": list(job.spec.target_languages),
        }
        if job.spec.conversation:
            data["conversation"] = {"languages": list(job.spec.conversation)}
        if state is JobState.FAILED:
            reason = failure_reason(cause)
            data["reason"] = reason
            data["error"] = f"{FAILURES[reason]}: GET the job for the details"
        self._signal(job_id)
        self._m.events.emit(Event(JOB_COMPLETED if state is JobState.DONE else JOB_FAILED, job.tenant, data))

    async def _sweep(self) -> None:
        while not self._stopping:
            try:
                for job_id in await self.store.expired(self._clock()):
                    if job_id not in self._mine():
                        await self.store.delete(job_id)
            except ServiceError as e:  # the store did not answer: the next sweep does it
                logger.warning("jobs: retention sweep skipped: %s", e.message)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), SWEEP_S)
