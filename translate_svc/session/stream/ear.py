"""The ear's CPU off the event loop, and who may use it (security finding J1).

A stream's noise suppression (``audio/denoise.py``: soxr up to 48 kHz, RNNoise 480 samples at a
time, soxr back) costs 0.03-0.07 s of CPU per audio second, and a speaker embedding
(``speakers/encoder.py``: a numpy LSTM stepped in Python) 0.02-0.1 s per second of speech. On the
event loop, about 15 streams of the first fill it whatever the machine, and every other stream and
health check waits behind them; on the loop's default executor, the second competes with what else
goes there (clip decodes, TBX imports). So each has a pool of its own (``EarPools``, one per
process, built by the ``SessionManager``): noise suppression on ``limits.ear_threads`` threads
(ctypes and soxr release the GIL while they compute), embeddings on ``limits.speaker_threads``
(one by default: the lowest priority there is in one process, as a thread's niceness is no help
while it holds the GIL).

A stream's chunks must be suppressed in order, one at a time (the RNNoise and soxr states are the
stream's): ``EarLane`` runs them on the pool one after another, and the stream awaits each, so a
stream has at most one chunk there and a pool that is behind holds its streams' reading (HTTP/2's
and TCP's flow control then slow their clients), with no queue to grow. Embeddings queue at most a
stream's fair share of segments (a result waits for its label, and an unread result holds its
stream's reading), times the streams allowed the ear.

The streams allowed the ear: ``limits.max_ear_streams`` in this process, and a tenant's
``ear_streams`` from the tokens file (``ear_cap``): tenant ``demo``, the demo page's, is refused
the ear unless ``limits.demo_ear_streams`` allows it. Event loop only, but for the pools' threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from translate_svc.errors import Overloaded, PermissionDenied
from translate_svc.session.tenants.tenant import DEMO_TENANT, Tenant
from translate_svc.settings import LimitsSettings
from translate_svc.types import EarOptions
from translate_svc.vad.turn_end import SMART_TURN_WHEEL, SmartTurn
from translate_svc.vad.turn_worker import TurnWorker

T = TypeVar("T")


def uses_ear(ear: EarOptions) -> bool:
    """Whether a stream asks for noise suppression or speaker labels."""
    return ear.noise_suppression or ear.speakers > 0


class EarPools:
    """The process's threads for the ear: ``denoise`` (noise suppression) and ``speakers`` (voice
    embeddings), and the count of live streams that use them (``take``/``give``, against
    ``limits.max_ear_streams``). Built once by the ``SessionManager``; ``close`` when the server stops."""

    def __init__(self, limits: LimitsSettings) -> None:
        self.denoise = ThreadPoolExecutor(limits.ear_threads, thread_name_prefix="ear-denoise")
        self.speakers = ThreadPoolExecutor(limits.speaker_threads, thread_name_prefix="ear-speakers")
        self._most = limits.max_ear_streams
        #: live streams with the ear in this process now
        self.streams = 0
        #: the end-of-turn model's threads (``vad/turn_worker.py``), or why there are none: streams
        #: asking for a semantic end of turn then keep the silence rule, told ``turns_missing``
        self.turns: TurnWorker | None = None
        self.turns_missing = ""
        model = SmartTurn.shared() if limits.turn_threads else None
        if model is not None:
            self.turns = TurnWorker(model, threads=limits.turn_threads, batch=limits.turn_batch)
        elif limits.turn_threads:
            self.turns_missing = (
                f"the end-of-turn model is not installed on this server (pip install --no-deps {SMART_TURN_WHEEL})"
            )
        else:
            self.turns_missing = "this server does not run the end-of-turn model (limits.turn_threads=0)"

    def take(self) -> None:
        """One more stream with the ear, or RESOURCE_EXHAUSTED naming ``limits.max_ear_streams``."""
        if self.streams >= self._most:
            raise ear_full(self._most)
        self.streams += 1

    def give(self) -> None:
        self.streams -= 1

    def close(self) -> None:
        self.denoise.shutdown(wait=False, cancel_futures=True)
        self.speakers.shutdown(wait=False, cancel_futures=True)
        if self.turns is not None:
            self.turns.close()


class EarLane:
    """One stream's turn on a pool: its calls run there one at a time, in the order they were
    made, each awaited by the stream (so at most one of its calls is on the pool, or waiting for a
    thread). A call whose awaiting was cancelled still runs to its end before the next begins: the
    stream's state is never used by two threads at once."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        #: the stream's last call on the pool (its own future: the loop's wrapper of it is done as
        #: soon as its await is cancelled, while the call may still run)
        self._last: Future[Any] | None = None

    async def run(self, call: Callable[[], T]) -> T:
        """``call()`` on the pool, after the stream's previous call has ended."""
        last = self._last
        if last is not None and not last.done():
            await asyncio.wait({asyncio.wrap_future(last)})  # a call left by a cancelled await ends first
        fut = self._pool.submit(call)
        self._last = fut
        return await asyncio.wrap_future(fut)


def ear_cap(tenant: Tenant, limits: LimitsSettings) -> int | None:
    """The most streams with the ear ``tenant`` may have at once (None: no cap of its own): its
    ``ear_streams`` from the tokens file; unstated, ``limits.demo_ear_streams`` for the demo page's
    tenant, and none for any other."""
    if tenant.caps.ear_streams is not None:
        return tenant.caps.ear_streams
    return limits.demo_ear_streams if tenant.name == DEMO_TENANT else None


def ear_refused(tenant: Tenant) -> PermissionDenied:
    """A stream that asked for the ear of a tenant allowed none (its cap is 0): what to ask instead."""
    if tenant.caps.ear_streams is None:  # the demo page's tenant, by the setting
        where = (
            "the demo page's sessions get them only where the operator allows it: limits.demo_ear_streams, "
            "TRANSLATE_SVC_LIMITS__DEMO_EAR_STREAMS"
        )
    else:
        where = "ear_streams=0 in the tokens file"
    e = PermissionDenied(
        f"tenant {tenant.name!r} may not ask for noise suppression (noise_reduction, noise_suppression) or "
        f"speaker labels (speakers, diarization) on this server ({where}): ask without them"
    )
    e.reason = "ear_streams"
    return e


def ear_full(most: int) -> Overloaded:
    e = Overloaded(
        f"this server process has its capacity of {most} streams with noise suppression or speaker labels open "
        "(limits.max_ear_streams): ask without them, or retry shortly or on another server",
        retry_after_ms=1000,
    )
    e.reason = "max_ear_streams"
    return e
