"""Per-stream orchestration: audio in -> segments -> model jobs -> ordered results out.

``SessionManager`` holds what all streams share (engine, VAD model, settings, language catalog)
and validates requests. ``StreamSession`` is one stream: it decodes and resamples audio chunks,
runs VAD (on the shared ``VadWorker`` thread) + the segmenter, submits each closed segment to the
engine, and yields speech events and results -- results strictly in segment order, each as soon
as it and all before it are ready. ``Translate`` (a whole clip) runs through the very same
``StreamSession``: offline and live segmentation are the same code.

Everything here runs on the event loop; nothing here is thread-safe or needs to be (the VAD
thread gets a stream's state only while that stream awaits it).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np

from translate_svc.audio.codec import check_raw_format, decode_audio, decode_raw
from translate_svc.audio.resample import StreamResampler, resample
from translate_svc.engine.engine import JobResult, TranslationEngine
from translate_svc.errors import ErrorCode, InvalidInput, NotReady, Overloaded, ServiceError
from translate_svc.model.seamless import ModelInput, SeamlessRunner
from translate_svc.settings import LimitsSettings, VadSettings
from translate_svc.types import (
    MODEL_SAMPLE_RATE,
    AudioEncoding,
    AudioFormat,
    Language,
    ModelInfo,
    OutputOptions,
    Segment,
    SegmentError,
    SegmentResult,
    Timing,
    Transcript,
    Translation,
    TranslationTask,
)
from translate_svc.vad.segmenter import SegmenterConfig, SegmentReady, SpeechDiscarded, SpeechEnded, SpeechStarted
from translate_svc.vad.silero import SileroVad, StreamSegmenter
from translate_svc.vad.worker import VadWorker

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeechEvent:
    started: bool  # True: speech started; False: speech ended
    offset_ms: int


@dataclass(frozen=True)
class StreamEnded:
    segments_total: int
    audio_received_ms: int


@dataclass(frozen=True)
class _StreamFailed:
    error: ServiceError


StreamEvent = SpeechEvent | SegmentResult | StreamEnded


@dataclass(frozen=True)
class ClipResult:
    segments: list[SegmentResult]
    audio_duration_ms: int


class SessionManager:
    """Shared state of all sessions. Create one per server; safe to use from the event loop only."""

    def __init__(
        self,
        engine: TranslationEngine,
        vad: SileroVad,
        vad_defaults: VadSettings,
        limits: LimitsSettings,
        *,
        on_vad_call: Callable[[int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.vad = vad
        #: scores every stream's audio off the event loop, streams that wait together in one call
        self.vad_worker = VadWorker(vad, on_call=on_vad_call)
        self.vad_defaults = vad_defaults
        self.limits = limits

    def close(self) -> None:
        """After the server stopped taking calls: stop the VAD thread."""
        self.vad_worker.close()

    # -- what the model offers ----------------------------------------------------------

    def _runner(self) -> SeamlessRunner:
        runner = self.engine.runner
        if runner is None or not self.engine.healthy:
            raise NotReady("the model is still loading (or has failed); retry when health reports SERVING")
        return runner

    @property
    def model_info(self) -> ModelInfo:
        return self._runner().info

    def languages(self) -> list[Language]:
        return self._runner().catalog.languages()

    # -- validation -----------------------------------------------------------------------

    def resolve_task(self, source: str, targets: list[str], output: OutputOptions) -> TranslationTask:
        """Check languages and output options against the loaded model and the limits."""
        runner = self._runner()
        text_codes, speech_codes = runner.catalog.text_codes, runner.catalog.speech_codes
        if not targets:
            raise InvalidInput('target_languages is empty: name at least one target language, e.g. "spa"')
        if len(targets) > self.limits.max_target_languages:
            raise InvalidInput(
                f"{len(targets)} target languages requested; this server allows at most "
                f"{self.limits.max_target_languages} per request"
            )
        dup = sorted({t for t in targets if targets.count(t) > 1})
        if dup:
            raise InvalidInput(f"target_languages lists {', '.join(dup)} more than once")
        for t in targets:
            if t not in text_codes:
                raise InvalidInput(f"unknown target language {t!r}; supported: {', '.join(sorted(text_codes))}")
            if output.speech and t not in speech_codes:
                raise InvalidInput(
                    f"target language {t!r} has text output only; set output.speech=false or pick a "
                    f"speech language: {', '.join(sorted(speech_codes))}"
                )
        if source and source not in text_codes:
            raise InvalidInput(f"unknown source language {source!r}; supported: {', '.join(sorted(text_codes))}")
        if not 8000 <= output.speech_sample_rate_hz <= 48000:
            raise InvalidInput(
                f"output.speech_sample_rate_hz is {output.speech_sample_rate_hz}: use 8000..48000 (0 means 16000)"
            )
        if not 0 <= output.speaker_id < runner.num_speakers:
            raise InvalidInput(f"output.speaker_id is {output.speaker_id}: use 0..{runner.num_speakers - 1}")
        return TranslationTask(source_language=source or None, target_languages=tuple(targets), output=output)

    # -- the two ways in ------------------------------------------------------------------

    def open_stream(self, fmt: AudioFormat, task: TranslationTask, vad: VadSettings) -> StreamSession:
        check_raw_format(fmt, allow_container=False)
        return StreamSession(self, fmt, task, vad)

    async def translate_clip(
        self, content: bytes, fmt: AudioFormat, task: TranslationTask, vad: VadSettings
    ) -> ClipResult:
        """Translate a whole clip: the same pipeline as a stream, fed at once, then half-closed."""
        if fmt.encoding is not AudioEncoding.CONTAINER:
            check_raw_format(fmt)
        samples, rate = decode_audio(content, fmt)
        duration_s = len(samples) / rate
        if duration_s > self.limits.max_clip_seconds:
            raise InvalidInput(
                f"the clip is {duration_s:.1f} s long; Translate takes at most {self.limits.max_clip_seconds:.0f} s "
                "(use StreamingTranslate for longer audio)"
            )
        session = StreamSession(self, AudioFormat(AudioEncoding.FLOAT32, rate, 1), task, vad, strict_queue=True)
        try:
            await session.feed_samples(samples)
            await session.finish()
            results = [ev async for ev in session.events() if isinstance(ev, SegmentResult)]
        except BaseException:
            session.abort()
            raise
        return ClipResult(results, round(duration_s * 1000))


class StreamSession:
    """One stream. Call ``feed``/``flush``/``finish`` from the request side and iterate ``events``
    on the response side (both on the event loop)."""

    def __init__(
        self,
        manager: SessionManager,
        fmt: AudioFormat,
        task: TranslationTask,
        vad: VadSettings,
        *,
        strict_queue: bool = False,
    ) -> None:
        self.session_id = uuid.uuid4().hex
        self.fmt = fmt
        self.task = task
        self.vad_settings = vad
        self._m = manager
        self._resampler = StreamResampler(fmt.sample_rate_hz, MODEL_SAMPLE_RATE)
        self._segmenter = StreamSegmenter(manager.vad, SegmenterConfig.from_settings(vad))
        # Bounded: if the client stops reading, feeding blocks, and so does reading its requests.
        self._out: asyncio.Queue[StreamEvent] = asyncio.Queue(maxsize=256)
        self._pending: dict[int, asyncio.Future[JobResult]] = {}
        self._done: dict[int, SegmentResult] = {}
        self._next_id = 0
        self._next_emit = 0
        self._input_frames = 0
        self._finished = False
        self._strict_queue = strict_queue
        self._emit_lock = asyncio.Lock()  # results leave in order even when a put has to wait
        self._tasks: set[asyncio.Task[None]] = set()
        self._log = {"session_id": self.session_id}

    @property
    def audio_received_ms(self) -> int:
        return round(self._input_frames * 1000 / self.fmt.sample_rate_hz)

    # -- requests side ----------------------------------------------------------------------

    async def feed(self, data: bytes) -> None:
        """One raw audio chunk in the stream's format."""
        if len(data) > self._m.limits.max_chunk_bytes:
            raise InvalidInput(
                f"audio chunk of {len(data)} bytes exceeds the limit of {self._m.limits.max_chunk_bytes} bytes; "
                "send smaller chunks (20-200 ms each is typical)"
            )
        if not data:
            return
        await self.feed_samples(decode_raw(data, self.fmt))

    async def feed_samples(self, samples: np.ndarray) -> None:
        """Mono float32 samples at the stream's input rate."""
        self._input_frames += len(samples)
        await self._scored(self._resampler.process(samples))

    async def _scored(self, samples16k: np.ndarray) -> None:
        probs = await self._m.vad_worker.probabilities(self._segmenter.vad_state, samples16k)
        await self._handle(self._segmenter.push(samples16k, probs))

    async def flush(self) -> None:
        await self._handle(self._segmenter.flush())

    async def finish(self) -> None:
        """Half-close: close open speech; ``events`` ends after the last result and StreamEnded."""
        await self._scored(self._resampler.process(np.zeros(0, np.float32), last=True))
        await self._handle(self._segmenter.finish())
        self._finished = True
        await self._emit_ready()

    def abort(self) -> None:
        """Client gone: drop queued work; nothing more is computed for this session."""
        self._m.engine.abort(self.session_id)
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()

    # -- responses side ---------------------------------------------------------------------

    async def fail(self, error: ServiceError) -> None:
        """End the stream with ``error`` (bad input in a later message): ``events`` raises it."""
        self.abort()
        await self._out.put(_StreamFailed(error))  # type: ignore[arg-type]

    async def events(self) -> AsyncIterator[StreamEvent]:
        while True:
            ev = await self._out.get()
            if isinstance(ev, _StreamFailed):
                raise ev.error
            yield ev
            if isinstance(ev, StreamEnded):
                return

    # -- internals --------------------------------------------------------------------------

    async def _handle(self, events: list) -> None:  # type: ignore[type-arg]
        for ev in events:
            if isinstance(ev, SpeechStarted):
                await self._out.put(SpeechEvent(True, ev.offset_ms))
            elif isinstance(ev, SpeechEnded):
                await self._out.put(SpeechEvent(False, ev.offset_ms))
            elif isinstance(ev, SegmentReady):
                self._submit(ev)
            elif isinstance(ev, SpeechDiscarded):
                logger.debug("discarded %s", ev, extra=self._log)
        await self._emit_ready()

    def _submit(self, ev: SegmentReady) -> None:
        # Whole milliseconds, so [start_ms, end_ms) is exactly the audio the model gets.
        start = -(-ev.start_sample // _PER_MS) * _PER_MS
        end = max(start, ev.end_sample // _PER_MS * _PER_MS)
        seg = Segment(
            segment_id=self._next_id,
            start_ms=start // _PER_MS,
            end_ms=end // _PER_MS,
            samples=ev.samples[start - ev.start_sample : end - ev.start_sample],
        )
        self._next_id += 1
        closed_at = time.perf_counter()
        t = self.task
        item = ModelInput(
            audio=seg.samples,
            targets=t.target_languages,
            transcript_language=t.source_language if t.output.transcript else None,
            speech=t.output.speech,
            speaker_id=t.output.speaker_id,
        )
        try:
            fut = self._m.engine.submit(self.session_id, item)
        except Overloaded as e:
            if self._strict_queue:
                raise
            self._done[seg.segment_id] = _failed(seg, e, closed_at)
            return
        self._pending[seg.segment_id] = fut
        fut.add_done_callback(functools.partial(self._on_result, seg, closed_at=closed_at))

    def _on_result(self, seg: Segment, fut: asyncio.Future[JobResult], *, closed_at: float) -> None:
        self._pending.pop(seg.segment_id, None)
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            err = exc if isinstance(exc, ServiceError) else ServiceError(repr(exc))
            self._done[seg.segment_id] = _failed(seg, err, closed_at)
        else:
            self._done[seg.segment_id] = _build_result(seg, self.task, fut.result(), closed_at)
        task = asyncio.get_running_loop().create_task(self._emit_ready())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _emit_ready(self) -> None:
        async with self._emit_lock:
            while self._next_emit in self._done:
                result = self._done.pop(self._next_emit)
                self._next_emit += 1
                await self._out.put(result)
            await self._maybe_end()

    async def _maybe_end(self) -> None:
        if self._finished and self._next_emit == self._next_id and not self._pending:
            self._finished = False  # end exactly once
            await self._out.put(StreamEnded(self._next_id, self.audio_received_ms))


_PER_MS = MODEL_SAMPLE_RATE // 1000


def _failed(seg: Segment, err: ServiceError, closed_at: float) -> SegmentResult:
    return SegmentResult(
        segment_id=seg.segment_id,
        start_ms=seg.start_ms,
        end_ms=seg.end_ms,
        timing=Timing(total_ms=(time.perf_counter() - closed_at) * 1000),
        error=SegmentError(err.code.value if isinstance(err.code, ErrorCode) else str(err.code), err.message),
    )


def _build_result(seg: Segment, task: TranslationTask, job: JobResult, closed_at: float) -> SegmentResult:
    timing = Timing(queue_ms=job.queue_ms, model_ms=job.model_ms, total_ms=(time.perf_counter() - closed_at) * 1000)
    if job.output is None:
        return SegmentResult(seg.segment_id, seg.start_ms, seg.end_ms, timing=timing, error=job.error)
    out, opts = job.output, task.output
    transcript = None
    if opts.transcript and task.source_language and out.transcript is not None:
        transcript = Transcript(task.source_language, out.transcript)
    translations = tuple(
        Translation(
            target_language=lang,
            text=out.texts.get(lang, "") if opts.text else "",
            audio=_to_rate(out.waveforms[lang], opts.speech_sample_rate_hz) if opts.speech else None,
            sample_rate_hz=opts.speech_sample_rate_hz,
        )
        for lang in task.target_languages
    )
    return SegmentResult(seg.segment_id, seg.start_ms, seg.end_ms, transcript, translations, timing)


def _to_rate(wave: np.ndarray, rate: int) -> np.ndarray:
    return wave if rate == MODEL_SAMPLE_RATE else resample(wave, MODEL_SAMPLE_RATE, rate)
