"""Pure builders: a segment and its engine job -> the ``SegmentResult``, ``InterimResult`` or
``Commit`` sent out.

Speech is resampled and Opus-encoded here (milliseconds of CPU: the job tracker runs it off the
loop when ``needs_encoding``). A simultaneous segment's chunks are converted one by one, each as a
whole segment's speech is (``speech_out``), so the result's speech, the chunks converted again and
joined, is sample for sample what its commits carried. No state; safe on any thread.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from translate_svc.audio.opus import encode_opus
from translate_svc.audio.resample import resample
from translate_svc.engine.results import EngineResult
from translate_svc.errors import ErrorCode, ServiceError
from translate_svc.model_api import turns
from translate_svc.model_api.requests import (
    ModelInput,
    ModelOutput,
    SimulRowOutput,
)
from translate_svc.types import (
    MODEL_SAMPLE_RATE,
    Commit,
    DetectedLanguage,
    InterimResult,
    LanguageSource,
    OpusSpeech,
    OutputOptions,
    Segment,
    SegmentError,
    SegmentResult,
    SpeechEncoding,
    Timing,
    Transcript,
    Translation,
    TranslationTask,
    WordTiming,
)

logger = logging.getLogger(__name__)

#: 16 kHz samples per millisecond
PER_MS = MODEL_SAMPLE_RATE // 1000


@dataclass(frozen=True, eq=False)
class Sent:
    """What a client has of one target of an open segment: the committed text (the commits' texts
    joined), the speech chunks, at the model's rate, in order, (word timings) each chunk's words in
    it, and the speaking rate each chunk was made at (``SimulRowOutput.chunk_rate``)."""

    text: str = ""
    chunks: tuple[np.ndarray, ...] = ()
    words: tuple[tuple[WordTiming, ...], ...] = ()
    rates: tuple[float | None, ...] = ()

    def spoke(self, text: str, chunk: np.ndarray, words: tuple[WordTiming, ...], rate: float | None) -> Sent:
        """This with ``text`` committed and one more chunk spoken (its words, its rate)."""
        return Sent(text, (*self.chunks, chunk), (*self.words, words), (*self.rates, rate))

    def speech_rate(self) -> float | None:
        """The rate the chunks joined were spoken at: each chunk's, weighted by its length (their
        natural length over their length: a rate changed mid-segment counts for what it made);
        None without chunks, or when a chunk's rate is not known."""
        if not self.chunks or any(r is None for r in self.rates) or len(self.rates) != len(self.chunks):
            return None
        samples = sum(len(c) for c in self.chunks)
        if not samples:
            return None
        return sum(len(c) * r for c, r in zip(self.chunks, self.rates, strict=True) if r is not None) / samples

    def joined_words(self) -> tuple[WordTiming, ...]:
        """Every chunk's words in the chunks joined: each shifted by the chunks before it (ms)."""
        out: list[WordTiming] = []
        before = 0  # samples at the model's rate
        for chunk, words in zip(self.chunks, self.words, strict=True):
            out.extend(_shifted(words, round(before * 1000 / MODEL_SAMPLE_RATE)))
            before += len(chunk)
        return tuple(out)


@dataclass(frozen=True, eq=False)
class FinalStep:
    """A simultaneous segment's final job (``step_input(final=True)``) and what its commits
    already gave the client, per target: the final result's speech and text build on it."""

    item: ModelInput
    sent: dict[str, Sent]


def text_delta(sent: str, committed: str) -> str:
    """The committed text beyond what was sent. A committed text that does not start with the sent
    one (a detokenizer that writes a prefix of tokens differently) gives what follows their common
    prefix: never a retraction; the joined commits then differ from the result's text there."""
    if committed.startswith(sent):
        return committed[len(sent) :]
    logger.warning("a committed text does not extend the text sent (%d vs %d characters)", len(committed), len(sent))
    common = next((i for i, (a, b) in enumerate(zip(sent, committed, strict=False)) if a != b), len(sent))
    return committed[min(common, len(committed)) :]


def speech_out(wave: np.ndarray, opts: OutputOptions) -> tuple[np.ndarray, OpusSpeech | None]:
    """Speech at the model's rate -> the stream's output: resampled, and Opus-encoded if asked."""
    audio = _to_rate(wave, opts.speech_sample_rate_hz)
    opus = encode_opus(audio, opts.speech_sample_rate_hz) if opts.speech_encoding is SpeechEncoding.OPUS else None
    return audio, opus


