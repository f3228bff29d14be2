"""Pure builders: a segment and its engine job -> the ``SegmentResult`` or ``InterimResult`` sent out.

Speech is resampled and Opus-encoded here (milliseconds of CPU: the job tracker runs it off the
loop when ``needs_encoding``). No state; safe on any thread.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from translate_svc.audio.opus import encode_opus
from translate_svc.audio.resample import resample
from translate_svc.engine.jobs import JobResult
from translate_svc.engine.runner import DETECTED, ModelInput, ModelOutput
from translate_svc.errors import ErrorCode, ServiceError
from translate_svc.types import (
    MODEL_SAMPLE_RATE,
    DetectedLanguage,
    InterimResult,
    OutputOptions,
    Segment,
    SegmentError,
    SegmentResult,
    SpeechEncoding,
    Timing,
    Transcript,
    Translation,
    TranslationTask,
)

#: 16 kHz samples per millisecond
PER_MS = MODEL_SAMPLE_RATE // 1000


def model_input(task: TranslationTask, audio: np.ndarray, *, final: bool) -> ModelInput:
    """What the engine computes for one span of a stream of ``task``: a final segment as asked, a
    live caption as text only."""
    transcript = task.source_language if task.detect is None else DETECTED
    return ModelInput(
        audio=audio,
        targets=task.target_languages,
        transcript_language=transcript if task.output.transcript else None,
        speech=task.output.speech and final,
        speaker_id=task.output.speaker_id,
        detect=task.detect,
        terms=task.terms,
    )


def failed(seg: Segment, err: ServiceError, closed_at: float, vad_wait_ms: float) -> SegmentResult:
    return SegmentResult(
        segment_id=seg.segment_id,
        start_ms=seg.start_ms,
        end_ms=seg.end_ms,
        timing=Timing(total_ms=(time.perf_counter() - closed_at) * 1000, vad_wait_ms=vad_wait_ms),
        error=SegmentError(err.code.value if isinstance(err.code, ErrorCode) else str(err.code), err.message),
    )


def build_result(
    seg: Segment, task: TranslationTask, job: JobResult, closed_at: float, vad_wait_ms: float
) -> SegmentResult:
    ready = time.perf_counter()
    total_ms = (ready - closed_at) * 1000
    timing = Timing(queue_ms=job.queue_ms, model_ms=job.model_ms, total_ms=total_ms, vad_wait_ms=vad_wait_ms)
    if job.output is not None:
        out = job.output
        timing = dataclasses.replace(timing, speech_ms=out.speech_ms, language_id_ms=out.language_id_ms)
    if job.output is None:
        return SegmentResult(
            seg.segment_id, seg.start_ms, seg.end_ms, timing=timing, error=job.error, batch_trace=job.batch_trace
        )
    out, opts = job.output, task.output
    translations = []
    for lang in task.target_languages:
        audio = _to_rate(out.waveforms[lang], opts.speech_sample_rate_hz) if opts.speech else None
        opus = None
        if audio is not None and opts.speech_encoding is SpeechEncoding.OPUS:
            opus = encode_opus(audio, opts.speech_sample_rate_hz)
        translations.append(
            Translation(lang, out.texts.get(lang, "") if opts.text else "", audio, opts.speech_sample_rate_hz, opus)
        )
    transcript = _transcript(task, out)
    if opts.speech:
        timing = dataclasses.replace(timing, encode_ms=(time.perf_counter() - ready) * 1000)
    return SegmentResult(
        seg.segment_id,
        seg.start_ms,
        seg.end_ms,
        transcript,
        tuple(translations),
        timing,
        detected=_detected(out),
        batch_trace=job.batch_trace,
    )


def build_interim(
    span: tuple[int, int, int], task: TranslationTask, job: JobResult, out: ModelOutput, asked_at: float
) -> InterimResult:
    seg_id, start_ms, end_ms = span
    total_ms = (time.perf_counter() - asked_at) * 1000
    texts = tuple(Translation(lang, out.texts.get(lang, "")) for lang in task.target_languages)
    return InterimResult(
        seg_id,
        start_ms,
        end_ms,
        _transcript(task, out),
        texts if task.output.text else (),
        Timing(queue_ms=job.queue_ms, model_ms=job.model_ms, total_ms=total_ms),
    )


def needs_encoding(out: OutputOptions) -> bool:
    """Speech that must be resampled or Opus-encoded (ms of CPU per segment: off the loop)."""
    return out.speech and (out.speech_sample_rate_hz != MODEL_SAMPLE_RATE or out.speech_encoding is SpeechEncoding.OPUS)


def _transcript(task: TranslationTask, out: ModelOutput) -> Transcript | None:
    language = task.source_language
    detected = _detected(out)
    if detected is not None:
        language = detected.language
    if task.output.transcript and language and out.transcript is not None:
        return Transcript(language, out.transcript)
    return None


#: scores returned without candidates (any language): the most likely this many
TOP_SCORES = 5


def _detected(out: ModelOutput) -> DetectedLanguage | None:
    if out.detected is None:
        return None
    ranked = sorted(out.detected.items(), key=lambda kv: -kv[1])
    return DetectedLanguage(ranked[0][0], tuple(ranked[:TOP_SCORES] if len(ranked) > TOP_SCORES else ranked))


def _to_rate(wave: np.ndarray, rate: int) -> np.ndarray:
    return wave if rate == MODEL_SAMPLE_RATE else resample(wave, MODEL_SAMPLE_RATE, rate)
