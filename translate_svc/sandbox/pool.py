"""A sandbox's processes, as the event loop uses them: ``Sandbox.run`` one call in a process, or
``Sandbox.lease`` a process for a series of calls (a job's reader), each call within a CPU budget
and every process within ``SandboxLimits.memory_mb`` of address space (``worker.py``).

Each process is ``python -m translate_svc.sandbox.worker`` (not ``multiprocessing``, which would
import the server's main module again in each), started when a call needs one and kept idle for
the next for ``idle_s``. It imports only the modules its calls name, finds this process's modules
(its ``sys.path``), and runs with one BLAS thread and two malloc arenas (each thread's arena would
otherwise reserve 64 MB of the address space it is bounded in). A call sends the function and its
arguments pickled on the process's stdin (an argument of bytes beside the pickle, as it is: never
copied here), reads the answer from its stdout and loads it on ``off_loop`` (never the event
loop) with ``answers.load`` (plain values only: a process that a file took over cannot make this
one run anything). What the call raised is raised here as it was.

A process ends with its call when the call fails it: out of memory (``OverLimit``, kind
``memory``), out of its CPU budget (``SIGXCPU``: ``OverLimit``, kind ``cpu``), crashed by a
signal (``OverLimit``, kind ``crash``), killed otherwise or ended early (``NotReady``: UNAVAILABLE,
retry), cancelled, or ended by ``stop_calls``/``close`` (``SandboxStopped``). Only that call fails;
the next gets a new process. Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

from translate_svc.errors import InvalidInput, NotReady
from translate_svc.sandbox import answers
from translate_svc.sandbox.slots import Slots
from translate_svc.sandbox.worker import HEADER, NO_MEMORY, VALUE, call_header

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger(__name__)

WORKER = "translate_svc.sandbox.worker"
#: an argument of bytes longer goes to the process as it is, beside the pickle (pickle 5's
#: out-of-band buffers), this many bytes at a time: never copied whole in this process
SLICE = 1 << 20
#: what a sandbox process runs with: one BLAS thread, few malloc arenas (see the module)
_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
#: signals that say the process crashed on what it read (a decoder's fault, or an allocation that
#: failed where the code did not check it), not that something else killed it
_CRASHES = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE}

#: how an answer's bytes are loaded: on a thread, never the event loop
OffLoop = Callable[[Callable[[bytes], Any], bytes], Awaitable[Any]]


@dataclass(frozen=True)
class SandboxLimits:
    """What a sandbox's processes may take: ``processes`` at once (``per_tenant`` of one tenant),
    each at most ``memory_mb`` of address space (0: unbounded) at ``niceness`` below the server,
    kept idle ``idle_s`` for the next call; a request waits ``wait_s`` at most for a process
    (None: as long as it takes). ``what`` names the processes in a refusal and ``settings`` the
    settings that bound them (processes, per tenant, memory)."""

    processes: int
    per_tenant: int
    memory_mb: int
    niceness: int = 10
    idle_s: float = 60.0
    wait_s: float | None = None
    what: str = "sandbox processes"
    settings: tuple[str, str, str] = ("processes", "processes_per_tenant", "memory_mb")


class OverLimit(InvalidInput):
    """A call's input needed more than its process may take: ``kind`` ``memory`` (its address
    space, ``limit`` in MB), ``cpu`` (its budget, ``limit`` in seconds) or ``crash`` (it crashed
    the code reading it). The caller words it for its input; this message is the fallback."""

    def __init__(self, kind: str, limit: float, setting: str = "") -> None:
        said = {
            "memory": f"needs more than {limit:.0f} MB of memory to read",
            "cpu": f"needs more than {limit:.0f} s of CPU to read",
            "crash": "crashed the code that read it",
        }[kind]
        super().__init__(f"this input {said}{f' ({setting})' if setting else ''}: send a smaller or a valid one")
        self.kind = kind
        self.limit = limit


class SandboxStopped(NotReady):
    """The process was ended under its call because the server stops (or no longer takes calls)."""

    def __init__(self) -> None:
        super().__init__(
            "this server is stopping: the work was ended; send the request again (to another server)",
            retry_after_ms=1000,
        )


class Worker:
    """One sandbox process, as its holder uses it: ``call`` a function there, one call at a time."""

    def __init__(self, sandbox: Sandbox, proc: asyncio.subprocess.Process) -> None:
        self._sandbox = sandbox
        self.proc = proc
        #: the call failed the process: it is not kept
        self.spent = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def call(self, cpu_s: float, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` there, within ``cpu_s`` of CPU; what it raises is raised here."""
        if self.spent:
            raise NotReady("this sandbox process has ended: open it again", retry_after_ms=1000)
        buffers: list[pickle.PickleBuffer] = []
        large = tuple(pickle.PickleBuffer(a) if isinstance(a, bytes) and len(a) > SLICE else a for a in args)
        request = pickle.dumps((fn, large, kwargs), protocol=5, buffer_callback=buffers.append)
        try:
            kind, payload = await self._exchange(request, buffers, max(1, round(cpu_s * 1000)))
        except BaseException:  # cancelled mid-call, or the process died: it is not reused
            self.spent = True
            self._sandbox.end(self.proc)
            raise
        if kind == NO_MEMORY:
            self.spent = True
            self._sandbox.end(self.proc)
            raise self._sandbox.over("memory", self._sandbox.limits.memory_mb)
        value = await self._sandbox.off_loop(answers.load, payload)
        if kind != VALUE:
            raise cast(BaseException, value)
        return cast(T, value)

    async def _exchange(self, request: bytes, buffers: list[pickle.PickleBuffer], cpu_ms: int) -> tuple[int, bytes]:
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            views = [b.raw() for b in buffers]
            proc.stdin.write(call_header(len(request), cpu_ms, [len(v) for v in views]) + request)
            for view in views:  # a file's bytes as they are (no copy), a slice at a time
                for at in range(0, len(view), SLICE):
                    proc.stdin.write(view[at : at + SLICE])
                    await proc.stdin.drain()
            await proc.stdin.drain()
            head = await proc.stdout.readexactly(HEADER + 1)
            return head[0], await proc.stdout.readexactly(int.from_bytes(head[1:], "big"))
        except (asyncio.IncompleteReadError, ConnectionError):
            code = await proc.wait()
            raise self._sandbox.ended(proc, code, cpu_ms / 1000) from None


