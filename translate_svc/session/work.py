"""The process's pools for work sized by a caller, off the event loop and off its default executor.

The loop's default executor (``run_in_executor(None, ...)``, ``asyncio.to_thread``) is one pool
shared by whatever lands there: one caller's long work (a job's parts written, a results download
read, a stream's large messages) fills it, and every tenant's result encoding queues behind it
(DESIGN.md, pitfall 41). So each kind of work has a bounded pool of its own (``WorkPools``, one per
process, built by the ``SessionManager``, sized by ``limits``):

- ``encode``: a live stream's result resampled to its rate or encoded as Opus (``segments.py``,
  ``simultaneous.py``); ``limits.result_encode_threads``;
- ``stream_decode``: a live stream's large message decoded and resampled (``stream.py``: those
  over 64 KiB; smaller ones cost less than the hand-off); ``limits.stream_decode_threads``;
- ``part_writes``: a job's upload part written to its file as it comes (both ports);
  ``limits.part_write_threads``;
- ``file_reads``: a job's results (JSON, subtitles, the dubbed track, a dubbed video) and a
  recording's files read to be sent; ``limits.file_read_threads``.

A clip's or a job's session does its CPU work on the unary calls' pool (``SessionManager.decode_pool``),
never these: live streams do not wait behind a clip.

Each pool is shared fairly between tenants (``WorkPool``): calls wait on the loop, in a queue per
tenant, and a free thread takes the next call of the tenant served least recently (round robin),
so another tenant's call waits for at most one call per thread, never behind a tenant's backlog;
and a tenant has at most ``*_per_tenant`` calls running at once, so while that is below the
threads (the defaults: 1 of 2; result encoding's 2 of 2, as each of its calls is one segment's
speech) a thread is free for everyone else whatever one tenant sends.
Nothing queues in the executor itself (a call is handed to it only when one of its threads is
free). Every caller awaits its call, so what waits is bounded by the calls a tenant was admitted
for (its streams, its held requests), and a caller that waits holds its own reading (back-pressure),
no one else's. Event loop only (``run``; the calls themselves run on the pool's threads).
"""

from __future__ import annotations

import asyncio
import collections
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from translate_svc.errors import NotReady
from translate_svc.settings import LimitsSettings

T = TypeVar("T")


class Offload(Protocol):
    """Runs ``fn()`` off the event loop; its result (or its exception) when it has run."""

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]: ...


@dataclass(eq=False)
class _Call:
    fn: Callable[[], Any]
    tenant: str
    done: asyncio.Future[Any]


@dataclass(eq=False)
class _Tenant:
    """One tenant's calls on a pool: waiting (in order) and running."""

    waiting: collections.deque[_Call] = field(default_factory=collections.deque)
    running: int = 0


