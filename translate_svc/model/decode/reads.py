"""The decode pool's read behind (two sets of buffers, used in turn): what the host learns
of its rows after each step without waiting for that step.

After a step the rows' finished flags, lengths, tokens and log-probabilities are copied into host
buffers (pinned on CUDA) without blocking; the host takes them at the next step, once that step's
work is queued, so it never waits for the step it just launched. Two sets of buffers are used in
turn: a step writes one while the host reads the other (the step before's), so on the static path
the copies are part of the step's captured graph (``copy_in_step``). A row read finished leaves with
the tokens and log-probabilities copied beside its flag (final: a finished row's later steps write
nothing of it), with no read of the device. Model thread only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from translate_svc.model import capture, regions
from translate_svc.model.decode.step import Slots


@dataclass(frozen=True, eq=False)
class HostRead:
    """One set of the read behind's host buffers: each slot's finished flag, length, tokens and
    log-probabilities as a step left them."""

    done: Tensor
    length: Tensor
    tokens: Tensor
    logprob: Tensor

    @classmethod
    def allocate(cls, buf: Slots, pin: bool) -> HostRead:
        def like(t: Tensor) -> Tensor:
            return regions.host_buffer(torch.zeros(t.shape, dtype=t.dtype, pin_memory=pin))

        return cls(like(buf.done), like(buf.length), like(buf.tokens), like(buf.logprob))


class ReadBehind:
    """A pool's two sets of host buffers and the read in flight (see the module docstring)."""

    def __init__(self, buffers: Slots, device: torch.device) -> None:
        self.buffers, self.device = buffers, device
        pin = device.type == "cuda"
        self._sets = (HostRead.allocate(buffers, pin), HostRead.allocate(buffers, pin))
        #: the set the next read writes
        self.parity = 0
        #: the read in flight: the rows' ids then (by slot; None: a free slot), the copies' event,
        #: their set, and the point in the thread's work it was issued at (``capture.copies_mark``)
        self._pending: tuple[tuple[int | None, ...], Any, int, int] | None = None

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def copy_out(self, n: int, parity: int) -> None:
        """Rows ``0 .. n-1``'s flags, lengths, tokens and log-probabilities copied into set
        ``parity`` without waiting (inside a captured step, or after an eager one)."""
        buf, host = self.buffers, self._sets[parity]
        host.done[:n].copy_(buf.done[:n], non_blocking=True)
        host.length[:n].copy_(buf.length[:n], non_blocking=True)
        host.tokens[:n].copy_(buf.tokens[:n], non_blocking=True)
        host.logprob[:n].copy_(buf.logprob[:n], non_blocking=True)

    def issue(self, ids: tuple[int | None, ...], parity: int) -> None:
        """The read of set ``parity`` (the rows ``ids``, by slot) in flight; the next read writes
        the other."""
        event = None
        if self.device.type == "cuda":
            event = torch.cuda.Event()  # type: ignore[no-untyped-call]
            event.record()
        self._pending = (ids, event, parity, capture.copies_mark())
        self.parity = parity ^ 1

    def take(self) -> tuple[tuple[int | None, ...], HostRead]:
        """The read in flight, once its copies are done (the one wait a step the design keeps,
        counted as ``regions.READ_BEHIND``): the rows' ids then and their set."""
        assert self._pending is not None
        ids, event, parity, mark = self._pending
        self._pending = None
        regions.note_wait(regions.READ_BEHIND)
        if event is not None:
            event.synchronize()
        capture.waited_past(mark)
        return ids, self._sets[parity]

    def drop(self) -> None:
        """Let the read in flight go (a row left; a row joining later may reuse its id)."""
        self._pending = None