class Sandbox:
    """At most ``limits.processes`` sandbox processes (``per_tenant`` of one tenant) that run
    module-level functions of picklable arguments (see the module); ``off_loop`` loads their
    answers (default: a thread of the sandbox's own)."""

    def __init__(self, limits: SandboxLimits, off_loop: OffLoop | None = None) -> None:
        if limits.processes < 1 or limits.per_tenant < 1:
            raise ValueError("a sandbox needs at least one process, and one a tenant")
        self.limits = limits
        self.slots = Slots(limits.processes, limits.per_tenant, what=limits.what, settings=limits.settings[:2])
        self._loads: ThreadPoolExecutor | None = None
        self.off_loop: OffLoop = off_loop or self._on_own_thread
        self._idle: list[asyncio.subprocess.Process] = []
        self._idle_ends: dict[int, asyncio.TimerHandle] = {}
        #: processes in a ``run`` call (ended by ``stop_calls``), and leased ones
        self._calls: set[asyncio.subprocess.Process] = set()
        self._leased: set[asyncio.subprocess.Process] = set()
        #: processes ended by ``stop_calls`` or ``close``: their calls fail ``SandboxStopped``
        self._stopped: set[int] = set()
        self._stopping = False
        #: every process started and not yet reaped
        self._all: set[asyncio.subprocess.Process] = set()

    async def _on_own_thread(self, fn: Callable[[bytes], Any], payload: bytes) -> Any:
        if self._loads is None:
            self._loads = ThreadPoolExecutor(1, thread_name_prefix="sandbox-answers")
        return await asyncio.get_running_loop().run_in_executor(self._loads, fn, payload)

    async def run(self, tenant: str | None, cpu_s: float, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in one of ``tenant``'s processes (None: of no tenant), within
        ``cpu_s`` of CPU, after waiting ``limits.wait_s`` at most for one; the process is kept
        for the next call. ``stop_calls`` ends it."""
        async with self._taken(tenant, self.limits.wait_s, self._calls) as worker:
            value = await worker.call(cpu_s, fn, *args, **kwargs)
        return value

    async def run_waiting(self, cpu_s: float, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``run`` of no tenant, waiting for a process as long as it takes (its caller bounds how
        many of its calls there are)."""
        async with self._taken(None, None, self._calls) as worker:
            value = await worker.call(cpu_s, fn, *args, **kwargs)
        return value

    @contextlib.asynccontextmanager
    async def lease(self, tenant: str | None, *, wait_s: float | None = 0.0) -> AsyncIterator[Worker]:
        """A process of ``tenant``'s for the block, for calls that keep state there between them
        (a reader): ended with the block, so its state goes with it; only ``close`` ends it
        before. ``Overloaded`` when the tenant's share or the processes are taken for longer than
        ``wait_s``."""
        async with self._taken(tenant, wait_s, self._leased) as worker:
            try:
                yield worker
            finally:
                worker.spent = True
                self.end(worker.proc)

    @contextlib.asynccontextmanager
    async def _taken(
        self, tenant: str | None, wait_s: float | None, mine: set[asyncio.subprocess.Process]
    ) -> AsyncIterator[Worker]:
        if self._stopping:
            raise SandboxStopped()
        async with self.slots.taken(tenant, wait_s):
            if self._stopping:
                raise SandboxStopped()
            proc = await self._take()
            mine.add(proc)
            worker = Worker(self, proc)
            try:
                yield worker
            finally:
                mine.discard(proc)
                if not worker.spent and proc.returncode is None and not self._stopping:
                    self._keep(proc)
                elif proc.returncode is None:
                    self.end(proc)

    async def _take(self) -> asyncio.subprocess.Process:
        while self._idle:
            proc = self._idle.pop()
            handle = self._idle_ends.pop(proc.pid, None)
            if handle is not None:
                handle.cancel()
            if proc.returncode is None:
                return proc
        return await self._start()

    async def _start(self) -> asyncio.subprocess.Process:
        env = {**os.environ, **_ENV, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        memory = self.limits.memory_mb * 1024 * 1024
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", WORKER, str(memory), str(self.limits.niceness), str(os.getpid()),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        self._all.add(proc)
        return proc

    def _keep(self, proc: asyncio.subprocess.Process) -> None:
        self._idle.append(proc)
        loop = asyncio.get_running_loop()
        self._idle_ends[proc.pid] = loop.call_later(self.limits.idle_s, self._end_idle, proc)

    def _end_idle(self, proc: asyncio.subprocess.Process) -> None:
        self._idle_ends.pop(proc.pid, None)
        if proc in self._idle:
            self._idle.remove(proc)
            self.end(proc)

    def end(self, proc: asyncio.subprocess.Process) -> None:
        """End ``proc`` (killed now, reaped in the background)."""
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        task = asyncio.get_running_loop().create_task(proc.wait())
        task.add_done_callback(lambda _: self._all.discard(proc))

    def over(self, kind: str, limit: float) -> OverLimit:
        setting = {"memory": self.limits.settings[2]}.get(kind, "")
        return OverLimit(kind, limit, setting)

    def ended(self, proc: asyncio.subprocess.Process, code: int, cpu_s: float) -> BaseException:
        """What a call whose process ended under it raises, by how it ended."""
        if proc.pid in self._stopped:
            return SandboxStopped()
        if code == -signal.SIGXCPU:
            return self.over("cpu", cpu_s)
        if code < 0 and signal.Signals(-code) in _CRASHES:
            logger.warning("a sandbox process crashed (signal %s) on its input", signal.Signals(-code).name)
            return self.over("crash", 0)
        logger.warning("a sandbox process ended while it worked (exit %s: killed for its memory?)", code)
        return NotReady(
            "the process doing this work ended before it was done (the server may be short of memory): retry",
            retry_after_ms=1000,
        )

    def stop_calls(self) -> None:
        """The server stops: every request's call in progress is ended now (``SandboxStopped``), and
        no process is given from now on; leased processes run on until their holders end them
        (``close`` ends them too)."""
        self._stopping = True
        for proc in [*self._calls, *self._idle]:
            self._stopped.add(proc.pid)
            self.end(proc)
        self._idle.clear()

    async def close(self) -> None:
        """Every process ends and is reaped (a call still running fails ``SandboxStopped``)."""
        self._stopping = True
        for handle in self._idle_ends.values():
            handle.cancel()
        self._idle_ends.clear()
        procs = list(self._all)
        self._idle.clear()
        for proc in procs:
            self._stopped.add(proc.pid)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        await asyncio.gather(*(proc.wait() for proc in procs))
        self._all.clear()
        if self._loads is not None:
            self._loads.shutdown(wait=False, cancel_futures=True)
