"""One stream's engine jobs and its ordered output: segments in, events out in segment order.

Each closed segment is submitted to the ``EngineClient``; its result (speech encoded off the loop
when needed) is held until every earlier segment's result is out, then queued for the reader.
Speech events, captions, commits and notices (update answers, the drain notice) share the queue.
Flow control bounds two counts: ``unread`` (segments submitted, their results not yet taken by the
reader) and ``unread_events`` (captions, commits, update answers and notices queued and not yet
taken; speech events come two to a segment, so the first count bounds them): a reader that stops
taking either stops the stream's requests being read (``StreamSession``). The tracker joins the
engine's fair share when it is made and leaves it at ``abort`` (the session's end). Event loop only.

Simultaneous mode's ``Commit``s are ordered with the results (a listener plays the chunks in the
order they come, so speech must come in the stream's order): a commit of segment k goes out after
every result of the segments before k and before k's result, and a segment's commits go out in the
order their engine jobs came back (each takes a slot then, filled once its speech is encoded). So a
commit of the open segment waits while an earlier segment's result is still computed; what is
before it in the stream is out first. No commit of segment k comes after k's result.

Dubbing to the source's clock (``OutputOptions.fit``: clips and jobs, whose whole audio
is at hand) needs each segment's budget, its span and the gap before the next segment: the next
segment's start. So with fitting on a closed segment is held (its id taken, nothing submitted)
until that start is known, then submitted with ``ModelInput.fit`` (``release``): when the next
region of speech is announced (``SpeechStarted``: its padded start is the next segment's start),
when the next segment closes (a cap's cut goes on without an announcement), or when the audio ends
(the last segment's budget runs to it). At most one segment is held; it is submitted before any
later one, and results go out in id order as ever, so nothing is lost and the order holds; a held
segment counts in neither ``unread`` nor ``in_flight`` (a feeder that waits for its results to be
read would otherwise never bring the next segment's start). Two passes over the file (segment
first, translate after) were the other way: they hold every segment, not one
(docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from translate_svc.engine.client import EngineClient
from translate_svc.engine.results import EngineResult
from translate_svc.errors import Overloaded, ServiceError
from translate_svc.model_api.turns import TurnRule
from translate_svc.observability import metrics
from translate_svc.session import results
from translate_svc.session.events import SpeechEvent, StreamEnded, StreamEvent
from translate_svc.session.stream.speakers import SpeakerLabels
from translate_svc.session.task import inputs
from translate_svc.session.work import Offload
from translate_svc.types import MODEL_SAMPLE_RATE, Commit, InterimResult, Segment, SegmentResult, TranslationTask

logger = logging.getLogger(__name__)


class CommitSlot:
    """A place in a segment's commits, taken when its engine job came back (in that order), filled
    once its speech is encoded."""

    __slots__ = ("commits", "filled")

    def __init__(self) -> None:
        self.commits: tuple[Commit, ...] = ()
        self.filled = False


class SegmentTracker:
    def __init__(
        self,
        engine: EngineClient,
        owner: str,
        task: TranslationTask,
        *,
        first_id: int = 0,
        strict_queue: bool = False,
        on_change: Callable[[], None] = lambda: None,
        received_ms: Callable[[], int] = lambda: 0,
        on_output: Callable[[SegmentResult | InterimResult], None] | None = None,
        encode: Offload,
        turns: TurnRule | None = None,
    ) -> None:
        """``encode``: where a result's speech is resampled or Opus-encoded (``work.SessionWork``:
        a pool of its own, never the event loop's default one). ``turns``: how a conversation's
        segment leans on the previous turn's language (``model_api/turns.py``; None: it does not)."""
        self._engine = engine
        self._encode = encode
        self._owner = owner
        self._task = task
        self._strict_queue = strict_queue  # Translate: a full engine queue fails the call
        self._on_change = on_change  # an unread count changed (the session re-checks its room)
        self._received_ms = received_ms  # the stream's audio received (timeline ms): a commit's source_ms
        self._log = {"session_id": owner}
        self._turns = turns
        #: the language of the last result out with one (a conversation's previous turn): a
        #: segment sent later leans on it; one sent while that result is still computed leans on
        #: the turn before (the prior is fixed as the segment goes to the engine)
        self.last_language: str | None = None
        #: with speaker labels, each speaker's last language (as its results went out): a
        #: conversation's segment leans on its own speaker's instead (``_leaned_on``)
        self.speaker_languages: dict[int, str] = {}
        #: segments submitted and not yet done: the engine's future, then the encoding's
        self._pending: dict[int, asyncio.Future[Any]] = {}
        #: results ready, each after its segment's last commits (simultaneous mode; else none)
        self._done: dict[int, tuple[tuple[Commit, ...], SegmentResult]] = {}
        #: simultaneous mode: each segment's commits not out yet, in order
        self._commits: dict[int, collections.deque[CommitSlot]] = {}
        #: a room speaker's publisher (``rooms.seat.SpeakerSeat.output``): every final result and caption
        self._on_output = on_output
        #: with fitting on: the closed segment waiting for the next one's start (``release``)
        self._held: _Held | None = None
        #: an eager end of turn's segment, translated before its pause closed it (``speculate``)
        self._speculation: _Speculation | None = None
        self.next_id = first_id  # the next segment's id (ids continue across a resume)
        self.next_emit = first_id  # the next result to queue for the reader
        self._taken = first_id  # results the reader has taken
        self._out: collections.deque[StreamEvent] = collections.deque()
        self._events_out = 0  # of ``_out``, the events counted in ``unread_events``
        self._wake = asyncio.Event()  # set when _out grows or the stream fails
        #: speaker labels (``EarOptions.speakers``): a result waits for its segment's label
        self.speakers: SpeakerLabels | None = None
        self.failure: ServiceError | None = None
        self._end: Callable[[int], StreamEnded] | None = None  # set by ``finish``
        self.ended = False
        #: called after results went out to the reader (the session re-checks whether it went quiet)
        self.on_emitted: Callable[[], None] | None = None
        engine.join(owner)  # counted in every session's share of the queue from now on

    @property
    def unread(self) -> int:
        """Segments submitted whose result the reader has not taken yet (a held one is not yet)."""
        return self.next_id - self._taken - (self._held is not None)

    @property
    def in_flight(self) -> int:
        """Segments submitted whose result is not out to the reader yet (in the engine, being
        encoded, or waiting for an earlier one)."""
        return self.next_id - self.next_emit - (self._held is not None)

    @property
    def backlog(self) -> int:
        """Events queued for the reader and not yet taken."""
        return len(self._out)

    @property
    def unread_events(self) -> int:
        """Captions, commits, update answers and notices queued for the reader and not yet taken:
        bounded like results (``StreamSession``), since some come without audio (an update's
        answer) and would otherwise queue without bound."""
        return self._events_out

    def put(self, ev: StreamEvent) -> None:
        if self._on_output is not None and isinstance(ev, SegmentResult | InterimResult):
            self._on_output(ev)  # a room's listeners get it as it goes out, in order
        self._out.append(ev)
        self._wake.set()
        if _counted(ev):
            self._events_out += 1
            self._on_change()

    def submit(self, seg: Segment, vad_wait_ms: float, final: results.FinalStep | None = None) -> None:
        """Send a closed segment to the engine (ids are the caller's ``next_id``, then advanced):
        its whole translation, or (simultaneous mode, words committed) its ``final`` step. With
        fitting on, it is held until the next segment's start is known (``release``); a segment
        held before it is sent first, its budget running to this one's start."""
        self.next_id = seg.segment_id + 1
        self.release(seg.start_ms)
        closed_at = time.perf_counter()
        speculated = self._confirmed(seg) if final is None else None
        if speculated is not None:  # an eager end's work, done: its result is this segment's
            self._pending[seg.segment_id] = speculated
            self._on_result(seg, self._task, closed_at, vad_wait_ms, None, None, speculated)
            return
        self.drop_speculation("changed")
        if final is None and self._task.output.fit is not None:
            self._held = _Held(seg, vad_wait_ms, self._task, closed_at)
            return
        self._send(seg, vad_wait_ms, final, self._task, closed_at)

    def release(self, next_start_ms: int) -> None:
        """The next segment starts at ``next_start_ms`` (the stream's timeline; the audio's end for
        the last one): the held segment, if any, goes to the engine, its speech fitted to its span
        and the gap up to there (``ModelInput.fit``). Idempotent: nothing is held after it."""
        held, self._held = self._held, None
        if held is None:
            return
        fit = held.task.output.fit
        assert fit is not None
        budget_ms = max(next_start_ms, held.seg.end_ms) - held.seg.start_ms  # never less than its own span
        self._send(held.seg, held.vad_wait_ms, None, held.task, held.closed_at, budget_ms)

    def _send(
        self,
        seg: Segment,
        vad_wait_ms: float,
        final: results.FinalStep | None,
        task: TranslationTask,
        closed_at: float,
        budget_ms: int | None = None,
        *,
        heard: bool = False,
    ) -> None:
        """``seg`` to the engine; a conversation's short turn, with speaker labels on, once its voice
        is embedded (``heard``: it is; ``_leaned_on``: it leans on its own speaker's language)."""
        speakers, turns = self.speakers, self._turns
        if not heard and final is None and speakers is not None and turns is not None and leans(task):
            voice = speakers.embedding(seg.segment_id)
            if voice is not None and not voice.done() and len(seg.samples) < turns.short_turn_s * MODEL_SAMPLE_RATE:
                self._pending[seg.segment_id] = voice  # dropped with the rest if the stream is aborted
                voice.add_done_callback(
                    functools.partial(self._voice_back, seg, vad_wait_ms, task, closed_at, budget_ms)
                )
                return
        item = (
            final.item
            if final is not None
            else inputs.model_input(
                task,
                seg.samples,
                final=True,
                budget_ms=budget_ms,
                previous=self._leaned_on(seg, task),
                turns=self._turns,
            )
        )
        try:
            fut = self._engine.submit(self._owner, item)
        except ServiceError as e:  # the queue is full, or the engine is gone: the segment says which
            if self._strict_queue:
                raise
            self._done[seg.segment_id] = ((), results.failed(seg, e, closed_at, vad_wait_ms))
            return
        self._pending[seg.segment_id] = fut
        fut.add_done_callback(functools.partial(self._on_result, seg, task, closed_at, vad_wait_ms, final, budget_ms))

    def speculate(self, seg: Segment) -> bool:
        """An eager end of turn: ``seg``, the open segment as its pause would close it, goes to the
        engine now as optional work behind every live final (``submit_droppable(behind_finals)``:
        the scheduler's best-effort class, dropped first), so that if the pause does close it its
        result is ready (``submit`` takes it). Not a clip's (its audio comes faster than spoken: the
        pause's end follows at once), nor with fitting (its budget needs the next segment), nor a
        conversation's turn that waits for its voice (speaker labels). Returns whether it went."""
        self.drop_speculation("changed")
        task = self._task
        if self._strict_queue or task.output.fit is not None or (self.speakers is not None and leans(task)):
            return False
        previous = self._leaned_on(seg, task)
        item = inputs.model_input(task, seg.samples, final=True, previous=previous, turns=self._turns)
        fut = self._engine.submit_droppable(self._owner, item, behind_finals=True)
        if fut is None:
            metrics.eager_end("refused")
            return False
        self._speculation = _Speculation(seg.start_ms, seg.end_ms, task, previous, fut)
        return True

    def drop_speculation(self, outcome: str) -> bool:
        """The eager end's work is void (``outcome``: speech resumed, or its segment closed
        otherwise): dropped if the engine has not started it, its result let go if it has.
        Returns whether there was one."""
        spec, self._speculation = self._speculation, None
        if spec is None:
            return False
        spec.future.cancel()
        metrics.eager_end(outcome)
        return True

    def _confirmed(self, seg: Segment) -> asyncio.Future[EngineResult] | None:
        """The eager end's finished work, if ``seg`` is its segment (the same span, task and
        language leaned on) and its result is in; one not finished is dropped and the segment
        sent as a final (the speculation waits behind every live final: it may not have started)."""
        spec = self._speculation
        if spec is None or (seg.start_ms, seg.end_ms, self._task) != (spec.start_ms, spec.end_ms, spec.task):
            return None
        if spec.previous != self._leaned_on(seg, self._task) or not spec.future.done():
            self.drop_speculation("unfinished")
            return None
        fut = spec.future
        if fut.cancelled() or fut.exception() is not None:  # dropped by the engine, or failed: sent again
            self.drop_speculation("unfinished")
            return None
        self._speculation = None
        metrics.eager_end("kept")
        return fut

    def _voice_back(
        self,
        seg: Segment,
        vad_wait_ms: float,
        task: TranslationTask,
        closed_at: float,
        budget_ms: int | None,
        voice: asyncio.Future[Any],
    ) -> None:
        if self._pending.pop(seg.segment_id, None) is None or voice.cancelled():
            return  # aborted
        try:
            self._send(seg, vad_wait_ms, None, task, closed_at, budget_ms, heard=True)
        except ServiceError as e:  # Translate's full queue (``strict_queue``): a callback must not raise it
            self.fail(e)

    def _leaned_on(self, seg: Segment, task: TranslationTask) -> str | None:
        """The language a conversation's segment leans on (``inputs.model_input``'s ``previous``):
        with speaker labels, its speaker's last language when its voice is embedded (the speaker
        it most likely is, ``SpeakerLabels.likely``; a voice not heard yet, or not yet in a
        language, leans on none: in a conversation a new voice is most often the other party);
        else the stream's previous turn's."""
        speakers = self.speakers
        voice = speakers.embedding(seg.segment_id) if speakers is not None and leans(task) else None
        if speakers is None or voice is None or not voice.done() or voice.cancelled() or voice.exception():
            return self.last_language
        speaker = speakers.likely(voice.result())
        return None if speaker is None else self.speaker_languages.get(speaker)

    def retarget(self, task: TranslationTask) -> None:
        """Segments submitted from now on use ``task``; those in the engine keep theirs."""
        self._task = task

    def _on_result(
        self,
        seg: Segment,
        task: TranslationTask,
        closed_at: float,
        vad_wait_ms: float,
        final: results.FinalStep | None,
        budget_ms: int | None,
        fut: asyncio.Future[EngineResult],
    ) -> None:
        if self._pending.pop(seg.segment_id, None) is None or fut.cancelled():
            return  # aborted
        exc = fut.exception()
        if isinstance(exc, Overloaded) and self._strict_queue:
            self.fail(exc)  # Translate: refused by the engine after all (another process's view was older)
            return
        if exc is not None:
            err = exc if isinstance(exc, ServiceError) else ServiceError("the model failed on this segment")
            self._done[seg.segment_id] = ((), results.failed(seg, err, closed_at, vad_wait_ms))
            self.emit_ready()
            return
        build: Callable[[], tuple[tuple[Commit, ...], SegmentResult]]
        if final is None:
            whole = functools.partial(
                results.build_result, seg, task, fut.result(), closed_at, vad_wait_ms, budget_ms=budget_ms
            )
            build = functools.partial(_no_commits, whole)
        else:  # the final commits' source_ms: the audio received now, as the result arrived
            build = functools.partial(
                results.build_final, seg, task, fut.result(), closed_at, vad_wait_ms, final, self._received_ms()
            )
        if results.needs_encoding(task.output):  # resampling or Opus: off the loop
            encoding = asyncio.ensure_future(self._encode(build))
            self._pending[seg.segment_id] = encoding
            encoding.add_done_callback(functools.partial(self._on_encoded, seg, closed_at, vad_wait_ms))
            return
        try:
            self._done[seg.segment_id] = build()
        except Exception as e:  # a callback's exception would only be logged: the stream would hang
            logger.error("building the result of segment %d failed", seg.segment_id, exc_info=e, extra=self._log)
            err = ServiceError("the model's output for this segment was unusable")
            self._done[seg.segment_id] = ((), results.failed(seg, err, closed_at, vad_wait_ms))
        self.emit_ready()

    def _on_encoded(
        self,
        seg: Segment,
        closed_at: float,
        vad_wait_ms: float,
        fut: asyncio.Future[tuple[tuple[Commit, ...], SegmentResult]],
    ) -> None:
        if self._pending.pop(seg.segment_id, None) is None or fut.cancelled():
            return  # aborted
        exc = fut.exception()
        if exc is not None:
            logger.error("encoding the speech of segment %d failed", seg.segment_id, exc_info=exc, extra=self._log)
            err = ServiceError("the translated speech could not be encoded")
            self._done[seg.segment_id] = ((), results.failed(seg, err, closed_at, vad_wait_ms))
        else:
            self._done[seg.segment_id] = fut.result()
        self.emit_ready()

    # -- simultaneous mode's commits ----------------------------------------------------------

    def reserve_commits(self, segment_id: int) -> CommitSlot:
        """The next place in ``segment_id``'s commits (take it when its step came back)."""
        slot = CommitSlot()
        self._commits.setdefault(segment_id, collections.deque()).append(slot)
        return slot

    def fill_commits(self, slot: CommitSlot, commits: tuple[Commit, ...]) -> None:
        """``commits`` go out in ``slot``'s place (none: the place is given up)."""
        slot.commits, slot.filled = commits, True
        self.emit_ready()

    @property
    def commits_waiting(self) -> bool:
        """Commits not out yet (encoding, or after a result still computed)."""
        return bool(self._commits)

    def finish(self, end: Callable[[int], StreamEnded]) -> None:
        """No more segments: once every result is out, ``end(segments_total)`` is the last event.
        A segment still held (fitting on) goes now, its budget running to the audio's end."""
        self.release(self._received_ms())
        self._end = end
        self.emit_ready()

    def emit_ready(self) -> None:
        emitted = self.next_emit
        while True:
            slots = self._commits.get(self.next_emit)
            while slots and slots[0].filled:
                for c in slots.popleft().commits:
                    self.put(c)
            if slots:
                break  # a commit of this segment is still encoding: what follows waits for it
            self._commits.pop(self.next_emit, None)
            if self.next_emit not in self._done:
                break
            speakers = self.speakers
            if speakers is not None and not speakers.ready(self.next_emit):
                break  # its voice is still being embedded
            commits, result = self._done.pop(self.next_emit)
            for c in commits:
                self.put(c)
            if speakers is not None:
                result = speakers.label(result)
            self.put(result)
            if result.detected is not None:
                self.last_language = result.detected.language
                if result.speaker:
                    self.speaker_languages[result.speaker] = result.detected.language
            self.next_emit += 1
        if self.next_emit != emitted and self.on_emitted is not None:
            self.on_emitted()
        if (
            self._end is not None
            and not self.ended
            and self.next_emit == self.next_id
            and self._held is None
            and not self._pending
            and not self._commits
        ):
            self.ended = True
            self.put(self._end(self.next_id))

    def abort(self) -> None:
        """Drop queued work: nothing more is computed for this stream (it leaves the share), and
        let go of the session's callback (it would hold the session in a cycle)."""
        self._on_change = _nothing
        self._on_output = None
        self.on_emitted = None
        self._held = None
        self.drop_speculation("changed")
        if self.speakers is not None:
            self.speakers.drop()
        self._engine.leave(self._owner)
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()
        self._commits.clear()

    def fail(self, error: ServiceError) -> None:
        """``events`` raises ``error`` (at once, ahead of what is queued)."""
        self.failure = error
        self._wake.set()

    async def events(self) -> AsyncIterator[StreamEvent]:
        """The reader's side: every event in order; ends after StreamEnded (raising its limit)."""
        while True:
            while not self._out:
                if self.failure is not None:
                    raise self.failure
                self._wake.clear()
                await self._wake.wait()
            if self.failure is not None:
                raise self.failure
            ev = self._out.popleft()
            if isinstance(ev, SegmentResult):
                self._taken += 1
                self._on_change()
            elif _counted(ev):
                self._events_out -= 1
                self._on_change()
            if isinstance(ev, InterimResult) and ev.segment_id < self.next_emit:
                continue  # its segment's final result is out: superseded
            yield ev
            if isinstance(ev, StreamEnded):
                if ev.limit is not None:
                    raise ev.limit
                return


