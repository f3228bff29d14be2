"""One translate_svc stream per track, shared by the sessions that translate it.

A ``Hub`` is one ``AsyncTranslateClient`` (its channels, TLS and token) per event loop and
server configuration, shared by every session opened with that configuration. It holds the
``SharedStream``s: one per track key (and per set of stream options), whatever the number of
target languages asked of that track. A shared stream sends the track's audio once, asks the
server for the union of its sessions' languages (one encoder pass per segment, one decoder row per
language), and hands each result to the sessions by language. A session that joins, leaves or
changes its language changes that union with ``update``, never by opening a stream.

The stream's lifecycle (open on the first audio, a bounded queue while it opens or moves, a new
stream after IDLE_TIMEOUT / MAX_STREAM_DURATION / QUOTA, backoff after a refusal) is the SDK's
``LastingStream``: this module adds only what is LiveKit's (frames, sessions and their languages).
A session is seen here as a ``Listener`` (what it is told) with a ``Seat`` (its language state,
kept here), so this module does not import the session's.

Nothing here is thread-safe: everything runs on the loop that opened the sessions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
from livekit import rtc

from translate_svc.client import (
    AsyncStream,
    AsyncTranslateClient,
    AudioDropped,
    Commit,
    Draining,
    Interim,
    Languages,
    LastingPolicy,
    LastingStream,
    OpenRefused,
    Reopening,
    Segment,
    SimultaneousOptions,
    SpeechEvent,
    StreamClosedError,
    StreamOpened,
    StreamUpdated,
    Term,
    TlsOptions,
    VadOptions,
)

from ._languages import UnsupportedLanguageError, resolve
from .log import logger

#: a session that pushed no frame for this long gives up feeding the shared stream to another
FEEDER_TIMEOUT_S = 0.5
#: at most this much audio is sent in one message (what queued while the stream was busy)
MAX_SEND_S = 0.2
#: audio held while the stream opens, moves or backs off; beyond it the oldest is dropped (and told)
MAX_QUEUED_S = 30.0

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
    """The server ended the stream (idle, at its longest, a spent quota): a new one opens, and the
    audio it did not take goes to the new one."""


class StreamRefusedError(Exception):
    """The server refused a stream (busy, unavailable): the audio is held, the next try comes later."""


class AudioDroppedError(Exception):
    """No stream took the track's audio for ``MAX_QUEUED_S``: the oldest was dropped."""


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
    #: as given (a glossary entry's target_language the model's tag): resolved when a stream opens
    terms: tuple[Term, ...] = ()


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


class Listener(Protocol):
    """What a shared stream tells a session (``TranslationModelSession`` is one)."""

    def on_speech(self, ev: SpeechEvent) -> None: ...

    def on_interim(self, ev: Interim, language: str | None) -> None: ...

    def on_commit(self, c: Commit, language: tuple[str, str] | None) -> None: ...

    def on_segment(self, seg: Segment, language: tuple[str, str] | None, transcript_language: str | None) -> None: ...

    def report(self, e: Exception, *, recoverable: bool) -> None: ...

    def end_output(self) -> None: ...


@dataclass(eq=False)
class Seat:
    """One session's place at a shared stream: the language it asked (``tag``), the server's code
    for it (once known), and which language it speaks from which segment on."""

    listener: Listener
    tag: str
    code: str | None = None
    #: (first segment id, code, tag): the language spoken from that segment on
    history: list[tuple[int, str | None, str]] = field(default_factory=list)
    refused: bool = False
    input_ended: bool = False
    resamplers: dict[int, rtc.AudioResampler] = field(default_factory=dict)

    def language_at(self, segment_id: int) -> tuple[str, str] | None:
        for first, code, tag in reversed(self.history):
            if segment_id >= first:
                return (code, tag) if code is not None else None
        return None