#: one commit's makings: (target, text delta, chunk at the model's rate or None, the chunk's words,
#: the confidence of the tokens it commits or None)
CommitRow = tuple[str, str, np.ndarray | None, tuple[WordTiming, ...], float | None]


def build_commits(
    segment_id: int,
    task: TranslationTask,
    rows: Sequence[CommitRow],
    source_ms: int,
    *,
    final: bool = False,
) -> tuple[Commit, ...]:
    """One ``Commit`` per row. Its words are the chunk's (``SimulRowOutput.chunk_words``: they
    may include words whose text an earlier commit carried), with the chunk and the text, as a
    segment's translation has words with its speech and text."""
    opts = task.output
    out = []
    for lang, delta, chunk, words, logprob in rows:
        audio, opus = speech_out(chunk, opts) if chunk is not None and opts.speech else (None, None)
        text = delta if opts.text else ""
        timed = words if audio is not None and opts.text else ()
        confidence = logprob if opts.text else None
        translation = Translation(
            lang, text, audio, opts.speech_sample_rate_hz, opus, words=timed, avg_logprob=confidence
        )
        out.append(Commit(segment_id, translation, source_ms, final))
    return tuple(out)


def build_final(
    seg: Segment,
    task: TranslationTask,
    job: EngineResult,
    closed_at: float,
    vad_wait_ms: float,
    step: FinalStep,
    source_ms: int,
) -> tuple[tuple[Commit, ...], SegmentResult]:
    """A simultaneous segment's final step -> its last commits (``final``, one per target: the rest
    of the text, the last chunk) and its result: the whole committed text, the unforced
    transcript, and as speech every chunk of the segment joined (what the commits carried), with
    (word timings) the commits' words in it (``Sent.joined_words``)."""
    out = job.output
    if out is None or out.simul is None:
        if out is not None:  # a runner that ignored the step: a bug, said as the segment's error
            logger.error("segment %d: the final simultaneous step came back without its rows", seg.segment_id)
            job = dataclasses.replace(job, output=None, error=_NO_ROWS)
        return (), build_result(seg, task, job, closed_at, vad_wait_ms)
    ready = time.perf_counter()
    opts = task.output
    rows: list[CommitRow] = []
    translations = []
    before = {t.language: len(t.committed) for t in step.item.simul.targets} if step.item.simul else {}
    for lang in task.target_languages:
        row, sent = out.simul[lang], step.sent.get(lang, Sent())
        logprob = commit_logprob(before.get(lang, 0), row)
        rows.append((lang, text_delta(sent.text, row.committed_text), row.chunk, row.chunk_words, logprob))
        audio = opus = None
        words: tuple[WordTiming, ...] = ()
        if opts.speech:
            if row.chunk is not None:
                sent = sent.spoke(sent.text, row.chunk, row.chunk_words, row.chunk_rate)
            parts = [_to_rate(c, opts.speech_sample_rate_hz) for c in sent.chunks]
            audio = np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)
            if opts.speech_encoding is SpeechEncoding.OPUS:
                opus = encode_opus(audio, opts.speech_sample_rate_hz)
            words = sent.joined_words() if opts.text else ()
        text = row.committed_text if opts.text else ""
        confidence = out.logprobs.get(lang) if opts.text else None
        rate = sent.speech_rate() if audio is not None and len(audio) else None
        translations.append(
            Translation(
                lang,
                text,
                audio,
                opts.speech_sample_rate_hz,
                opus,
                words=words,
                avg_logprob=confidence,
                speech_rate=rate,
            )
        )
    commits = build_commits(seg.segment_id, task, rows, source_ms, final=True)
    timing = Timing(
        queue_ms=job.queue_ms,
        model_ms=job.model_ms,
        optional_ms=job.optional_ms,
        total_ms=(ready - closed_at) * 1000,
        vad_wait_ms=vad_wait_ms,
        speech_ms=out.speech_ms,
        language_id_ms=out.language_id_ms,
        encode_ms=(time.perf_counter() - ready) * 1000 if opts.speech else 0.0,
    )
    result = SegmentResult(
        seg.segment_id,
        seg.start_ms,
        seg.end_ms,
        _transcript(task, out, seg.start_ms),
        tuple(translations),
        timing,
        detected=_detected(task, out),
        batch_trace=job.batch_trace,
        speech_in_commits=True,
    )
    return commits, result


