"""Capture regions: the code a CUDA graph replays, named where it runs.

On CUDA a stage that runs under a captured graph costs the host one launch, whatever it holds; the
same code outside a graph costs one launch per kernel, and a host sync inside it (``.item()``, a
blocking copy) both breaks its capture and drains the GPU's queue. So every stage that the GPU
replays runs its static path inside ``region(name)``: on CUDA the region is where its graph is
captured and replayed; on CPU the same static path runs eagerly inside it, so CI runs the code the
GPU runs, and what the GPU would pay is counted there by whoever observes the regions:

- the host-cost benchmark (benchmarks/tools/host_costs.py) counts the kernels inside regions as
  one graph launch each, and those outside as eager launches;
- the sync guard (``HostCosts(strict=True)``, tests/support/dispatch_count.py) raises on a host
  sync, a host-to-device upload or an allocation from host data inside a region: the rule that
  keeps regions capturable.

**Waits the CPU never runs** (an event's or a stream's ``synchronize``, a pinned buffer's reuse
check): on CPU there is no event to wait for, so a counter that sees only what the CPU executes
misses them. Each such wait calls ``note_wait`` at its own line, on every device (a no-op without
observers), and observers count it as a host sync; ``READ_BEHIND`` names the decode's read of its
flags one step behind, the one wait per step the design keeps.

Host buffers (pinned on CUDA: the staging of admissions, the read-behind of the decode's flags)
are named with ``host_buffer``, so an observer on CPU, where every tensor is on the host, can tell
a read of one (free) from a read of a device tensor (a sync).

No observer: ``region`` costs one list check. Observers are installed by ``observing`` (tests and
benchmarks), never by the server. Not thread-safe: the observers are process-wide and a region is
entered on the thread that runs the stage; observers must tell threads apart themselves.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Protocol

import torch


class RegionObserver(Protocol):
    def entered(self, name: str) -> None: ...

    def left(self, name: str) -> None: ...

    def read(self, what: str) -> None:
        """The host waited for the device: to read results (one sync, however many tensors), or at
        a wait the code notes (``note_wait``: ``what`` says which)."""


_observers: list[RegionObserver] = []
#: host buffers by id (a weak reference each: a tensor compares elementwise, so no set holds it)
_host: dict[int, weakref.ref[torch.Tensor]] = {}


@contextlib.contextmanager
def region(name: str) -> Iterator[None]:
    """Code the GPU replays as one captured graph (``name``: the stage and its part)."""
    if not _observers:
        yield
        return
    for o in _observers:
        o.entered(name)
    try:
        yield
    finally:
        for o in reversed(_observers):
            o.left(name)


@contextlib.contextmanager
def observing(observer: RegionObserver) -> Iterator[RegionObserver]:
    """``observer`` told of every region entered and left in the block."""
    _observers.append(observer)
    try:
        yield observer
    finally:
        _observers.remove(observer)


def note_read(what: str) -> None:
    """The host waits for the device now, to read results (``graphs.host_read``): observers count it."""
    for o in _observers:
        o.read(what)


#: what ``note_wait`` names the decode pool's wait for its read behind (model/decode/reads.py)
READ_BEHIND = "read behind"


def note_wait(what: str) -> None:
    """The host waits here on CUDA for work queued on the device (an event's or a stream's
    ``synchronize``): called where the wait is written, on every device, so observers count it
    even where the CPU has nothing to wait for (on CUDA the wait itself follows the call)."""
    for o in _observers:
        o.read(what)


def observed() -> bool:
    """Whether anything observes the regions now (a count runs): code that acts as on CUDA only
    for its observers (``capture.HostStaging``'s copies in flight) asks."""
    return bool(_observers)


def host_buffer(t: torch.Tensor) -> torch.Tensor:
    """``t`` is a host buffer (pinned on CUDA): reading it is not a device sync. Returns ``t``."""
    key = id(t)
    _host[key] = weakref.ref(t, lambda _: _host.pop(key, None))
    return t


def is_host_buffer(t: torch.Tensor) -> bool:
    """Whether ``t`` (or the tensor it views) was named by ``host_buffer``."""
    for one in (t, t._base):
        ref = _host.get(id(one)) if one is not None else None
        if ref is not None and ref() is one:
            return True
    return False
