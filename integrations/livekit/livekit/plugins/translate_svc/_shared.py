"""One translate_svc stream per track, shared by the sessions that translate it.

A ``_Hub`` is one ``AsyncTranslateClient`` (its channels, TLS and token) per event loop and
server configuration, shared by every session opened with that configuration. It holds the
``_SharedStream``s: one per track key (and per set of stream options), whatever the number of
target languages asked of that track. A shared stream sends the track's audio once, asks the
server for the union of its sessions' languages (one encoder pass per segment, one decoder row per
language), and hands each result to the sessions by language. A session that joins, leaves or
changes its language changes that union with ``AsyncStream.update``, never by opening a stream.

Nothing here is thread-safe: everything runs on the loop that opened the sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from livekit import rtc

from translate_svc.client import (
    AsyncStream,
    AsyncTranslateClient,
    Commit,
    Draining,
    EndReason,
    Interim,
    Languages,
    Segment,
    SimultaneousOptions,
    SpeechEvent,
    StreamClosedError,
    StreamEnd,
    StreamEndedError,
    StreamUpdated,
    TlsOptions,
    TranslateError,
    VadOptions,
)

from ._languages import UnsupportedLanguageError, resolve
from .log import logger

if TYPE_CHECKING:
    from .translation import TranslationModelSession

#: a session that pushed no frame for this long gives up feeding the shared stream to another
FEEDER_TIMEOUT_S = 0.5
#: at most this much audio is sent in one message (what queued while the stream was busy)
MAX_SEND_S = 0.2
#: audio held while the stream opens or moves to another server; older audio is dropped beyond it
MAX_QUEUED_S = 30.0
#: stream ends after which a new stream is opened on the next audio (not failures)
_REOPEN_AFTER = frozenset({EndReason.IDLE_TIMEOUT, EndReason.MAX_STREAM_DURATION})

_background: set[asyncio.Task[Any]] = set()


def spawn(coro: Any, name: str) -> asyncio.Task[Any]:
    task = asyncio.create_task(coro, name=name)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


class ServerDrainingError(Exception):
    """The server the stream is on is shutting down; the stream moves to another server, with
    nothing lost (reported as a recoverable error)."""

    def __init__(self, address: str | None, remaining_ms: int) -> None:
        super().__init__(
            f"translate_svc server {address or '?'} is draining: the stream moves to another server "
            f"within {remaining_ms} ms, nothing is lost"
        )
        self.address = address
        self.remaining_ms = remaining_ms


class StreamRestartedError(Exception):
    """The server ended the stream (idle, or at its longest): a new one opens on the next audio."""


class LanguageRefusedError(Exception):
    """The server refused a session's target language on the shared stream (``update``)."""


@dataclass(frozen=True)
class ClientConfig:
    addresses: tuple[str, ...]
    token: str | None
    tls: TlsOptions | None


@dataclass(frozen=True)
class StreamOptions:
    """What a stream is opened with besides its targets: sessions share a stream only if these match."""

    source: str | None
    simultaneous: bool | SimultaneousOptions
    output_sample_rate: int
    speaker_id: int | None
    interim_ms: int
    vad: VadOptions | None


class Hub:
    """One client per event loop and configuration (or per caller's client), and its shared streams."""

    _hubs: ClassVar[dict[tuple[int, Hashable], Hub]] = {}

    def __init__(
        self,
        key: tuple[int, Hashable],
        loop: asyncio.AbstractEventLoop,
        config: ClientConfig,
        client: AsyncTranslateClient | None,
    ) -> None:
        self._key = key
        self._loop = loop
        self._owns_client = client is None
        self.client = client or AsyncTranslateClient(list(config.addresses), token=config.token, tls=config.tls)
        self._refs = 0
        self.languages: Languages | None = None
        self._languages_lock = asyncio.Lock()
        self._streams: dict[Hashable, SharedStream] = {}

    @classmethod
    def acquire(cls, config: ClientConfig, client: AsyncTranslateClient | None) -> Hub:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "translate_svc.TranslationModel.session() must be called from the event loop that runs it "
                "(TranslationSession.start does)"
            ) from None
        key: tuple[int, Hashable] = (id(loop), config if client is None else ("client", id(client)))
        hub = cls._hubs.get(key)
        if hub is None or hub._loop is not loop:
            hub = cls._hubs[key] = cls(key, loop, config, client)
        hub._refs += 1
        return hub

    async def release(self) -> None:
        """One session less; the last one closes the client (unless it is the caller's)."""
        self._refs -= 1
        if self._refs > 0:
            return
        if self._hubs.get(self._key) is self:
            del self._hubs[self._key]
        if self._owns_client:
            await self.client.close()

    async def get_languages(self) -> Languages:
        async with self._languages_lock:
            if self.languages is None:
                self.languages = await self.client.languages()
            return self.languages

    def stream_for(self, key: Hashable, options: StreamOptions) -> SharedStream:
        shared = self._streams.get((key, options))
        if shared is None or shared.done or shared.input_ended:
            shared = self._streams[(key, options)] = SharedStream(self, (key, options), options)
        return shared

    def forget(self, shared: SharedStream) -> None:
        if self._streams.get(shared.key) is shared:
            del self._streams[shared.key]