class SharedStream:
    """The track's ``LastingStream``, the seats it serves, and the track's audio."""

    def __init__(self, hub: Hub, key: Hashable, options: StreamOptions) -> None:
        self.hub = hub
        self.key = key
        self.options = options
        self.seats: list[Seat] = []
        self.done = False  # ended for good (all inputs ended, a failure, or every session left)
        self._source_code: str | None = None
        self._rate: int | None = None  # the stream's input rate (the first frame's)
        self._feeder: Seat | None = None
        self._feeder_at = 0.0
        self._half_close = False
        self.lasting = LastingStream(
            self._make_stream, policy=LastingPolicy(max_queued_s=MAX_QUEUED_S, max_send_s=MAX_SEND_S)
        )
        self._reader: asyncio.Task[None] | None = None
        self._targets_of: dict[AsyncStream, tuple[str, ...]] = {}  # what each stream opened with
        self._requested: tuple[str, ...] = ()  # the targets last asked of the current stream
        self._update_lock = asyncio.Lock()
        self._last_segment_id = -1
        self.opened = 0  # streams opened so far
        self._last_stream: AsyncStream | None = None

    @property
    def stream(self) -> AsyncStream | None:
        """The stream that takes the track's audio now (None while none does)."""
        return self.lasting.stream

    @property
    def last_stream(self) -> AsyncStream | None:
        """The latest stream opened (it stays after the end: where it was, how often it moved)."""
        return self._last_stream

    # -- sessions -----------------------------------------------------------------------------

    def attach(self, listener: Listener, tag: str) -> Seat:
        seat = Seat(listener, tag)
        self.seats.append(seat)
        langs = self.hub.languages
        if langs is not None:
            try:
                seat.code = resolve(tag, langs, role="target")
            except UnsupportedLanguageError as e:
                # refused as when the languages come later, and at once: no segment of the track
                # reaches it; the error event waits until the caller of session() listens
                self.refuse(seat, e, tell_later=True)
        if self.stream is not None and seat.code is not None and seat.code in self._requested:
            seat.history = [(0, seat.code, tag)]
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(), name="translate_svc-stream-read")
        self._schedule_sync()
        return seat

    async def detach(self, seat: Seat) -> None:
        if seat in self.seats:
            self.seats.remove(seat)
        if self._feeder is seat:
            self._feeder = None
        if not self.seats:
            await self.aclose()
            return
        self._schedule_sync()
        self._check_inputs_ended()

    def retarget(self, seat: Seat, tag: str) -> None:
        """The session asks for ``tag`` now: from the next segment the server closes (the one open
        now included); the stream is updated, not reopened. Raises ``UnsupportedLanguageError``
        for a language the server cannot speak (when its languages are known)."""
        code = resolve(tag, self.hub.languages, role="target") if self.hub.languages else None
        seat.tag = tag
        if code is not None and code == seat.code:  # the same language, spelled otherwise
            if seat.history and seat.history[-1][1] == code:
                seat.history[-1] = (seat.history[-1][0], code, tag)
            return
        seat.code = code
        if self.stream is not None and code in self._requested:
            seat.history.append((self._last_segment_id + 1, code, tag))
        self._schedule_sync()

    def end_input(self, seat: Seat) -> None:
        seat.input_ended = True
        if self._feeder is seat:
            self._feeder = None
        self._check_inputs_ended()

    def refuse(self, seat: Seat, e: Exception, *, tell_later: bool = False) -> None:
        """This seat's language cannot be served: its session ends, the stream goes on for the others.
        The seat takes nothing from now on; ``tell_later`` tells its session on the loop's next turn."""
        if seat.refused or seat not in self.seats:
            return
        logger.error("translate_svc: %s", e)
        seat.refused = True
        seat.code = None
        if tell_later:
            asyncio.get_running_loop().call_soon(self._tell_refused, seat, e)
        else:
            self._tell_refused(seat, e)

    def _tell_refused(self, seat: Seat, e: Exception) -> None:
        seat.listener.report(e, recoverable=False)
        seat.listener.end_output()
        self.end_input(seat)

    @property
    def input_ended(self) -> bool:
        """Every session's input ended: the stream is half-closed, it takes no new session."""
        return self._half_close

    def _check_inputs_ended(self) -> None:
        if self.seats and all(s.input_ended for s in self.seats) and not self._half_close:
            self._half_close = True
            self.lasting.end_input()

    # -- audio in -----------------------------------------------------------------------------

    def push(self, seat: Seat, frame: rtc.AudioFrame) -> None:
        """One frame of the track. Every session of the track pushes it; one of them feeds the
        stream, and another takes over once that one stops (closed, ended, or quiet a while)."""
        if self.done or self._half_close:
            return
        now = time.monotonic()
        feeder = self._feeder
        if feeder is not seat:
            if (
                feeder is not None
                and feeder in self.seats
                and not feeder.input_ended
                and now - self._feeder_at < FEEDER_TIMEOUT_S
            ):
                return
            self._feeder = seat
        self._feeder_at = now
        pcm = self._mono16(seat, frame)
        if pcm.size:
            try:
                self.lasting.push(pcm, sample_rate=self._rate)
            except StreamClosedError:
                pass  # failed: the sessions were told why

    def _mono16(self, seat: Seat, frame: rtc.AudioFrame) -> np.ndarray:
        data = np.frombuffer(frame.data, dtype=np.int16)
        if frame.num_channels > 1:
            data = data.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
        if self._rate is None:
            self._rate = frame.sample_rate
        if frame.sample_rate == self._rate:
            return data
        resampler = seat.resamplers.get(frame.sample_rate)
        if resampler is None:
            resampler = seat.resamplers[frame.sample_rate] = rtc.AudioResampler(
                frame.sample_rate, self._rate, num_channels=1
            )
        mono = rtc.AudioFrame(data.tobytes(), frame.sample_rate, 1, data.size)
        out = [np.frombuffer(f.data, dtype=np.int16) for f in resampler.push(mono)]
        return np.concatenate(out) if out else np.zeros(0, np.int16)

    # -- the stream ---------------------------------------------------------------------------

    async def _make_stream(self) -> AsyncStream:
        """The next stream (the lasting stream opens it), for the seats' languages of now."""
        opts = self.options
        langs = await self.hub.get_languages()
        self._source_code = resolve(opts.source, langs, role="source") if opts.source else None
        for seat in list(self.seats):
            if seat.refused:
                continue
            try:
                seat.code = resolve(seat.tag, langs, role="target")
            except UnsupportedLanguageError as e:
                self.refuse(seat, e)
        targets = self._union(langs)
        if not targets:
            raise LanguageRefusedError("no target language this server can speak")
        # a glossary entry names its language as the model's target does: the server's code here
        terms = [
            dataclasses.replace(t, target_language=resolve(t.target_language, langs, role="target"))
            if t.glossary
            else t
            for t in opts.terms
        ]
        assert self._rate is not None
        stream = self.hub.client.stream(
            targets=list(targets),
            source=self._source_code,
            detect=self._source_code is None and langs.identifier is not None,
            sample_rate=self._rate,
            interim_ms=opts.interim_ms,
            simultaneous=opts.simultaneous,
            vad=opts.vad,
            speech_sample_rate=opts.output_sample_rate,
            speaker_id=opts.speaker_id,
            terms=terms,
        )
        self._targets_of[stream] = targets
        return stream

    def _union(self, langs: Languages) -> tuple[str, ...]:
        """The seats' languages, in the order they came; those past the server's limit refused."""
        out: list[str] = []
        limit = langs.limits.max_target_languages or 1 << 30
        for seat in list(self.seats):
            if seat.refused or seat.code is None or seat.code in out:
                continue
            if len(out) >= limit:
                self.refuse(
                    seat,
                    LanguageRefusedError(
                        f"{seat.tag!r}: the server translates one stream into at most {limit} languages, "
                        f"and this track's stream already has {', '.join(out)}"
                    ),
                )
                continue
            out.append(seat.code)
        return tuple(out)

    def _schedule_sync(self) -> None:
        if self.stream is not None and not self.done:
            spawn(self._sync_targets(), "translate_svc-update")

    async def _sync_targets(self) -> None:
        async with self._update_lock:
            langs = self.hub.languages
            if self.stream is None or langs is None or self.done or not self.seats:
                return
            for seat in list(self.seats):
                if seat.code is None and not seat.refused:
                    try:
                        seat.code = resolve(seat.tag, langs, role="target")
                    except UnsupportedLanguageError as e:
                        self.refuse(seat, e)
            targets = self._union(langs)
            if not targets or targets == self._requested:
                return
            if await self.lasting.update(target_languages=list(targets)):
                self._requested = targets

    async def _read(self) -> None:
        try:
            async for ev in self.lasting:
                self._dispatch(ev)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the lasting stream failed (a refused request, no language), or a bug
            self._fail(e)
            return
        self._finish()  # the clean end of our half-close: every result was delivered

    def _live(self) -> list[Seat]:
        return [s for s in self.seats if not s.refused]  # a refused seat's session has ended

    def _dispatch(self, ev: object) -> None:
        seats = self._live()
        if isinstance(ev, Segment):
            self._last_segment_id = max(self._last_segment_id, ev.segment_id)
            language = self.source_tag(ev.transcript_language)
            for s in seats:
                s.listener.on_segment(ev, s.language_at(ev.segment_id), language)
        elif isinstance(ev, Commit):
            for s in seats:
                s.listener.on_commit(ev, s.language_at(ev.segment_id))
        elif isinstance(ev, SpeechEvent):
            for s in seats:
                s.listener.on_speech(ev)
        elif isinstance(ev, Interim):
            for s in seats:
                s.listener.on_interim(ev, self.source_tag(None))
        elif isinstance(ev, StreamUpdated):
            self._on_updated(ev, seats)
        elif isinstance(ev, StreamOpened):
            self._on_opened(ev)
        else:
            self._tell(ev, seats)

    def _on_opened(self, ev: StreamOpened) -> None:
        self.opened = ev.number
        self._last_stream = ev.stream
        targets = self._targets_of.pop(ev.stream, ())
        self._requested = targets
        self._last_segment_id = -1
        for s in self.seats:
            s.history = [(0, s.code, s.tag)] if s.code in targets else []
        self._schedule_sync()  # a language changed while it opened

    def _tell(self, ev: object, seats: list[Seat]) -> None:
        """The lasting stream's notices, as recoverable errors of every session."""
        err: Exception
        if isinstance(ev, Draining):
            stream = self.stream
            address = stream.info.address if stream is not None and stream.info is not None else None
            logger.info("translate_svc server %s is draining: the stream moves to another server", address)
            err = ServerDrainingError(address, ev.remaining_ms)
        elif isinstance(ev, Reopening):
            logger.info("translate_svc ended the stream (%s): a new one opens", ev.end.reason.value)
            self._requested = ()
            err = StreamRestartedError(f"the stream ended ({ev.end.reason.value}): {ev.end.message}")
        elif isinstance(ev, OpenRefused):
            err = StreamRefusedError(f"{ev.error}; the next try in {ev.retry_in_s:.1f} s, the audio is held")
        elif isinstance(ev, AudioDropped):
            err = AudioDroppedError(
                f"no stream took the track's audio for {MAX_QUEUED_S:g} s: "
                f"{ev.samples * 1000 // ev.sample_rate} ms of the oldest were dropped"
            )
        else:
            return  # a StreamEnd: the iteration ends (a clean end) or raises next
        for s in seats:
            s.listener.report(err, recoverable=True)

    def _on_updated(self, u: StreamUpdated, seats: list[Seat]) -> None:
        targets = tuple(u.target_languages)
        if u.error is not None:
            logger.warning("translate_svc refused the stream's new languages: %s", u.error)
            for s in seats:
                if s.code not in targets:
                    s.listener.report(LanguageRefusedError(f"{s.tag!r}: {u.error}"), recoverable=True)
            return
        for s in seats:
            if s.code in targets and (not s.history or s.history[-1][1] != s.code):
                s.history.append((u.first_segment_id, s.code, s.tag))

    def source_tag(self, code: str | None) -> str | None:
        """How to name the language of a transcript: the caller's tag when it is the source's code."""
        if code is None:
            return self.options.source
        if self.options.source is not None and code == self._source_code:
            return self.options.source
        return code

    # -- ends ---------------------------------------------------------------------------------

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        self.hub.forget(self)
        for s in list(self.seats):
            s.listener.end_output()

    def _fail(self, e: BaseException) -> None:
        if self.done:
            return
        logger.error("translate_svc stream failed: %s", e)
        self.done = True
        self.hub.forget(self)
        for s in list(self.seats):
            if not s.refused:  # a refused one was told why already
                s.listener.report(e if isinstance(e, Exception) else RuntimeError(str(e)), recoverable=False)
            s.listener.end_output()
        spawn(self.lasting.aclose(), "translate_svc-stream-close")

    async def aclose(self) -> None:
        self.done = True
        self.hub.forget(self)
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task() and not reader.done():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await self.lasting.aclose()
