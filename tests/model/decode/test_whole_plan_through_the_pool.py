"""A whole plan's rows through a decode pool (model/decode/whole.py ``run_rows``): rows join as
slots free up, under the pool's own ids, and come back under their own; another user's rows that
finish meanwhile (the stepping decoder's: one pool for every route) go to the pool's ``others``,
and with nobody to take them the run fails rather than drop them. A stand-in pool (slots, ids,
admit, step) so the queueing is checked alone; the decoding itself is test_decode_loop.py's."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from typing import Any, cast

import pytest
import torch

from translate_svc.model.decode.finished import Finished
from translate_svc.model.decode.loop import DecodeLoop
from translate_svc.model.decode.whole import run_rows
from translate_svc.model_api.rows import bare_rows

pytestmark = pytest.mark.unit


class FakePool:
    """``slots`` slots; each step finishes the row that joined first (and, at the first step, a row
    of another user, ``stranger``, when given)."""

    def __init__(self, slots: int, stranger: int | None = None) -> None:
        self.slots = slots
        self.held: list[tuple[int, float]] = []  # (pool id, its encoder row's first value)
        self.run_ids = itertools.count(-1_000_000, -1)
        self.others: Callable[[list[Finished]], None] | None = None
        self.stranger = stranger
        self.most = 0  # the most rows held at once

    @property
    def free(self) -> int:
        return self.slots - len(self.held)

    def admit(self, rows: Sequence[Any], enc: torch.Tensor, mask: torch.Tensor, **_: Any) -> list[Finished]:
        assert len(rows) <= self.free and enc.shape[0] == mask.shape[0] == len(rows)
        self.held += [(r.id, float(enc[k, 0, 0])) for k, r in enumerate(rows)]
        self.most = max(self.most, len(self.held))
        return []

    def step(self) -> list[Finished]:
        done = []
        if self.stranger is not None:
            done.append(Finished(self.stranger, (0,), torch.zeros(0, 2)))
            self.stranger = None
        pool_id, value = self.held.pop(0)
        done.append(Finished(pool_id, (0, int(value)), torch.zeros(1, 2)))
        return done


def plan(n: int) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """``n`` rows with ids 10, 11, ...; encoder row k holds k + 100, so a finished row tells which
    encoder row it joined with."""
    rows = [dataclasses.replace(r, id=10 + k) for k, r in enumerate(bare_rows(["spa"] * n, [()] * n, [1.0] * n).rows)]
    enc = (torch.arange(n, dtype=torch.float32) + 100).view(n, 1, 1).expand(n, 3, 2).contiguous()
    return rows, enc, torch.ones(n, 3, dtype=torch.long)


def test_rows_join_as_slots_free_and_come_back_under_their_own_ids() -> None:
    rows, enc, mask = plan(5)
    pool = FakePool(slots=2)
    out = run_rows(cast(DecodeLoop, pool), rows, enc, mask)
    assert sorted(out) == [10, 11, 12, 13, 14]
    assert all(f.id == own and f.tokens == (0, own - 10 + 100) for own, f in out.items())  # its own encoder row
    assert pool.most == 2  # never more than the pool's slots


def test_another_users_rows_go_to_the_pools_others_and_are_never_dropped() -> None:
    rows, enc, mask = plan(3)
    pool = FakePool(slots=2, stranger=7)
    got: list[int] = []
    pool.others = lambda done: got.extend(f.id for f in done)
    assert sorted(run_rows(cast(DecodeLoop, pool), rows, enc, mask)) == [10, 11, 12]
    assert got == [7]

    lost = FakePool(slots=2, stranger=7)  # nobody to take them: the run fails
    with pytest.raises(RuntimeError, match="1 rows of no known user"):
        run_rows(cast(DecodeLoop, lost), rows, enc, mask)
