"""A done job's segments edited: a translation's text, voice or rate changed, and only those
segments' speech made again and placed; every other segment's speech stays as it was, byte for byte.

An edit (``SegmentEdit``) names a segment (its ``segment_id``) and one of the job's languages,
and any of a new text, a voice and a speaking rate; what it leaves out stays as the segment has
it. The new speech says the text exactly (``SourceText.as_written``: the model's text rows
forced to its tokens, then text-to-unit and the vocoder, in the voice and at the rate), at:
the rate the edit asks; else, for a job dubbed to the source's clock (``fit``), the rate that ends
it by the next segment's start; else the rate the segment was spoken at. An empty text silences
the segment there.

``JobEditor.edit`` holds the job while it edits (``JobKeeper.hold``: one edit of a job at a time,
whichever pod serves it), makes every edit's speech through the engine as one Translate call of
the tenant, appends it to the target's speech file (the old speech left where it is), then writes
every changed result in one transaction of the store: a failure anywhere before leaves the job as
it was. The first edit of a job also says in every translation where its speech is in the file
(``audio_offset``: ``dub.placements`` reads it), since the file is no longer in segment order.
Each edited translation keeps what was edited (``edited``) and its voice; the answer says, per
edit, what changed, before and after. Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from translate_svc.engine.results import EngineResult
from translate_svc.errors import Conflict, InvalidInput, ServiceError
from translate_svc.jobs.cues import MAX_TEXT_CHARS
from translate_svc.jobs.keeper import JobKeeper
from translate_svc.jobs.model import JobSpec, JobState, JobStatus, words_json
from translate_svc.jobs.store import EDITING, LeaseLost
from translate_svc.model_api.requests import ModelInput, SpeechFit
from translate_svc.session.manager import SessionManager
from translate_svc.session.results import overlap_ms, speech_out
from translate_svc.session.task import inputs
from translate_svc.session.tenants.tenant import Tenant
from translate_svc.types import OutputOptions, WordTiming, check_speed

#: edits in one request at most
MAX_EDITS = 100
#: segments read from the store per page
PAGE = 256
#: what an edit can change, in the order answers list them
FIELDS = ("text", "voice", "speed")


@dataclass(frozen=True)
class SegmentEdit:
    """One segment's translation into ``language`` said again: its ``text``, ``voice`` or ``speed``
    (None: as it is)."""

    segment_id: int
    language: str
    text: str | None = None
    voice: int | None = None
    speed: float | None = None

    def check(self, k: int, num_speakers: int) -> None:
        """InvalidInput naming ``edits[k]``'s bad field and what to send."""
        where = f"edits[{k}]"
        if self.text is None and self.voice is None and self.speed is None:
            raise InvalidInput(f"{where}: give text, voice or speed (what to change)")
        if self.text is not None and len(self.text) > MAX_TEXT_CHARS:
            raise InvalidInput(f"{where}.text: at most {MAX_TEXT_CHARS} characters (split the line)")
        if self.voice is not None and not 0 <= self.voice < num_speakers:
            raise InvalidInput(f"{where}.voice: 0..{num_speakers - 1} (the model's voices)")
        if self.speed is not None:
            try:
                check_speed(self.speed, f"{where}.speed")
            except ValueError as e:
                raise InvalidInput(str(e)) from None


@dataclass(frozen=True)
class EditedSegment:
    """What one edit changed: ``changed`` (of ``FIELDS``), and the translation before and after
    (text, voice, speech_rate, audio_ms)."""

    segment_id: int
    language: str
    changed: tuple[str, ...]
    before: dict[str, Any]
    after: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "segment_id": self.segment_id,
            "target_language": self.language,
            "changed": list(self.changed),
            "before": self.before,
            "after": self.after,
        }


def check_edits(edits: Sequence[SegmentEdit], num_speakers: int) -> None:
    """The request's edits, each checked (InvalidInput saying which and what to send)."""
    if not edits:
        raise InvalidInput("edits: give at least one edit")
    if len(edits) > MAX_EDITS:
        raise InvalidInput(f"edits: at most {MAX_EDITS} in one request (send the rest in another)")
    seen: set[tuple[int, str]] = set()
    for k, edit in enumerate(edits):
        edit.check(k, num_speakers)
        if (edit.segment_id, edit.language) in seen:
            raise InvalidInput(f"edits[{k}]: segment {edit.segment_id} in {edit.language} is edited twice")
        seen.add((edit.segment_id, edit.language))


