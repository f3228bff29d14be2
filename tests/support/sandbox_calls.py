"""Functions a test runs in a sandbox process (``translate_svc/sandbox/``): module-level, so the
process finds them by name; each says what it did with plain values."""

from __future__ import annotations

import os
import pickle
import time
from dataclasses import dataclass

import numpy as np

from translate_svc.errors import InvalidInput


def pid() -> int:
    return os.getpid()


def niceness() -> int:
    return os.nice(0)


def spin_cpu(seconds: float) -> int:
    """Busy for ``seconds`` of this process's CPU; its id."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return os.getpid()


def allocate_mb(mb: int) -> int:
    """``mb`` MB allocated and touched."""
    block = bytearray(mb << 20)
    return len(block)


def samples(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float32)


def refuse(message: str) -> None:
    raise InvalidInput(message)


def exit_now(code: int) -> None:
    os._exit(code)


@dataclass
class Mutable:
    """Not a frozen dataclass: an answer may not hold one."""

    value: int


def mutable() -> Mutable:
    return Mutable(1)


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


def evil_pickle() -> bytes:
    """What a process taken over could write as its answer: a pickle that runs a command."""
    return pickle.dumps(_Evil())
