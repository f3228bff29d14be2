"""A room speaker's renditions: its final results' speech made again at the speaking rates its
listeners chose, as optional engine work after each result is out (docs/rooms.md, "A speaking
rate per listener").

Each distinct (language, rate) a room's listeners choose is one more vocoder row in every segment
of each of its speakers. That work is the listeners' choice, so it is admitted and paid as such:

- **it never delays a final.** The speaker's segment keeps its spoken units
  (``ModelInput.keep_units``) and its result goes out as soon as it is made, to the speaker and to
  its listeners at the speaker's rate. Its speech at each chosen rate is a job of its own, the
  vocoder alone (``ModelInput.respeak``), queued as optional work behind every final
  (``EngineClient.submit_droppable(behind_finals=True)``): it runs only when no final waits for the
  model, in an optional batch the engine bounds (engine/scheduler.py), so it delays another
  stream's final by one such batch at most, and is the first to leave a full queue;
- **its listeners wait for it, boundedly.** A listener at a rate gets the result once its speech at
  that rate is made, in order (``rooms/listener.py`` ``LaterOutput``), at most ``wait_s``
  (``rooms.rendition_wait_s``) later: past it, or when the engine's queue has no place for the job,
  it gets the result at the speaker's rate (its ``speech_rate`` says so) and the job is dropped;
- **the room's tenant pays.** A room belongs to one tenant (its speakers' and its listeners'
  alike), whose audio budget each rendition draws its segment's length from, made only while the
  budget keeps half its minute (``tenants/budget.py`` ``affords_optional``: listeners' rates never
  spend what would end a stream), and counted (``translate_svc_tenant_rendition_seconds_total``).

Outcomes are counted (``translate_svc_room_renditions_total{outcome}``). Event loop only; the
speech's resampling or Opus encoding, where the speaker's output asks for it, runs off the loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable

from translate_svc.engine.client import EngineClient
from translate_svc.engine.results import EngineResult
from translate_svc.model_api.requests import Rendition
from translate_svc.observability import metrics
from translate_svc.session.manager import SessionManager
from translate_svc.session.results import needs_encoding, speech_out
from translate_svc.session.rooms.listener import Rendering
from translate_svc.session.stream.session import StreamSession
from translate_svc.session.task import inputs
from translate_svc.session.tenants import budget
from translate_svc.session.tenants.tenant import Tenant
from translate_svc.session.work import Offload, SessionWork
from translate_svc.types import OutputOptions, SegmentResult, Translation


class Respeaker:
    """One room speaker's renditions (its driver makes one when its stream speaks into a room).

    ``owner``: the engine owner its jobs go under: not its stream's session (whose end aborts
    that session's jobs), so a result's renditions are made, or given up at ``wait_s``, after the
    stream ended as well. ``affords(seconds)``: whether the tenant's budget can pay that much
    optional work now; ``charge(seconds)``: draw what was made. ``output()``: the stream's output
    options now (the speech's format, word timings); ``encode``: where a rendition's speech is
    resampled or Opus-encoded (the live results' pool, as the speaker tenant's call)."""

    def __init__(
        self,
        engine: EngineClient,
        owner: str,
        *,
        wait_s: float,
        affords: Callable[[float], bool],
        charge: Callable[[float], None],
        output: Callable[[], OutputOptions],
        encode: Offload,
    ) -> None:
        self._engine = engine
        self._encode = encode
        self._owner = owner
        self._wait_s = wait_s
        self._affords = affords
        self._charge = charge
        self._output = output

    def render(self, result: SegmentResult, pairs: tuple[tuple[str, float], ...]) -> Rendering | None:
        """``result``'s speech again at each of ``pairs`` it has units for and was not spoken at,
        or None (nothing to make, the budget cannot pay it, the engine's queue has no place: its
        listeners then hear the speaker's rate)."""
        spoken = {u.language: u for u in result.spoken}
        asked = tuple((lang, rate) for lang, rate in pairs if lang in spoken and rate != spoken[lang].rate)
        if not asked:
            return None
        seconds = max(0, result.end_ms - result.start_ms) / 1000
        if not self._affords(seconds * len(asked)):
            _count("budget", len(asked))
            return None
        opts = self._output()
        languages = tuple(dict.fromkeys(lang for lang, _ in asked))
        item = inputs.respeak_input(languages, asked, tuple(spoken[lang] for lang in languages), opts)
        job = self._engine.submit_droppable(self._owner, item, behind_finals=True)
        if job is None:
            _count("busy", len(asked))
            return None
        loop = asyncio.get_running_loop()
        made: asyncio.Future[tuple[Translation, ...]] = loop.create_future()
        late = loop.call_later(self._wait_s, _give_up, job, made, len(asked))
        job.add_done_callback(functools.partial(self._done, result, seconds, opts, made, late, len(asked)))
        return Rendering(frozenset(asked), made)

    def _done(
        self,
        result: SegmentResult,
        seconds: float,
        opts: OutputOptions,
        made: asyncio.Future[tuple[Translation, ...]],
        late: asyncio.TimerHandle,
        asked: int,
        job: asyncio.Future[EngineResult],
    ) -> None:
        late.cancel()
        if made.done():
            return  # given up at ``wait_s`` already
        if job.cancelled() or job.exception() is not None or job.result().output is None:
            _count("busy" if job.cancelled() else "failed", asked)  # cancelled: a share took its place
            made.set_result(())
            return
        out = job.result().output
        assert out is not None
        primary = {t.target_language: t for t in result.translations}
        again = [r for r in out.renditions if r.language in primary]

        def build() -> tuple[Translation, ...]:
            return tuple(_translation(primary[r.language], r, opts) for r in again)

        def settle(built: tuple[Translation, ...]) -> None:
            self._charge(seconds * len(built))
            _count("made", len(built))
            _count("failed", asked - len(built))
            if not made.done():
                made.set_result(built)

        if not needs_encoding(opts):
            settle(build())
            return
        encoding = asyncio.ensure_future(self._encode(build))

        def encoded(fut: asyncio.Future[tuple[Translation, ...]]) -> None:
            if fut.cancelled() or fut.exception() is not None:
                _count("failed", asked)
                if not made.done():
                    made.set_result(())
                return
            settle(fut.result())

        encoding.add_done_callback(encoded)


def paid_renditions(manager: SessionManager, tenant: Tenant, session: StreamSession) -> Respeaker:
    """A room speaker's renditions as its driver runs them: jobs under an owner of their own, given
    up after ``rooms.rendition_wait_s``, paid from ``tenant``'s audio budget and counted by tenant,
    in the stream's output format as it is when each is made."""
    counters = manager.counters

    def charge(seconds: float) -> None:
        budget.charge_optional(counters, tenant, seconds)
        metrics.tenant_rendition(tenant.name, seconds)

    return Respeaker(
        manager.engine,
        f"{session.session_id}/renditions",
        wait_s=manager.rooms.config.rendition_wait_s,
        affords=functools.partial(budget.affords_optional, counters, tenant),
        charge=charge,
        output=lambda: session.task.output,
        encode=SessionWork.live(manager.work, tenant.name).encode,
    )


def _give_up(job: asyncio.Future[EngineResult], made: asyncio.Future[tuple[Translation, ...]], asked: int) -> None:
    """``wait_s`` passed: its listeners get the result at the speaker's rate; the job leaves the
    queue (one already in the model ends for nobody)."""
    if made.done():
        return
    _count("late", asked)
    made.set_result(())
    job.cancel()


def _translation(primary: Translation, again: Rendition, opts: OutputOptions) -> Translation:
    """The speaker's translation with its speech made again at ``again.rate``: the same text and
    confidence, the speech in the stream's output format, its words (each with the confidence the
    speaker's own words have) in the new speech."""
    audio, opus = speech_out(again.waveform, opts)
    words = again.words if opts.text else ()
    if len(words) == len(primary.words):
        words = tuple(dataclasses.replace(w, logprob=p.logprob) for w, p in zip(words, primary.words, strict=True))
    return dataclasses.replace(
        primary, audio=audio, opus=opus, words=words, speech_rate=again.rate, overlap_ms=None, stable_text=""
    )


def _count(outcome: str, n: int) -> None:
    for _ in range(n):
        metrics.room_rendition(outcome)
