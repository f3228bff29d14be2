"""Per-stream orchestration: audio in -> segments -> model jobs -> ordered results out.

``SessionManager`` holds what all streams share (engine, VAD worker, defaults, limits), admits
streams and validates requests. ``StreamSession`` is one stream: it decodes and resamples audio
chunks, scores them on the shared ``VadWorker`` thread, runs the segmenter, submits each closed
segment to the engine, and hands out speech events and results -- results strictly in segment
order, each as soon as it and all before it are ready. ``Translate`` (a whole clip) runs through the
very same ``StreamSession``: offline and live segmentation are the same code.

Flow control: a stream may have at most ``limits.max_unread_results`` segments submitted but not yet
taken by its reader. At the bound ``feed`` waits, so the transport stops reading that client's
audio and HTTP/2 flow control slows the client down; the server never computes more than the bound
for a client that does not read. Nothing waits on a reader that runs only later: the output is an
unbounded deque whose size that same bound limits, and ``Translate`` reads it concurrently.

Everything here runs on the event loop and is not thread-safe. Large chunks are decoded and
resampled on a worker thread (the session awaits it, so its state is never touched concurrently).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from translate_svc.audio.codec import SAMPLE_WIDTH, check_raw_format, decode_audio, decode_raw
from translate_svc.audio.resample import StreamResampler, resample
from translate_svc.engine.engine import JobResult, TranslationEngine
from translate_svc.engine.runner import ModelCard, ModelInput
from translate_svc.errors import ErrorCode, InvalidInput, LimitReached, Overloaded, ServiceError, shown
from translate_svc.settings import LimitsSettings, VadSettings
from translate_svc.types import (
    MODEL_SAMPLE_RATE,
    AudioEncoding,
    AudioFormat,
    OutputOptions,
    Segment,
    SegmentError,
    SegmentResult,
    Timing,
    Transcript,
    Translation,
    TranslationTask,
)
from translate_svc.vad.segmenter import (
    Segmenter,
    SegmenterConfig,
    SegmenterEvent,
    SegmentReady,
    SpeechDiscarded,
    SpeechEnded,
    SpeechStarted,
)
from translate_svc.vad.worker import VadWorker

logger = logging.getLogger(__name__)

#: chunks larger than this are decoded and resampled off the event loop (smaller ones cost less
#: than the thread hand-off: a 20 ms chunk takes ~20 us)
_OFFLOAD_BYTES = 64 * 1024
#: Translate refuses speech answers that could outgrow the message limit: this many seconds of
#: speech per second of input audio per target are assumed (SeamlessM4T speaks at about the
#: input's pace; see docs/api.md "Limits")
SPEECH_SECONDS_PER_INPUT_SECOND = 1.5


@dataclass(frozen=True)
class SpeechEvent:
    started: bool  # True: speech started; False: speech ended
    offset_ms: int


@dataclass(frozen=True)
class StreamEnded:
    segments_total: int
    audio_received_ms: int
    #: None: the client half-closed; else the limit that closed the stream (raised after this event)
    limit: LimitReached | None = None


StreamEvent = SpeechEvent | SegmentResult | StreamEnded


@dataclass(frozen=True)
class ClipResult:
    segments: list[SegmentResult]
    audio_duration_ms: int


class SessionManager:
    """Shared state of all sessions. Create one per server; event loop only."""

    def __init__(
        self, engine: TranslationEngine, vad: VadWorker, vad_defaults: VadSettings, limits: LimitsSettings
    ) -> None:
        self.engine = engine
        self.vad = vad
        self.vad_defaults = vad_defaults
        self.limits = limits
        SegmenterConfig.from_settings(vad_defaults)  # fail at start-up on inconsistent VAD defaults
        #: streams open now (admission control: ``limits.max_streams``)
        self.open_streams = 0

    @property
    def card(self) -> ModelCard:
        """The loaded model's card; raises NotReady while it loads."""
        return self.engine.card

    # -- validation -----------------------------------------------------------------------

    def resolve_task(self, source: str, targets: list[str], output: OutputOptions) -> TranslationTask:
        """Check languages and output options against the loaded model and the limits."""
        card = self.card
        text_codes, speech_codes = card.text_codes, card.speech_codes
        if not targets:
            raise InvalidInput('target_languages is empty: name at least one target language, e.g. "spa"')
        if len(targets) > self.limits.max_target_languages:
            raise InvalidInput(
                f"{len(targets)} target languages requested; this server allows at most "
                f"{self.limits.max_target_languages} per request"
            )
        dup = sorted({t for t in targets if targets.count(t) > 1})
        if dup:
            raise InvalidInput(f"target_languages lists {shown(dup[0])} more than once")
        for t in targets:
            if t not in text_codes:
                raise InvalidInput(
                    f"unknown target language {shown(t)}: use a code from ListLanguages "
                    f"({len(text_codes)} supported, e.g. {_examples(text_codes)})"
                )
            if output.speech and t not in speech_codes:
                raise InvalidInput(
                    f"target language {shown(t)} has text output only: set output.speech=false or pick a "
                    f"language with speech_output in ListLanguages (e.g. {_examples(speech_codes)})"
                )
        if source and source not in text_codes:
            raise InvalidInput(
                f"unknown source language {shown(source)}: use a code from ListLanguages "
                f"({len(text_codes)} supported, e.g. {_examples(text_codes)})"
            )
        if not 8000 <= output.speech_sample_rate_hz <= 48000:
            raise InvalidInput(
                f"output.speech_sample_rate_hz is {output.speech_sample_rate_hz}: use 8000..48000 (0 means 16000)"
            )
        if not 0 <= output.speaker_id < card.num_speakers:
            raise InvalidInput(f"output.speaker_id is {output.speaker_id}: use 0..{card.num_speakers - 1}")
        return TranslationTask(source_language=source or None, target_languages=tuple(targets), output=output)

    # -- the two ways in ------------------------------------------------------------------

    def open_stream(self, fmt: AudioFormat, task: TranslationTask, vad: VadSettings) -> StreamSession:
        """Admit a new stream; ``StreamSession.close`` must be called when it ends."""
        check_raw_format(fmt, allow_container=False)
        if self.open_streams >= self.limits.max_streams:
            raise Overloaded(
                f"this server is at its stream capacity ({self.limits.max_streams} open streams); "
                "retry shortly or on another server",
                retry_after_ms=1000,
            )
        session = StreamSession(self, fmt, task, vad)
        session.admitted = True
        self.open_streams += 1
        return session

    async def translate_clip(
        self, content: bytes, fmt: AudioFormat, task: TranslationTask, vad: VadSettings
    ) -> ClipResult:
        """Translate a whole clip: the same pipeline as a stream, fed at once, then half-closed."""
        limit_s = self.limits.max_clip_seconds
        samples, rate = await asyncio.to_thread(decode_audio, content, fmt, max_seconds=limit_s)
        duration_s = len(samples) / rate
        if duration_s > limit_s:  # decode_audio checks it already; kept as the contract's last word
            raise InvalidInput(
                f"the clip is {duration_s:.1f} s long; Translate takes at most {limit_s:.0f} s "
                "(use StreamingTranslate for longer audio)"
            )
        self._check_answer_size(duration_s, task)
        session = StreamSession(self, AudioFormat(AudioEncoding.FLOAT32, rate, 1), task, vad, strict_queue=True)
        collect = asyncio.create_task(_results(session), name=f"collect-{session.session_id}")
        try:
            await session.feed_samples(samples)
            del samples
            await session.finish()
            results = await collect
        except BaseException:
            session.abort()
            collect.cancel()
            await asyncio.gather(collect, return_exceptions=True)
            raise
        finally:
            session.close()
        return ClipResult(results, round(duration_s * 1000))

    def _check_answer_size(self, duration_s: float, task: TranslationTask) -> None:
        """Refuse up front a Translate whose speech could not fit one response message."""
        out = task.output
        if not out.speech:
            return
        per_s = 2 * out.speech_sample_rate_hz * SPEECH_SECONDS_PER_INPUT_SECOND * len(task.target_languages)
        budget = self.limits.max_message_bytes - 64 * 1024  # room for texts and framing
        if duration_s * per_s > budget:
            fits = budget / per_s
            raise InvalidInput(
                f"a {duration_s:.0f} s clip with speech in {len(task.target_languages)} language(s) at "
                f"{out.speech_sample_rate_hz} Hz may not fit one {self.limits.max_message_bytes}-byte response: "
                f"send at most {fits:.0f} s, fewer targets or a lower speech_sample_rate_hz, or use StreamingTranslate"
            )


