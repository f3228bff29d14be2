"""Silero VAD for every stream on one thread, streams that wait together scored together.

Sessions ``submit(state, samples, on_done)`` and go on: nothing waits per message. A turn starts
once its oldest request has waited ``gather_ms`` (20 ms by default; at once when it is older, as
under load): the thread then takes every request queued by then and scores them with
:meth:`SileroVad.probabilities_many` (one model call per window index across the streams,
bit-identical to scoring each stream alone), at most about a second of each request's audio per
turn, so long requests take turns with short ones. Live streams complete a 32 ms window each at
their own moments; without the gather a thread that is idle takes each window as it comes (one or
two streams a model call), with it a turn holds the windows of every stream completed in the last
20 ms: silero's call costs about 175 us for one row and 70-80 us a row from 16 rows on, and the
thread wakes, and wakes the loop, once a turn instead of once a window (docs/performance.md, "The
front end's CPU per 20 ms Opus message at 30 streams"). The price is at most ``gather_ms`` more
before a window's probability reaches its session. A batch whose call fails is scored again
request by request from the states as they were, so a bad request fails alone, never the streams
batched with it. The results of a turn go back to the event loop in **one**
wake-up (``call_soon_threadsafe``), whatever the number of streams in it: at hundreds of streams
sending 20 ms messages, the per-message future, executor hand-off and self-pipe wake-up of an
awaited call were the front end's largest cost. So the event loop, which also serves gRPC, never
runs the model.

Thread safety: ``submit`` and ``probabilities`` are called from the event loop; the thread owns
the states while it scores them. One stream's requests are scored in the order submitted (its
state carries on from one to the next) and its ``on_done`` calls come in that order.

Background work (a job's audio): a request submitted where ``BACKGROUND`` is set (the job
runner sets it in its job's task, so the job's session submits that way) has a lower priority: in
a turn with live requests it is scored only as far as the longest live request of the turn (in
whole windows), so it never makes a turn longer than the live streams' own; alone, it gets whole
turns. It still moves every turn it is in (its floor), and its order and results are unchanged.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from translate_svc.vad.segmenter import WINDOW_SAMPLES
from translate_svc.vad.silero import SileroState, SileroVad

logger = logging.getLogger(__name__)


#: set (in a job's task) to submit background work: scored after the live streams' (module docstring)
BACKGROUND: contextvars.ContextVar[bool] = contextvars.ContextVar("vad_background", default=False)

#: ``on_done(probabilities, None)`` or ``on_done(None, error)``, called on the submitting loop
OnScored = Callable[[np.ndarray | None, BaseException | None], None]


@dataclass(eq=False)
class _Request:
    state: SileroState
    samples: np.ndarray  # still to score
    on_done: OnScored
    loop: asyncio.AbstractEventLoop
    last: bool = False  # end of stream: also score the partial window left over (SileroVad.finish)
    done: list[np.ndarray] = field(default_factory=list)  # probabilities of the turns so far
    background: bool = False  # a job's: never lengthens a turn with live requests in it
    #: given: a copy of the stream's state once this request is scored, taken on the thread before
    #: the stream's next request can move it (``VadBridge``'s snapshots)
    keep: list[SileroState] | None = None
    #: when it was submitted (``time.monotonic``): the turn that takes it starts ``gather_ms`` after
    at: float = 0.0


#: how long a turn waits for more streams' windows after its oldest request came (module docstring)
GATHER_MS = 20


class VadWorker:
    def __init__(
        self,
        vad: SileroVad,
        *,
        turn_windows: int = 32,
        gather_ms: int = GATHER_MS,
        on_call: Callable[[int], None] | None = None,
    ) -> None:
        """A request is scored at most ``turn_windows`` windows (32: about 1 s of audio) per turn,
        so a whole clip from ``Translate`` (up to minutes) takes turns with live streams instead
        of holding the thread. A turn starts ``gather_ms`` after its oldest request came (0: as
        soon as the thread is free). ``on_call(streams)`` runs on the worker thread after each
        turn (metrics)."""
        if turn_windows < 1:
            raise ValueError("turn_windows must be >= 1")
        if gather_ms < 0:
            raise ValueError("gather_ms must be >= 0")
        self.vad = vad
        self._turn_samples = turn_windows * WINDOW_SAMPLES
        self._gather_s = gather_ms / 1000
        self._on_call = on_call
        self._lock = threading.Lock()
        self._pending: list[_Request] = []
        self._running = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="vad")
        #: turns run, and request slices scored in them (tests and benchmarks read them)
        self.batches = 0
        self.requests = 0

    def submit(
        self,
        state: SileroState,
        samples16k: np.ndarray,
        on_done: OnScored,
        *,
        last: bool = False,
        keep: list[SileroState] | None = None,
    ) -> None:
        """Queue :meth:`SileroVad.probabilities` of one stream's next samples; ``on_done`` gets them
        on this event loop (in submission order per stream). ``last``: the stream ends here; the
        leftover partial window is scored too (:meth:`SileroVad.finish`), so end of stream takes
        the same path as every other call. ``keep``: a copy of the state after these samples is
        appended to it (on the thread, before ``on_done``). Does not wait."""
        x = np.ascontiguousarray(samples16k, dtype=np.float32)
        if x.ndim != 1:  # checked here, so a bad request fails alone, not its whole batch
            raise ValueError(f"expected 1-D mono samples, got shape {x.shape}")
        request = _Request(
            state,
            x,
            on_done,
            asyncio.get_running_loop(),
            last,
            background=BACKGROUND.get(),
            keep=keep,
            at=time.monotonic(),
        )
        with self._lock:
            self._pending.append(request)
            start = not self._running
            self._running = True
        if start:
            self._executor.submit(self._drain)

    async def probabilities(self, state: SileroState, samples16k: np.ndarray, *, last: bool = False) -> np.ndarray:
        """:meth:`submit`, awaited (tests and one-off callers)."""
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self.submit(state, samples16k, functools.partial(_resolve, future), last=last)
        return await future

    def close(self) -> None:
        """Finish queued requests, then stop the thread."""
        self._executor.shutdown(wait=True)

    def _drain(self) -> None:
        while True:
            with self._lock:  # the oldest request first: a turn's unfinished ones go back ahead of the rest
                oldest = self._pending[0].at if self._pending else None
            if oldest is not None:
                wait = oldest + self._gather_s - time.monotonic()
                if wait > 0:  # the windows other streams complete meanwhile join this turn
                    time.sleep(wait)
            with self._lock:
                batch = self._pending
                self._pending = []
                if not batch:
                    self._running = False
                    return
                # one request per stream per call: a second one (not made by sessions) waits a turn
                seen: set[int] = set()
                now: list[_Request] = []
                later: list[_Request] = []
                for r in batch:
                    (later if id(r.state) in seen else now).append(r)
                    seen.add(id(r.state))
                self._pending = later
            cuts = _cuts(now, self._turn_samples)
            finished: list[tuple[_Request, np.ndarray | None, BaseException | None]] = []
            scored = self._score_apart(now, cuts, finished)
            self.batches += 1
            self.requests += len(now)
            unfinished = []
            for r, p, n in scored:
                r.done.append(p)
                r.samples = r.samples[n:]
                if r.samples.size:
                    unfinished.append(r)
                else:
                    if r.keep is not None:
                        st = r.state
                        r.keep.append(SileroState(st.rnn.copy(), st.context.copy(), st.pending.copy(), st.windows))
                    finished.append((r, np.concatenate(r.done) if len(r.done) > 1 else p, None))
            if unfinished:  # ahead of anything queued meanwhile, so each stream keeps its order
                with self._lock:
                    self._pending = unfinished + self._pending
            _hand_back(finished)
            if self._on_call is not None:
                self._on_call(len(now))

    def _score(self, now: list[_Request], cuts: list[int]) -> list[np.ndarray]:
        """One turn's probabilities: each request's first ``cuts`` samples, the streams batched."""
        chunks = [r.samples[:n] for r, n in zip(now, cuts, strict=True)]
        probs = self.vad.probabilities_many([r.state for r in now], chunks)
        for i, (r, n) in enumerate(zip(now, cuts, strict=True)):
            if r.last and r.samples.size <= n:  # its final turn: add the zero-padded tail window
                probs[i] = np.concatenate([probs[i], self.vad.finish(r.state)])
        return probs

    def _score_apart(
        self,
        now: list[_Request],
        cuts: list[int],
        failed: list[tuple[_Request, np.ndarray | None, BaseException | None]],
    ) -> list[tuple[_Request, np.ndarray, int]]:
        """The turn batched; if that call fails, each request alone from where it was, so a bad
        request (a state no model call takes) fails alone, never the streams batched with it: its
        error is appended to ``failed``. The states' arrays are replaced, never written in place
        (``SileroVad``), so keeping their references is enough to put them back."""
        before = [_fields(r.state) for r in now]
        try:
            return list(zip(now, self._score(now, cuts), cuts, strict=True))
        except Exception as exc:
            if len(now) == 1:  # nothing to tell apart
                _put_back(now[0].state, before[0])
                logger.exception("VAD request failed")
                failed.append((now[0], None, exc))
                return []
            logger.warning("VAD batch of %d streams failed: scoring each alone", len(now), exc_info=True)
        out = []
        for r, n, fields in zip(now, cuts, before, strict=True):
            _put_back(r.state, fields)
            try:
                out.append((r, self._score([r], [n])[0], n))
            except Exception as exc:  # this request's own error, handed to its caller alone
                _put_back(r.state, fields)
                logger.exception("VAD request failed")
                failed.append((r, None, exc))
        return out


_Fields = tuple[np.ndarray, np.ndarray, np.ndarray, int]


def _fields(state: SileroState) -> _Fields:
    return state.rnn, state.context, state.pending, state.windows


def _put_back(state: SileroState, fields: _Fields) -> None:
    state.rnn, state.context, state.pending, state.windows = fields


def _cuts(now: list[_Request], turn: int) -> list[int]:
    """Samples of each request scored this turn: at most ``turn``; a background request's at most
    the longest live request's, rounded up to whole windows (one window at least), when the turn
    has live ones."""
    live = [r.samples.size for r in now if not r.background]
    if not live or len(live) == len(now):
        return [turn] * len(now)
    windows = max(1, -(-max(live) // WINDOW_SAMPLES))
    cut = min(turn, windows * WINDOW_SAMPLES)
    return [cut if r.background else turn for r in now]


def _hand_back(results: list[tuple[_Request, np.ndarray | None, BaseException | None]]) -> None:
    """One wake-up per event loop for a whole turn's results."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Request, np.ndarray | None, BaseException | None]]] = {}
    for item in results:
        by_loop.setdefault(item[0].loop, []).append(item)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_deliver, items)
        except RuntimeError:  # that loop is closed: nobody waits any more; keep serving the others
            pass


def _deliver(items: list[tuple[_Request, np.ndarray | None, BaseException | None]]) -> None:
    """On the loop: each request's ``on_done``, in turn order (so in order per stream)."""
    for r, result, exc in items:
        try:
            r.on_done(result, exc)
        except Exception:  # a session's bug must not stop the other streams' deliveries
            logger.exception("a VAD result callback failed")


def _resolve(future: asyncio.Future[np.ndarray], result: np.ndarray | None, exc: BaseException | None) -> None:
    if future.done():  # cancelled meanwhile
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        assert result is not None
        future.set_result(result)
