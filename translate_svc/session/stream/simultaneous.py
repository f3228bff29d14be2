"""Simultaneous interpretation of one stream: commit words, with their speech, while
speech is still open.

Every ``step_ms`` of new open speech (counted in audio, so a stream sent faster than real time
steps as often per second of audio), the open speech so far is translated again for every target
as one droppable engine job (``submit_droppable``, like a live caption), carrying each target's
policy state (``SimulTarget``: the committed token ids, how many of them were spoken, the
segment's last ``agreement - 1`` hypotheses). The engine's step applies the local agreement and
speaks newly committed words (``model_api/agreement.py``, ``model_api/runner.py``); its result updates
the state here, and every target whose committed text grew or that got a speech chunk gets a
``Commit`` (a text delta, the chunk in the stream's output format).

Rules (event loop only):

- At most one step is in flight. A step is skipped (not queued, and counted:
  ``translate_svc_simultaneous_steps_total{outcome="skipped"}``) while the engine is behind (a
  final waits, the queue is full, or the step alone is over the engine's optional batch budget:
  ``submit_droppable`` says no), the reader has events it has
  not taken, or commits wait to go out; the next one is due a ``step_ms`` later. Nothing is lost:
  the words are committed by a later step, at worst by the segment's final step.
- A step's result counts only if it is for the open segment and that segment's final was not
  submitted yet; else it is dropped (the final supersedes it). A failed step changes nothing.
- The segment's end (a pause, the length cap, FLUSH, a stall close, half-close) submits its final
  job: with words committed, a final step with the state (the rest committed by one decode with
  the committed prefix forced; then a last ``Commit`` per target, ``final``, and the
  ``SegmentResult`` whose speech is every chunk joined, ``speech_in_commits``); with none
  committed (no step ran, or none agreed yet; nothing was sent), the whole segment's usual job:
  the events are then exactly segment mode's, a result with its own speech and no commit.
- ``Commit.source_ms``: the stream's audio received (timeline ms, a resume's offset included)
  when the step's result arrived, i.e. when the words were committed.
- Order (``jobs.py``): a segment's commits come in the order their steps came back, after every
  earlier segment's result and before its own result.

Cost: each step re-translates its open segment from the start, so a segment that grows without
bound makes each step dearer (6.4 s of audio a second of speech at 1 s steps on 12-14 s
segments). A simultaneous stream's segments are therefore cut at ``simultaneous_max_segment_ms``
(``segment_cap``: the segmenter's own length cap, lowered), which bounds the audio its steps
re-translate to about ``(cap / step - 1) / 2`` per second of speech however long the speaker goes
on. Each piece is an ordinary segment (``MAX_LENGTH``): its final step completes its
commits, so joined commits still equal each final and nothing is retracted.

Live captions (``interim_interval_ms``) come from the steps themselves in this mode: each step
that counts gives an ``InterimResult`` whose translations are the step's whole hypothesis, with the
committed words as their ``stable_text`` (settled: later captions and the final start with them),
and the rest as the words that may still change. Its transcript, when asked, is the
step's unforced transcript row, all of it unsettled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from translate_svc.engine.client import EngineClient
from translate_svc.engine.results import EngineResult
from translate_svc.model_api.agreement import PrefixMismatch
from translate_svc.model_api.requests import SimulRowOutput, SimulTarget
from translate_svc.observability import metrics
from translate_svc.session import results
from translate_svc.session.stream.segments import CommitSlot, SegmentTracker
from translate_svc.session.task import inputs
from translate_svc.session.work import Offload
from translate_svc.types import Commit, Segment, TranslationTask
from translate_svc.vad.segmenter import WINDOW_SAMPLES, SegmenterConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class TargetState:
    """One target of the open segment: the policy's state and what the client has of it."""

    policy: SimulTarget
    sent: results.Sent


