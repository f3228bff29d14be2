"""A sandbox process (``pool.py``): ``python -m translate_svc.sandbox.worker MEMORY_BYTES NICENESS PARENT``.

At its start it lowers its priority (``nice``), takes ``RLIMIT_AS`` = ``MEMORY_BYTES`` (its whole
address space: an allocation past it fails, ``MemoryError`` in Python, ``ENOMEM`` in FFmpeg),
writes no core file, and dies with its parent (``PR_SET_PDEATHSIG``). Then it serves calls one at
a time until its stdin closes: each call is its framing (``call_header``: the pickle's length, the
call's CPU budget in ms, how many out-of-band buffers follow and each one's length), a pickled
``(fn, args, kwargs)`` (protocol 5) and its buffers (a file's bytes, as they are). Before running
it, the process sets ``RLIMIT_CPU``'s soft limit to the CPU it has used so far plus the budget, so
a process kept for the next call gets a fresh budget each call, and one that overruns it is killed
by the kernel (``SIGXCPU``) in the middle of whatever it was doing. Each answer is one byte
(``VALUE``, ``RAISED`` or ``NO_MEMORY``: the call ran out of its address space), ``HEADER`` bytes
of length and the pickled value or exception. Anything else that writes to stdout (a library's
print) goes to stderr instead, so it never mixes into an answer.

The module imports nothing of the server: the calls' modules are imported by the pickle, each once.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import math
import os
import pickle
import resource
import signal
import sys
from typing import BinaryIO

#: bytes of each length in a call's and an answer's framing
HEADER = 8
#: an answer's first byte
RAISED, VALUE, NO_MEMORY = 0, 1, 2
#: ``prctl``'s option that sends a signal to a process when its parent dies (Linux)
_PR_SET_PDEATHSIG = 1


def call_header(request: int, cpu_ms: int, buffers: list[int]) -> bytes:
    """A call's framing: its pickle's length, its CPU budget (ms), its buffers' count and lengths."""
    sizes = [request, cpu_ms, len(buffers), *buffers]
    return b"".join(n.to_bytes(HEADER, "big") for n in sizes)


def named_function(module: str, name: str) -> object:
    """``module``'s ``name``, imported here (a ``named.Named`` call's function, as it unpickles)."""
    return getattr(importlib.import_module(module), name)


def _answer(kind: int, value: object) -> bytes:
    try:
        body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except MemoryError:
        kind, body = NO_MEMORY, pickle.dumps(None)
    except Exception as e:  # an exception that does not pickle (a library's own, with odd arguments)
        kind, body = RAISED, pickle.dumps(RuntimeError(f"{type(value).__name__}: {str(value)[:200]} ({e})"))
    return bytes([kind]) + len(body).to_bytes(HEADER, "big") + body


def _sizes(calls: BinaryIO, n: int) -> list[int] | None:
    raw = calls.read(HEADER * n)
    if len(raw) < HEADER * n:
        return None
    return [int.from_bytes(raw[k : k + HEADER], "big") for k in range(0, len(raw), HEADER)]


def _exactly(calls: BinaryIO, size: int) -> bytes | None:
    data = calls.read(size)
    return data if len(data) == size else None


def cpu_used_s() -> float:
    """This process's CPU time so far (user and system, every thread), seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _budget(cpu_ms: int) -> None:
    """The kernel ends this process (``SIGXCPU``) once it has used ``cpu_ms`` more of CPU."""
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(cpu_used_s() + cpu_ms / 1000)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def serve(calls: BinaryIO, answers: BinaryIO) -> None:
    """Calls from ``calls`` answered on ``answers`` until ``calls`` ends (or a call ran out of memory:
    the process then ends, as its heap may be in pieces)."""
    while (head := _sizes(calls, 3)) is not None:
        size, cpu_ms, count = head
        lengths = _sizes(calls, count) if count else []
        request = _exactly(calls, size)
        if lengths is None or request is None:
            return
        buffers = [_exactly(calls, n) for n in lengths]
        if any(b is None for b in buffers):
            return
        _budget(cpu_ms)
        try:
            fn, args, kwargs = pickle.loads(request, buffers=buffers)
            del request, buffers
            answer = _answer(VALUE, fn(*args, **kwargs))
        except MemoryError:
            answer = _answer(NO_MEMORY, None)
        except Exception as e:
            answer = _answer(RAISED, e)
        answers.write(answer)
        answers.flush()
        if answer[0] == NO_MEMORY:
            return


def _die_with(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def main() -> None:
    memory, niceness, parent = (int(a) for a in sys.argv[1:4])
    _die_with(parent)
    with contextlib.suppress(OSError):  # a platform or sandbox that refuses it
        os.nice(niceness)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints to stderr, never into an answer
    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