@dataclass
class _Segments:
    """A done job's results, read whole: by ``seq``, with each ``segment_id``'s seq."""

    results: list[dict[str, Any]]
    seq_of: dict[int, int]

    @property
    def placed(self) -> bool:
        """Whether every translation says where its speech is (a job edited before)."""
        return any("audio_offset" in t for r in self.results for t in r["translations"])


class JobEditor:
    """Edits done jobs' segments (see the module docstring) for a ``JobDesk``."""

    def __init__(
        self, store: JobKeeper, manager: SessionManager, *, owner: str, lease_s: float, clock: Callable[[], float]
    ) -> None:
        self.store = store
        self._m = manager
        self.owner = owner
        self.lease_s = lease_s
        self._clock = clock

    async def edit(self, job: JobStatus, tenant: Tenant, edits: Sequence[SegmentEdit]) -> list[EditedSegment]:
        """Every edit applied, or none (a ServiceError saying why): Conflict unless the job is
        done, or while another edit of it runs; InvalidInput for an edit it cannot take."""
        check_edits(edits, self._m.card.num_speakers)
        if job.state is not JobState.DONE:
            raise Conflict(f"job {job.job_id} is {job.state.value}: its segments can be edited once it is done")
        spec = job.spec
        languages = spec.languages
        for k, edit in enumerate(edits):
            if edit.language not in languages:
                raise InvalidInput(f"edits[{k}].target_language: one of the job's languages ({', '.join(languages)})")
            if not spec.speech and (edit.voice is not None or edit.speed is not None):
                raise InvalidInput(f"edits[{k}]: this job made no speech: only its text can be edited")
        owner = f"{self.owner}{EDITING}{uuid.uuid4().hex[:8]}"
        files = ThreadPoolExecutor(1, thread_name_prefix=f"job-edit-{job.job_id[-6:]}")
        try:
            async with self._held(owner, job.job_id):
                segments = await self._read(job.job_id)
                made = await self._said(job, tenant, segments, edits)
                return await self._write(owner, job, segments, edits, made, files)
        except LeaseLost:  # its hold lapsed (a stalled store): nothing of it was written
            raise Conflict(
                f"job {job.job_id}: the edit lost its hold on the job, nothing written: send it again"
            ) from None
        finally:
            files.shutdown(wait=False)

    @contextlib.asynccontextmanager
    async def _held(self, owner: str, job_id: str) -> AsyncIterator[None]:
        """The job held for this edit (renewed every third of the lease), given back after."""
        if not await self.store.hold(owner, job_id, self._clock(), self.lease_s):
            raise Conflict(f"job {job_id} is being edited by another request, or is no longer done: retry when it ends")

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.lease_s / 3)
                await self.store.renew(owner, [job_id], self._clock() + self.lease_s)

        renewing = asyncio.create_task(renew(), name=f"job-edit-lease-{job_id}")
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError, ServiceError):
                await renewing
            await self.store.release(owner, job_id)

    async def _read(self, job_id: str) -> _Segments:
        results: list[dict[str, Any]] = []
        while page := await self.store.segments(job_id, len(results) - 1, PAGE):
            results.extend(page)
        return _Segments(results, {int(r["segment_id"]): seq for seq, r in enumerate(results)})

    async def _said(
        self, job: JobStatus, tenant: Tenant, segments: _Segments, edits: Sequence[SegmentEdit]
    ) -> list[_Said]:
        """Each edit's new translation, its speech made through the engine (one Translate call of
        the tenant, every edit one engine job, batched with everyone's work)."""
        plans = [_plan(job, segments, k, edit) for k, edit in enumerate(edits)]
        asks = [(k, p) for k, p in enumerate(plans) if p.item is not None]
        if not asks:
            return [p.said(None) for p in plans]
        engine = self._m.engine
        name = f"edit-{job.job_id[-12:]}-{uuid.uuid4().hex[:8]}"
        async with self._m.admit_clip(tenant):
            engine.join(name)
            futures: list[asyncio.Future[EngineResult]] = []
            try:
                futures.extend(engine.submit(name, p.item) for _, p in asks if p.item is not None)
                got = await asyncio.gather(*futures)
            finally:
                for f in futures:
                    f.cancel()
                engine.leave(name)
        outs: dict[int, Any] = {}
        for (k, plan), result in zip(asks, got, strict=True):
            if result.output is None or plan.edit.language not in result.output.waveforms:
                why = result.error.message if result.error is not None else "no speech came back"
                raise ServiceError(f"edits[{k}]: segment {plan.edit.segment_id} could not be said again: {why}")
            outs[k] = result.output
        return [plan.said(outs.get(k)) for k, plan in enumerate(plans)]

    async def _write(
        self,
        owner: str,
        job: JobStatus,
        segments: _Segments,
        edits: Sequence[SegmentEdit],
        made: Sequence[_Said],
        files: ThreadPoolExecutor,
    ) -> list[EditedSegment]:
        loop = asyncio.get_running_loop()
        job_id, output = job.job_id, job.spec.output
        results = segments.results
        was = list(results)
        changed: dict[int, dict[str, Any]] = {}
        if not segments.placed:  # the file leaves segment order now: every translation says where
            for seq, entries in enumerate(_offsets(results)):
                results[seq] = _with_offsets(results[seq], entries)
                changed[seq] = results[seq]
        grown = 0
        answers = []
        for edit, said in zip(edits, made, strict=True):
            seq = segments.seq_of[edit.segment_id]
            result = results[seq]
            before = _entry(result, edit.language)
            at, samples = int(before.get("audio_offset", 0)), 0
            if said.wave is not None and len(said.wave):
                track = await loop.run_in_executor(files, _at_track_rate, said.wave, output)
                at = await loop.run_in_executor(files, self.store.append_edited, job_id, edit.language, track)
                samples = len(track)
                grown += samples * 2
            after = said.entry(before, at, samples, job.spec.track_rate, edit)
            result = {**result, "translations": [after if t is before else t for t in result["translations"]]}
            results[seq] = changed[seq] = result
            voice = _voice(result, before, job.spec)
            answers.append(
                EditedSegment(edit.segment_id, edit.language, said.changed, _shown(before, voice), _shown(after, voice))
            )
        grown += sum(len(json.dumps(changed[seq])) - len(json.dumps(was[seq])) for seq in changed)
        await self.store.edit_segments(owner, job_id, changed, grown)
        return answers