def advance(state: TargetState, row: SimulRowOutput, agreement: int) -> tuple[TargetState, str, np.ndarray | None]:
    """A step's row -> the target's next state, the committed text's delta and the new chunk
    (None: none; its words are ``row.chunk_words``, kept in the state's ``sent``). Raises
    PrefixMismatch if the row's commit does not extend the state's (a runner that retracted: the
    step must be dropped)."""
    policy = state.policy
    spoke_less = row.spoken_tokens < policy.spoken_tokens or row.spoken_units < policy.spoken_units
    if row.committed[: len(policy.committed)] != policy.committed or spoke_less:
        raise PrefixMismatch(
            f"a step's {len(row.committed)} committed tokens do not extend the {len(policy.committed)} committed"
        )
    keep = agreement - 1
    recent = (*policy.recent, row.token_ids)[-keep:] if keep else ()
    chunk = row.chunk if row.chunk is not None and len(row.chunk) else None
    delta = results.text_delta(state.sent.text, row.committed_text)
    sent = state.sent
    if chunk is not None:
        sent = sent.spoke(row.committed_text, chunk, row.chunk_words, row.chunk_rate)
    else:
        sent = dataclasses.replace(sent, text=row.committed_text)
    lps = row.logprobs if len(row.logprobs) == len(row.committed) else ()
    nxt = TargetState(
        SimulTarget(policy.language, row.committed, row.spoken_tokens, row.spoken_units, recent, lps), sent
    )
    return nxt, delta, chunk


