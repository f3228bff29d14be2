"""A glossary parse process (``glossaries/processes.py``): ``python -m translate_svc.glossaries.parse_worker``.

It lowers its priority, then serves calls one at a time until its stdin closes (the server
ended, or ended it): each call is its framing (``call_header``), a pickled ``(fn, args, kwargs)``
(protocol 5) and the pickle's out-of-band buffers (a file's bytes); each answer is one byte (1: a
value, 0: an exception), ``HEADER`` bytes of length, and the pickled value or exception. Anything
else that writes to stdout (a library's print) goes to stderr instead, so it never mixes into an
answer.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import BinaryIO

#: bytes of an answer's and a call's length
HEADER = 8
#: how much less a parse process counts to the kernel's scheduler than the server's threads
#: (``nice``: 0 is the server's, 19 the least)
NICENESS = 10


def _answer(ok: bool, value: object) -> bytes:
    try:
        body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:  # an exception that does not pickle (a library's own, with odd arguments)
        ok, body = False, pickle.dumps(RuntimeError(f"{type(value).__name__}: {value} ({e})"))
    return bytes([ok]) + len(body).to_bytes(HEADER, "big") + body


def call_header(request: int, buffers: list[int]) -> bytes:
    """A call's framing: its pickle's length, how many buffers follow it and each one's length."""
    sizes = [request, len(buffers), *buffers]
    return b"".join(n.to_bytes(HEADER, "big") for n in sizes)


def _sizes(calls: BinaryIO, n: int) -> list[int] | None:
    raw = calls.read(HEADER * n)
    if len(raw) < HEADER * n:
        return None
    return [int.from_bytes(raw[k : k + HEADER], "big") for k in range(0, len(raw), HEADER)]


def _exactly(calls: BinaryIO, size: int) -> bytes | None:
    data = calls.read(size)
    return data if len(data) == size else None


def serve(calls: BinaryIO, answers: BinaryIO) -> None:
    """Calls from ``calls`` answered on ``answers`` until ``calls`` ends."""
    while (head := _sizes(calls, 2)) is not None:
        size, count = head
        lengths = _sizes(calls, count) if count else []
        request = _exactly(calls, size)
        if lengths is None or request is None:
            return
        buffers = [_exactly(calls, n) for n in lengths]
        if any(b is None for b in buffers):
            return
        try:
            fn, args, kwargs = pickle.loads(request, buffers=buffers)
            del request, buffers
            answer = _answer(True, fn(*args, **kwargs))
        except Exception as e:
            answer = _answer(False, e)
        answers.write(answer)
        answers.flush()


def main() -> None:
    try:
        os.nice(NICENESS)
    except OSError:  # pragma: no cover - a platform or sandbox that refuses it
        pass
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints to stderr, never into an answer
    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