@dataclass(frozen=True)
class _Said:
    """An edit's outcome: its translation's text and what changed, and its speech at the model's
    rate (None: no speech made; empty: silenced) with its words, rate and overlap."""

    edit: SegmentEdit
    text: str
    voice: int
    rate: float | None
    changed: tuple[str, ...]
    wave: np.ndarray | None
    words: tuple[WordTiming, ...]
    overlap_ms: int | None

    def entry(self, before: dict[str, Any], at: int, samples: int, rate: int, edit: SegmentEdit) -> dict[str, Any]:
        """The translation's new entry: ``before`` with the edit's text, and, when speech was made
        (or silenced), its place in the file, its length, words, voice and rate."""
        out = {**before, "text": self.text, "avg_logprob": None}
        if self.wave is not None:
            out.update(
                audio_offset=at,
                audio_samples=samples,
                audio_ms=round(samples * 1000 / rate),
                words=words_json(self.words),
                speech_rate=self.rate if samples else None,
                overlap_ms=self.overlap_ms,
                voice=self.voice,
            )
        out["edited"] = [f for f in FIELDS if f in self.changed or f in before.get("edited", ())]
        return out


@dataclass(frozen=True)
class _Plan:
    """What one edit asks of the model (``item``; None: nothing to say, or a text alone)."""

    edit: SegmentEdit
    text: str
    voice: int
    rate: float | None
    changed: tuple[str, ...]
    item: ModelInput | None
    budget_ms: int | None
    speech: bool

    def said(self, out: Any) -> _Said:
        lang = self.edit.language
        if out is None:  # no model work: a text-only job's text, or a line silenced
            wave = np.zeros(0, np.float32) if self.speech else None
            return _Said(self.edit, self.text, self.voice, None, self.changed, wave, (), None)
        wave = out.waveforms[lang]
        rate = out.speech_rates.get(lang, self.rate)
        over = overlap_ms(len(wave), self.budget_ms) if self.budget_ms is not None else None
        return _Said(self.edit, self.text, self.voice, rate, self.changed, wave, out.words.get(lang, ()), over)


