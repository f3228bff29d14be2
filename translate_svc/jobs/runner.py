"""Runs the node's jobs: each one a stream's pipeline (``SessionManager.open_clip``: the same VAD,
segmenting, engine jobs and results as ``Translate``/``TranslateChunked``), fed its audio from its
file a second at a time, every finished segment stored as it comes (``store.add_segment``).

Background work: the job's session is the engine's background class
(``EngineClient.background``: its segments are taken only when no live job waits, one at a time,
with a floor against starving: engine/scheduler.py), and its audio is scored at the VAD worker
after the live streams' (``vad.worker.BACKGROUND``, set in the job's task). The runner feeds a
second of audio at a time and keeps to ``jobs.engine_share`` of the engine's time (``pace.py``),
which bounds the CPU a job's VAD, resampling and features take beside live streams, and feeds each
second only once no live stream of its process is speaking or waiting for a result, or after
``jobs.quiet_wait_s`` (``SessionManager.wait_live_quiet``). Measured:
benchmarks/studies/jobs_beside_streams.py (docs/performance.md).

Which process runs a job is a lease in the store (``store.claim``): a node's workers (or, with
``cluster.redis_url``, the pods: ``redis_store.py``) never run one job twice, and a job left
``running`` by a process that stopped or died is resumed by the next claim (its lease given back,
or lapsed; ``jobs.lease_s``), from the end of its last finished segment
(``store.resume_point``), its later segments numbered on; finished segments are never redone. One
that cannot finish ends ``failed`` with why. A URL job's audio is fetched first, under the
job's lease (``intake.py``): a process stopped or killed mid-fetch leaves it to the next claim,
which fetches it again from the start. Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from translate_svc.errors import ServiceError
from translate_svc.jobs.intake import fetched, take_in
from translate_svc.jobs.keeper import JobKeeper
from translate_svc.jobs.model import JobSpec, JobState, JobStatus, segment_json
from translate_svc.jobs.pace import EnginePace
from translate_svc.jobs.reader import AudioBlocks
from translate_svc.jobs.store import LeaseLost, ResumePoint, StoreLost
from translate_svc.observability import metrics
from translate_svc.session import task as checks
from translate_svc.session.events import MAX_LEAD_IN_MS
from translate_svc.session.manager import SessionManager
from translate_svc.session.stream import StreamSession
from translate_svc.session.tenants.tenant import Tenant
from translate_svc.settings.jobs import JobSettings
from translate_svc.types import MODEL_SAMPLE_RATE, AudioEncoding, AudioFormat, OutputOptions, SegmentResult
from translate_svc.vad.segmenter import WINDOW_SAMPLES
from translate_svc.vad.worker import BACKGROUND as VAD_BACKGROUND
from translate_svc.webhooks.events import JOB_COMPLETED, JOB_FAILED, Event

logger = logging.getLogger(__name__)

#: seconds of audio read from the file at once
BLOCK_S = 30
#: seconds of audio fed at once, each step only into an idle engine (the resampler and the VAD are
#: chunking-invariant: a job's segments are a whole clip's however it is fed)
FEED_S = 1.0
#: how often finished jobs past their retention (and abandoned uploads) are swept
SWEEP_S = 60.0
#: how often a status long poll reads again a job another worker runs
OTHERS_S = 1.0
#: where a resumed job's lead-in may start in its audio (ms): on whole VAD windows from the audio's
#: start (32 ms) and on a whole number of input frames at every rate that is a multiple of 25 Hz
#: (8, 11.025, 16, 22.05, 44.1, 48 kHz...), where a resampler started there is in phase with one
#: started at the beginning: 5 windows, 160 ms
LEAD_GRID_MS = 5 * WINDOW_SAMPLES * 1000 // MODEL_SAMPLE_RATE


class JobRunner:
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
    ) -> None:
        self.store = store
        self.settings = settings
        self._m = manager
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
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        #: claimed, waiting for a worker here
        self._claimed: set[str] = set()
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()
        #: set when a job changes here (a segment finished; done, failed, cancelled): ``wait``'s signal
        self._changed: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._stopped = asyncio.Event()
        #: each finished segment's job id (tests count them across restarts)
        self.on_segment: Callable[[str, int], None] | None = None
        #: a test's fetch checks for URL jobs (``allowed=``, ``ssl_context=``: ``intake.py``);
        #: production's otherwise
        self.fetch_checks: dict[str, object] = {}

    async def start(self) -> None:
        """Open the store; from now on this process claims jobs no live lease holds: queued ones,
        and those a stopped (or killed) process left running, which resume."""
        await self.store.start()
        for n in range(self.settings.max_running):
            self._tasks.append(asyncio.create_task(self._work(), name=f"job-worker-{n}"))
        self._tasks.append(asyncio.create_task(self._claims(), name="job-claims"))
        self._tasks.append(asyncio.create_task(self._sweep(), name="job-sweeper"))

    async def stop(self) -> None:
        """Stop the workers; a job running stays ``running`` in the store, its lease given back, and
        is resumed by the next process that claims it (this one restarted, or another worker)."""
        # a loop whose cancel a store call swallowed (redis-py can) ends too, at once
        self._stopping = True
        self._stopped.set()
        self._wake.set()
        for _ in range(self.settings.max_running):
            self._queue.put_nowait("")  # a worker back at its queue
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for job_id in [*self._claimed, *self._running]:
            await self.store.release(self.owner, job_id)
        await self.store.close()

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
        mine = [*self._running, *self._claimed]
        held = await self.store.renew(self.owner, mine, now + self.lease_s) if mine else {}
        for job_id, task in list(self._running.items()):
            state = held.get(job_id)
            if state is None or state is JobState.CANCELLED:
                self._cancelled.add(job_id)
                task.cancel()
        free = self.settings.max_running - len(self._running) - len(self._claimed)
        for job_id in await self.store.claim(self.owner, now, self.lease_s, free):
            self._claimed.add(job_id)
            self._queue.put_nowait(job_id)

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
                await asyncio.wait_for(changed.wait(), left if job_id in self._running else min(left, OTHERS_S))
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
        task = self._running.get(job.job_id)
        if moved and task is not None:
            self._cancelled.add(job.job_id)
            task.cancel()
            await asyncio.wait({task})
        if moved:
            self._signal(job.job_id)
        return await self.store.get(job.job_id)

    def _retention(self, tenant: str) -> float:
        kept = self.retention_of(tenant)
        return kept if kept is not None and kept > 0 else self.settings.retention_s

    # -- the workers ------------------------------------------------------------------------------

    async def _work(self) -> None:
        while not self._stopping:
            job_id = await self._queue.get()
            if not job_id:
                continue
            self._claimed.discard(job_id)
            if job_id in self._running:
                continue
            task = asyncio.create_task(self._run_one(job_id), name=f"job-{job_id}")
            self._running[job_id] = task
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise
            finally:
                self._running.pop(job_id, None)
                self._cancelled.discard(job_id)
                if task.done():
                    with contextlib.suppress(StoreLost):  # else its lease lapses
                        await self.store.release(self.owner, job_id)
                self._wake.set()  # a worker is free: claim the next job

    async def _run_one(self, job_id: str) -> None:
        try:
            job = await self.store.get(job_id)
            if job.state not in (JobState.QUEUED, JobState.RUNNING):
                return
            await self.store.set_state(job_id, JobState.RUNNING, only_from=(JobState.QUEUED, JobState.RUNNING))
            if not fetched(job):
                # a URL job's audio, fetched under the job's lease (again from the start, when a
                # process stopped or died mid-fetch): a fetch that fails fails the job, saying why
                job = await take_in(self.store, self.settings, job, self.tenant_of(job.tenant), self.fetch_checks)
                self._signal(job_id)
            await self._translate(job)
        except asyncio.CancelledError:
            if job_id in self._cancelled:
                return  # cancel() moved it to cancelled already
            raise  # the process stops: the job stays running, resumed at the next start
        except StoreLost as e:
            # the store is lost mid-job: the job stays running, resumed (here or elsewhere) once it
            # is back and the lease lapsed; never failed for it
            logger.warning("job %s: paused, its store is lost: %s", job_id, e.message, extra={"job_id": job_id})
        except LeaseLost:
            # its lease lapsed and another process took the job over (its segment was refused):
            # that process finishes it
            logger.warning("job %s: taken over by another process", job_id, extra={"job_id": job_id})
        except ServiceError as e:
            await self._end(job_id, JobState.FAILED, e.message)
        except Exception as e:
            logger.exception("job %s failed", job_id, extra={"job_id": job_id})
            await self._end(job_id, JobState.FAILED, f"internal error ({type(e).__name__}): the job cannot finish")
        else:
            await self._end(job_id, JobState.DONE, "")

    async def _end(self, job_id: str, state: JobState, error: str, from_state: JobState = JobState.RUNNING) -> None:
        job = await self.store.get(job_id)
        if job.state is not from_state:
            return
        expires = self._clock() + self._retention(job.tenant)
        if not await self.store.set_state(job_id, state, error=error, expires=expires, only_from=(from_state,)):
            return
        job = await self.store.get(job_id)
        data: dict[str, Any] = {
            "job_id": job_id,
            "state": state.value,
            "duration_ms": job.duration_ms,
            "segments": job.segments,
            "target_languages": list(job.spec.target_languages),
        }
        if error:
            data["error"] = error
        self._signal(job_id)
        self._m.events.emit(Event(JOB_COMPLETED if state is JobState.DONE else JOB_FAILED, job.tenant, data))

    async def _translate(self, job: JobStatus) -> None:
        spec = job.spec
        tenant = self.tenant_of(job.tenant)
        task = checks.resolve_task(
            self._m.card,
            self._m.limits,
            spec.source_language,
            list(spec.target_languages),
            _output(spec),
        )
        stored = await self._m.glossaries.terms(
            tenant.name, spec.glossaries, task.target_languages, task.source_language or ""
        )
        task = checks.with_stored(task, stored)
        point = await self.store.resume_point(job.job_id)
        # a resumed job hears again up to the streams' lead-in before its resume point, only
        # listened to (``Resume.lead_in_ms``): its VAD enters the resume point as it was there
        lead_ms = resume_lead_ms(point.end_ms)
        start_ms = point.end_ms - lead_ms
        loop = asyncio.get_running_loop()
        path = self.store.audio_path(job.job_id)
        # the file is read on a thread of its own, and closed there: a job cancelled while a block
        # is read closes it only after that read (libsndfile's handle is not to be closed under it)
        reads = ThreadPoolExecutor(1, thread_name_prefix=f"job-read-{job.job_id[-6:]}")
        try:
            blocks = await loop.run_in_executor(reads, _open_at, path, spec.fmt, start_ms)
        except BaseException:
            reads.shutdown(wait=False)
            raise
        try:
            session = self._m.open_clip(
                AudioFormat(AudioEncoding.FLOAT32, blocks.rate, 1),
                task,
                self._m.vad_defaults,
                tenant,
                lead_in_ms=lead_ms,
            )
            # background work: the engine's background class for its segments (engine/scheduler.py)
            # and the VAD's lower priority for its audio (vad/worker.py; this task's context only)
            self._m.engine.background(session.session_id)
            VAD_BACKGROUND.set(True)
            pace = EnginePace(self.settings.engine_share)
            came = asyncio.Event()  # set at each of the session's events (a segment's result)
            collect = asyncio.create_task(
                self._collect(job.job_id, session, point, start_ms, tenant.name, pace, came),
                name=f"job-results-{job.job_id}",
            )
            try:
                await self._feed(session, blocks, tenant, reads, pace, came, lead_ms * blocks.rate // 1000)
                await session.finish()
                await collect
            except BaseException:
                session.abort()
                collect.cancel()
                await asyncio.gather(collect, return_exceptions=True)
                raise
            finally:
                session.close()
        finally:
            reads.submit(blocks.close)
            reads.shutdown(wait=False)

    async def _feed(
        self,
        session: StreamSession,
        blocks: AudioBlocks,
        tenant: Tenant,
        reads: ThreadPoolExecutor,
        pace: EnginePace,
        came: asyncio.Event,
        lead_frames: int = 0,
    ) -> None:
        """``lead_frames``: the lead-in's, translated before the job was resumed: not charged again."""
        loop = asyncio.get_running_loop()
        step = max(1, round(FEED_S * blocks.rate))
        while True:
            samples = await loop.run_in_executor(reads, blocks.read, BLOCK_S * blocks.rate)
            if not len(samples):
                return
            heard_again = min(lead_frames, len(samples))
            lead_frames -= heard_again
            if len(samples) > heard_again:
                self._m.charge_audio(tenant, (len(samples) - heard_again) / blocks.rate)
            for at in range(0, len(samples), step):
                # the engine's background class keeps the job's segments behind live ones; the job
                # feeds its next second only once its segments so far are back (one or so in
                # flight: a deep background queue would hold features and the floor's seats) and
                # keeps to its share of the engine's time (``pace.py``), which also bounds the
                # CPU its VAD, resampling and features take beside live streams
                while session.unread:
                    came.clear()
                    await came.wait()
                pause = pace.take()
                if pause and self._streams_beside():
                    await asyncio.sleep(pause)
                # and feeds in the live speech's pauses: not while a live stream of this process
                # holds speech or waits for a result, at most ``jobs.quiet_wait_s`` a second
                if self.settings.quiet_wait_s > 0:
                    await self._m.wait_live_quiet(self.settings.quiet_wait_s)
                await session.feed_samples(samples[at : at + step])
            del samples

    def _streams_beside(self) -> bool:
        """Whether other sessions than this process's running jobs are open on the node (live
        streams, clips, another worker's jobs): with none, a job takes the whole engine."""
        return self._m.engine.stats().sessions > len(self._running)

    async def _collect(
        self,
        job_id: str,
        session: StreamSession,
        point: ResumePoint,
        start_ms: int,
        tenant: str,
        pace: EnginePace,
        came: asyncio.Event,
    ) -> None:
        """Store each finished segment as it comes, numbered after the last one stored, on the
        job's timeline (the session's audio starts at ``start_ms``)."""
        seq = point.segments
        first: int | None = None
        async for ev in session.events():
            came.set()
            if not isinstance(ev, SegmentResult):
                continue
            pace.spent(ev.timing.model_ms / 1000)
            if first is None:
                first = ev.segment_id
            segment_id = point.last_segment_id + 1 + ev.segment_id - first if point.segments else ev.segment_id
            result = segment_json(ev, segment_id=segment_id, shift_ms=start_ms)
            speech = {
                t.target_language: _at_track_rate(t.audio, t.sample_rate_hz)
                for t in ev.translations
                if t.audio is not None
            }
            await self.store.add_segment(job_id, seq, result, speech, MODEL_SAMPLE_RATE, owner=self.owner)
            metrics.observe_segment(ev, tenant)
            metrics.JOB_SEGMENTS.inc()
            self._signal(job_id)
            if self.on_segment is not None:
                self.on_segment(job_id, seq)
            seq += 1

    async def _sweep(self) -> None:
        while not self._stopping:
            try:
                for job_id in await self.store.expired(self._clock()):
                    if job_id not in self._running:
                        await self.store.delete(job_id)
            except ServiceError as e:  # the store did not answer: the next sweep does it
                logger.warning("jobs: retention sweep skipped: %s", e.message)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), SWEEP_S)


def resume_lead_ms(end_ms: int) -> int:
    """The lead-in of a job resumed at ``end_ms``: as much of the streams' longest
    (``MAX_LEAD_IN_MS``) as the audio before it holds, starting on ``LEAD_GRID_MS``."""
    first = max(0, end_ms - MAX_LEAD_IN_MS)
    return end_ms - -(-first // LEAD_GRID_MS) * LEAD_GRID_MS


def _open_at(path: Any, fmt: AudioFormat, start_ms: int) -> AudioBlocks:
    blocks = AudioBlocks(path, fmt)
    if start_ms:
        rate = blocks.rate
        blocks.close()
        blocks = AudioBlocks(path, fmt, start_frame=start_ms * rate // 1000)
    return blocks


def _output(spec: JobSpec) -> OutputOptions:
    return OutputOptions(speech=spec.speech, transcript=spec.transcript, word_timings=spec.word_timings)


def _at_track_rate(audio: np.ndarray, rate: int) -> np.ndarray:
    """The tracks are at the model's rate, which is the speech's unless a job asked otherwise (it cannot)."""
    if rate != MODEL_SAMPLE_RATE:
        raise ValueError(f"speech at {rate} Hz, the track is at {MODEL_SAMPLE_RATE}")
    return audio