def segment_cap(vad: SegmenterConfig, cap_ms: int) -> SegmenterConfig:
    """A simultaneous stream's segmentation: ``vad`` with its length cap at most ``cap_ms`` (or the
    least the stream's pad allows, see ``SegmenterConfig``), so its steps' cost stays bounded."""
    least = 3 * (vad.speech_pad_ms + 2 * WINDOW_SAMPLES // results.PER_MS)
    cap = max(cap_ms, least)
    return vad if vad.max_segment_ms <= cap else dataclasses.replace(vad, max_segment_ms=cap)


def _fresh(language: str) -> TargetState:
    return TargetState(SimulTarget(language), results.Sent())


class Simultaneous:
    """One stream's simultaneous mode (see the module docstring)."""

    def __init__(
        self,
        engine: EngineClient,
        owner: str,
        task: TranslationTask,
        tracker: SegmentTracker,
        received_ms: Callable[[], int],
        captions_offset_ms: int | None = None,
        *,
        encode: Offload,
    ) -> None:
        """``encode``: where a commit's speech is resampled or Opus-encoded (``work.SessionWork``)."""
        assert task.simultaneous is not None
        self._encode = encode
        self._received_ms = received_ms  # the stream's audio received (timeline ms): source_ms
        #: live captions from the steps, their spans shifted by this (a resume's offset); None: none
        self._captions_offset_ms = captions_offset_ms
        self._engine = engine
        self._owner = owner
        self._task = task
        self._tracker = tracker
        self._every = task.simultaneous.step_ms * results.PER_MS  # 16 kHz samples of open speech per step
        self._agreement = task.simultaneous.agreement
        self._inflight: asyncio.Future[EngineResult] | None = None
        self._seg = -1  # the open segment the state is for (-1: none) ...
        self._mark = 0  # ... where (16 kHz sample) its last step was due ...
        self._state: dict[str, TargetState] = {}  # ... and each target's state
        #: steps run and skipped (tests and benchmarks read them; the metric counts them too)
        self.steps = 0
        self.skipped = 0
        self.step_audio_ms = 0  # audio the steps run translated (the cost; /metrics counts it too)
        self._log = {"session_id": owner}

    def maybe_step(self, open_speech: tuple[int, np.ndarray] | None) -> None:
        """Start a step over ``open_speech`` (its first 16 kHz sample, its samples) when another
        ``step_ms`` of it has come in and none is in flight."""
        if self._inflight is not None or open_speech is None:
            return
        start, samples = open_speech
        next_id = self._tracker.next_id
        if self._seg != next_id:  # a new segment: a fresh state, steps counted from its start
            self._reset(next_id, start)
        end = start + len(samples)
        if end - self._mark < self._every:
            return
        self._mark = end
        t = self._tracker
        if t.backlog or t.commits_waiting:  # the reader is behind: skip, commit later
            self._skip()
            return
        per_ms = results.PER_MS
        first = -(-start // per_ms) * per_ms  # the segment's audio starts here (jobs.segment_of)
        last = end // per_ms * per_ms
        targets = tuple(self._state[lang].policy for lang in self._task.target_languages)
        captions = self._captions_offset_ms is not None
        item = inputs.step_input(
            self._task, samples[first - start : last - start], targets, final=False, captions=captions
        )
        fut = self._engine.submit_droppable(self._owner, item)
        if fut is None:
            self._skip()
            return
        self.steps += 1
        self.step_audio_ms += (last - first) // per_ms
        metrics.simultaneous_step(True)
        metrics.simultaneous_step_audio((last - first) / (1000 * per_ms))
        self._inflight = fut
        offset = self._captions_offset_ms or 0
        span = (self._seg, first // per_ms + offset, last // per_ms + offset)
        fut.add_done_callback(functools.partial(self._stepped, span, time.perf_counter()))

    def segment_closed(self, seg: Segment) -> results.FinalStep | None:
        """``seg`` closed: its final step if words were committed (None: its usual job). A step
        still in flight is dropped; the state starts afresh with the next segment."""
        state = self._state if self._seg == seg.segment_id else {}
        self.drop()
        self._seg, self._state = -1, {}
        if not any(s.policy.committed for s in state.values()):
            return None
        # a target added while the segment was open has no state: it starts from nothing committed
        state = {lang: state.get(lang) or _fresh(lang) for lang in self._task.target_languages}
        targets = tuple(state[lang].policy for lang in self._task.target_languages)
        item = inputs.step_input(self._task, seg.samples, targets, final=True)
        return results.FinalStep(item, {lang: s.sent for lang, s in state.items()})

    def retarget(self, task: TranslationTask) -> None:
        """Steps from now on, and the open segment's final, are for ``task``'s targets: a kept
        target keeps what it committed, an added one starts with nothing committed (its whole text
        and speech come in the segment's final commit, or in later steps), a dropped one gets no
        more commits. A step in flight was asked for the old targets: dropped."""
        assert task.simultaneous is not None
        self.drop()
        self._task = task
        if self._seg != -1:
            self._state = {lang: self._state.get(lang) or _fresh(lang) for lang in task.target_languages}

    def drop(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()  # the engine drops it unless it is in the model already
            self._inflight = None

    # -- internals ------------------------------------------------------------------------------

    def _reset(self, segment_id: int, start: int) -> None:
        self._seg, self._mark = segment_id, start
        self._state = {lang: _fresh(lang) for lang in self._task.target_languages}

    def _skip(self) -> None:
        self.skipped += 1
        metrics.simultaneous_step(False)

    def _stepped(self, span: tuple[int, int, int], asked_at: float, fut: asyncio.Future[EngineResult]) -> None:
        segment_id = span[0]
        if self._inflight is fut:
            self._inflight = None
        t = self._tracker
        if fut.cancelled() or t.failure is not None or t.ended or segment_id != self._seg:
            return  # superseded by the segment's final step, or the stream is over
        job = fut.exception() is None and fut.result()
        if not job or job.output is None or job.output.simul is None:
            logger.debug("a simultaneous step failed: %r", fut.exception() or fut.result().error, extra=self._log)
            return
        rows = job.output.simul
        state = dict(self._state)
        changed: list[results.CommitRow] = []
        try:
            for lang in self._task.target_languages:
                state[lang], delta, chunk = advance(state[lang], rows[lang], self._agreement)
                if (delta and self._task.output.text) or chunk is not None:
                    words = rows[lang].chunk_words if chunk is not None else ()
                    lp = results.commit_logprob(len(self._state[lang].policy.committed), rows[lang]) if delta else None
                    changed.append((lang, delta, chunk, words, lp))
        except (KeyError, PrefixMismatch) as e:  # a runner's bug: nothing of this step is used
            logger.error("a simultaneous step's result was unusable: %r", e, extra=self._log)
            return
        self._state = state
        if self._captions_offset_ms is not None:
            t.put(results.build_step_interim(span, self._task, job, job.output, asked_at))
        if not changed:
            return
        slot = t.reserve_commits(segment_id)
        source_ms = self._received_ms()  # committed now
        build = functools.partial(results.build_commits, segment_id, self._task, changed, source_ms)
        if any(chunk is not None for _, _, chunk, _, _ in changed) and results.needs_encoding(self._task.output):
            encoding = asyncio.ensure_future(self._encode(build))  # resampling or Opus: off the loop
            encoding.add_done_callback(functools.partial(self._encoded, slot, changed, segment_id, source_ms))
            return
        t.fill_commits(slot, build())

    def _encoded(
        self,
        slot: CommitSlot,
        changed: list[results.CommitRow],
        segment_id: int,
        source_ms: int,
        fut: asyncio.Future[tuple[Commit, ...]],
    ) -> None:
        if fut.cancelled():
            self._tracker.fill_commits(slot, ())
            return
        exc = fut.exception()
        if exc is None:
            self._tracker.fill_commits(slot, fut.result())
            return
        logger.error("encoding a commit's speech failed", exc_info=exc, extra=self._log)
        text_only = [(lang, delta, None, (), lp) for lang, delta, _, _, lp in changed]  # the text still goes out
        self._tracker.fill_commits(slot, results.build_commits(segment_id, self._task, text_only, source_ms))