def commit_logprob(before: int, row: SimulRowOutput) -> float | None:
    """A commit's confidence: the mean log-probability of the tokens it commits (those
    of ``row.committed`` past the ``before`` committed already), each from the step that chose it;
    a final step's commit also counts the end of text, so a segment's commits, weighted by their
    tokens, average to its final's. None: nothing chosen, or the values are not known."""
    if len(row.logprobs) != len(row.committed):
        return None
    new = [*row.logprobs[before:], *(() if row.end_logprob is None else (row.end_logprob,))]
    return sum(new) / len(new) if new else None


_NO_ROWS = SegmentError(ErrorCode.INTERNAL.value, "the model's output for this segment was unusable")


def failed(seg: Segment, err: ServiceError, closed_at: float, vad_wait_ms: float) -> SegmentResult:
    return SegmentResult(
        segment_id=seg.segment_id,
        start_ms=seg.start_ms,
        end_ms=seg.end_ms,
        timing=Timing(total_ms=(time.perf_counter() - closed_at) * 1000, vad_wait_ms=vad_wait_ms),
        error=SegmentError(err.code.value if isinstance(err.code, ErrorCode) else str(err.code), err.message),
    )


def build_result(
    seg: Segment,
    task: TranslationTask,
    job: EngineResult,
    closed_at: float,
    vad_wait_ms: float,
    *,
    budget_ms: int | None = None,
) -> SegmentResult:
    """A whole segment's result; ``budget_ms``: the time its speech was fitted to (dubbing to the
    source's clock): each translation then says how far its speech runs past it (``overlap_ms``)."""
    ready = time.perf_counter()
    total_ms = (ready - closed_at) * 1000
    timing = Timing(
        queue_ms=job.queue_ms,
        model_ms=job.model_ms,
        total_ms=total_ms,
        vad_wait_ms=vad_wait_ms,
        optional_ms=job.optional_ms,
    )
    if job.output is not None:
        out = job.output
        timing = dataclasses.replace(timing, speech_ms=out.speech_ms, language_id_ms=out.language_id_ms)
    if job.output is None:
        return SegmentResult(
            seg.segment_id, seg.start_ms, seg.end_ms, timing=timing, error=job.error, batch_trace=job.batch_trace
        )
    out, opts = job.output, task.output

    def translation(
        lang: str, wave: np.ndarray | None, words: tuple[WordTiming, ...], rate: float | None
    ) -> Translation:
        audio = _to_rate(wave, opts.speech_sample_rate_hz) if wave is not None else None
        opus = None
        if audio is not None and opts.speech_encoding is SpeechEncoding.OPUS:
            opus = encode_opus(audio, opts.speech_sample_rate_hz)
        return Translation(
            lang,
            out.texts.get(lang, "") if opts.text else "",
            audio,
            opts.speech_sample_rate_hz,
            opus,
            words=words if opts.text else (),
            avg_logprob=out.logprobs.get(lang) if opts.text else None,
            speech_rate=rate if audio is not None else None,
            overlap_ms=overlap_ms(len(wave), budget_ms) if wave is not None and budget_ms is not None else None,
        )

    translations = [
        translation(
            lang, out.waveforms[lang] if opts.speech else None, out.words.get(lang, ()), out.speech_rates.get(lang)
        )
        for lang in _targets(task, out)
    ]
    again = tuple(translation(r.language, r.waveform, r.words, r.rate) for r in out.renditions if opts.speech)
    transcript = _transcript(task, out, seg.start_ms)
    if opts.speech:
        timing = dataclasses.replace(timing, encode_ms=(time.perf_counter() - ready) * 1000)
    return SegmentResult(
        seg.segment_id,
        seg.start_ms,
        seg.end_ms,
        transcript,
        tuple(translations),
        timing,
        detected=_detected(task, out),
        batch_trace=job.batch_trace,
        renditions=again,
        spoken=out.units if opts.speech else (),
        heard_audio=seg.samples if task.conversation is not None and opts.speech else None,
    )


