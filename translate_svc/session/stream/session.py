"""One stream's lifecycle: audio fed in, through its collaborators, to events out; then finish or abort.

``StreamSession`` joins the timeline (decoding), the VAD bridge, the segmenter, the job tracker
(engine jobs, ordered output) and captions. ``Translate`` (a whole clip) runs through the very same
session: offline and live segmentation are the same code.

Flow control (fair share): feeding waits while the session has its fair share of segments
submitted but unread, ``limits.max_unread_results`` other events unread (captions, commits, update
answers, notices; not speech events, two to a segment), or the VAD is a second behind; the door then stops reading that
client's requests and HTTP/2 flow control (a WebSocket: TCP's) slows the client on its own stream.
An update, which makes an event without audio, waits for the same room after its answer
(``answer``), so a client that sends updates and never reads is not answered without bound. Event
loop only; large chunks are decoded and resampled on a worker thread that the session awaits (its
``SessionWork``: a pool of the process's shared fairly between tenants, ``work.py``), and
the ear's work (noise suppression, speaker embeddings) runs on the ear's own pools (``ear.py``,
security finding J1): a stream's chunks there in order, each awaited, so a pool that is behind holds the
stream's reading like any other back-pressure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Callable

import numpy as np

from translate_svc.audio.denoise import Denoiser
from translate_svc.engine.client import EngineClient
from translate_svc.errors import InvalidInput, LimitReached, ServiceError
from translate_svc.model_api.turns import TurnRule
from translate_svc.observability import metrics
from translate_svc.session.events import (
    Draining,
    EagerEndOfTurn,
    Resume,
    SpeechEvent,
    StreamEnded,
    StreamEvent,
    TurnResumed,
)
from translate_svc.session.results import PER_MS
from translate_svc.session.stream.captions import Captions
from translate_svc.session.stream.ear import EarLane, EarPools
from translate_svc.session.stream.hooks import NO_HOOKS, StreamHooks, tee
from translate_svc.session.stream.intake import AudioIntake
from translate_svc.session.stream.segments import SegmentTracker, segment_of
from translate_svc.session.stream.simultaneous import Simultaneous, segment_cap
from translate_svc.session.stream.speakers import SpeakerLabels
from translate_svc.session.stream.timeline import Timeline
from translate_svc.session.stream.vad_bridge import VAD_BACKLOG, VadBridge
from translate_svc.session.tenants.counters import Held
from translate_svc.session.tenants.recording import Recorder
from translate_svc.session.work import SessionWork
from translate_svc.settings import LimitsSettings
from translate_svc.types import AudioFormat, TranslationTask
from translate_svc.vad.segmenter import (
    EagerEnd,
    Segmenter,
    SegmenterConfig,
    SegmenterEvent,
    SegmentReady,
    SpeechDiscarded,
    SpeechEnded,
    SpeechResumed,
    SpeechStarted,
    TurnQuestion,
)
from translate_svc.vad.silero import SileroState
from translate_svc.vad.snapshot import VadSnapshot
from translate_svc.vad.worker import VadWorker

logger = logging.getLogger(__name__)


def _failure_of(jobs: SegmentTracker) -> Callable[[], BaseException | None]:
    """The stream's failure, for its intake: a closure over the job tracker alone (one over the
    session would hold it in a cycle)."""
    return lambda: jobs.failure


def _received_ms(timeline: Timeline) -> Callable[[], int]:
    """The audio received so far, for a collaborator: a closure over the timeline alone (one over
    the session would hold it in a cycle)."""
    return lambda: timeline.audio_received_ms


class StreamSession:
    """Call ``feed``/``flush``/``finish`` from the request side and iterate ``events`` on the
    response side (both on the event loop); ``close`` when the call is over. ``hooks``: its
    driver's callbacks; ``on_close``: its owner's (the manager releases the stream's slot)."""

    def __init__(
        self,
        engine: EngineClient,
        vad: VadWorker,
        limits: LimitsSettings,
        fmt: AudioFormat,
        task: TranslationTask,
        vad_settings: SegmenterConfig,
        *,
        fair_share: Callable[[], int],
        strict_queue: bool = False,
        interim_interval_ms: int = 0,
        resume: Resume | None = None,
        ear: EarPools,
        work: SessionWork,
        hooks: StreamHooks = NO_HOOKS,
        on_close: Callable[[StreamSession], None] | None = None,
        recorder: Callable[[str, str], Recorder | None] | None = None,
        vad_start: VadSnapshot | None = None,
        channel: int | None = None,
        turn_events: bool = False,
    ) -> None:
        """``vad_start``: the VAD's state at this stream's first sample (a snapshot moved onto it,
        its ``sample`` 0; only with a resume's lead-in): a job resumed from a checkpoint.
        ``channel``: of raw PCM, the one channel this session hears (0-based; None: their mix).
        ``turn_events``: its door renders eager ends of turn and resumed turns (else unsaid)."""
        self._turn_events = turn_events
        self.session_id = uuid.uuid4().hex
        #: names the stream across calls; a resumed call keeps its token
        self.resume_token = resume.token if resume is not None else self.session_id
        self.resume = resume
        self.fmt = fmt
        self.task = task
        if task.simultaneous is not None:  # its steps' cost bounded by its segments' length
            vad_settings = segment_cap(vad_settings, limits.simultaneous_max_segment_ms)
        #: what the stream gets otherwise than it asked, in words (``StreamStarted.notices``)
        self.notices: tuple[str, ...] = ()
        if vad_settings.eagerness and ear.turns is None:  # the silence rule, said
            vad_settings = dataclasses.replace(vad_settings, eagerness="", eager_threshold=0.0)
            self.notices = (
                "segments end on silence (vad.min_silence_ms), not on a semantic end of turn (vad.eagerness): "
                f"{ear.turns_missing}",
            )
        #: the end-of-turn model's worker, where the stream asks for a semantic end of turn
        self._turns = ear.turns if vad_settings.eagerness else None
        #: set while the segmenter waits for no answer of the end-of-turn model (``finish`` waits for it)
        self._no_question = asyncio.Event()
        self._no_question.set()
        self.vad_settings = vad_settings
        self.interim_interval_ms = interim_interval_ms
        self._limits = limits
        self._fair_share = fair_share
        self.timeline = Timeline(fmt, limits, resume.offset_ms if resume is not None else 0, channel=channel)
        lead_in_ms = resume.lead_in_ms if resume is not None else 0
        if vad_start is not None and vad_start.sample != 0:
            raise ValueError("a stream's VAD starts from a snapshot taken at its first sample")
        self._segmenter = Segmenter(
            vad_settings,
            lead_in=lead_in_ms * PER_MS,
            hysteresis=(False, None) if vad_start is None else (vad_start.triggered, vad_start.temp_end),
        )
        #: on the stream's timeline, where this call's translation starts (after a resume's lead-in)
        self.translates_from_ms = self.timeline.offset_ms + lead_in_ms
        silero = None if vad_start is None else SileroState(vad_start.rnn.copy(), vad_start.context.copy())
        self._vad = VadBridge(vad, self._on_scored, self._update_room, silero)
        #: the session's recording (its tenant records: ``tenants/recording.py``), fed here, the one place
        #: every door's input audio and results pass; closed with the session (opened last but
        #: for what cannot fail: a session that fails to open leaves no recording open)
        self._recorder = recorder(self.session_id, self.resume_token) if recorder is not None else None
        self.jobs = SegmentTracker(
            engine,
            self.session_id,
            task,
            first_id=resume.next_segment_id if resume is not None else 0,
            strict_queue=strict_queue,
            on_change=self._update_room,
            received_ms=_received_ms(self.timeline),
            on_output=tee(hooks.on_output, self._recorder),
            encode=work.encode,
            turns=TurnRule(
                limits.conversation_short_turn_s,
                limits.conversation_switch_margin,
                limits.conversation_short_turn_margin,
            ),
        )
        self.captions = (
            Captions(engine, self.session_id, task, self.jobs, interim_interval_ms, self.timeline.offset_ms)
            if interim_interval_ms and task.simultaneous is None
            else None
        )  # in simultaneous mode the steps give the captions, with their settled words
        self.simultaneous = (
            Simultaneous(
                engine,
                self.session_id,
                task,
                self.jobs,
                _received_ms(self.timeline),
                self.timeline.offset_ms if interim_interval_ms else None,
                encode=work.encode,
            )
            if task.simultaneous is not None
            else None
        )
        #: noise suppression before the VAD (``EarOptions``: fixed when the stream opens), on the
        #: ear's pool (``intake.py``; a clip's blocks on its own executor, ``feed_samples``); its RNNoise
        #: state is freed with it (not at ``close``: a worker thread may still use it)
        self._denoiser = Denoiser() if task.ear.noise_suppression else None
        if task.ear.speakers:
            self.jobs.speakers = SpeakerLabels(task.ear.speakers, self.jobs.emit_ready, ear.speakers)
        self._room = asyncio.Event()  # set while under the fair share and the VAD backlog
        self._room.set()
        self._held_unread = False  # held now by its client's unread events (not results)
        self._told_held = False  # said so in the log (once a stream)
        self._pos16k = 0  # 16 kHz samples given to the segmenter so far
        self._aborted = False
        self._finished = False
        self._hooks = hooks
        self._on_close = on_close  # called once, by ``close``
        self._log = {"session_id": self.session_id}
        #: the audio in (``intake.py``): a large message or a clip's block is decoded on
        #: ``work.decode`` (a live stream: the process's pool, as its tenant's call; a clip's or a
        #: job's: the unary calls' pool), never the loop's default pool
        self.intake = AudioIntake(
            fmt,
            limits,
            self.timeline,
            self._vad,
            denoiser=self._denoiser,
            lane=EarLane(ear.denoise) if self._denoiser is not None else None,
            decode=work.decode,
            room=self._room,
            failure=_failure_of(self.jobs),
        )
        self.intake.recorder = self._recorder
        self.reorder = self.intake.reorder
        #: the admission counters this stream holds (released by its manager when it closes), and
        #: those of its ear (``ear.py``: a live stream with noise suppression or speaker labels)
        self.held: Held | None = None
        self.ear_held: Held | None = None
        #: called when the stream stops ``speaking`` (its manager sets it for a live stream: a
        #: background job waits for the live streams' quiet, ``SessionManager.wait_live_quiet``)
        self.on_quiet: Callable[[], None] | None = None
        self._speaking = False  # as last checked (``_check_quiet``)
        self.jobs.on_emitted = self._check_quiet

    @property
    def audio_received_ms(self) -> int:
        return self.timeline.audio_received_ms

    @property
    def heard_ms(self) -> int:
        """The audio it was given to hear, as its tenant is charged for it: what it received."""
        return self.timeline.audio_received_ms

    @property
    def unread(self) -> int:
        return self.jobs.unread

    @property
    def speaking(self) -> bool:
        """Holding speech (the segmenter inside a region, or closing one) or waiting for a segment's
        result (in the engine, or being encoded): what a background job waits out. Audio not yet
        scored by the VAD does not count (a live stream always has some)."""
        return self._segmenter.holds_speech or self.jobs.in_flight > 0

    def _check_quiet(self) -> None:
        """After the segmenter moved or results went out: tell ``on_quiet`` when speaking ended."""
        speaking = self.speaking
        if self._speaking and not speaking and self.on_quiet is not None:
            self.on_quiet()
        self._speaking = speaking

    @property
    def interims_skipped(self) -> int:
        return self.captions.skipped if self.captions is not None else 0

    @property
    def steps_skipped(self) -> int:
        """Simultaneous steps skipped because the engine or the reader was behind."""
        return self.simultaneous.skipped if self.simultaneous is not None else 0

    # -- requests side ----------------------------------------------------------------------

    async def feed(self, data: bytes, timestamp: int | None = None) -> None:
        """One audio message (``AudioIntake.feed``); waits while the reader is behind."""
        await self.intake.feed(data, timestamp)

    async def feed_packet(self, data: bytes, timestamp: int) -> None:
        """One timestamped packet, through the reorder window (``AudioIntake.feed_packet``)."""
        await self.intake.feed_packet(data, timestamp)

    async def feed_samples(self, samples: np.ndarray) -> None:
        """A whole clip's samples at the input rate (``AudioIntake.feed_samples``)."""
        await self.intake.feed_samples(samples)

    def take_snapshots(self, first: int, every: int, on_snapshot: Callable[[VadSnapshot], None]) -> None:
        """The VAD's state at 16 kHz sample ``first`` of this stream and every ``every`` after it
        (whole windows), each once its windows are scored and segmented, for ``on_snapshot`` (on
        the loop, in order): where a job resumed later starts its VAD (``jobs/checkpoints.py``)."""

        def taken(at: int, state: SileroState) -> None:
            # (while the segmenter waits for an end-of-turn answer it is behind ``at``: that one is
            # not taken, and a resume starts from the one before)
            if self.jobs.failure is None and self._segmenter.asking is None:
                triggered, temp_end = self._segmenter.hysteresis()
                on_snapshot(VadSnapshot(at, state.rnn, state.context, triggered, temp_end))

        self._vad.snapshots(first, every, taken)

    def retarget(self, task: TranslationTask) -> int:
        """Segments that close from now on (the open one included) use ``task`` (checked:
        ``task/change.py``); segments already closed keep theirs. One encoder pass
        still serves every target of a segment. Returns the first segment id that uses it."""
        self.task = task
        self.jobs.retarget(task)
        if self.captions is not None:
            self.captions.retarget(task)
        if self.simultaneous is not None:
            self.simultaneous.retarget(task)
        return self.jobs.next_id

    async def answer(self, ev: StreamEvent) -> None:
        """An event for the reader now, ahead of results still to come (an update's answer); then
        wait, as a feed does, while the reader is behind: the next request is read only once it
        has room, so answers a client does not read stay a few."""
        self.jobs.put(ev)
        if not self._room.is_set():
            await self._room.wait()
        self._raise_failure()

    async def flush(self) -> None:
        await self._vad.scored_all()
        self._handle(self._segmenter.flush())

    @property
    def may_hold_speech(self) -> bool:
        """Speech may be open: the segmenter holds some, or audio is still on its way to the VAD."""
        return self._segmenter.holds_speech or self._vad.unscored > 0 or self.reorder.holding

    async def close_stalled(self) -> bool:
        """The sender stopped in the middle of speech (mute, push-to-talk, a paused track): close
        the open speech into a segment as a pause would (FLUSH), after releasing the packets the
        reorder window held for one that is not coming. Later audio carries on the timeline."""
        await self.intake.release_held()
        await self._vad.scored_all()
        await self._answered()  # the segmenter has taken every window scored
        if self._finished or self.jobs.failure is not None or not self._segmenter.holds_speech:
            return False
        self._handle(self._segmenter.flush())
        return True

    async def finish(self, limit: ServiceError | None = None) -> None:
        """Half-close (or a limit reached, or bad input): close open speech; ``events`` ends after
        the last result and StreamEnded (then raises ``limit`` if given)."""
        try:
            await self.intake.release_held()  # packets held for a missing one: it is not coming
        except InvalidInput as e:  # a held packet that cannot be used ends the stream as it would have
            limit = limit or e
        await self.intake.drain()
        await self._vad.wait_idle()
        await self._answered()
        if self.jobs.failure is not None or self._segmenter.asking is not None:
            return
        last = self._segmenter.finish()
        self._handle(last)
        self._finished = True
        tl, counts = self.timeline, self.reorder.counts
        # Speech the end cut too short to be a segment was not translated: a resumed call (after a
        # drain) starts where it began, so its next server hears all of it, not its tail alone.
        cut = [ev.start_sample // PER_MS + tl.offset_ms for ev in last if isinstance(ev, SpeechDiscarded)]
        resume_ms = max(self.translates_from_ms, min([tl.audio_received_ms, *cut]))
        self.jobs.finish(
            lambda total: StreamEnded(
                total,
                tl.audio_received_ms,
                limit,
                tl.audio_filled_ms,
                resume_offset_ms=resume_ms,
                packets_reordered=counts.reordered,
                packets_duplicate=counts.duplicate,
                packets_late=counts.late,
                audio_concealed_ms=tl.audio_concealed_ms,
            )
        )

    async def _answered(self) -> None:
        """Until the segmenter waits for no end-of-turn answer (or the session failed or was
        aborted): the windows that waited for one are then taken too."""
        while self._segmenter.asking is not None and self.jobs.failure is None and not self._aborted:
            self._no_question.clear()
            await self._no_question.wait()  # an answer may process windows that ask again

    def abort(self) -> None:
        """Client gone: drop queued work; nothing more is computed for this session."""
        self._aborted = True
        self._no_question.set()  # a finish waiting for an answer ends
        self.intake.aborted = True
        self._vad.close()
        self._room.set()  # a feeder waiting for room runs into the abort (_raise_failure)
        self.jobs.abort()
        if self.captions is not None:
            self.captions.drop()
        if self.simultaneous is not None:
            self.simultaneous.drop()

    def fail(self, error: ServiceError) -> None:
        """End the stream with ``error`` (bad input in a later message): ``events`` raises it."""
        self.abort()
        self.jobs.fail(error)

    def begin_drain(self, notice: Draining, deadline: float) -> None:
        """Tell the client the server is going away; the driver ends the stream at ``deadline``."""
        self.jobs.put(notice)
        self._hooks.on_drain(deadline)

    def stop(self, error: LimitReached) -> None:
        """End the stream from outside (the engine died): through its driver, which closes the
        open speech and accounts for it first; without one, at once (``fail``)."""
        if self._hooks.on_stop is not None:
            self._hooks.on_stop(error)
        else:
            self.fail(error)

    def close(self) -> None:
        """The call is over (any way): drop queued work, release the stream's admission slot, and
        let go of the driver's hooks (the VAD bridge and the job tracker let go of the session's
        callbacks, and of the output hook, in ``abort``): no cycle is left, so the stream's state,
        its audio among it, is freed as soon as its call lets go of it, not at the next full
        collection."""
        self.abort()
        self._hooks = NO_HOOKS
        self.on_quiet = None
        recorder, self._recorder = self._recorder, None
        self.intake.recorder = None
        if recorder is not None:
            recorder.close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close(self)

    # -- responses side ---------------------------------------------------------------------

    def events(self) -> AsyncIterator[StreamEvent]:
        return self.jobs.events()

    # -- internals --------------------------------------------------------------------------

    def _raise_failure(self) -> None:
        if self.jobs.failure is not None:
            raise self.jobs.failure
        if self._aborted:
            raise asyncio.CancelledError("the session was aborted")

    def _on_scored(self, samples16k: np.ndarray, probs: np.ndarray | None, error: BaseException | None) -> None:
        """On the loop, in submission order: the VAD's result for ``samples16k``."""
        if self.jobs.failure is not None:
            return
        if error is not None:
            logger.error("the VAD failed: %r", error, extra=self._log)
            self.fail(ServiceError("voice activity detection failed; the server log has the details"))
            return
        assert probs is not None
        self._pos16k += len(samples16k)
        self._segment(functools.partial(self._segmenter.push, samples16k, probs))

    def _on_answer(self, question: TurnQuestion, complete: float | None, error: BaseException | None) -> None:
        """On the loop: the end-of-turn model's answer to ``question`` (an error: "incomplete", so
        the silence rule's bound closes the turn, the fallback)."""
        if error is not None:
            logger.warning("the end-of-turn model failed (%r): the pause waits for vad.eagerness's bound", error)
        if self.jobs.failure is None and not self._finished:
            self._segment(functools.partial(self._segmenter.answer, question, 0.0 if complete is None else complete))
        if self._segmenter.asking is None:
            self._no_question.set()

    def _segment(self, step: Callable[[], list[SegmenterEvent]]) -> None:
        """The segmenter's ``step`` (a push, an answer) and its events; then the open speech's
        captions and simultaneous steps."""
        try:
            self._handle(step())
            if not self._finished and self.jobs.failure is None:
                if self.captions is not None or self.simultaneous is not None:
                    open_speech = self._segmenter.open_speech()
                    if self.captions is not None:
                        self.captions.maybe_start(open_speech)
                    if self.simultaneous is not None:
                        self.simultaneous.maybe_step(open_speech)
        except ServiceError as e:  # e.g. Translate: the engine queue is full
            self.fail(e)
        except Exception as e:
            logger.exception("a session failed on a VAD result", extra=self._log)
            self.fail(ServiceError(f"internal error ({type(e).__name__}); the server log has the details"))

    def _update_room(self) -> None:
        """Feeding may go on while the session is under its fair share of unread segments and under
        ``max_unread_results`` unread captions, commits, answers and notices, and the VAD is less
        than a second behind it (so unscored audio cannot pile up in memory)."""
        jobs = self.jobs
        unread_events = jobs.unread_events >= self._limits.max_unread_results
        if unread_events and not (self._held_unread or self._aborted):
            self._held_by_events()
        self._held_unread = unread_events
        # a share is at least 1: with nothing unread it is not asked for (the engine's shares are
        # read at each VAD result and each message otherwise)
        if self._aborted or (
            not unread_events
            and (not jobs.unread or jobs.unread < self._fair_share())
            and self._vad.backlog < VAD_BACKLOG
        ):
            self._room.set()  # (an aborted or failed session lets its feeder run into the failure)
        else:
            self._room.clear()

    def _held_by_events(self) -> None:
        """Its client left ``max_unread_results`` events unread: counted each time, said once a
        stream (a client that reads nothing, e.g. one sending updates, is held here for good)."""
        metrics.unread_held()
        if not self._told_held:
            self._told_held = True
            logger.info(
                "the stream's client left %d events unread (update answers, captions, commits, notices): its "
                "requests are not read until it reads (limits.max_unread_results)",
                self._limits.max_unread_results,
                extra=self._log,
            )

    def _handle(self, events: list[SegmenterEvent]) -> None:
        offset = self.timeline.offset_ms
        for ev in events:
            if isinstance(ev, SpeechStarted):
                # the next segment's start, as ``segment_of`` rounds it: a held segment's budget ends
                # there (dubbing to the source's clock; ``SegmentTracker.release``)
                self.jobs.release(-(-ev.sample // PER_MS) + offset)
                self.jobs.put(SpeechEvent(True, ev.offset_ms + offset, self.jobs.next_id))
            elif isinstance(ev, SpeechEnded):
                self.jobs.put(SpeechEvent(False, ev.offset_ms + offset, self.jobs.next_id))
            elif isinstance(ev, SegmentReady):
                seg = segment_of(self.jobs.next_id, ev.start_sample, ev.samples, ev.end_sample, offset)
                if self.captions is not None:
                    self.captions.segment_closed(seg.segment_id)  # the final result supersedes it
                if self.jobs.speakers is not None:
                    self.jobs.speakers.segment_closed(seg)  # its voice embedded while it translates
                vad_wait_ms = max(0, self._pos16k - (seg.end_ms - offset) * PER_MS) / PER_MS
                final = self.simultaneous.segment_closed(seg) if self.simultaneous is not None else None
                self.jobs.submit(seg, vad_wait_ms, final)
            elif isinstance(ev, TurnQuestion):
                assert self._turns is not None  # (only a segmenter with an eagerness asks)
                self._no_question.clear()
                self._turns.submit(ev.samples, functools.partial(self._on_answer, ev))
            elif isinstance(ev, EagerEnd):  # translated now, in case the pause closes it (``speculate``)
                seg = segment_of(self.jobs.next_id, ev.start_sample, ev.samples, ev.end_sample, offset)
                if self.simultaneous is None:  # (its final step needs the closed segment)
                    self.jobs.speculate(seg)
                if self._turn_events:
                    self.jobs.put(EagerEndOfTurn(seg.segment_id, seg.start_ms, seg.end_ms))
            elif isinstance(ev, SpeechResumed):
                self.jobs.drop_speculation("resumed")
                if self._turn_events:
                    self.jobs.put(TurnResumed(self.jobs.next_id, ev.offset_ms + offset))
            elif isinstance(ev, SpeechDiscarded):
                logger.debug("discarded %s", ev, extra=self._log)
        self._update_room()
        self.jobs.emit_ready()
        self._check_quiet()