class WorkPool:
    """``threads`` threads for one kind of work, shared fairly between tenants, each tenant with at
    most ``per_tenant`` calls running (see the module). Event loop only; ``close`` when the server
    stops."""

    def __init__(self, name: str, threads: int, per_tenant: int) -> None:
        self.name = name
        self._threads = threads
        self._per_tenant = max(1, per_tenant)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=name)
        #: tenants with calls waiting or running, in the order they are served (round robin)
        self._tenants: collections.OrderedDict[str, _Tenant] = collections.OrderedDict()
        self._running = 0
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> int:
        """Calls running on the pool's threads now."""
        return self._running

    def waiting(self, tenant: str | None = None) -> int:
        """Calls waiting for a thread (of ``tenant``; None: of every tenant)."""
        if tenant is not None:
            t = self._tenants.get(tenant)
            return len(t.waiting) if t is not None else 0
        return sum(len(t.waiting) for t in self._tenants.values())

    async def run(self, tenant: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a thread of the pool, as one of ``tenant``'s calls. Cancelled while it
        waits: it never runs; while it runs: it runs to its end, its result dropped (the tenant's
        slot is given back only then, so cancelling never lets a tenant past its cap)."""
        if self._closed:
            raise NotReady(f"the server is stopping: its {self.name} pool takes no more work")
        loop = asyncio.get_running_loop()
        self._loop = loop
        call = _Call(functools.partial(fn, *args) if args else fn, tenant, loop.create_future())
        t = self._tenants.get(tenant)
        if t is None:  # not served lately: first in the round
            t = self._tenants[tenant] = _Tenant()
            self._tenants.move_to_end(tenant, last=False)
        t.waiting.append(call)
        self._dispatch()
        try:
            return await call.done  # type: ignore[no-any-return]
        except asyncio.CancelledError:
            if call in t.waiting:  # never handed to a thread: it never runs
                t.waiting.remove(call)
                self._forget(tenant, t)
            raise

    def _dispatch(self) -> None:
        """Hand calls to free threads: the tenant served least recently first, within its cap."""
        while self._running < self._threads:
            chosen = next(
                (name for name, t in self._tenants.items() if t.waiting and t.running < self._per_tenant), None
            )
            if chosen is None:
                return
            self._tenants.move_to_end(chosen)  # served now: last in the round
            t = self._tenants[chosen]
            call = t.waiting.popleft()
            t.running += 1
            self._running += 1
            try:
                fut = self._pool.submit(call.fn)
            except RuntimeError as e:  # the pool was shut down
                self._finished(call, None, e)
                return
            fut.add_done_callback(functools.partial(self._from_thread, call))

    def _from_thread(self, call: _Call, fut: Future[Any]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._ended, call, fut)
        except RuntimeError:  # the loop closed meanwhile: nobody waits any more
            pass

    def _ended(self, call: _Call, fut: Future[Any]) -> None:
        if fut.cancelled():
            self._finished(call, None, NotReady(f"the server is stopping: its {self.name} pool dropped the work"))
            return
        exc = fut.exception()
        self._finished(call, None if exc is not None else fut.result(), exc)

    def _finished(self, call: _Call, result: Any, exc: BaseException | None) -> None:
        self._running -= 1
        t = self._tenants.get(call.tenant)
        if t is not None:
            t.running -= 1
            self._forget(call.tenant, t)
        if not call.done.done():  # (cancelled: its caller left while it ran)
            if exc is not None:
                call.done.set_exception(exc)
            else:
                call.done.set_result(result)
        if not self._closed:
            self._dispatch()

    def _forget(self, tenant: str, t: _Tenant) -> None:
        if not t.waiting and not t.running:
            self._tenants.pop(tenant, None)

    def close(self) -> None:
        """The server stopped: calls still waiting fail (UNAVAILABLE); running ones end on their own."""
        self._closed = True
        for t in self._tenants.values():
            while t.waiting:
                call = t.waiting.popleft()
                if not call.done.done():
                    call.done.set_exception(
                        NotReady(f"the server is stopping: its {self.name} pool takes no more work")
                    )
        self._pool.shutdown(wait=False, cancel_futures=True)


class WorkPools:
    """The process's pools (see the module). Built once by the ``SessionManager``; ``close`` when the
    server stops."""

    def __init__(self, limits: LimitsSettings) -> None:
        self.encode = WorkPool("result-encode", limits.result_encode_threads, limits.result_encodes_per_tenant)
        self.stream_decode = WorkPool("stream-decode", limits.stream_decode_threads, limits.stream_decodes_per_tenant)
        self.part_writes = WorkPool("part-write", limits.part_write_threads, limits.part_writes_per_tenant)
        self.file_reads = WorkPool("file-read", limits.file_read_threads, limits.file_reads_per_tenant)

    def close(self) -> None:
        for pool in (self.encode, self.stream_decode, self.part_writes, self.file_reads):
            pool.close()


@dataclass(frozen=True)
class OnPool:
    """``Offload`` onto a pool as one tenant's call."""

    pool: WorkPool
    tenant: str

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]:
        return self.pool.run(self.tenant, fn)


@dataclass(frozen=True)
class OnExecutor:
    """``Offload`` onto an executor of its own (a clip's or a job's session: the unary calls' pool)."""

    executor: Executor

    def __call__(self, fn: Callable[[], T], /) -> Awaitable[T]:
        return asyncio.get_running_loop().run_in_executor(self.executor, fn)


@dataclass(frozen=True)
class SessionWork:
    """Where one session's work off the loop runs: ``encode`` (its results' speech resampled or
    encoded) and ``decode`` (its large messages decoded and resampled)."""

    encode: Offload
    decode: Offload

    @classmethod
    def live(cls, pools: WorkPools, tenant: str) -> SessionWork:
        """A live stream's: the process's pools, as its tenant's calls."""
        return cls(OnPool(pools.encode, tenant), OnPool(pools.stream_decode, tenant))

    @classmethod
    def on(cls, executor: Executor) -> SessionWork:
        """A clip's or a job's: all on ``executor``."""
        offload = OnExecutor(executor)
        return cls(offload, offload)
