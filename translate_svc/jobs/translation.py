"""One job's run on this process: a stream's pipeline (``SessionManager.open_job``: the same VAD,
segmenting, engine jobs and results as ``Translate``/``TranslateChunked``, with every output and
ear option the job asked for), fed its audio from its file a second at a time (the file read in a
media process the run holds, never in this one: ``media.py``), every finished
segment stored as it comes (``store.add_segment``). Each run is a session of its tenant
(``lifecycle.py``: its webhooks, usage record, counters and access line).

A resumed run (after a restart, or after giving its worker back) hears again the job's audio
before its resume point, only listened to: silero's recurrent state remembers minutes of audio (a
fresh one after a 10 s lead-in scored windows tenths apart from the uninterrupted run's and moved
segments), so its VAD must enter the resume point in the uninterrupted run's state for
its later segments to be that run's, exactly. It starts from the job's last checkpoint before the
point (``checkpoints.py``: the VAD's state every ``checkpoints.EVERY_S`` or so, taken as the job
runs), its resampler a pre-roll before it: a resume replays seconds. Without one (noise
suppression, a rate without a checkpoint grid, a job that has none yet, a pre-roll that did not
give the checkpoint's samples) it hears again the audio before the point up to
``jobs.resume_replay_s`` (all of it by default). The lead-in is fed a block at a time with none of
the waits below (it has no engine work) and before the slice's clock starts. The job resamples
its audio to 16 kHz itself (``checkpoints.JobAudio``; its session takes 16 kHz), so that a
pre-roll's output can be thrown away and checked.

A job of separate channels (``JobSpec.separate_channels``) runs a session per channel, fed
together, their results one job's as a live stream's channels' are (``_translate_channels``).

A job is its tenant's work, admitted as its Translate calls are
(``SessionManager.admit_job``): it holds one of the tenant's ``translate_calls`` while it runs and
is not started while the tenant's audio budget is spent. Each second it feeds is drawn from that
budget first, and only while the budget holds more than ``jobs.budget_reserve`` of a minute's
worth: a job spends what the tenant's live calls leave, never what they need. Below it, the job
waits in place until the budget is back, or, when another tenant's job waits for a worker, gives
its worker back (``Yielded``) and is claimed again once the budget is back. A job that has run
``jobs.slice_s`` gives its worker back too while another tenant's job waits: the claims are fair
across tenants (``store.claim``), so one tenant's long jobs keep another's short one waiting at
most a slice. A job given back resumes from its last finished segment, as after a restart.

Background work: the job's session is the engine's background class
(``EngineClient.background``: its segments are taken only when no live job waits, one at a time,
with a floor against starving: engine/scheduler.py), and its audio is scored at the VAD worker
after the live streams' (``vad.worker.BACKGROUND``, set in the job's task). It feeds a second of
audio at a time and keeps to ``jobs.engine_share`` of the engine's time (``pace.py``), which
bounds the CPU a job's VAD, resampling and features take beside live streams, and feeds each
second only once no live stream of its process is speaking or waiting for a result, or after
``jobs.quiet_wait_s`` (``SessionManager.wait_live_quiet``). Measured:
benchmarks/studies/jobs_beside_streams.py (docs/performance.md). Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from translate_svc.errors import InvalidInput, Overloaded, ServiceError
from translate_svc.jobs import billing, checkpoints
from translate_svc.jobs.billing import RunCharge
from translate_svc.jobs.channel_feed import ChannelAudio, Channels, Sink, give
from translate_svc.jobs.checkpoints import Checkpoint, CheckpointMismatch, Grid, JobAudio, Tails
from translate_svc.jobs.dub import PAGE
from translate_svc.jobs.keeper import JobKeeper
from translate_svc.jobs.lifecycle import JobRun, Yielded
from translate_svc.jobs.media import JobMedia, MediaBlocks
from translate_svc.jobs.model import JobStatus, segment_json
from translate_svc.jobs.pace import EnginePace
from translate_svc.jobs.request import fit_default
from translate_svc.jobs.revoice import Revoicing
from translate_svc.jobs.store import ResumePoint
from translate_svc.jobs.voices import JobVoices
from translate_svc.jobs.voicing import CueVoicing
from translate_svc.observability import metrics
from translate_svc.session.calls.channels import ChannelStreams
from translate_svc.session.events import MAX_LEAD_IN_MS
from translate_svc.session.manager import SessionManager
from translate_svc.session.results import speech_out
from translate_svc.session.stream.session import StreamSession
from translate_svc.session.task import change, checks, inputs
from translate_svc.session.tenants.tenant import Tenant
from translate_svc.settings.jobs import JobSettings
from translate_svc.types import (
    MODEL_SAMPLE_RATE,
    AudioEncoding,
    AudioFormat,
    SegmentResult,
    SpokenUnits,
    TranslationTask,
)
from translate_svc.vad.segmenter import WINDOW_SAMPLES
from translate_svc.vad.snapshot import VadSnapshot
from translate_svc.vad.worker import BACKGROUND as VAD_BACKGROUND

#: seconds of audio read from the file at once
BLOCK_S = 30
#: seconds of audio fed at once, each step only into an idle engine (the resampler and the VAD are
#: chunking-invariant: a job's segments are a whole clip's however it is fed)
FEED_S = 1.0
#: where a resumed job's lead-in may start in its audio (ms): on whole VAD windows from the audio's
#: start (32 ms) and on a whole number of input frames at every rate that is a multiple of 25 Hz
#: (8, 11.025, 16, 22.05, 44.1, 48 kHz...), where a resampler started there is in phase with one
#: started at the beginning: 5 windows, 160 ms
LEAD_GRID_MS = 5 * WINDOW_SAMPLES * 1000 // MODEL_SAMPLE_RATE
#: how often a job past its slice asks whether another tenant's job waits (a store call)
ASK_EVERY_S = 2.0
#: the longest wait in place for the budget between two looks at the other tenants' jobs
BUDGET_WAIT_S = 5.0

__all__ = ["LEAD_GRID_MS", "JobTranslation", "Yielded", "resume_lead_ms"]

logger = logging.getLogger(__name__)
#: 16 kHz samples a millisecond
PER_MS = MODEL_SAMPLE_RATE // 1000


class JobTranslation:
    """Runs a job's session for a ``JobWorker``: ``run`` once per claim. ``running``: how many jobs
    this process runs now; ``signal``: a job changed (a segment stored); ``clock``: wall time, as
    the leases are. Event loop only."""

    def __init__(
        self,
        store: JobKeeper,
        manager: SessionManager,
        settings: JobSettings,
        *,
        owner: str = "",
        running: Callable[[], int] = lambda: 1,
        signal: Callable[[str], None] = lambda job_id: None,
        cancelled: Callable[[str], bool] = lambda job_id: False,
        clock: Callable[[], float],
        media: JobMedia,
    ) -> None:
        """``cancelled``: whether a job's run was cancelled by its owner (else its process stops);
        ``media``: where its audio is read (a media process the run holds, ``media.py``)."""
        self.store = store
        self.media = media
        self.settings = settings
        self._m = manager
        self.owner = owner
        self._running = running
        self._signal = signal
        self._cancelled = cancelled
        self._clock = clock
        #: each finished segment's job id (tests count them across restarts)
        self.on_segment: Callable[[str, int], None] | None = None

    async def run(self, job: JobStatus, tenant: Tenant) -> None:
        """Translate the job from its resume point to its end, admitted as its tenant's work;
        ``Yielded`` when it gives its worker back first, a ``ServiceError`` when it cannot finish.
        The run is a session of the tenant (``lifecycle.py``)."""
        run = JobRun(self._m.events, tenant.name, job.job_id, lambda: self._cancelled(job.job_id))
        with run.running():
            async with contextlib.AsyncExitStack() as stack:
                try:
                    await stack.enter_async_context(self._m.admit_job(tenant))
                except Overloaded as e:  # the tenant's Translate calls are full, or its budget spent
                    raise Yielded(self._clock() + (e.retry_after_ms or 1000) / 1000) from None
                await self._translate(job, tenant, run)

    async def _translate(self, job: JobStatus, tenant: Tenant, run: JobRun) -> None:
        spec = job.spec
        if spec.subtitles_language:  # subtitles voiced at their timings: no audio read (``voicing.py``)
            await self._voice(job, tenant, run)
            return
        task = checks.resolve_task(
            self._m.card,
            self._m.limits,
            spec.source_language,
            list(spec.target_languages),
            spec.output,
            ear=spec.ear,
            conversation=spec.conversation or None,
        )
        stored = await self._m.glossaries.terms(
            tenant.name, spec.glossaries, task.target_languages, task.source_language or ""
        )
        task = change.with_stored(task, stored)
        if spec.speaker_voices is not None:  # a voice per speaker: units kept to re-voice (``revoice.py``)
            task = change.keeping_spoken(task)
        point = await self.store.resume_point(job.job_id)
        loop = asyncio.get_running_loop()
        path = self.store.audio_path(job.job_id)
        # the job's own thread: its resampling, its checkpoints' files and its lengths written
        reads = ThreadPoolExecutor(1, thread_name_prefix=f"job-read-{job.job_id[-6:]}")
        try:
            # the file is read in a media process the run holds (never this one: ``media.py``);
            # none free (the tenant's share, or the node's): back to the queue, claimed again shortly
            async with contextlib.AsyncExitStack() as stack:
                try:
                    blocks = await stack.enter_async_context(
                        self.media.reader(
                            tenant.name, path, spec.fmt, job.received_bytes, keep_channels=spec.separate_channels
                        )
                    )
                except Overloaded as e:
                    raise Yielded(self._clock() + (e.retry_after_ms or 1000) / 1000) from None
                if spec.separate_channels:
                    await self._translate_channels(job, tenant, run, task, point, blocks, reads)
                    return
                # a resumed job hears again its audio from a checkpoint (or the start) before its
                # resume point, only listened to (``Resume.lead_in_ms``): its VAD enters the point
                # as it was there
                plan = await loop.run_in_executor(reads, self._plan, job, point, blocks.rate)
                if plan.first_frame:
                    await blocks.seek(plan.first_frame)
                await self._translate_from(job, tenant, run, task, point, plan, blocks, reads)
        finally:
            reads.shutdown(wait=False)

    async def _translate_from(
        self,
        job: JobStatus,
        tenant: Tenant,
        run: JobRun,
        task: TranslationTask,
        point: ResumePoint,
        plan: _Plan,
        blocks: MediaBlocks,
        reads: ThreadPoolExecutor,
    ) -> None:
        """The run's session from ``plan``'s start, fed from ``blocks`` to the audio's end."""
        spec, loop = job.spec, asyncio.get_running_loop()
        lead_ms, start_ms = plan.lead_ms, plan.start_ms
        lead_frames = lead_ms * blocks.rate // 1000
        charge = await self._charge(job, (plan.start_frame + lead_frames) / blocks.rate, 1, reads)
        try:
            session = await self._m.open_job(
                AudioFormat(AudioEncoding.FLOAT32, MODEL_SAMPLE_RATE, 1),
                task,
                spec.vad_config(self._m.vad_defaults),
                tenant,
                lead_in_ms=lead_ms,
                vad_start=None if plan.checkpoint is None else plan.checkpoint.snapshot.moved(plan.start16),
            )
        except Overloaded as e:  # the ear's streams are full: its tenant's or this process's
            raise Yielded(self._clock() + (e.retry_after_ms or 1000) / 1000) from None
        try:
            run.start(session.session_id, spec.fmt, task)
            await self._charging(job, run, session.session_id, charge, reads)
            audio = self._audio(job, plan, session)
            voices = JobVoices.of(self.store, job.job_id, session)  # speaker labels over the whole file
            # background work: the engine's background class for its segments (engine/scheduler.py)
            # and the VAD's lower priority for its audio (vad/worker.py; this task's context only)
            self._m.engine.background(session.session_id)
            VAD_BACKGROUND.set(True)
            pace = EnginePace(self.settings.engine_share)
            came = asyncio.Event()  # set at each of the session's events (a segment's result)
            collect = asyncio.create_task(
                self._collect(job, session, point, start_ms, run, pace, came, voices),
                name=f"job-results-{job.job_id}",
            )
            try:
                try:
                    fed = await self._feed(
                        session, blocks, tenant, reads, pace, came, lead_frames, run, charge, audio, plan.skip
                    )
                except CheckpointMismatch:  # nothing of this run was translated: replay it all instead
                    logger.warning("job %s: its checkpoint's pre-roll differed; it replays its audio", job.job_id)
                    await loop.run_in_executor(reads, checkpoints.disable, self.store.folder(job.job_id))
                    raise Yielded(self._clock()) from None
                await session.finish()
                await collect
                if voices is not None:  # the file's end: every run's segments labelled at once
                    await voices.relabel(self.store, job.job_id, reads, self._revoicing(job, session))
                # read to its end: the dubbed tracks are as long as the audio (``dub.py``)
                await loop.run_in_executor(
                    reads, self.store.write_source_length, job.job_id, plan.start_frame + fed, blocks.rate
                )
                await loop.run_in_executor(reads, checkpoints.remove, self.store.folder(job.job_id))
            except BaseException:
                await _stopped(session, collect)
                raise
        finally:
            session.close()

    async def _voice(self, job: JobStatus, tenant: Tenant, run: JobRun) -> None:
        """A job voicing subtitles: its cues from its resume point, each charged as the seconds it
        covers, within the run's slice (``_Turn``) as a translated job's audio is."""
        loop, spec = asyncio.get_running_loop(), job.spec
        task = checks.resolve_task(self._m.card, self._m.limits, "", [spec.subtitles_language], spec.output)
        run.start(f"job-cues-{job.job_id}", spec.fmt, task)
        files = ThreadPoolExecutor(1, thread_name_prefix=f"job-read-{job.job_id[-6:]}")
        turn = _Turn(self, tenant.name, loop.time() + self.settings.slice_s)

        async def draw(seconds: float) -> None:
            await turn.check()
            await self._draw(tenant, seconds, turn, run)

        def stored(seq: int, code: str) -> None:
            run.counted(code)
            metrics.JOB_SEGMENTS.inc()
            self._signal(job.job_id)
            if self.on_segment is not None:
                self.on_segment(job.job_id, seq)

        voicing = CueVoicing(
            self.store,
            self._m.engine,
            owner=self.owner,
            fit=fit_default(self.settings),
            draw=draw,
            stored=stored,
            files=files,
        )
        try:
            await voicing.run(job)
        finally:
            files.shutdown(wait=False)

    def _revoicing(self, job: JobStatus, session: StreamSession) -> Revoicing | None:
        """A voice per speaker's re-voicing (``revoice.py``): each segment's units spoken again in
        its label's voice through the engine, as the job's session (its background class)."""
        spec = job.spec
        if spec.speaker_voices is None:
            return None
        output = dataclasses.replace(spec.output, word_timings=False)  # the words keep their timings

        async def speak(units: tuple[SpokenUnits, ...]) -> dict[str, np.ndarray]:
            languages = tuple(u.language for u in units)
            item = inputs.respeak_input(languages, tuple((u.language, u.rate) for u in units), units, output)
            try:
                got = await self._m.engine.submit(session.session_id, item)
            except Overloaded as e:  # the engine's queue is full: the job comes back for its re-voicing
                raise Yielded(self._clock() + (e.retry_after_ms or 1000) / 1000) from None
            made = {} if got.output is None else {r.language: r.waveform for r in got.output.renditions}
            if set(made) != set(languages):  # the job fails rather than say a voice its speech is not in
                raise ServiceError(f"re-voicing a segment failed: {got.error.message if got.error else 'no speech'}")
            return made

        return Revoicing(
            spec.speaker_id,
            dict(spec.speaker_voices),
            self._m.card.num_speakers,
            speak,
            lambda wave: speech_out(wave, output)[0],
        )

    async def _translate_channels(
        self,
        job: JobStatus,
        tenant: Tenant,
        run: JobRun,
        task: TranslationTask,
        point: ResumePoint,
        blocks: MediaBlocks,
        reads: ThreadPoolExecutor,
    ) -> None:
        """A job of separate channels (``JobSpec.separate_channels``): a session per channel, each
        fed its channel at 16 kHz as a job of that channel alone would be, their results one job's
        in the order their speech began (``session.calls.channels``: the live streams' own), each
        labelled with its channel. A resumed run hears each channel again from the audio's start,
        only listened to up to that channel's last stored segment (no checkpoints: each channel's
        VAD would need its own; the lead-in has no engine work)."""
        spec, loop = job.spec, asyncio.get_running_loop()
        if blocks.channels != 2:  # the probe checked it; a file changed since is refused the same way
            raise InvalidInput(f"channel_mode separate needs audio of 2 channels; the upload has {blocks.channels}")
        leads = await self._channel_leads(job.job_id, point, blocks.channels)
        lead_frames = min(leads) * blocks.rate // 1000
        charge = await self._charge(job, lead_frames / blocks.rate, blocks.channels, reads)
        vad = spec.vad_config(self._m.vad_defaults)
        sessions: list[StreamSession] = []
        try:
            for lead_ms in leads:
                sessions.append(
                    await self._m.open_job(
                        AudioFormat(AudioEncoding.FLOAT32, MODEL_SAMPLE_RATE, 1), task, vad, tenant, lead_in_ms=lead_ms
                    )
                )
        except BaseException as e:
            for opened in sessions:
                opened.close()
            if isinstance(e, Overloaded):  # the ear's streams are full: its tenant's or this process's
                raise Yielded(self._clock() + (e.retry_after_ms or 1000) / 1000) from None
            raise
        streams = ChannelStreams(sessions)
        try:
            run.start(streams.session_id, spec.fmt, task)
            await self._charging(job, run, streams.session_id, charge, reads)
            for each in sessions:
                self._m.engine.background(each.session_id)
            VAD_BACKGROUND.set(True)
            pace = EnginePace(self.settings.engine_share)
            came = asyncio.Event()
            collect = asyncio.create_task(
                self._collect(job, streams, point, 0, run, pace, came), name=f"job-results-{job.job_id}"
            )
            try:
                audio = ChannelAudio(blocks.rate, blocks.channels)
                feeds = Channels(sessions)
                fed = await self._feed(
                    feeds, blocks, tenant, reads, pace, came, lead_frames, run, charge, audio, 0, len(sessions)
                )
                await streams.finish()
                await collect
                await loop.run_in_executor(reads, self.store.write_source_length, job.job_id, fed, blocks.rate)
            except BaseException:
                await _stopped(streams, collect)
                raise
        finally:
            streams.close()

    async def _channel_leads(self, job_id: str, point: ResumePoint, channels: int) -> list[int]:
        """Each channel's lead-in (ms): the end of its last stored segment (0: none), read from the
        stored segments (those are the first of each channel's, in the order they began)."""
        leads = [0] * channels
        after = -1
        while after + 1 < point.segments and (page := await self.store.segments(job_id, after, PAGE)):
            after += len(page)
            for seg in page:
                channel = int(seg.get("channel", 0))
                if 1 <= channel <= channels:
                    leads[channel - 1] = max(leads[channel - 1], int(seg["end_ms"]))
        return leads

    async def _feed(
        self,
        session: Sink,
        blocks: MediaBlocks,
        tenant: Tenant,
        reads: ThreadPoolExecutor,
        pace: EnginePace,
        came: asyncio.Event,
        lead_frames: int = 0,
        run: JobRun | None = None,
        charge: RunCharge | None = None,
        audio: JobAudio | ChannelAudio | None = None,
        skip_frames: int = 0,
        channels: int = 1,
    ) -> int:
        """Feed the job's audio to its session (through ``audio``: at 16 kHz); the frames fed.
        ``skip_frames``: a resume's pre-roll, only resampled (``JobAudio`` throws its output away).
        ``lead_frames``: the lead-in's, translated before the job was resumed: heard again a block
        at a time, not charged again, with none of the waits that pace the rest (the lead-in has no
        engine work), and before the slice's clock starts (a long lead-in never eats the slice it
        was heard for). ``charge``: what of the rest is charged (``billing.py``). ``channels``: the
        parties heard apart (a job of separate channels): each second is charged once for each, as
        ``Translate``'s separate channels are."""
        loop = asyncio.get_running_loop()
        audio = audio or JobAudio(blocks.rate)
        charge = charge or RunCharge(0.0)
        step = max(1, round(FEED_S * blocks.rate))
        turn: _Turn | None = None
        fed = 0
        while True:
            samples = await blocks.read(BLOCK_S * blocks.rate)
            if not len(samples):
                await give(session, audio, reads, np.zeros(0, np.float32), last=True)
                return fed
            heard = min(skip_frames, len(samples))
            if heard:
                await give(session, audio, reads, samples[:heard])
                skip_frames -= heard
            heard_again = min(lead_frames, len(samples) - heard)
            if heard_again:
                await give(session, audio, reads, samples[heard : heard + heard_again])
                lead_frames -= heard_again
                fed += heard_again
            heard += heard_again
            if turn is None and not lead_frames and not skip_frames:
                turn = _Turn(self, tenant.name, loop.time() + self.settings.slice_s)
            for at in range(heard, len(samples), step):
                assert turn is not None
                # the engine's background class keeps the job's segments behind live ones; the job
                # feeds its next second only once its segments so far are back (one or so in
                # flight: a deep background queue would hold features and the floor's seats) and
                # keeps to its share of the engine's time (``pace.py``), which also bounds the
                # CPU its VAD, resampling and features take beside live streams
                while session.unread:
                    came.clear()
                    await came.wait()
                await turn.check()
                piece = samples[at : at + step]
                seconds = charge.charged(len(piece), blocks.rate)  # less what an earlier run was charged
                if seconds > 0:
                    await self._draw(tenant, channels * seconds, turn, run)
                pause = pace.take()
                if pause and self._streams_beside():
                    await asyncio.sleep(pause)
                # and feeds in the live speech's pauses: not while a live stream of this process
                # holds speech or waits for a result, at most ``jobs.quiet_wait_s`` a second
                if self.settings.quiet_wait_s > 0:
                    await self._m.wait_live_quiet(self.settings.quiet_wait_s)
                await give(session, audio, reads, piece)
                fed += len(piece)
            del samples

    async def _charge(self, job: JobStatus, start_s: float, channels: int, reads: ThreadPoolExecutor) -> RunCharge:
        """What a run whose charge starts at ``start_s`` of the job's audio charges, after the job's
        last run (``billing.py``)."""
        folder = self.store.folder(job.job_id)
        last = await asyncio.get_running_loop().run_in_executor(reads, billing.last_run, folder)
        return await RunCharge.of(self._m.events, last, start_s, channels)

    async def _charging(
        self, job: JobStatus, run: JobRun, session_id: str, charge: RunCharge, reads: ThreadPoolExecutor
    ) -> None:
        """The run's session is open: it is the job's last run, and what it owes is charged."""
        folder = self.store.folder(job.job_id)
        await asyncio.get_running_loop().run_in_executor(reads, billing.write_run, folder, session_id, charge.from_s)
        charge.start(run)

    async def _draw(self, tenant: Tenant, seconds: float, turn: _Turn, run: JobRun | None = None) -> None:
        """Charge ``seconds`` of audio to the tenant's budget once it holds them above its reserve
        (``jobs.budget_reserve`` of a minute's worth): wait in place for it, or give the worker
        back when another tenant's job waits for one; counted in the run's usage (``run``)."""
        per_minute = tenant.caps.audio_seconds_per_minute
        if per_minute is not None:
            reserve = self.settings.budget_reserve * per_minute
            while True:
                try:
                    level = await self._m.counters.spend(f"{tenant.name}/audio", 0.0, per_minute)
                except ServiceError as e:  # the shared budget cannot be read (the cluster store)
                    raise Yielded(self._clock() + (e.retry_after_ms or 1000) / 1000) from None
                short = reserve + seconds - level
                if short <= 0:
                    break
                wait_s = short / (per_minute / 60.0)
                if await turn.others_wait():
                    raise Yielded(self._clock() + wait_s)
                await asyncio.sleep(min(wait_s, BUDGET_WAIT_S))
        self._m.charge_audio(tenant, seconds)
        if run is not None:
            run.audio(seconds)

    def _plan(self, job: JobStatus, point: ResumePoint, rate: int) -> _Plan:
        """Where a run starts (blocking: on its own thread, which reads the checkpoints' file), for
        audio at ``rate``: from the job's last checkpoint before its resume point within
        ``jobs.resume_replay_s``, a pre-roll before it; else (none, or the job has none) a lead-in
        of ``jobs.resume_replay_s`` on ``LEAD_GRID_MS`` (all its audio by default); a job not
        resumed, from its start."""
        spec, folder = job.spec, self.store.folder(job.job_id)
        grid = None if spec.ear.noise_suppression else checkpoints.grid(rate)
        settings = checkpoints.settings_print(spec.vad_config(self._m.vad_defaults))
        replay_ms = round(self.settings.resume_replay_s * 1000)
        found = None
        if grid is not None and point.segments and not checkpoints.disabled(folder):
            earliest = max(0, point.end_ms - replay_ms) * PER_MS
            found = checkpoints.latest_before(folder, point.end_ms * PER_MS, rate, settings, earliest)
        if found is not None:
            start_frame, skip = found.frame, min(found.frame, grid.preroll if grid else 0)
            start_ms = found.snapshot.sample // PER_MS
        else:
            start_ms = point.end_ms - resume_lead_ms(point.end_ms, replay_ms)
            start_frame, skip = start_ms * rate // 1000, 0
        # checkpoints are taken only by a run whose VAD is the uninterrupted run's from its start
        exact = found is not None or start_frame == 0
        return _Plan(
            rate, grid if exact else None, found, start_frame, skip, start_ms, point.end_ms - start_ms, settings
        )

    def _audio(self, job: JobStatus, plan: _Plan, session: StreamSession) -> JobAudio:
        """The run's resampling, and its checkpoints taken as it goes (on its grid, when it has one)."""
        grid, found = plan.grid, plan.checkpoint
        drop = 0 if plan.grid is None else plan.grid.to16(plan.skip)
        if grid is None:
            return JobAudio(plan.rate, drop=drop)
        start16 = plan.start16
        tails = Tails(start16, grid.to16(grid.every))
        audio = JobAudio(grid.rate, drop=drop, tail=None if found is None else found.tail, tails=tails)
        folder = self.store.folder(job.job_id)

        def taken(snap: VadSnapshot) -> None:
            moved = snap.moved(-start16)
            tail = tails.take(moved.sample)
            if tail is not None:
                frame = moved.sample * grid.rate // MODEL_SAMPLE_RATE
                checkpoints.append(folder, Checkpoint(frame, moved, tail), grid.rate, plan.settings)

        first = grid.after(plan.start_frame)
        session.take_snapshots(grid.to16(first - plan.start_frame), grid.to16(grid.every), taken)
        return audio

    def _streams_beside(self) -> bool:
        """Whether other sessions than this process's running jobs are open on the node (live
        streams, clips, another worker's jobs): with none, a job takes the whole engine."""
        return self._m.engine.stats().sessions > self._running()

    async def _collect(
        self,
        job: JobStatus,
        session: StreamSession | ChannelStreams,
        point: ResumePoint,
        start_ms: int,
        run: JobRun,
        pace: EnginePace,
        came: asyncio.Event,
        voices: JobVoices | None = None,
    ) -> None:
        """Store each finished segment as it comes, numbered after the last one stored, on the
        job's timeline (the session's audio starts at ``start_ms``), its speech at the track's rate
        (and its voice, with speaker labels: ``voices.py``)."""
        job_id, rate = job.job_id, job.spec.track_rate
        seq = point.segments
        first: int | None = None
        # (a job of separate channels: its feed also wakes when a result is read that waits for an
        # earlier one in order, ``ChannelStreams.events``)
        events = session.events(came.set) if isinstance(session, ChannelStreams) else session.events()
        async for ev in events:
            came.set()
            if not isinstance(ev, SegmentResult):
                continue
            pace.spent(ev.timing.model_ms / 1000)
            if first is None:
                first = ev.segment_id
            segment_id = point.last_segment_id + 1 + ev.segment_id - first if point.segments else ev.segment_id
            result = segment_json(ev, segment_id=segment_id, shift_ms=start_ms)
            if job.spec.speaker_voices is not None:  # spoken in the job's voice until re-voiced
                result["voice"] = job.spec.speaker_id
            speech = {
                t.target_language: _at_track_rate(t.audio, t.sample_rate_hz, rate)
                for t in ev.translations
                if t.audio is not None
            }
            await self.store.add_segment(job_id, seq, result, speech, rate, owner=self.owner)
            if voices is not None:
                voices.stored(ev.segment_id, seq, ev.spoken)
            run.result(ev)
            metrics.JOB_SEGMENTS.inc()
            self._signal(job_id)
            if self.on_segment is not None:
                self.on_segment(job_id, seq)
            seq += 1