class SharedStream:
    """One translate_svc stream, the sessions it serves, and the audio of the track it translates."""

    def __init__(self, hub: Hub, key: Hashable, options: StreamOptions) -> None:
        self.hub = hub
        self.key = key
        self.options = options
        self.sessions: list[TranslationModelSession] = []
        self.stream: AsyncStream | None = None
        self.done = False  # ended for good (all inputs ended, a failure, or every session left)
        self.opened = 0  # streams opened so far (a new one after an idle or overlong end)
        self._source_code: str | None = None
        self._queue: deque[np.ndarray] = deque()
        self._queued = 0  # samples
        self._dropped_warned = False
        self._rate: int | None = None  # the stream's input rate (the first frame's)
        self._feeder: TranslationModelSession | None = None
        self._feeder_at = 0.0
        self._wake = asyncio.Event()
        self._half_close = False
        self._task: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._requested: tuple[str, ...] = ()  # the targets last asked (config or update)
        self._update_lock = asyncio.Lock()
        self._last_segment_id = -1

    # -- sessions -----------------------------------------------------------------------------

    def attach(self, session: TranslationModelSession) -> None:
        langs = self.hub.languages
        if langs is not None:
            try:
                session._code = resolve(session._tag, langs, role="target")
            except UnsupportedLanguageError as e:
                # refused as when the languages come later: an error event, once the caller of
                # session() listens
                asyncio.get_running_loop().call_soon(session._refuse, e)
        self.sessions.append(session)
        if self.stream is not None and session._code is not None and session._code in self._requested:
            session._history = [(0, session._code, session._tag)]
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="translate_svc-stream")
        self._schedule_sync()

    async def detach(self, session: TranslationModelSession) -> None:
        if session in self.sessions:
            self.sessions.remove(session)
        if self._feeder is session:
            self._feeder = None
        if not self.sessions:
            await self.aclose()
            return
        self._schedule_sync()
        self._check_inputs_ended()

    def retarget(self, session: TranslationModelSession) -> None:
        """``session._code`` changed: it takes effect at the first segment the server says uses it."""
        if self.stream is not None and session._code in self._requested:
            session._history.append((self._last_segment_id + 1, session._code, session._tag))
        self._schedule_sync()

    def end_input(self, session: TranslationModelSession) -> None:
        if self._feeder is session:
            self._feeder = None
        self._check_inputs_ended()

    @property
    def input_ended(self) -> bool:
        """Every session's input ended: the stream is half-closed, it takes no new session."""
        return self._half_close

    def _check_inputs_ended(self) -> None:
        if self.sessions and all(s._input_ended for s in self.sessions):
            self._half_close = True
            self._wake.set()

    # -- audio in -----------------------------------------------------------------------------

    def push(self, session: TranslationModelSession, frame: rtc.AudioFrame) -> None:
        """One frame of the track. Every session of the track pushes it; one of them feeds the
        stream, and another takes over once that one stops (closed, ended, or quiet a while)."""
        if self.done or self._half_close:
            return
        now = time.monotonic()
        feeder = self._feeder
        if feeder is not session:
            if (
                feeder is not None
                and feeder in self.sessions
                and not feeder._input_ended
                and now - self._feeder_at < FEEDER_TIMEOUT_S
            ):
                return
            self._feeder = session
        self._feeder_at = now
        pcm = self._mono16(session, frame)
        if pcm.size == 0:
            return
        self._queue.append(pcm)
        self._queued += pcm.size
        assert self._rate is not None
        while self._queued > MAX_QUEUED_S * self._rate and len(self._queue) > 1:
            self._queued -= self._queue.popleft().size
            if not self._dropped_warned:
                self._dropped_warned = True
                logger.warning("translate_svc stream is not taking audio: dropping audio older than %g s", MAX_QUEUED_S)
        self._wake.set()

    def _mono16(self, session: TranslationModelSession, frame: rtc.AudioFrame) -> np.ndarray:
        data = np.frombuffer(frame.data, dtype=np.int16)
        if frame.num_channels > 1:
            data = data.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
        if self._rate is None:
            self._rate = frame.sample_rate
        if frame.sample_rate == self._rate:
            return data
        resampler = session._resamplers.get(frame.sample_rate)
        if resampler is None:
            resampler = session._resamplers[frame.sample_rate] = rtc.AudioResampler(
                frame.sample_rate, self._rate, num_channels=1
            )
        mono = rtc.AudioFrame(data.tobytes(), frame.sample_rate, 1, data.size)
        out = [np.frombuffer(f.data, dtype=np.int16) for f in resampler.push(mono)]
        return np.concatenate(out) if out else np.zeros(0, np.int16)

    def _take(self) -> np.ndarray:
        assert self._rate is not None
        limit = int(MAX_SEND_S * self._rate)
        parts = [self._queue.popleft()]
        size = parts[0].size
        while self._queue and size + self._queue[0].size <= limit:
            parts.append(self._queue.popleft())
            size += parts[-1].size
        self._queued -= size
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    # -- the stream ---------------------------------------------------------------------------

    async def _run(self) -> None:
        """Open the stream on the first audio, send what is pushed, half-close once every session's
        input ended; open a new stream after an idle or overlong end."""
        try:
            while not self.done:
                while not self._queue and not self._half_close:
                    self._wake.clear()
                    await self._wake.wait()
                if self.stream is None:
                    if not self._queue:  # every input ended and nothing is left to translate
                        self._finish()
                        return
                    if not await self._open():
                        return
                stream, reader = self.stream, self._reader
                assert stream is not None and reader is not None
                if self._queue:
                    try:
                        await stream.send(self._take())
                    except (TranslateError, StreamClosedError):
                        await asyncio.gather(reader, return_exceptions=True)  # it says how it ended
                    continue
                with contextlib.suppress(TranslateError, StreamClosedError):
                    await stream.close()
                await asyncio.gather(reader, return_exceptions=True)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug: say so to the sessions rather than go quiet
            logger.exception("translate_svc stream task failed")
            self._fail(e)

    async def _open(self) -> bool:
        opts = self.options
        try:
            langs = await self.hub.get_languages()
            source = resolve(opts.source, langs, role="source") if opts.source else None
        except Exception as e:
            self._fail(e)
            return False
        self._source_code = source
        for s in list(self.sessions):
            if s._refused:
                continue
            try:
                s._code = resolve(s._tag, langs, role="target")
            except UnsupportedLanguageError as e:
                s._refuse(e)
        targets = self._union(langs)
        if not targets:
            if self.sessions:
                self._fail(LanguageRefusedError("no target language this server can speak"))
            return False
        assert self._rate is not None
        stream = self.hub.client.stream(
            targets=list(targets),
            source=source,
            detect=source is None and langs.identifier is not None,
            sample_rate=self._rate,
            interim_ms=opts.interim_ms,
            simultaneous=opts.simultaneous,
            vad=opts.vad,
            speech_sample_rate=opts.output_sample_rate,
            speaker_id=opts.speaker_id,
        )
        try:
            await stream.start()
        except BaseException as e:  # a failure, or closed (cancelled) while opening
            await stream.aclose()
            if not isinstance(e, Exception):
                raise
            self._fail(e)
            return False
        if self.done:  # closed while opening
            await stream.aclose()
            return False
        self.opened += 1
        self.stream = stream
        self._requested = targets
        self._last_segment_id = -1
        for s in self.sessions:
            s._history = [(0, s._code, s._tag)] if s._code in targets else []
        self._reader = asyncio.create_task(self._read(stream), name="translate_svc-stream-read")
        self._schedule_sync()  # a language changed while it opened
        return True

    def _union(self, langs: Languages) -> tuple[str, ...]:
        """The sessions' languages, in the order they came; those past the server's limit refused."""
        out: list[str] = []
        limit = langs.limits.max_target_languages or 1 << 30
        for s in list(self.sessions):
            if s._refused or s._code is None or s._code in out:
                continue
            if len(out) >= limit:
                s._refuse(
                    LanguageRefusedError(
                        f"{s._tag!r}: the server translates one stream into at most {limit} languages, "
                        f"and this track's stream already has {', '.join(out)}"
                    )
                )
                continue
            out.append(s._code)
        return tuple(out)

    def _schedule_sync(self) -> None:
        if self.stream is not None and not self.done:
            spawn(self._sync_targets(), "translate_svc-update")

    async def _sync_targets(self) -> None:
        async with self._update_lock:
            stream, langs = self.stream, self.hub.languages
            if stream is None or langs is None or self.done or not self.sessions:
                return
            for s in list(self.sessions):
                if s._code is None and not s._refused:
                    try:
                        s._code = resolve(s._tag, langs, role="target")
                    except UnsupportedLanguageError as e:
                        s._refuse(e)
            targets = self._union(langs)
            if not targets or targets == self._requested:
                return
            self._requested = targets
            with contextlib.suppress(TranslateError, StreamClosedError):
                await stream.update(target_languages=list(targets))

    async def _read(self, stream: AsyncStream) -> None:
        try:
            async for ev in stream:
                self._dispatch(stream, ev)
        except asyncio.CancelledError:
            raise
        except StreamEndedError as e:
            if e.reason in _REOPEN_AFTER:
                self._restart(e)
            else:
                self._fail(e)
            return
        except Exception as e:  # StreamResumeError (no server took it), a bug
            self._fail(e)
            return
        self._finish()  # the clean end of our half-close: every result was delivered

    def _dispatch(self, stream: AsyncStream, ev: object) -> None:
        sessions = [s for s in self.sessions if not s._refused]  # a refused session has ended
        if isinstance(ev, Segment):
            self._last_segment_id = max(self._last_segment_id, ev.segment_id)
            for s in sessions:
                s._on_segment(ev)
        elif isinstance(ev, Commit):
            for s in sessions:
                s._on_commit(ev)
        elif isinstance(ev, SpeechEvent):
            for s in sessions:
                s._on_speech(ev)
        elif isinstance(ev, Interim):
            for s in sessions:
                s._on_interim(ev)
        elif isinstance(ev, StreamUpdated):
            self._on_updated(ev, sessions)
        elif isinstance(ev, Draining):
            address = stream.info.address if stream.info is not None else None
            logger.info("translate_svc server %s is draining: the stream moves to another server", address)
            err = ServerDrainingError(address, ev.remaining_ms)
            for s in sessions:
                s._error(err, recoverable=True)
        elif isinstance(ev, StreamEnd):
            pass  # the iteration ends (a clean end) or raises next

    def _on_updated(self, u: StreamUpdated, sessions: list[TranslationModelSession]) -> None:
        targets = tuple(u.target_languages)
        if u.error is not None:
            logger.warning("translate_svc refused the stream's new languages: %s", u.error)
            for s in sessions:
                if s._code not in targets:
                    s._error(LanguageRefusedError(f"{s._tag!r}: {u.error}"), recoverable=True)
            return
        for s in sessions:
            if s._code in targets and (not s._history or s._history[-1][1] != s._code):
                s._history.append((u.first_segment_id, s._code, s._tag))

    def source_tag(self, code: str | None) -> str | None:
        """How to name the language of a transcript: the caller's tag when it is the source's code."""
        if code is None:
            return self.options.source
        if self.options.source is not None and code == self._source_code:
            return self.options.source
        return code

    # -- ends ---------------------------------------------------------------------------------

    def _restart(self, e: Exception) -> None:
        logger.info("translate_svc ended the stream (%s): a new one opens on the next audio", e)
        old, self.stream = self.stream, None
        self._requested = ()
        if old is not None:
            spawn(old.aclose(), "translate_svc-stream-close")
        err = StreamRestartedError(str(e))
        for s in list(self.sessions):
            s._error(err, recoverable=True)

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        self.hub.forget(self)
        for s in list(self.sessions):
            s._end_output()

    def _fail(self, e: BaseException) -> None:
        if self.done:
            return
        logger.error("translate_svc stream failed: %s", e)
        self.done = True
        self.hub.forget(self)
        for s in list(self.sessions):
            if not s._refused:  # a refused one was told why already
                s._error(e, recoverable=False)
            s._end_output()
        if self.stream is not None:
            spawn(self.stream.aclose(), "translate_svc-stream-close")
        self._wake.set()

    async def aclose(self) -> None:
        self.done = True
        self.hub.forget(self)
        me = asyncio.current_task()
        tasks = [t for t in (self._task, self._reader) if t is not None and t is not me and not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.stream is not None:
            await self.stream.aclose()
