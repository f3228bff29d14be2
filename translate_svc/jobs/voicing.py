"""A job that voices subtitles (``JobSpec.subtitles_language``, ``cues.py``): each cue said as
written (``SourceText.as_written``) in the job's voice and fitted into its time: at the slowest
rate of the job's bound (its ``fit``, else the server's) at which it ends by the next cue's start,
and never given less than its own cue's span. A cue is a segment on the source's clock (its start
and end), its speech placed at its start in the dubbed track (``dub.py``), as a translated
segment's is; no transcript, no audio read.

The cues go to the engine a few at a time as the job's background work, each charged to the
tenant's budget as the seconds it covers, and each stored as it comes back, in order: a run
stopped mid-way resumes at the next cue not stored. A cue the model fails on is stored with its
error and no speech; the others go on. Event loop only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np

from translate_svc.engine.client import EngineClient
from translate_svc.engine.results import EngineResult
from translate_svc.errors import Overloaded
from translate_svc.jobs import cues
from translate_svc.jobs.cues import Cue
from translate_svc.jobs.keeper import JobKeeper
from translate_svc.jobs.lifecycle import Yielded
from translate_svc.jobs.model import JobStatus, words_json
from translate_svc.model_api.requests import ModelInput, SpeechFit
from translate_svc.session.results import overlap_ms, speech_out
from translate_svc.session.task import inputs
from translate_svc.types import DubFit, OutputOptions

#: cues in the engine at once (each a short text: one batch of them)
AT_ONCE = 8


class CueVoicing:
    """One run of a job voicing subtitles: ``run`` from its resume point to its last cue."""

    def __init__(
        self,
        store: JobKeeper,
        engine: EngineClient,
        *,
        owner: str,
        fit: DubFit,
        draw: Callable[[float], Awaitable[None]],
        stored: Callable[[int, str], None],
        files: Executor,
    ) -> None:
        """``fit``: the bound where the job set none; ``draw``: charge seconds of the tenant's
        budget (waits, or gives the worker back: ``Yielded``); ``stored``: a segment stored (its
        number, and ``OK`` or its error's code); ``files``: the job's own thread (its files read
        and written, speech resampled)."""
        self.store, self.engine, self.owner = store, engine, owner
        self.fit, self.draw, self.stored, self.files = fit, draw, stored, files

    async def run(self, job: JobStatus) -> None:
        loop = asyncio.get_running_loop()
        job_id, spec = job.job_id, job.spec
        said = await loop.run_in_executor(self.files, cues.kept, self.store.folder(job_id))
        start = (await self.store.resume_point(job_id)).segments
        name = f"job-cues-{job_id}"
        self.engine.join(name)
        self.engine.background(name)
        try:
            for at in range(start, len(said), AT_ONCE):
                batch = range(at, min(at + AT_ONCE, len(said)))
                for k in batch:
                    await self.draw((said[k].end_ms - said[k].start_ms) / 1000)
                items = [self._input(job, said, k) for k in batch]
                futures: list[asyncio.Future[EngineResult]] = []
                try:
                    futures.extend(self.engine.submit(name, item) for item in items)
                    got = await asyncio.gather(*futures)
                except Overloaded as e:  # the engine's queue is full: the job comes back for the rest
                    raise Yielded(time.time() + (e.retry_after_ms or 1000) / 1000) from None
                finally:
                    for f in futures:
                        f.cancel()
                for k, item, result in zip(batch, items, got, strict=True):
                    record, wave = _segment(said[k], k, spec.subtitles_language, item, result)
                    speech = {}
                    if wave is not None:
                        speech[spec.subtitles_language] = await loop.run_in_executor(
                            self.files, _at_track_rate, wave, spec.output
                        )
                        n = len(speech[spec.subtitles_language])
                        record["translations"][0].update(audio_samples=n, audio_ms=round(n * 1000 / spec.track_rate))
                    await self.store.add_segment(job_id, k, record, speech, spec.track_rate, owner=self.owner)
                    self.stored(k, record["error"]["code"] if "error" in record else "OK")
        finally:
            self.engine.leave(name)

    def _input(self, job: JobStatus, said: Sequence[Cue], k: int) -> ModelInput:
        spec, cue = job.spec, said[k]
        fit = spec.fit or self.fit
        budget = budget_ms(said, k, job.duration_ms)
        return inputs.written_input(
            cue.text,
            spec.subtitles_language,
            voice=spec.speaker_id,
            speed=None,
            fit=SpeechFit(budget, fit.slowest, fit.fastest),
            words=spec.word_timings,
        )


def budget_ms(said: Sequence[Cue], k: int, duration_ms: int) -> int:
    """A cue's time to speak in: to the next cue's start (the last one's: to the audio's end), never
    less than its own span."""
    cue = said[k]
    until = said[k + 1].start_ms if k + 1 < len(said) else max(duration_ms, cue.end_ms)
    return max(until, cue.end_ms) - cue.start_ms


def _segment(
    cue: Cue, k: int, language: str, item: ModelInput, result: EngineResult
) -> tuple[dict[str, Any], np.ndarray | None]:
    """A cue's stored segment (as ``segment_json`` writes a translated one) and its speech at the
    model's rate (None: the model failed on it; its error stored)."""
    out = result.output
    wave = None if out is None else out.waveforms.get(language)
    said: dict[str, Any] = {
        "target_language": language,
        "text": cue.text,
        "words": [] if out is None else words_json(out.words.get(language, ())),
        "avg_logprob": None,
        "audio_ms": 0,
        "audio_samples": 0,
        "speech_rate": None if out is None else out.speech_rates.get(language),
        "overlap_ms": None if wave is None or item.fit is None else overlap_ms(len(wave), int(item.fit.budget_ms)),
    }
    record: dict[str, Any] = {
        "segment_id": k,
        "start_ms": cue.start_ms,
        "end_ms": cue.end_ms,
        "transcript": None,
        "translations": [said],
        "speaker": 0,
    }
    if wave is None:
        error = result.error
        record["error"] = {
            "code": error.code if error is not None else "INTERNAL",
            "message": error.message if error is not None else "no speech came back for this cue",
        }
    return record, wave


def _at_track_rate(wave: np.ndarray, output: OutputOptions) -> np.ndarray:
    return speech_out(wave, output)[0]