@dataclass(frozen=True, eq=False)
class _Held:
    """A closed segment waiting for the next one's start (dubbing to the source's clock), with
    what its submission takes: the task it closed under and when it closed."""

    seg: Segment
    vad_wait_ms: float
    task: TranslationTask
    closed_at: float


@dataclass(frozen=True, eq=False)
class _Speculation:
    """An eager end's segment in the engine: its span, the task and language it was sent with."""

    start_ms: int
    end_ms: int
    task: TranslationTask
    previous: str | None
    future: asyncio.Future[EngineResult]


def _counted(ev: StreamEvent) -> bool:
    """An event counted in ``unread_events``: not a result nor a speech event (segments bound those)."""
    return not isinstance(ev, SegmentResult | SpeechEvent)


def _nothing() -> None:
    """An aborted tracker's ``on_change``."""


def leans(task: TranslationTask) -> bool:
    """Whether ``task``'s segments lean on an earlier turn's language: a conversation's, unless
    its language is stated (no identification runs)."""
    return task.conversation is not None and task.stated_language is None


def _no_commits(build: Callable[[], SegmentResult]) -> tuple[tuple[Commit, ...], SegmentResult]:
    return (), build()


def segment_of(segment_id: int, start_sample: int, samples: np.ndarray, end_sample: int, offset_ms: int) -> Segment:
    """A closed speech region -> a Segment on whole milliseconds, so [start_ms, end_ms) is exactly
    the audio the model gets (``offset_ms``: where this call starts on the stream's timeline)."""
    per_ms = results.PER_MS
    start = -(-start_sample // per_ms) * per_ms
    end = max(start, end_sample // per_ms * per_ms)
    return Segment(
        segment_id=segment_id,
        start_ms=start // per_ms + offset_ms,
        end_ms=end // per_ms + offset_ms,
        samples=samples[start - start_sample : end - start_sample],
    )
