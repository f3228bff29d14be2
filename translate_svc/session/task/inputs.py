"""The one builder of what the engine computes for a call (``ModelInput``): a stream's segment or
live caption, a simultaneous step, a text, a room speaker's renditions made again. Every field of
a job comes from the call's task here, so an output option the task gains is asked for in one place
(a test holds that no other module of the service builds one). Pure; any thread.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from translate_svc.model_api.requests import (
    DETECTED,
    UNIT_MS,
    ModelInput,
    SimulRequest,
    SimulTarget,
    SourceText,
    SpeechFit,
)
from translate_svc.model_api.turns import TurnRule
from translate_svc.types import MODEL_SAMPLE_RATE, OutputOptions, Profanity, SpokenUnits, TranslationTask

#: a text's or a rendition's job carries no samples
NO_SAMPLES = np.zeros(0, dtype=np.float32)


def keeps_terms(task: TranslationTask) -> bool:
    """Whether ``task`` has KEEP terms or glossary entries that act on translations: a kept
    phrase is carried, and a glossary phrase translated as given, where the segment's transcript
    holds it (model/stages/terms.py), so such a task's every job decodes the transcript (and, without a
    source language, detects the spoken language first), whether or not the client asked for them
    (a term acts on every path, or is refused)."""
    return bool(task.target_languages) and any(t.keep or t.glossary for t in task.terms)


def model_input(
    task: TranslationTask,
    audio: np.ndarray,
    *,
    final: bool,
    budget_ms: int | None = None,
    previous: str | None = None,
    turns: TurnRule | None = None,
) -> ModelInput:
    """What the engine computes for one span of a stream of ``task``: a final segment as asked, a
    live caption as text only. KEEP terms add the transcript row (and detection, without a source
    language: ``task.resolve_task`` refuses that on a server without an identifier); results
    built from it show only what the client asked for. ``budget_ms``: with ``task.output.fit``,
    the time the segment's speech is fitted to (its span and the gap before the next segment:
    ``SegmentTracker.release``). A final segment of a task with renditions (a room speaker whose
    listeners chose rates) keeps its spoken units (``ModelInput.keep_units``): its speech at those
    rates is made after its result is out, as optional work (``session/calls/renditions.py``), so that
    listeners' rates never delay the speaker's own result; so does a job's whose speakers each get a
    voice (``task.keep_spoken``: re-voiced once its labels are final, ``jobs/voices.py``). A conversation's segment
    (``task.conversation``) is identified among its languages and translated into the others
    (``ModelInput.conversation``), leaning on ``previous`` (the language of the stream's previous
    turn, where one of its languages) by ``turns`` (``ModelInput.prior``); a stated language
    (``task.stated_language``) is taken as said: no identification, no prior; each language's
    speech in its party's voice and rate (``task.parties``)."""
    fit = task.output.fit
    fitted = None
    if fit is not None and budget_ms is not None and final and task.output.speech:
        fitted = SpeechFit(max(budget_ms, 1), fit.slowest, fit.fastest)
    keep = keeps_terms(task)
    detect = task.detect
    if detect is None and keep and not task.source_language:
        detect = ()  # any language the identifier can pick: the transcript is decoded in it
    transcript = task.source_language if detect is None else DETECTED
    # a conversation's detected language is a row of its own whether or not its text is shown
    talk = task.conversation is not None
    prior = None
    if talk and task.stated_language is not None:
        detect, transcript = None, task.stated_language
    elif talk and turns is not None and previous is not None and previous in (task.conversation or ()):
        prior = turns.prior(previous, len(audio) / MODEL_SAMPLE_RATE)
    return ModelInput(
        audio=audio,
        targets=task.target_languages,
        transcript_language=transcript if task.output.transcript or keep or talk else None,
        speech=task.output.speech and final,
        speaker_id=task.output.speaker_id,
        detect=detect,
        conversation=talk,
        prior=prior,
        parties=task.parties,
        terms=task.terms,
        words=final and task.output.word_timings,
        profanity=task.output.profanity or Profanity.OFF,
        speed=task.output.speed,
        fit=fitted,
        keep_units=task.output.speech and final and ((bool(renditions(task)) and fitted is None) or task.keep_spoken),
    )


def renditions(task: TranslationTask) -> tuple[tuple[str, float], ...]:
    """The task's renditions a segment can make: of its targets, at a rate other than its speed
    (none in a conversation: its segments' targets depend on the language heard)."""
    if task.conversation is not None:
        return ()
    return tuple(
        (lang, rate) for lang, rate in task.renditions if lang in task.target_languages and rate != task.output.speed
    )


def step_input(
    task: TranslationTask,
    audio: np.ndarray,
    targets: tuple[SimulTarget, ...],
    *,
    final: bool,
    captions: bool = False,
) -> ModelInput:
    """A simultaneous step over ``audio`` (the open speech so far, or the closed segment when
    ``final``) with each target's policy state; an open step asks for no transcript (a commit
    has none) unless KEEP terms need it to know what was said, or its live caption
    (``captions``) shows one; the final one asks what a whole segment's job asks."""
    assert task.simultaneous is not None
    item = model_input(task, audio, final=True)
    shown = captions and task.output.transcript
    return dataclasses.replace(
        item,
        transcript_language=item.transcript_language if final or shown or keeps_terms(task) else None,
        simul=SimulRequest(
            targets,
            final=final,
            agreement=task.simultaneous.agreement,
            min_units=task.simultaneous.min_chunk_ms // UNIT_MS,
        ),
    )


def text_input(task: TranslationTask, text: str) -> ModelInput:
    """One text of a text call (``TranslateText``) in the task's source language: its translations
    (speech too if asked), with no transcript, detection or simultaneous step."""
    assert task.source_language is not None
    return ModelInput(
        NO_SAMPLES,
        task.target_languages,
        None,
        speech=task.output.speech,
        speaker_id=task.output.speaker_id,
        terms=task.terms,
        text=SourceText(text, task.source_language),
        words=task.output.word_timings,
        profanity=task.output.profanity or Profanity.OFF,
        speed=task.output.speed,
    )


def written_input(
    text: str,
    language: str,
    *,
    voice: int,
    speed: float | None,
    fit: SpeechFit | None = None,
    words: bool = False,
) -> ModelInput:
    """A text said as written in its own language (``SourceText.as_written``): a dub's edited line
    (``jobs/edits.py``) or a subtitle's cue (``jobs/voicing.py``), in ``voice``, at ``speed`` or
    fitted (``fit``; then ``speed`` is None), its word timings with ``words``."""
    return ModelInput(
        NO_SAMPLES,
        (language,),
        None,
        speech=True,
        speaker_id=voice,
        text=SourceText(text, language, as_written=True),
        words=words,
        speed=1.0 if speed is None else speed,
        fit=fit,
    )


def respeak_input(
    languages: tuple[str, ...],
    asked: tuple[tuple[str, float], ...],
    spoken: tuple[SpokenUnits, ...],
    output: OutputOptions,
) -> ModelInput:
    """A room speaker's result spoken again (``calls/renditions.py``): the units it kept for each of
    ``languages`` (``spoken``, in that order) made into speech at each (language, rate) ``asked``."""
    return ModelInput(
        audio=NO_SAMPLES,
        targets=languages,
        speech=True,
        words=output.word_timings,
        renditions=asked,
        respeak=spoken,
    )