def build_interim(
    span: tuple[int, int, int], task: TranslationTask, job: EngineResult, out: ModelOutput, asked_at: float
) -> InterimResult:
    seg_id, start_ms, end_ms = span
    total_ms = (time.perf_counter() - asked_at) * 1000
    texts = tuple(Translation(lang, out.texts.get(lang, "")) for lang in _targets(task, out))
    transcript = _transcript(task, out)
    if transcript is not None:  # a caption is replaced by its final: no confidence (docs/api.md)
        transcript = dataclasses.replace(transcript, avg_logprob=None, tokens=())
    return InterimResult(
        seg_id,
        start_ms,
        end_ms,
        transcript,
        texts if task.output.text else (),
        Timing(queue_ms=job.queue_ms, model_ms=job.model_ms, total_ms=total_ms),
    )


def build_step_interim(
    span: tuple[int, int, int], task: TranslationTask, job: EngineResult, out: ModelOutput, asked_at: float
) -> InterimResult:
    """A simultaneous step's live caption: per target, the step's whole hypothesis as ``text``,
    its committed words (after the step) as ``stable_text``, which ``text`` starts with. Later
    steps and the final are forced to start with the committed tokens, so a settled part only
    grows (``text_delta`` never retracts)."""
    caption = build_interim(span, task, job, out, asked_at)
    if not task.output.text or out.simul is None:
        return caption
    texts = []
    for lang in task.target_languages:
        row = out.simul[lang]
        settled = row.committed_text
        texts.append(Translation(lang, settled + text_delta(settled, row.text), stable_text=settled))
    return dataclasses.replace(caption, translations=tuple(texts))


def overlap_ms(samples: int, budget_ms: int) -> int:
    """How far speech of ``samples`` at the model's rate runs past ``budget_ms`` (whole ms, up)."""
    return max(0, -(-(samples - budget_ms * PER_MS) // PER_MS))


def needs_encoding(out: OutputOptions) -> bool:
    """Speech that must be resampled or Opus-encoded (ms of CPU per segment: off the loop)."""
    return out.speech and (out.speech_sample_rate_hz != MODEL_SAMPLE_RATE or out.speech_encoding is SpeechEncoding.OPUS)


def _transcript(task: TranslationTask, out: ModelOutput, start_ms: int = 0) -> Transcript | None:
    language = task.source_language
    detected = _detected(task, out)
    if detected is not None:
        language = detected.language
    if task.output.transcript and language and out.transcript is not None:
        words = _shifted(out.transcript_words, start_ms)
        return Transcript(
            language, out.transcript, words, avg_logprob=out.transcript_logprob, tokens=out.transcript_tokens
        )
    return None


def _shifted(words: tuple[WordTiming, ...], ms: int) -> tuple[WordTiming, ...]:
    """Words timed from the segment's first sample, on the stream's timeline."""
    return tuple(dataclasses.replace(w, start_ms=w.start_ms + ms, end_ms=w.end_ms + ms) for w in words)


#: scores returned without candidates (any language): the most likely this many
TOP_SCORES = 5


def _targets(task: TranslationTask, out: ModelOutput) -> tuple[str, ...]:
    """The languages a segment's result is translated into: the task's targets, less (in a
    conversation) the language detected, which is its transcript's."""
    detected = _detected(task, out)
    if task.conversation is None or detected is None:
        return task.target_languages
    return tuple(lang for lang in task.target_languages if lang != detected.language)


def _detected(task: TranslationTask, out: ModelOutput) -> DetectedLanguage | None:
    """The detection the client asked for (none where KEEP terms made it internally). A
    conversation's language is the one the model chose (``ModelOutput.spoken``: the previous
    turn's may win over the top score, ``model_api/turns.py``), or the stated one (no scores)."""
    if task.conversation is not None and task.stated_language is not None and out.detected is None:
        return DetectedLanguage(out.spoken or task.stated_language, (), LanguageSource.STATED)
    if out.detected is None or task.detect is None:
        return None
    ranked = sorted(out.detected.items(), key=lambda kv: -kv[1])
    scores = tuple(ranked[:TOP_SCORES] if len(ranked) > TOP_SCORES else ranked)
    if task.conversation is None or out.spoken is None:
        return DetectedLanguage(ranked[0][0], scores)
    return DetectedLanguage(out.spoken, scores, turns.language_source(out.spoken, out.detected))


def _to_rate(wave: np.ndarray, rate: int) -> np.ndarray:
    return wave if rate == MODEL_SAMPLE_RATE else resample(wave, MODEL_SAMPLE_RATE, rate)
