"""``LastingStream``: one translation of live audio that outlasts its streams.

A live source (a LiveKit track, a Pipecat pipeline, a phone call) talks for longer than one
``AsyncStream`` may last, and keeps talking while the server refuses a stream or moves it. A
lasting stream owns that lifecycle once, for every integration (docs/client.md, "Lasting
streams"); it uses only the SDK's public API.

The policy, decided here once:

- **Open on the first audio.** Nothing is opened before ``push`` gives audio; ``open`` (the
  caller's factory) makes each stream, so a stream opened later uses the caller's settings of then.
- **Queue while a stream opens, moves or backs off**, at most ``LastingPolicy.max_queued_s`` of
  audio. Past it the OLDEST audio is dropped (live audio: what is newest matters), counted in
  ``dropped_samples``, logged, and told in the iteration as ``AudioDropped``; never silently.
- **Reopen after the server's limits.** A stream the server ends with ``IDLE_TIMEOUT``,
  ``MAX_STREAM_DURATION`` or ``QUOTA`` (``LastingPolicy.reopen_after``) is followed by a new one:
  at once when audio is waiting, else on the next audio. The audio the ended stream was sent but
  the server did not take (past ``StreamEnd.audio_received_ms``) goes first to the next stream, so
  nothing is lost. ``Reopening`` tells it in the iteration.
- **Back off after a refusal.** An open refused with a retryable status (RESOURCE_EXHAUSTED,
  UNAVAILABLE, after the client's own retries), a ``QUOTA`` end, or a stream no server could
  continue (``StreamResumeError``) waits ``LastingPolicy.backoff.delay_s(n, hint)`` before the next
  open: the server's ``RetryInfo`` delay when it sent one (capped at ``max_retry_delay_s``), else
  an exponential backoff with jitter; ``n`` counts refusals in a row. ``OpenRefused`` tells each.
  ``max_refusals`` in a row (None: no limit) make it fail.
- **Fail on anything else.** A status that says the request must change (INVALID_ARGUMENT,
  UNAUTHENTICATED, ``REVOKED``, ``ERROR``...) ends the lasting stream: the iteration yields its
  ``StreamEnd`` (when there is one) and raises the error; ``push`` then raises.
- **Retire, never cut.** ``restart()`` half-closes the current stream: its last results still come
  in the iteration, before the next stream's; the audio from then on goes to the next stream. If
  a server limit ended the retired stream before it took all it was sent, that rest cannot go
  after the newer audio of the next stream: it is dropped, counted and told (``AudioDropped``). A
  drain or a lost server is no end: the ``AsyncStream`` resumes elsewhere (``Draining`` passes by).

The iteration yields, in order, each stream's events after a ``StreamOpened`` (segment ids start
from 0 in each stream), the notices above, and last the final ``StreamEnd`` (after ``end_input``;
none when no stream was ever opened). Event loop only: nothing here is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np

from translate_svc.client._retry import RetryPolicy, is_retryable
from translate_svc.client.aio._stream import AsyncStream
from translate_svc.client.errors import StreamClosedError, StreamEndedError, StreamResumeError, TranslateError
from translate_svc.client.types import EndReason, StreamEnd, StreamEvent, StreamInfo

logger = logging.getLogger(__name__)

#: stream ends after which a new stream opens (limits, not failures)
REOPEN_AFTER = frozenset({EndReason.IDLE_TIMEOUT, EndReason.MAX_STREAM_DURATION, EndReason.QUOTA})


@dataclass(frozen=True)
class LastingPolicy:
    """How a ``LastingStream`` queues, reopens and backs off (the module's docstring says why).

    ``max_queued_s``: audio held while no stream takes it (the oldest is dropped beyond it).
    ``max_send_s``: at most this much queued audio in one message. ``reopen_after``: the ends that
    are followed by a new stream. ``backoff``: the wait before the next open after a refusal (its
    ``delay_s``: the server's retry delay, else exponential with jitter; ``max_attempts`` unused).
    ``max_refusals``: refusals in a row before giving up (None: keep trying while audio comes).
    """

    max_queued_s: float = 30.0
    max_send_s: float = 0.2
    reopen_after: frozenset[EndReason] = REOPEN_AFTER
    backoff: RetryPolicy = field(default_factory=lambda: RetryPolicy(initial_backoff_s=0.5, max_backoff_s=10.0))
    max_refusals: int | None = None

    def __post_init__(self) -> None:
        if self.max_queued_s <= 0 or self.max_send_s <= 0:
            raise ValueError("LastingPolicy.max_queued_s and max_send_s must be positive")
        if self.max_refusals is not None and self.max_refusals < 1:
            raise ValueError("LastingPolicy.max_refusals must be at least 1, or None")
        if EndReason.HALF_CLOSE in self.reopen_after:
            raise ValueError("LastingPolicy.reopen_after: a clean end (HALF_CLOSE) is never reopened")


# -- what the iteration yields besides the streams' events ------------------------------------------


@dataclass(frozen=True)
class StreamOpened:
    """Stream ``number`` (1-based) opened; the events that follow, up to the next ``StreamOpened``,
    are its own (its segment ids start from 0)."""

    number: int
    info: StreamInfo | None
    stream: AsyncStream = field(repr=False, compare=False)


@dataclass(frozen=True)
class Reopening:
    """Stream ``number`` was ended by the server (``end.reason`` is in ``reopen_after``); a new one
    opens (on the next audio, or at once with ``resent_ms`` of audio it had not taken)."""

    number: int
    end: StreamEnd
    resent_ms: int


@dataclass(frozen=True)
class OpenRefused:
    """A stream could not be opened or continued (``error``); the next try comes in ``retry_in_s``.
    ``refusals``: in a row."""

    error: TranslateError
    retry_in_s: float
    refusals: int


@dataclass(frozen=True)
class AudioDropped:
    """``samples`` of audio were dropped now (``total_samples`` since the start): the oldest, held
    past ``max_queued_s`` while no stream took it; or what a stream retired by ``restart()`` was
    sent and did not take before a server limit ended it (it cannot follow the newer audio its
    successor already has)."""

    samples: int
    total_samples: int
    sample_rate: int


LastingEvent: TypeAlias = StreamEvent | StreamOpened | Reopening | OpenRefused | AudioDropped
#: makes each stream (not started: ``client.stream(...)``), with the caller's settings of now
StreamFactory: TypeAlias = Callable[[], Awaitable[AsyncStream]]


class _NoticeCame:
    pass


_NOTICE = _NoticeCame()


class _Leg:
    """One stream of the lasting stream and the audio sent to it that the server may not have taken."""

    def __init__(self, number: int, stream: AsyncStream, keep: int) -> None:
        self.number = number
        self.stream = stream
        self.sent = 0  # samples
        self.tail: deque[np.ndarray] = deque()  # the last ``keep`` samples sent, at least
        self.kept = 0
        self.keep = keep
        self.usable = True  # takes audio (not retired, not ended)

    def sent_chunk(self, pcm: np.ndarray) -> None:
        self.sent += pcm.size
        self.tail.append(pcm)
        self.kept += pcm.size
        while self.tail and self.kept - self.tail[0].size >= self.keep:
            self.kept -= self.tail.popleft().size

    def not_taken(self, received_samples: int) -> list[np.ndarray]:
        """The audio sent past ``received_samples`` (as far as it was kept), oldest first."""
        lost = min(self.sent - received_samples, self.kept)
        out: list[np.ndarray] = []
        for pcm in reversed(self.tail):
            if lost <= 0:
                break
            out.append(pcm[-lost:] if pcm.size > lost else pcm)
            lost -= pcm.size
        return out[::-1]


class LastingStream:
    """Live mono PCM16 audio in (``push``), every stream's results out (``async for``), across
    as many streams as the server's limits and refusals make (module docstring: the policy).

    ``open``: an async factory of streams (``client.stream(...)``, not started; linear16 mono at
    ``sample_rate``). ``sample_rate``: the audio's rate; None: given by the first ``push``.
    """

    def __init__(
        self, open: StreamFactory, *, sample_rate: int | None = None, policy: LastingPolicy | None = None
    ) -> None:
        self._factory = open
        self.policy = policy or LastingPolicy()
        self._rate = sample_rate
        self._queue: deque[np.ndarray] = deque()
        self._queued = 0
        self.dropped_samples = 0
        self._current: _Leg | None = None
        self._legs: asyncio.Queue[_Leg | BaseException | None] = asyncio.Queue()
        self._reading: _Leg | None = None
        self._notices: deque[LastingEvent] = deque()
        self._held_end: StreamEnd | None = None
        self._wake = asyncio.Event()  # the sender's
        self._rwake = asyncio.Event()  # the iteration's, while it waits for a stream
        self._input_ended = False
        self._restart = False
        self._closed = False
        self._failure: BaseException | None = None
        self._not_before = 0.0
        self._refusals = 0
        self.opened = 0
        self._iter_done = False
        self._pump: asyncio.Task[None] | None = None

    # -- the caller's side -------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int | None:
        return self._rate

    @property
    def stream(self) -> AsyncStream | None:
        """The stream that takes audio now (None while none is open)."""
        leg = self._current
        return leg.stream if leg is not None else None

    @property
    def failure(self) -> BaseException | None:
        """Why the lasting stream failed (None while it lives or after a clean end)."""
        return self._failure

    @property
    def queued_samples(self) -> int:
        return self._queued

    @property
    def input_ended(self) -> bool:
        return self._input_ended

    def audio_position(self) -> tuple[int, int] | None:
        """``(number, samples)``: the stream that takes audio now, and where the audio pushed so far
        ends on its timeline (what it was sent plus what is queued). None while no stream takes
        audio: what is queued then goes to the next one (number ``opened + 1``). For an adapter
        that marks a moment on the streams' timelines (an interruption, say)."""
        leg = self._current
        if leg is None or not leg.usable:
            return None
        return leg.number, leg.sent + self._queued

    def push(self, pcm: bytes | bytearray | memoryview | np.ndarray[Any, Any], sample_rate: int | None = None) -> None:
        """Queue mono PCM16 audio for the stream (never waits). Raises ``StreamClosedError`` after
        ``end_input``, ``aclose`` or a failure, ``ValueError`` for a rate other than the stream's."""
        self._check_open()
        if sample_rate is not None:
            if self._rate is None:
                self._rate = sample_rate
            elif sample_rate != self._rate:
                raise ValueError(f"the lasting stream's audio is at {self._rate} Hz, not {sample_rate} Hz")
        if self._rate is None:
            raise ValueError("give the audio's sample_rate (to LastingStream or to its first push)")
        data = np.frombuffer(pcm, np.int16) if not isinstance(pcm, np.ndarray) else pcm.astype(np.int16, copy=False)
        if data.size == 0:
            return
        self._queue.append(data)
        self._queued += data.size
        self._bound()
        self._start()
        self._wake.set()

    def end_input(self) -> None:
        """No more audio: what is queued is sent, the stream is half-closed, and the iteration ends
        after its last results (and the final ``StreamEnd``)."""
        if self._input_ended or self._closed:
            return
        self._input_ended = True
        self._start()
        self._wake.set()

    def restart(self) -> None:
        """Retire the current stream (half-closed: its last results still come); the audio from now
        on goes to a new one, made by ``open`` with the caller's settings of then."""
        self._check_open()
        if self._current is not None:
            self._restart = True
            self._wake.set()

    async def update(
        self,
        *,
        target_languages: Sequence[str] | None = None,
        speaker_id: int | None = None,
        speed: float | None = None,
    ) -> bool:
        """``AsyncStream.update`` on the current stream; False when none takes audio now (the next
        one is made by ``open``, with the caller's new settings)."""
        leg = self._current
        if leg is None or not leg.usable:
            return False
        try:
            await leg.stream.update(target_languages=target_languages, speaker_id=speaker_id, speed=speed)
        except (StreamClosedError, TranslateError):
            return False
        return True

    async def aclose(self) -> None:
        """Stop now: the streams are cancelled (results not yet delivered are dropped)."""
        self._closed = True
        self._wake.set()
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
        legs = {leg for leg in (self._current, self._reading) if leg is not None}
        while not self._legs.empty():
            item = self._legs.get_nowait()
            if isinstance(item, _Leg):
                legs.add(item)
        for leg in legs:
            await leg.stream.aclose()
        self._legs.put_nowait(None)
        self._rwake.set()

    @property
    def _stopped(self) -> bool:
        return self._closed or self._failure is not None

    def _check_open(self) -> None:
        if self._failure is not None:
            raise StreamClosedError(f"the lasting stream failed: {self._failure}") from self._failure
        if self._closed:
            raise StreamClosedError("the lasting stream was closed")
        if self._input_ended:
            raise StreamClosedError("the lasting stream's input ended (end_input): no more audio can be pushed")

    def _start(self) -> None:
        if self._pump is None:
            self._pump = asyncio.create_task(self._run(), name="lasting-stream")

    def _bound(self) -> None:
        assert self._rate is not None
        most = int(self.policy.max_queued_s * self._rate)
        dropped = 0
        while self._queued > most:
            head = self._queue[0]
            cut = min(head.size, self._queued - most)
            if cut == head.size:
                self._queue.popleft()
            else:
                self._queue[0] = head[cut:]
            self._queued -= cut
            dropped += cut
        if dropped:
            self.dropped_samples += dropped
            logger.warning(
                "lasting stream: no stream took audio for %g s: dropped the oldest %d ms",
                self.policy.max_queued_s,
                dropped * 1000 // self._rate,
            )
            last = self._notices[-1] if self._notices else None
            if isinstance(last, AudioDropped):  # one notice per gap, not one per push
                self._notices[-1] = AudioDropped(last.samples + dropped, self.dropped_samples, self._rate)
            else:
                self._notices.append(AudioDropped(dropped, self.dropped_samples, self._rate))
            self._rwake.set()

    def _take(self) -> np.ndarray:
        assert self._rate is not None
        limit = max(1, int(self.policy.max_send_s * self._rate))
        parts = [self._queue.popleft()]
        size = parts[0].size
        if size > limit:  # a long chunk (queued while no stream took it) goes in pieces
            self._queue.appendleft(parts[0][limit:])
            parts[0] = parts[0][:limit]
            size = limit
        while self._queue and size + self._queue[0].size <= limit:
            parts.append(self._queue.popleft())
            size += parts[-1].size
        self._queued -= size
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    # -- the sending side: one task opens streams and sends the queue -----------------------------

    async def _run(self) -> None:
        try:
            await self._send_loop()
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # a failure (or a bug): the iteration raises it
            self._fail(e)

    async def _send_loop(self) -> None:
        while not self._stopped:
            while not self._queue and not self._input_ended and not self._restart and not self._stopped:
                self._wake.clear()
                await self._wake.wait()
            if self._stopped:
                return
            leg = self._current
            if self._restart:
                self._restart = False
                if leg is not None:
                    await self._retire(leg)
                continue
            if leg is None or not leg.usable:
                if leg is not None:  # ended: wait until its end is read (its unsent audio comes back)
                    self._wake.clear()
                    await self._wake.wait()  # ``_done_with`` wakes it
                    continue
                if not self._queue:  # the input ended and everything was sent
                    self._legs.put_nowait(None)
                    self._rwake.set()
                    return
                leg = await self._open()
                if leg is None:
                    continue
            if self._queue:
                pcm = self._take()
                leg.sent_chunk(pcm)  # counted first: if the stream ends meanwhile, its end says what it took
                try:
                    await leg.stream.send(pcm)
                except (StreamClosedError, TranslateError):
                    leg.usable = False
                continue
            # the input ended, everything was sent: half-closed, it stays the current stream until
            # its end is read (an end that cut it short gives its audio back to a next one)
            await self._retire(leg, current=True)

    async def _retire(self, leg: _Leg, *, current: bool = False) -> None:
        leg.usable = False
        if self._current is leg and not current:
            self._current = None
        with contextlib.suppress(StreamClosedError, TranslateError):
            await leg.stream.close()

    async def _open(self) -> _Leg | None:
        """A new stream, after any backoff; None when refused (the loop tries again)."""
        wait = self._not_before - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        stream: AsyncStream | None = None
        try:
            stream = await self._factory()
            await stream.start()
        except BaseException as e:
            if stream is not None:
                await stream.aclose()
            if isinstance(e, TranslateError) and is_retryable(e.code):
                self._refused(e)
                return None
            raise
        self._refusals = 0
        assert self._rate is not None
        self.opened += 1
        leg = _Leg(self.opened, stream, int(self.policy.max_queued_s * self._rate))
        self._current = leg
        self._legs.put_nowait(leg)
        self._rwake.set()
        logger.debug("lasting stream: stream %d open on %s", leg.number, stream.info.address if stream.info else "?")
        return leg

    def _refused(self, e: TranslateError) -> None:
        self._refusals += 1
        most = self.policy.max_refusals
        if most is not None and self._refusals > most:
            raise e
        delay = self.policy.backoff.delay_s(self._refusals, e.retry_delay_s)
        self._not_before = max(self._not_before, time.monotonic() + delay)
        logger.warning("lasting stream: %s; next try in %.2f s", e, delay)
        self._notices.append(OpenRefused(e, delay, self._refusals))
        self._rwake.set()

    def _fail(self, e: BaseException) -> None:
        if self._failure is None and not self._closed:
            logger.error("lasting stream failed: %s", e)
            self._failure = e
            self._legs.put_nowait(e)
            self._rwake.set()

    # -- the reading side: the iteration reads each stream in turn -------------------------------

    def __aiter__(self) -> LastingStream:
        return self

    async def __anext__(self) -> LastingEvent:
        while True:
            if self._notices:
                return self._notices.popleft()
            if self._iter_done:
                raise StopAsyncIteration
            leg = self._reading
            if leg is None:
                item = await self._next_leg()
                if isinstance(item, _NoticeCame):
                    continue
                if item is None:
                    self._iter_done = True
                    if self._held_end is not None:
                        end, self._held_end = self._held_end, None
                        return end
                    raise StopAsyncIteration
                if isinstance(item, BaseException):
                    self._iter_done = True
                    raise item
                self._reading, self._held_end = item, None
                return StreamOpened(item.number, item.stream.info, item.stream)
            ev = await self._next_of(leg)
            if ev is not None:
                return ev

    async def _next_leg(self) -> _Leg | BaseException | _NoticeCame | None:
        """The next stream, the failure, None (no more), or word that a notice came meanwhile."""
        while True:
            if not self._legs.empty():
                return self._legs.get_nowait()
            if self._notices:
                return _NOTICE
            self._rwake.clear()
            await self._rwake.wait()

    async def _next_of(self, leg: _Leg) -> LastingEvent | None:
        """The next event of ``leg``; None when it ended (dealt with here)."""
        try:
            ev = await leg.stream.__anext__()
        except StopAsyncIteration:  # a clean end: it was retired (restart, or the input ended)
            self._done_with(leg)
            return None
        except StreamEndedError as e:
            self._ended(leg, e)
            return None
        except StreamResumeError as e:
            self._lost(leg, e)
            return None
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            self._done_with(leg)
            self._iter_done = True
            self._fail(e)
            raise
        if isinstance(ev, StreamEnd):
            self._held_end = ev  # yielded only as the last one's (or with a failure)
            return None
        return ev

    def _done_with(self, leg: _Leg) -> None:
        leg.usable = False
        if self._current is leg:
            self._current = None
        self._reading = None
        self._wake.set()

    def _give_back(self, leg: _Leg, received_samples: int) -> int:
        """Put the audio ``leg`` was sent and did not take back at the queue's head; the samples."""
        back = leg.not_taken(received_samples)
        size = sum(p.size for p in back)
        if not back:
            return 0
        if self._current is not leg and self._current is not None:
            # a retired stream's audio cannot go before what its successor already has: lost
            self.dropped_samples += size
            assert self._rate is not None
            self._notices.append(AudioDropped(size, self.dropped_samples, self._rate))
            return 0
        self._queue.extendleft(reversed(back))
        self._queued += size
        self._bound()
        return size

    def _ended(self, leg: _Leg, e: StreamEndedError) -> None:
        assert self._rate is not None
        self._held_end = None
        if e.reason in self.policy.reopen_after and not self._closed:
            resent = self._give_back(leg, e.end.audio_received_ms * self._rate // 1000)
            logger.info("lasting stream: stream %d ended (%s): a new one opens", leg.number, e.reason.value)
            self._notices.append(Reopening(leg.number, e.end, resent * 1000 // self._rate))
            if e.reason is EndReason.QUOTA:
                try:
                    self._refused(e)
                except TranslateError as failed:
                    self._fail(failed)
            self._done_with(leg)
            return
        self._done_with(leg)
        self._notices.append(e.end)
        self._fail(e)

    def _lost(self, leg: _Leg, e: StreamResumeError) -> None:
        assert self._rate is not None
        if not is_retryable(e.code) or self._closed:
            self._done_with(leg)
            self._fail(e)
            return
        self._give_back(leg, e.resume_offset_ms * self._rate // 1000)
        try:
            self._refused(e)
        except TranslateError as failed:
            self._fail(failed)
        self._done_with(leg)
