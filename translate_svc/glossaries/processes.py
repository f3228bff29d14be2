"""Where a glossary's file is parsed: processes of the glossaries' own (``glossaries.parse_processes``).

A 10,000-entry TBX is about half a second of Python inside expat's handlers (a CSV or a JSON
body of the same entries less). On a thread of the serving process that Python holds the
interpreter lock, and every other thread that lets it go -- the model thread between its torch
ops, the VAD, the event loop between its callbacks -- waits up to the switch interval (5 ms) to
have it back, at each op: four tenants importing without pause left a bystander's real-time
results seconds late (issue 91's residual). In a process of its own the parse shares only the
cores, and at a lower priority (``parse_worker.NICENESS``): the kernel gives a real-time stream's
threads the core first.

Each process is ``python -m translate_svc.glossaries.parse_worker`` (not ``multiprocessing``,
which would import the server's main module again in each), started at the first file and kept
for the next; it imports only the parser's module (about 40 MB). A call sends it the function
and its arguments pickled on its stdin (a file's bytes beside the pickle, as they are: no copy
here) and reads the result pickled from its stdout (10,000 entries: about 10 ms to load, on the
book's threads, not the event loop); ``InvalidInput`` raised there is raised here as it was. A
process that dies (killed for memory) fails only the call it had (UNAVAILABLE, retry); one whose
call is cancelled is ended. Event
loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import sys
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from translate_svc.errors import NotReady
from translate_svc.glossaries.parse_worker import HEADER, call_header

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger(__name__)

WORKER = "translate_svc.glossaries.parse_worker"
#: an argument of bytes longer goes to the process as it is, beside the pickle (pickle 5's
#: out-of-band buffers), this many bytes at a time: never copied whole in this process
SLICE = 1 << 20

#: how a result's bytes are loaded: on a thread (the book's ``work``), never the event loop
OffLoop = Callable[[Callable[[bytes], Any], bytes], Awaitable[Any]]


class ParseProcesses:
    """At most ``processes`` worker processes that run module-level functions of picklable
    arguments (see the module); ``off_loop`` loads their results."""

    def __init__(self, processes: int, off_loop: OffLoop) -> None:
        if processes < 1:
            raise ValueError("ParseProcesses needs at least one process")
        self.processes = processes
        self._off_loop = off_loop
        self._turns = asyncio.Semaphore(processes)
        self._idle: list[asyncio.subprocess.Process] = []
        self._busy: set[asyncio.subprocess.Process] = set()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in one of the processes; what it raises is raised here."""
        buffers: list[pickle.PickleBuffer] = []
        large = tuple(pickle.PickleBuffer(a) if isinstance(a, bytes) and len(a) > SLICE else a for a in args)
        request = pickle.dumps((fn, large, kwargs), protocol=5, buffer_callback=buffers.append)
        async with self._turns:
            proc = self._idle.pop() if self._idle else await self._start()
            self._busy.add(proc)
            try:
                ok, payload = await self._call(proc, request, buffers)
            except BaseException:  # cancelled mid-call, or the process died: it is not reused
                _end(proc)
                raise
            finally:
                self._busy.discard(proc)
            self._idle.append(proc)
        value = await self._off_loop(pickle.loads, payload)
        if not ok:
            raise cast(BaseException, value)
        return cast(T, value)

    async def _start(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", WORKER, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )

    async def _call(
        self, proc: asyncio.subprocess.Process, request: bytes, buffers: list[pickle.PickleBuffer]
    ) -> tuple[bool, bytes]:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            views = [b.raw() for b in buffers]
            proc.stdin.write(call_header(len(request), [len(v) for v in views]) + request)
            for view in views:  # a file's bytes as they are (no copy), a slice at a time
                for at in range(0, len(view), SLICE):
                    proc.stdin.write(view[at : at + SLICE])
                    await proc.stdin.drain()
            await proc.stdin.drain()
            head = await proc.stdout.readexactly(HEADER + 1)
            return head[0] == 1, await proc.stdout.readexactly(int.from_bytes(head[1:], "big"))
        except (asyncio.IncompleteReadError, ConnectionError):
            code = await proc.wait()
            logger.warning("a glossary parse process ended while it worked (exit %s: killed for its memory?)", code)
            raise NotReady(
                "the process parsing the glossary's file ended before it was done (the server may be short of "
                "memory): retry; if it fails again, split the file into smaller glossaries",
                retry_after_ms=1000,
            ) from None

    async def close(self) -> None:
        """The processes end and are reaped (a call still running fails)."""
        procs = [*self._idle, *self._busy]
        self._idle.clear()
        for proc in procs:
            _end(proc)
        await asyncio.gather(*(proc.wait() for proc in procs))


def _end(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