async def _results(session: StreamSession) -> list[SegmentResult]:
    return [ev async for ev in session.events() if isinstance(ev, SegmentResult)]


class StreamSession:
    """One stream. Call ``feed``/``flush``/``finish`` from the request side and iterate ``events``
    on the response side (both on the event loop); ``close`` when the call is over."""

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
        self._limits = manager.limits
        self._resampler = StreamResampler(fmt.sample_rate_hz, MODEL_SAMPLE_RATE)
        self._vad_state = manager.vad.vad.new_state()
        self._segmenter = Segmenter(SegmenterConfig.from_settings(vad))
        self._out: collections.deque[StreamEvent] = collections.deque()
        self._wake = asyncio.Event()  # set when _out grows or the stream fails
        self._room = asyncio.Event()  # set while fewer than max_unread_results are unread
        self._room.set()
        self._pending: dict[int, asyncio.Future[JobResult]] = {}
        self._done: dict[int, SegmentResult] = {}
        self._failure: ServiceError | None = None
        self._next_id = 0  # segments submitted so far
        self._next_emit = 0  # next result to move to _out
        self._taken = 0  # results the reader has taken
        self._input_frames = 0
        self._pos16k = 0  # 16 kHz samples given to the segmenter so far
        self._finished = False
        self._ended = False
        self._strict_queue = strict_queue
        self._end_limit: LimitReached | None = None
        #: counted in ``manager.open_streams`` (streams are; Translate's clip sessions are not)
        self.admitted = False
        self._log = {"session_id": self.session_id}

    @property
    def audio_received_ms(self) -> int:
        return round(self._input_frames * 1000 / self.fmt.sample_rate_hz)

    @property
    def unread(self) -> int:
        """Segments submitted whose result the reader has not taken yet."""
        return self._next_id - self._taken

    def close(self) -> None:
        """The call is over (any way): drop queued work, release the stream's admission slot."""
        self.abort()
        if self.admitted:
            self.admitted = False
            self._m.open_streams -= 1

    # -- requests side ----------------------------------------------------------------------

    async def feed(self, data: bytes) -> None:
        """One raw audio chunk in the stream's format. Waits while the reader is behind."""
        if len(data) > self._limits.max_chunk_bytes:
            raise InvalidInput(
                f"audio chunk of {len(data)} bytes exceeds the limit of {self._limits.max_chunk_bytes} bytes; "
                "send smaller chunks (20-200 ms each is typical)"
            )
        if not data:
            return
        await self._room.wait()
        frames = self._input_frames + len(data) // (SAMPLE_WIDTH[self.fmt.encoding] * self.fmt.channels)
        if frames > self._limits.max_stream_seconds * self.fmt.sample_rate_hz:
            raise LimitReached(
                f"the stream reached its maximum duration of {self._limits.max_stream_seconds:.0f} s; audio after "
                f"{self.audio_received_ms} ms was not processed: open a new stream to continue",
                reason="max_stream_duration",
            )
        if len(data) <= _OFFLOAD_BYTES:
            samples16k = self._ingest(decode_raw(data, self.fmt))
        else:
            samples16k = await asyncio.to_thread(lambda: self._ingest(decode_raw(data, self.fmt)))
        await self._scored(samples16k)

    async def feed_samples(self, samples: np.ndarray) -> None:
        """Mono float32 samples at the stream's input rate (a whole clip: resampled off the loop)."""
        await self._scored(await asyncio.to_thread(self._ingest, samples))

    def _ingest(self, samples: np.ndarray) -> np.ndarray:
        self._input_frames += len(samples)
        return self._resampler.process(samples)

    async def _scored(self, samples16k: np.ndarray, *, last: bool = False) -> None:
        probs = await self._m.vad.probabilities(self._vad_state, samples16k, last=last)
        self._pos16k += len(samples16k)
        self._handle(self._segmenter.push(samples16k, probs))

    async def flush(self) -> None:
        self._handle(self._segmenter.flush())

    async def finish(self, limit: LimitReached | None = None) -> None:
        """Half-close (or a limit reached): close open speech; ``events`` ends after the last result
        and StreamEnded (then raises ``limit`` if given)."""
        await self._scored(self._resampler.process(np.zeros(0, np.float32), last=True), last=True)
        self._handle(self._segmenter.finish())
        self._finished = True
        self._end_limit = limit
        self._emit_ready()

    def abort(self) -> None:
        """Client gone: drop queued work; nothing more is computed for this session."""
        self._m.engine.abort(self.session_id)
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()

    def fail(self, error: ServiceError) -> None:
        """End the stream with ``error`` (bad input in a later message): ``events`` raises it."""
        self.abort()
        self._failure = error
        self._wake.set()

    # -- responses side ---------------------------------------------------------------------

    async def events(self) -> AsyncIterator[StreamEvent]:
        while True:
            while not self._out:
                if self._failure is not None:
                    raise self._failure
                self._wake.clear()
                await self._wake.wait()
            if self._failure is not None:
                raise self._failure
            ev = self._out.popleft()
            if isinstance(ev, SegmentResult):
                self._taken += 1
                if self.unread < self._limits.max_unread_results:
                    self._room.set()
            yield ev
            if isinstance(ev, StreamEnded):
                if ev.limit is not None:
                    raise ev.limit
                return

    # -- internals --------------------------------------------------------------------------

    def _put(self, ev: StreamEvent) -> None:
        self._out.append(ev)
        self._wake.set()

    def _handle(self, events: list[SegmenterEvent]) -> None:
        for ev in events:
            if isinstance(ev, SpeechStarted):
                self._put(SpeechEvent(True, ev.offset_ms))
            elif isinstance(ev, SpeechEnded):
                self._put(SpeechEvent(False, ev.offset_ms))
            elif isinstance(ev, SegmentReady):
                self._submit(ev)
            elif isinstance(ev, SpeechDiscarded):
                logger.debug("discarded %s", ev, extra=self._log)
        if self.unread >= self._limits.max_unread_results:
            self._room.clear()
        self._emit_ready()

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
        vad_wait_ms = max(0, self._pos16k - end) / _PER_MS
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
            self._done[seg.segment_id] = _failed(seg, e, closed_at, vad_wait_ms)
            return
        self._pending[seg.segment_id] = fut
        fut.add_done_callback(functools.partial(self._on_result, seg, closed_at=closed_at, vad_wait_ms=vad_wait_ms))

    def _on_result(self, seg: Segment, fut: asyncio.Future[JobResult], *, closed_at: float, vad_wait_ms: float) -> None:
        if self._pending.pop(seg.segment_id, None) is None or fut.cancelled():
            return  # aborted
        exc = fut.exception()
        if exc is not None:
            err = exc if isinstance(exc, ServiceError) else ServiceError("the model failed on this segment")
            self._done[seg.segment_id] = _failed(seg, err, closed_at, vad_wait_ms)
        else:
            self._done[seg.segment_id] = _build_result(seg, self.task, fut.result(), closed_at, vad_wait_ms)
        self._emit_ready()

    def _emit_ready(self) -> None:
        while self._next_emit in self._done:
            self._put(self._done.pop(self._next_emit))
            self._next_emit += 1
        if self._finished and not self._ended and self._next_emit == self._next_id and not self._pending:
            self._ended = True
            self._put(StreamEnded(self._next_id, self.audio_received_ms, self._end_limit))


_PER_MS = MODEL_SAMPLE_RATE // 1000


def _examples(codes: frozenset[str]) -> str:
    return ", ".join(sorted(codes)[:3])


def _failed(seg: Segment, err: ServiceError, closed_at: float, vad_wait_ms: float) -> SegmentResult:
    return SegmentResult(
        segment_id=seg.segment_id,
        start_ms=seg.start_ms,
        end_ms=seg.end_ms,
        timing=Timing(total_ms=(time.perf_counter() - closed_at) * 1000, vad_wait_ms=vad_wait_ms),
        error=SegmentError(err.code.value if isinstance(err.code, ErrorCode) else str(err.code), err.message),
    )


def _build_result(
    seg: Segment, task: TranslationTask, job: JobResult, closed_at: float, vad_wait_ms: float
) -> SegmentResult:
    total_ms = (time.perf_counter() - closed_at) * 1000
    timing = Timing(queue_ms=job.queue_ms, model_ms=job.model_ms, total_ms=total_ms, vad_wait_ms=vad_wait_ms)
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
