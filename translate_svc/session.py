"""Per-stream orchestration: audio in -> segments -> model jobs -> ordered results out.

``SessionManager`` holds what all streams share (engine, VAD worker, defaults, limits), admits
streams and validates requests. ``StreamSession`` is one stream: it decodes and resamples audio
chunks, scores them on the shared ``VadWorker`` thread, runs the segmenter, submits each closed
segment to the engine, and hands out speech events and results -- results strictly in segment
order, each as soon as it and all before it are ready. ``Translate`` (a whole clip) runs through the
very same ``StreamSession``: offline and live segmentation are the same code.

Flow control (fair share): a session may have at most ``SessionManager.fair_share()`` segments
submitted but not yet taken by its reader: ``limits.max_unread_results``, or an equal share of the
engine's queue when many sessions are open, so all of them together cannot fill it. At the bound
``feed`` waits, so the transport stops reading that client's audio and HTTP/2 flow control slows
the client down: a stream that sends faster than real time is slowed on its own stream, and the
server never computes more than the bound for a client that does not read. A ``Translate`` clip
is fed the same way, a block at a time. Nothing waits on a reader that runs only later: the output
is an unbounded deque whose size that same bound limits, and ``Translate`` reads it concurrently.

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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from translate_svc.audio.codec import check_stream_format, decode_audio, decode_raw
from translate_svc.audio.opus import OPUS_RATE, OpusStreamDecoder, encode_opus
from translate_svc.audio.resample import StreamResampler, resample
from translate_svc.engine.engine import JobResult, TranslationEngine
from translate_svc.engine.runner import ModelCard, ModelInput
from translate_svc.errors import (
    ErrorCode,
    InvalidInput,
    LimitReached,
    NotReady,
    Overloaded,
    ServiceError,
    shown,
)
from translate_svc.settings import LimitsSettings, VadSettings
from translate_svc.types import (
    MODEL_SAMPLE_RATE,
    AudioEncoding,
    AudioFormat,
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
from translate_svc.vad.segmenter import (
    WINDOW_SAMPLES,
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
#: VAD windows (16 kHz samples) and the most audio that may wait for the VAD per session (1 s)
_WINDOW = WINDOW_SAMPLES
_VAD_BACKLOG = MODEL_SAMPLE_RATE
#: a Translate clip goes through resampling and the VAD this many seconds at a time (flow control
#: between blocks; chunking does not change the segments)
_CLIP_BLOCK_S = 30
#: Translate refuses speech answers that could outgrow the message limit: this many seconds of
#: speech per second of input audio per target are assumed (SeamlessM4T speaks at about the
#: input's pace; see docs/api.md "Limits")
SPEECH_SECONDS_PER_INPUT_SECOND = 1.5


@dataclass(frozen=True)
class SpeechEvent:
    started: bool  # True: speech started; False: speech ended
    offset_ms: int


@dataclass(frozen=True)
class Draining:
    """The server is shutting down: the stream is translated until ``deadline_unix_ms``, then ends
    with StreamEnded(limit=ShuttingDown) so that the client resumes on another server."""

    deadline_unix_ms: int
    remaining_ms: int


@dataclass(frozen=True)
class Resume:
    """Where a resumed stream continues (``StreamingConfig.resume``)."""

    token: str
    next_segment_id: int
    offset_ms: int


@dataclass(frozen=True)
class StreamEnded:
    segments_total: int
    audio_received_ms: int
    #: None: the client half-closed; else the limit that closed the stream (raised after this event)
    limit: LimitReached | None = None
    #: of ``audio_received_ms``, the time skipped by packet timestamps and filled with silence
    audio_filled_ms: int = 0
    #: audio from here on (the stream's timeline) was not translated: a resumed call starts here
    resume_offset_ms: int = 0


StreamEvent = SpeechEvent | SegmentResult | InterimResult | Draining | StreamEnded


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
        #: sessions alive now, streams and Translate clips (their fair share of the engine queue)
        self.sessions = 0
        #: admitted streams (a drain tells each of them)
        self.live: set[StreamSession] = set()
        #: set by ``drain``: new streams are refused, live ones end at the deadline
        self.draining: Draining | None = None
        self._no_live = asyncio.Event()  # set while no stream is admitted
        self._no_live.set()

    async def wait_no_live(self) -> None:
        """Until every admitted stream has closed (a drain waits for it)."""
        await self._no_live.wait()

    def fair_share(self) -> int:
        """Segments one session may have in the engine and unread (flow control): at most
        ``limits.max_unread_results``, and no more than an equal share of the engine's queue, so
        the sessions together cannot fill it and a real-time stream's segment is never refused
        because another session sent faster than real time."""
        return max(1, min(self.limits.max_unread_results, self.engine.max_queued // max(1, self.sessions)))

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
        if output.speech_encoding is SpeechEncoding.OPUS and output.speech_sample_rate_hz != OPUS_RATE:
            raise InvalidInput(
                f"output.speech_sample_rate_hz is {output.speech_sample_rate_hz}: Opus speech is 48 kHz, "
                "leave it 0 or set 48000"
            )
        if not 0 <= output.speaker_id < card.num_speakers:
            raise InvalidInput(f"output.speaker_id is {output.speaker_id}: use 0..{card.num_speakers - 1}")
        return TranslationTask(source_language=source or None, target_languages=tuple(targets), output=output)

    # -- the two ways in ------------------------------------------------------------------

    def drain(self, seconds: float) -> Draining:
        """The server is shutting down: refuse new streams; tell every live stream that it is
        translated for ``seconds`` more and then ends with "resume elsewhere"."""
        if self.draining is None:
            remaining_ms = round(seconds * 1000)
            self.draining = Draining(round(time.time() * 1000) + remaining_ms, remaining_ms)
            deadline = asyncio.get_running_loop().time() + seconds
            for session in list(self.live):
                session.begin_drain(self.draining, deadline)
        return self.draining

    def open_stream(
        self,
        fmt: AudioFormat,
        task: TranslationTask,
        vad: VadSettings,
        *,
        interim_interval_ms: int = 0,
        resume: Resume | None = None,
    ) -> StreamSession:
        """Admit a new stream; ``StreamSession.close`` must be called when it ends."""
        if self.draining is not None:
            raise NotReady("this server is shutting down and takes no new streams: connect to another server")
        check_stream_format(fmt)
        if resume is not None:
            _check_resume(resume)
        least = self.limits.min_interim_interval_ms
        if interim_interval_ms and not least <= interim_interval_ms <= 60_000:
            raise InvalidInput(
                f"interim_interval_ms is {interim_interval_ms}: use 0 (no live captions) or {least}..60000"
            )
        if interim_interval_ms and not (task.output.text or task.output.transcript):
            raise InvalidInput("interim_interval_ms needs text: set output.text or output.transcript")
        if self.open_streams >= self.limits.max_streams:
            raise Overloaded(
                f"this server is at its stream capacity ({self.limits.max_streams} open streams); "
                "retry shortly or on another server",
                retry_after_ms=1000,
            )
        session = StreamSession(self, fmt, task, vad, interim_interval_ms=interim_interval_ms, resume=resume)
        session.admitted = True
        self.open_streams += 1
        self.live.add(session)
        self._no_live.clear()
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
        interim_interval_ms: int = 0,
        resume: Resume | None = None,
    ) -> None:
        self.session_id = uuid.uuid4().hex
        #: names the stream across calls; a resumed call keeps its token
        self.resume_token = resume.token if resume is not None else self.session_id
        #: the stream's timeline starts this many ms before this call's first sample (a resume)
        self._offset_ms = resume.offset_ms if resume is not None else 0
        first_id = resume.next_segment_id if resume is not None else 0
        self.fmt = fmt
        self.task = task
        self.vad_settings = vad
        self._m = manager
        self._limits = manager.limits
        self._resampler = StreamResampler(fmt.sample_rate_hz, MODEL_SAMPLE_RATE)
        self._decode = _stream_decoder(fmt)
        self._vad_state = manager.vad.vad.new_state()
        self._segmenter = Segmenter(SegmenterConfig.from_settings(vad))
        self._out: collections.deque[StreamEvent] = collections.deque()
        self._wake = asyncio.Event()  # set when _out grows or the stream fails
        self._room = asyncio.Event()  # set while under the fair share and the VAD backlog (_update_room)
        self._room.set()
        # the VAD runs behind the feed: audio submitted and not yet scored, the sub-window rest
        # not yet submitted (a request without a whole window is work for nothing)
        self._vad_backlog = 0  # 16 kHz samples submitted to the VAD, not yet back
        self._vad_inflight = 0
        self._vad_idle = asyncio.Event()  # set while nothing is at the VAD
        self._vad_idle.set()
        self._carry: list[np.ndarray] = []
        self._carry_n = 0
        self._submitted16k = 0  # 16 kHz samples submitted to the VAD so far
        self._aborted = False
        #: a drain's deadline (event-loop time), and the transport's read timeout to bring forward
        self.drain_deadline: float | None = None
        self.read_timeout: asyncio.Timeout | None = None
        #: the transport's copy of the resume request, echoed in StreamStarted (opaque here)
        self.resume_pb: Any = None
        #: segments submitted and not yet done: the model's future, then (speech encoded off the
        #: loop) the encoding's
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._done: dict[int, SegmentResult] = {}
        self._failure: ServiceError | None = None
        self._next_id = first_id  # the next segment's id (ids continue across a resume)
        self._next_emit = first_id  # next result to move to _out
        self._taken = first_id  # results the reader has taken (from first_id on)
        # the timeline's length in input samples (filled gaps included; a resume starts at its offset)
        self._input_frames = round(self._offset_ms * fmt.sample_rate_hz / 1000)
        self._filled_frames = 0  # of it, skipped by packet timestamps and filled with silence
        self._pos16k = 0  # 16 kHz samples given to the segmenter so far
        # live captions: every this many 16 kHz samples of open speech (0: off), one in flight
        self.interim_interval_ms = interim_interval_ms
        self._interim_every = interim_interval_ms * _PER_MS
        self._interim: asyncio.Future[JobResult] | None = None
        self._interim_seg = -1  # the segment the next caption is for ...
        self._interim_mark = 0  # ... and where (16 kHz sample) its last caption ended
        #: captions skipped because the engine was behind (tests and benchmarks read it)
        self.interims_skipped = 0
        self._finished = False
        self._ended = False
        self._strict_queue = strict_queue
        self._end_limit: LimitReached | None = None
        #: counted in ``manager.open_streams`` (streams are; Translate's clip sessions are not)
        self.admitted = False
        self._log = {"session_id": self.session_id}
        self._counted = True
        manager.sessions += 1

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
            self._m.live.discard(self)
            if not self._m.live:
                self._m._no_live.set()
        if self._counted:
            self._counted = False
            self._m.sessions -= 1

    # -- requests side ----------------------------------------------------------------------

    async def feed(self, data: bytes, timestamp: int | None = None) -> None:
        """One audio message in the stream's format (OPUS: one packet). ``timestamp``: where its first
        sample belongs on the timeline, in input samples; a skipped stretch is filled with silence.
        Waits while the reader is behind."""
        if len(data) > self._limits.max_chunk_bytes:
            raise InvalidInput(
                f"audio chunk of {len(data)} bytes exceeds the limit of {self._limits.max_chunk_bytes} bytes; "
                "send smaller chunks (20-200 ms each is typical)"
            )
        gap = 0 if timestamp is None else self._gap(timestamp)
        if not data and not gap:
            return
        if not self._room.is_set():
            await self._room.wait()
        self._raise_failure()
        if gap:
            self._check_duration(gap)
            self._filled_frames += gap
            await self._fill(gap)
        if not data:
            return
        if len(data) <= _OFFLOAD_BYTES:
            samples = self._decode(data)
        else:
            samples = await asyncio.to_thread(self._decode, data)
        self._check_duration(len(samples))
        if len(samples) <= _OFFLOAD_BYTES // 4:
            self._score(self._ingest(samples))
        else:
            self._score(await asyncio.to_thread(self._ingest, samples))

    def _gap(self, timestamp: int) -> int:
        """Input samples between the timeline's end and ``timestamp`` (checked)."""
        gap = timestamp - self._input_frames
        if gap < 0:
            raise InvalidInput(
                f"packet timestamp {timestamp} goes back: the stream's audio already reaches sample "
                f"{self._input_frames}; send packets in order and drop late ones"
            )
        most = self._limits.idle_timeout_s * self.fmt.sample_rate_hz
        if gap > most:
            raise InvalidInput(
                f"packet timestamp {timestamp} skips {gap} samples ({gap / self.fmt.sample_rate_hz:.1f} s), over "
                f"limits.idle_timeout_seconds ({self._limits.idle_timeout_s:g} s): check the timestamp's unit "
                f"(samples at {self.fmt.sample_rate_hz} Hz since the stream's first sample) or open a new stream"
            )
        return gap

    def _check_duration(self, frames: int) -> None:
        if self._input_frames + frames > self._limits.max_stream_seconds * self.fmt.sample_rate_hz:
            raise LimitReached(
                f"the stream reached its maximum duration of {self._limits.max_stream_seconds:.0f} s; audio after "
                f"{self.audio_received_ms} ms was not processed: open a new stream to continue",
                reason="max_stream_duration",
            )

    async def _fill(self, frames: int) -> None:
        """Silence for a stretch the client skipped (lost packets, DTX), a second at a time."""
        step = self.fmt.sample_rate_hz
        for n in range(frames, 0, -step):
            await self._room.wait()
            self._raise_failure()
            self._score(self._ingest(np.zeros(min(n, step), np.float32)))

    async def feed_samples(self, samples: np.ndarray) -> None:
        """Mono float32 samples at the stream's input rate (a whole clip), resampled off the loop a
        block at a time, each after the session has room: a clip takes its fair share of the
        engine's queue like any stream, however many segments it holds."""
        step = _CLIP_BLOCK_S * self.fmt.sample_rate_hz
        for i in range(0, len(samples), step):
            await self._room.wait()
            self._raise_failure()
            self._score(await asyncio.to_thread(self._ingest, samples[i : i + step]))

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._aborted:
            raise asyncio.CancelledError("the session was aborted")

    def _ingest(self, samples: np.ndarray) -> np.ndarray:
        self._input_frames += len(samples)
        return self._resampler.process(samples)

    def _score(self, samples16k: np.ndarray, *, last: bool = False, now: bool = False) -> None:
        """Hand 16 kHz samples to the VAD worker without waiting (``_on_scored`` takes the result).
        Samples are held back until they complete a window, unless ``now`` or ``last``."""
        if self._aborted:
            return
        self._carry.append(samples16k)
        self._carry_n += len(samples16k)
        if not (last or now) and (self._submitted16k + self._carry_n) // _WINDOW <= self._submitted16k // _WINDOW:
            return
        x = self._carry[0] if len(self._carry) == 1 else np.concatenate(self._carry)
        self._carry, self._carry_n = [], 0
        if not len(x) and not last:
            return
        self._submitted16k += len(x)
        self._vad_backlog += len(x)
        self._vad_inflight += 1
        self._vad_idle.clear()
        self._update_room()
        self._m.vad.submit(self._vad_state, x, functools.partial(self._on_scored, x), last=last)

    def _on_scored(self, samples16k: np.ndarray, probs: np.ndarray | None, error: BaseException | None) -> None:
        """On the loop, in submission order: the VAD's result for ``samples16k``."""
        self._vad_backlog -= len(samples16k)
        self._vad_inflight -= 1
        try:
            if self._aborted or self._failure is not None:
                return
            if error is not None:
                logger.error("the VAD failed: %r", error, extra=self._log)
                self.fail(ServiceError("voice activity detection failed; the server log has the details"))
                return
            assert probs is not None
            self._pos16k += len(samples16k)
            self._handle(self._segmenter.push(samples16k, probs))
            if self._interim_every:
                self._maybe_interim()
        except ServiceError as e:  # e.g. Translate: the engine queue is full
            self.fail(e)
        except Exception as e:
            logger.exception("a session failed on a VAD result", extra=self._log)
            self.fail(ServiceError(f"internal error ({type(e).__name__}); the server log has the details"))
        finally:
            if not self._vad_inflight:
                self._vad_idle.set()
            self._update_room()

    def _update_room(self) -> None:
        """Feeding may go on while the session is under its fair share of unread segments and the
        VAD is less than a second behind it (so unscored audio cannot pile up in memory)."""
        if self._aborted or (self.unread < self._m.fair_share() and self._vad_backlog < _VAD_BACKLOG):
            self._room.set()  # (an aborted or failed session lets its feeder run into the failure)
        else:
            self._room.clear()

    async def _scored_all(self) -> None:
        """Until every sample fed so far has been scored and segmented."""
        self._score(np.zeros(0, np.float32), now=True)
        await self._vad_idle.wait()

    async def flush(self) -> None:
        await self._scored_all()
        self._handle(self._segmenter.flush())

    async def finish(self, limit: LimitReached | None = None) -> None:
        """Half-close (or a limit reached): close open speech; ``events`` ends after the last result
        and StreamEnded (then raises ``limit`` if given)."""
        self._score(self._resampler.process(np.zeros(0, np.float32), last=True), last=True)
        await self._vad_idle.wait()
        if self._failure is not None:
            return
        self._handle(self._segmenter.finish())
        self._finished = True
        self._end_limit = limit
        self._emit_ready()

    def abort(self) -> None:
        """Client gone: drop queued work; nothing more is computed for this session."""
        self._aborted = True
        self._room.set()  # a feeder waiting for room runs into the abort (_raise_failure)
        self._m.engine.abort(self.session_id)
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()
        self._drop_interim()

    def begin_drain(self, notice: Draining, deadline: float) -> None:
        """Tell the client the server is going away; the transport ends the stream at ``deadline``
        (``finish`` with ``ShuttingDown``), waking its reader now if it waits past it."""
        self.drain_deadline = deadline
        self._put(notice)
        if self.read_timeout is not None:
            when = self.read_timeout.when()
            if when is None or when > deadline:
                self.read_timeout.reschedule(deadline)

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
            if isinstance(ev, InterimResult) and ev.segment_id < self._next_emit:
                continue  # its segment's final result is out: superseded
            if isinstance(ev, SegmentResult):
                self._taken += 1
                self._update_room()
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
                self._put(SpeechEvent(True, ev.offset_ms + self._offset_ms))
            elif isinstance(ev, SpeechEnded):
                self._put(SpeechEvent(False, ev.offset_ms + self._offset_ms))
            elif isinstance(ev, SegmentReady):
                self._submit(ev)
            elif isinstance(ev, SpeechDiscarded):
                logger.debug("discarded %s", ev, extra=self._log)
        self._update_room()
        self._emit_ready()

    def _submit(self, ev: SegmentReady) -> None:
        # Whole milliseconds, so [start_ms, end_ms) is exactly the audio the model gets.
        start = -(-ev.start_sample // _PER_MS) * _PER_MS
        end = max(start, ev.end_sample // _PER_MS * _PER_MS)
        seg = Segment(
            segment_id=self._next_id,
            start_ms=start // _PER_MS + self._offset_ms,
            end_ms=end // _PER_MS + self._offset_ms,
            samples=ev.samples[start - ev.start_sample : end - ev.start_sample],
        )
        self._next_id += 1
        if self._interim_seg == seg.segment_id:
            self._drop_interim()  # the final result supersedes it
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
        elif _needs_encoding(self.task.output):  # resampling or Opus: off the loop
            build = functools.partial(_build_result, seg, self.task, fut.result(), closed_at, vad_wait_ms)
            encoding = asyncio.ensure_future(asyncio.to_thread(build))
            self._pending[seg.segment_id] = encoding
            encoding.add_done_callback(functools.partial(self._on_encoded, seg, closed_at, vad_wait_ms))
            return
        else:
            self._done[seg.segment_id] = _build_result(seg, self.task, fut.result(), closed_at, vad_wait_ms)
        self._emit_ready()

    def _on_encoded(
        self, seg: Segment, closed_at: float, vad_wait_ms: float, fut: asyncio.Future[SegmentResult]
    ) -> None:
        if self._pending.pop(seg.segment_id, None) is None or fut.cancelled():
            return  # aborted
        exc = fut.exception()
        if exc is not None:
            logger.error("encoding the speech of segment %d failed", seg.segment_id, exc_info=exc, extra=self._log)
            err = ServiceError("the translated speech could not be encoded")
            self._done[seg.segment_id] = _failed(seg, err, closed_at, vad_wait_ms)
        else:
            self._done[seg.segment_id] = fut.result()
        self._emit_ready()

    # -- live captions ----------------------------------------------------------------------

    def _maybe_interim(self) -> None:
        """Start a caption of the open speech when another interval of it has come in and none is in
        flight. Skipped (not queued) while the engine is behind or the reader has unread events."""
        if self._interim is not None or self._finished or self._failure is not None:
            return
        open_speech = self._segmenter.open_speech()
        if open_speech is None:
            return
        start, samples = open_speech
        if self._interim_seg != self._next_id:  # a new segment: count from its start
            self._interim_seg, self._interim_mark = self._next_id, start
        end = start + len(samples)
        if end - self._interim_mark < self._interim_every:
            return
        self._interim_mark = end
        if self._out:  # the reader is behind: a caption now would only be superseded
            self.interims_skipped += 1
            return
        first = -(-start // _PER_MS) * _PER_MS
        last = end // _PER_MS * _PER_MS
        t = self.task
        item = ModelInput(
            audio=samples[first - start : last - start],
            targets=t.target_languages,
            transcript_language=t.source_language if t.output.transcript else None,
            speech=False,
        )
        fut = self._m.engine.submit_droppable(self.session_id, item)
        if fut is None:
            self.interims_skipped += 1
            return
        self._interim = fut
        span = (self._interim_seg, first // _PER_MS + self._offset_ms, last // _PER_MS + self._offset_ms)
        fut.add_done_callback(functools.partial(self._on_interim, span, time.perf_counter()))

    def _on_interim(self, span: tuple[int, int, int], asked_at: float, fut: asyncio.Future[JobResult]) -> None:
        if self._interim is fut:
            self._interim = None
        seg_id, start_ms, end_ms = span
        if fut.cancelled() or self._failure is not None or self._ended or seg_id < self._next_id:
            return  # superseded by the segment's final result, or the stream is over
        if fut.exception() is not None or fut.result().output is None:
            logger.debug("a live caption failed: %r", fut.exception() or fut.result().error, extra=self._log)
            return
        job = fut.result()
        out, opts = job.output, self.task.output
        assert out is not None
        transcript = None
        if opts.transcript and self.task.source_language and out.transcript is not None:
            transcript = Transcript(self.task.source_language, out.transcript)
        total_ms = (time.perf_counter() - asked_at) * 1000
        self._put(
            InterimResult(
                seg_id,
                start_ms,
                end_ms,
                transcript,
                tuple(Translation(lang, out.texts.get(lang, "")) for lang in self.task.target_languages)
                if opts.text
                else (),
                Timing(queue_ms=job.queue_ms, model_ms=job.model_ms, total_ms=total_ms),
            )
        )

    def _drop_interim(self) -> None:
        if self._interim is not None:
            self._interim.cancel()  # the engine drops it unless it is in the model already
            self._interim = None

    def _emit_ready(self) -> None:
        while self._next_emit in self._done:
            self._put(self._done.pop(self._next_emit))
            self._next_emit += 1
        if self._finished and not self._ended and self._next_emit == self._next_id and not self._pending:
            self._ended = True
            filled_ms = round(self._filled_frames * 1000 / self.fmt.sample_rate_hz)
            received = self.audio_received_ms
            self._put(StreamEnded(self._next_id, received, self._end_limit, filled_ms, resume_offset_ms=received))


_PER_MS = MODEL_SAMPLE_RATE // 1000


def _check_resume(resume: Resume) -> None:
    if not (len(resume.token) == 32 and all(c in "0123456789abcdef" for c in resume.token)):
        raise InvalidInput(
            f"resume.resume_token {shown(resume.token)} is not a token this service issued: give back "
            "StreamStarted.resume_token of the stream's first call"
        )
    if resume.next_segment_id < 0 or resume.offset_ms < 0:
        raise InvalidInput("resume.next_segment_id and resume.offset_ms must not be negative")


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
    translations = []
    for lang in task.target_languages:
        audio = _to_rate(out.waveforms[lang], opts.speech_sample_rate_hz) if opts.speech else None
        opus = None
        if audio is not None and opts.speech_encoding is SpeechEncoding.OPUS:
            opus = encode_opus(audio, opts.speech_sample_rate_hz)
        translations.append(
            Translation(lang, out.texts.get(lang, "") if opts.text else "", audio, opts.speech_sample_rate_hz, opus)
        )
    return SegmentResult(seg.segment_id, seg.start_ms, seg.end_ms, transcript, tuple(translations), timing)


def _to_rate(wave: np.ndarray, rate: int) -> np.ndarray:
    return wave if rate == MODEL_SAMPLE_RATE else resample(wave, MODEL_SAMPLE_RATE, rate)


def _needs_encoding(out: OutputOptions) -> bool:
    """Speech that must be resampled or Opus-encoded (ms of CPU per segment: off the loop)."""
    return out.speech and (out.speech_sample_rate_hz != MODEL_SAMPLE_RATE or out.speech_encoding is SpeechEncoding.OPUS)


def _stream_decoder(fmt: AudioFormat) -> Callable[[bytes], np.ndarray]:
    """bytes of one message -> mono float32 at the stream's rate."""
    if fmt.encoding is AudioEncoding.OPUS:
        return OpusStreamDecoder(fmt.channels).decode
    return functools.partial(decode_raw, fmt=fmt)