class _Turn:
    """A running job's turn at its worker: past its slice (``jobs.slice_s``), it ends as soon as
    another tenant's job waits for a worker (asked of the store every ``ASK_EVERY_S`` at most)."""

    def __init__(self, run: JobTranslation, tenant: str, slice_ends: float) -> None:
        self._run = run
        self._tenant = tenant
        self._slice_ends = slice_ends
        self._asked = -ASK_EVERY_S
        self._answer = False

    async def others_wait(self) -> bool:
        loop = asyncio.get_running_loop()
        if loop.time() - self._asked >= ASK_EVERY_S:
            self._asked = loop.time()
            try:
                self._answer = await self._run.store.others_waiting(self._tenant, self._run._clock())
            except ServiceError:  # the store did not answer: the job goes on
                self._answer = False
        return self._answer

    async def check(self) -> None:
        """``Yielded`` when the slice is over and another tenant's job waits."""
        if asyncio.get_running_loop().time() >= self._slice_ends and await self.others_wait():
            raise Yielded()


def resume_lead_ms(end_ms: int, most_ms: int = MAX_LEAD_IN_MS) -> int:
    """The lead-in of a job resumed at ``end_ms``: as much of ``most_ms`` (``jobs.resume_replay_s``;
    the streams' longest by default) as the audio before it holds, starting on ``LEAD_GRID_MS``."""
    first = max(0, end_ms - most_ms)
    return end_ms - -(-first // LEAD_GRID_MS) * LEAD_GRID_MS


@dataclass(frozen=True)
class _Plan:
    """Where a run starts: its audio's rate (``rate``; read from ``first_frame``), its checkpoints'
    grid (None: it takes none), the checkpoint it starts from (None: a fresh VAD), the input frame
    its session starts at (``start_frame``, ``start_ms``) after a pre-roll of ``skip`` frames, the
    lead-in to the resume point (``lead_ms``) and the VAD settings' fingerprint."""

    rate: int
    grid: Grid | None
    checkpoint: Checkpoint | None
    start_frame: int
    skip: int
    start_ms: int
    lead_ms: int
    settings: int

    @property
    def first_frame(self) -> int:
        """The first input frame the run reads (its pre-roll's)."""
        return self.start_frame - self.skip

    @property
    def start16(self) -> int:
        """Where the session starts on the job's 16 kHz timeline."""
        return self.start_ms * PER_MS


async def _stopped(session: StreamSession | ChannelStreams, collect: asyncio.Task[None]) -> None:
    """A run that failed or was cancelled: its session aborted, its results' task ended."""
    session.abort()
    collect.cancel()
    await asyncio.gather(collect, return_exceptions=True)


def _at_track_rate(audio: np.ndarray, rate: int, track_rate: int) -> np.ndarray:
    """The speech is at the rate the job asked for (``speech_sample_rate_hz``), the track's."""
    if rate != track_rate:
        raise ValueError(f"speech at {rate} Hz, the track is at {track_rate}")
    return audio