def _plan(job: JobStatus, segments: _Segments, k: int, edit: SegmentEdit) -> _Plan:
    """An edit against its segment as stored: the text, voice and rate it will be said with."""
    spec = job.spec
    seq = segments.seq_of.get(edit.segment_id)
    if seq is None:
        raise InvalidInput(f"edits[{k}].segment_id: the job has no segment {edit.segment_id}")
    result = segments.results[seq]
    try:
        before = _entry(result, edit.language)
    except KeyError:
        raise InvalidInput(
            f"edits[{k}]: segment {edit.segment_id} has no translation into {edit.language} "
            "(a conversation's segment is not translated into the language it was spoken in)"
        ) from None
    old_voice = _voice(result, before, spec)
    text = before["text"] if edit.text is None else edit.text.strip()
    voice = old_voice if edit.voice is None else edit.voice
    changed = tuple(
        f
        for f, new, old in (
            ("text", text, before["text"]),
            ("voice", voice, old_voice),
            ("speed", edit.speed, before.get("speech_rate")),
        )
        if new is not None and new != old
    )
    if not spec.speech or not text:
        return _Plan(edit, text, voice, None, changed, None, None, spec.speech)
    budget_ms = None
    fit = None
    rate = edit.speed
    if rate is None and spec.fit is not None:
        budget_ms = _budget_ms(job, segments, seq)
        fit = SpeechFit(max(budget_ms, 1), spec.fit.slowest, spec.fit.fastest)
    elif rate is None:
        rate = float(before.get("speech_rate") or spec.speed)
    item = inputs.written_input(
        text, edit.language, voice=voice, speed=None if fit is not None else rate, fit=fit, words=spec.word_timings
    )
    return _Plan(edit, text, voice, rate, changed, item, budget_ms, True)


def _at_track_rate(wave: np.ndarray, output: OutputOptions) -> np.ndarray:
    return speech_out(wave, output)[0]


def _budget_ms(job: JobStatus, segments: _Segments, seq: int) -> int:
    """A segment's time to speak in, dubbed to the source's clock: to the next segment's start (the
    last one's: to the audio's end)."""
    start = int(segments.results[seq]["start_ms"])
    if seq + 1 < len(segments.results):
        return int(segments.results[seq + 1]["start_ms"]) - start
    return max(job.duration_ms, int(segments.results[seq]["end_ms"])) - start


def _entry(result: dict[str, Any], language: str) -> dict[str, Any]:
    for t in result["translations"]:
        if t["target_language"] == language:
            return t  # type: ignore[no-any-return]
    raise KeyError(language)


def _offsets(results: Sequence[dict[str, Any]]) -> list[dict[str, int]]:
    """Each segment's translations' places in their speech files, as stored in segment order."""
    at: dict[str, int] = {}
    out = []
    for r in results:
        here = {}
        for t in r["translations"]:
            lang = t["target_language"]
            here[lang] = at.get(lang, 0)
            at[lang] = here[lang] + int(t.get("audio_samples", 0))
        out.append(here)
    return out


def _with_offsets(result: dict[str, Any], offsets: dict[str, int]) -> dict[str, Any]:
    return {
        **result,
        "translations": [{**t, "audio_offset": offsets[t["target_language"]]} for t in result["translations"]],
    }


def _voice(result: dict[str, Any], entry: dict[str, Any], spec: JobSpec) -> int:
    """The voice a translation was said in: its own (edited), its segment's (a voice per speaker),
    else the job's."""
    return int(entry.get("voice", result.get("voice", spec.speaker_id)))


def _shown(entry: dict[str, Any], voice: int) -> dict[str, Any]:
    """A translation as an edit's answer shows it (``voice``: where the entry does not say)."""
    return {
        "text": entry["text"],
        "voice": entry.get("voice", voice),
        "speech_rate": entry.get("speech_rate"),
        "audio_ms": entry.get("audio_ms", 0),
    }


__all__ = ["MAX_EDITS", "EditedSegment", "JobEditor", "SegmentEdit", "check_edits"]
