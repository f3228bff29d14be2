"""Which row holds which slot of a decode pool, and how rows leave it (model/decode/loop.py owns the
pool; this module keeps the host's picture of its slots and moves rows between them).

A step runs on slots ``0 .. k-1``: eagerly ``k`` is the rows' count, so the rows stay packed, a row
that leaves replaced by one from the end (as vLLM's persistent batch condenses); on the static path
(what CUDA graphs replay) ``k`` is a row bucket, and a free slot inside it steps too, masked, in its
own buffers. So there a row that leaves frees its slot where it is, rows joining take the lowest
free slots, and rows move down only when the rows left fit a smaller bucket (``_pack``): a leave
usually moves nothing. Rows that leave at one step leave together (``leave``): their hidden states
copied out in one copy, the rows that must move moved in one gather and one scatter a buffer
(``Slots.move_rows``). Each move on the GPU is a launch, and each launch outside a graph costs its
host tens of microseconds. Model thread only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import LogitsProcessor

from translate_svc.model.capture import upload
from translate_svc.model.decode.step import Slots
from translate_svc.model_api.rows import DecodeRow


@dataclass
class PoolRow:
    """What the host keeps of an active row: its plan row, how many tokens it has (known without
    reading the device: each step adds one), its own encoder frames, and its term processors."""

    row: DecodeRow
    length: int
    frames: int
    processors: list[LogitsProcessor]
    #: the tokens it joined with (prompt and forced prefix): the loop chose the ones after
    known: int = 0
    #: the slot it decodes in
    slot: int = -1


class Seats:
    """A pool's slots (see the module docstring): ``slots`` of them, over ``buffers``; ``bucket``
    gives the static step's rows for a count of rows (None: eager, always packed)."""

    def __init__(self, buffers: Slots, slots: int, device: torch.device, bucket: Callable[[int], int] | None) -> None:
        self.buffers, self.slots, self.device = buffers, slots, device
        self._bucket = bucket
        #: slot i holds ``held[i]`` (None: free); never a free slot at the end
        self.held: list[PoolRow | None] = []
        self.count = 0

    @property
    def rows(self) -> list[PoolRow]:
        """The active rows, in slot order."""
        return [r for r in self.held if r is not None]

    @property
    def extent(self) -> int:
        """The last slot in use, plus one: what a step must run over."""
        return len(self.held)

    def free(self) -> list[int]:
        """The free slots, lowest first."""
        return [i for i in range(self.slots) if i >= len(self.held) or self.held[i] is None]

    def seat(self, rows: Sequence[PoolRow]) -> None:
        """``rows`` (each with its ``slot``, a free one) join."""
        for r in rows:
            self.held += [None] * (r.slot + 1 - len(self.held))
            self.held[r.slot] = r
        self.count += len(rows)

    def hidden(self, rows: Sequence[PoolRow]) -> list[Tensor]:
        """Each leaving row's hidden states (``Finished.hidden``), copied out of the pool in one
        copy for all of them (a block of their slots, or one gather), each a view of it."""
        width = max(r.length for r in rows) - 1
        slots = [r.slot for r in rows]
        lo, hi = min(slots), max(slots)
        if hi - lo + 1 == len(rows):  # a block of slots (one row, or neighbours)
            block, at = self.buffers.hidden[lo : hi + 1, :width].clone(), [s - lo for s in slots]
        else:
            index = upload(slots, torch.long, self.device)
            block, at = self.buffers.hidden[:, :width].index_select(0, index), list(range(len(rows)))
        return [block[k, : r.length - 1] for k, r in zip(at, rows, strict=True)]

    def leave(self, rows: Sequence[PoolRow], *, finished: bool) -> None:
        """``rows`` leave their slots (``finished``: their flags say so on the device already; else
        each slot is marked finished, so a static step never grows it), then the pool packs."""
        for r in rows:
            if not finished:
                self.buffers.done[r.slot] = True
            self.held[r.slot] = None
        self.count -= len(rows)
        self._pack()

    def _pack(self) -> None:
        """Rows past the slots a step needs move down into free ones (module docstring); the slots
        freed past them are marked finished."""
        while self.held and self.held[-1] is None:
            self.held.pop()
        extent = len(self.held)
        limit = self._bucket(self.count) if self._bucket is not None and self.count else self.count
        if extent <= limit:
            return
        buf = self.buffers
        movers = [r for r in self.held[limit:] if r is not None]
        holes = [i for i in range(limit) if self.held[i] is None][: len(movers)]
        if len(movers) == 1:
            buf.move(movers[0].slot, holes[0], movers[0].length, movers[0].frames)
        elif movers:  # together: one gather and one scatter a buffer
            index = upload([[r.slot for r in movers], holes], torch.long, self.device)
            buf.move_rows(index[0], index[1], max(r.length for r in movers), max(r.frames for r in movers))
        for r, hole in zip(movers, holes, strict=True):
            self.held[hole], r.slot = r, hole
        buf.done[limit:extent].fill_(True)  # freed slots are finished: a static step never grows them
        del self.held[limit:]
