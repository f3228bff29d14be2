"""What all streams of one server share: admission, fair share, drain, and the two ways in.

``SessionManager`` admits streams (``max_streams``, refused while draining), splits the engine's
queue fairly between live sessions, tells every live stream when the server drains, and runs a
whole clip (``Translate``) through the same ``StreamSession`` as a stream. Event loop only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Protocol

from translate_svc.audio.codec import check_stream_format, decode_audio
from translate_svc.engine.client import EngineClient
from translate_svc.engine.runner import ModelCard
from translate_svc.errors import InvalidInput, NotReady, Overloaded, ServiceError
from translate_svc.session import task as checks
from translate_svc.session.events import ClipResult, Draining, Resume
from translate_svc.session.stream import StreamSession
from translate_svc.settings import LimitsSettings
from translate_svc.types import AudioEncoding, AudioFormat, OutputOptions, SegmentResult, Term, TranslationTask
from translate_svc.vad.segmenter import SegmenterConfig
from translate_svc.vad.worker import VadWorker


class Admission(Protocol):
    """Open streams counted across every process that serves the node (``serving/admission.py``);
    without one, a manager counts its own."""

    def try_admit(self, limit: int) -> bool:
        """Count one more open stream unless ``limit`` are open already."""
        ...

    def release(self) -> None:
        """One admitted stream closed."""
        ...


class SessionManager:
    """Shared state of all sessions. Create one per server; event loop only."""

    def __init__(
        self,
        engine: EngineClient,
        vad: VadWorker,
        vad_defaults: SegmenterConfig,
        limits: LimitsSettings,
        *,
        admission: Admission | None = None,
    ) -> None:
        self.engine = engine
        self.vad = vad
        self.vad_defaults = vad_defaults
        self.limits = limits
        #: streams open now in this process (admission control: ``limits.max_streams``, counted
        #: node-wide by ``admission`` when the node runs several front-end processes)
        self.open_streams = 0
        self._admission = admission
        #: sessions alive now, streams and Translate clips (their fair share of the engine queue)
        self.sessions = 0
        #: admitted streams (a drain tells each of them)
        self.live: set[StreamSession] = set()
        #: set by ``drain``: new streams are refused, live ones end at the deadline
        self.draining: Draining | None = None
        #: while draining: until when (event-loop time) an ended stream may wait for its client to
        #: stop sending before its status is sent (the server's grace period)
        self.drain_hold_until: float | None = None
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
        max_queued = self.engine.stats().max_queued
        return max(1, min(self.limits.max_unread_results, max_queued // max(1, self.sessions)))

    @property
    def card(self) -> ModelCard:
        """The loaded model's card; raises NotReady while it loads."""
        return self.engine.card

    def resolve_task(
        self,
        source: str,
        targets: list[str],
        output: OutputOptions,
        detect: list[str] | None = None,
        terms: Sequence[Term] = (),
    ) -> TranslationTask:
        """Check languages, output options and terms against the loaded model and the limits."""
        return checks.resolve_task(self.card, self.limits, source, targets, output, detect, terms)

    def drain(self, seconds: float, *, grace_s: float | None = None) -> Draining:
        """The server is shutting down: refuse new streams; tell every live stream that it is
        translated for ``seconds`` more and then ends with "resume elsewhere". An ended stream
        waits up to ``grace_s`` (from now) for its client to stop sending."""
        if self.draining is None:
            remaining_ms = round(seconds * 1000)
            self.draining = Draining(round(time.time() * 1000) + remaining_ms, remaining_ms)
            now = asyncio.get_running_loop().time()
            deadline = now + seconds
            self.drain_hold_until = now + max(seconds, grace_s if grace_s is not None else seconds)
            for session in list(self.live):
                session.begin_drain(self.draining, deadline)
        return self.draining

    def fail_all(self, error: ServiceError) -> None:
        """End every live stream with ``error`` at once (the engine process is gone: UNAVAILABLE,
        and the client resumes from its last final result)."""
        for session in list(self.live):
            session.fail(error)

    def open_stream(
        self,
        fmt: AudioFormat,
        task: TranslationTask,
        vad: SegmenterConfig,
        *,
        interim_interval_ms: int = 0,
        resume: Resume | None = None,
    ) -> StreamSession:
        """Admit a new stream; ``StreamSession.close`` must be called when it ends."""
        if self.draining is not None:
            raise NotReady("this server is shutting down and takes no new streams: connect to another server")
        check_stream_format(fmt)
        if resume is not None:
            checks.check_resume(resume, self.limits)
        checks.check_captions(interim_interval_ms, task, self.limits)
        limit = self.limits.max_streams
        if not (self._admission.try_admit(limit) if self._admission is not None else self.open_streams < limit):
            raise Overloaded(
                f"this server is at its stream capacity ({self.limits.max_streams} open streams); "
                "retry shortly or on another server",
                retry_after_ms=1000,
            )
        try:
            session = self._new_session(fmt, task, vad, interim_interval_ms=interim_interval_ms, resume=resume)
        except BaseException:
            if self._admission is not None:
                self._admission.release()
            raise
        self.open_streams += 1
        self.live.add(session)
        self._no_live.clear()
        return session

    async def translate_clip(
        self, content: bytes, fmt: AudioFormat, task: TranslationTask, vad: SegmenterConfig
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
        checks.check_answer_size(duration_s, task, self.limits)
        session = self._new_session(AudioFormat(AudioEncoding.FLOAT32, rate, 1), task, vad, strict_queue=True)
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

    def _new_session(
        self,
        fmt: AudioFormat,
        task: TranslationTask,
        vad: SegmenterConfig,
        *,
        strict_queue: bool = False,
        interim_interval_ms: int = 0,
        resume: Resume | None = None,
    ) -> StreamSession:
        session = StreamSession(
            self.engine,
            self.vad,
            self.limits,
            fmt,
            task,
            vad,
            fair_share=self.fair_share,
            strict_queue=strict_queue,
            interim_interval_ms=interim_interval_ms,
            resume=resume,
        )
        self.sessions += 1
        session.on_close = self._closed
        return session

    def _closed(self, session: StreamSession) -> None:
        self.sessions -= 1
        if session in self.live:
            self.live.discard(session)
            self.open_streams -= 1
            if self._admission is not None:
                self._admission.release()
            if not self.live:
                self._no_live.set()


async def _results(session: StreamSession) -> list[SegmentResult]:
    return [ev async for ev in session.events() if isinstance(ev, SegmentResult)]
