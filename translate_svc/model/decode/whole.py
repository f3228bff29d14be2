"""A whole plan's rows through a decode pool (model/decode/loop.py ``DecodeLoop.run``): the fast
runner's batches (model/decode/batch.py), in the pool the stepping decoder shares (one pool for
every route), rows joining as slots free up. Model thread only."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import torch
from torch import Tensor

from translate_svc.model.capture import upload
from translate_svc.model.decode.finished import Finished
from translate_svc.model_api.rows import DecodeRow


class Pool(Protocol):
    """What a whole plan's run asks of a decode pool (``DecodeLoop``)."""

    #: where rows of no user of this run go when they finish (the stepping decoder's)
    others: Callable[[list[Finished]], None] | None
    #: ids of the pool's own for this run's rows
    run_ids: itertools.count[int]

    @property
    def free(self) -> int: ...

    def admit(
        self,
        rows: Sequence[DecodeRow],
        enc: Tensor,
        mask: Tensor,
        *,
        said: Mapping[int, str] | None = None,
        text_input: bool = False,
        frames: Sequence[int] | None = None,
    ) -> list[Finished]: ...

    def step(self) -> list[Finished]: ...


def run_rows(
    loop: Pool,
    rows: Sequence[DecodeRow],
    enc: Tensor,
    mask: Tensor,
    *,
    said: Mapping[int, str] | None = None,
    text_input: bool = False,
    frames: Sequence[int] | None = None,
) -> dict[int, Finished]:
    """Every row decoded, by id: rows join as slots free up (a queue in front of the pool), and
    the pool steps until they have all left. One pass: a plan's passes (``RowPlan.passes``,
    transcripts first where terms need them) are the caller's, with ``said`` from the first
    pass's rows.

    The pool may hold another user's rows meanwhile (the stepping decoder's: one pool for every
    route): they step too, and those that finish go to ``others``. This run's rows
    join under ids of the pool's own (negative: the stepping decoder's are not), so a plan's ids
    never meet another user's; they come back under their own."""
    waiting = list(range(len(rows)))
    mine: dict[int, int] = {}  # the pool's id of each row in the pool -> the row's own
    out: dict[int, Finished] = {}

    def keep(done: Sequence[Finished]) -> None:
        elsewhere = [f for f in done if f.id not in mine]
        for f in done:
            if f.id in mine:
                own = mine.pop(f.id)
                out[own] = dataclasses.replace(f, id=own)
        if elsewhere:
            if loop.others is None:
                raise RuntimeError(f"{len(elsewhere)} rows of no known user finished in the decode pool")
            loop.others(elsewhere)

    while waiting or mine:
        take, waiting = waiting[: loop.free], waiting[loop.free :]
        if take:
            index = upload(take, torch.long, enc.device)
            joining = []
            for k in take:
                own_id = next(loop.run_ids)
                mine[own_id] = rows[k].id
                joining.append(dataclasses.replace(rows[k], id=own_id))
            keep(
                loop.admit(
                    joining,
                    enc.index_select(0, index),
                    mask.index_select(0, index),
                    said=said,
                    text_input=text_input,
                    frames=None if frames is None else [frames[k] for k in take],
                )
            )
        keep(loop.step())
    return out
