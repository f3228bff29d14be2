"""The decode pool's warm-up (model/decode/warm.py, issue 88; its own test module since issue 89
item 4): every static step shape run once, every admission of each row bucket at each encoder
width admitted then dropped, on an empty pool only, the pool's free slots reset after. A
recording stand-in for the pool: no checkpoint. What a warmed pool meets afterwards is
tests/model/test_cuda_path_on_cpu.py's."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from translate_svc.model.decode.step import StepShape
from translate_svc.model.decode.warm import warm_admissions, warm_steps
from translate_svc.model_api.rows import DecodeRow

pytestmark = pytest.mark.unit


class Pool:
    """What the warm-up asks of a ``DecodeLoop``, recorded."""

    def __init__(self, *, static: bool, slots: int = 4, max_frames: int = 64) -> None:
        self.static, self.slots, self.max_frames = static, slots, max_frames
        self.weights = SimpleNamespace(embed=torch.zeros(10, 6))
        self.dtype, self.device = torch.float32, torch.device("cpu")
        self.step_shapes = [StepShape(1, 8, 16), StepShape(2, 8, 16), StepShape(4, 16, 64)]
        self.held: list[int] = []
        self.steps: list[tuple[StepShape, int]] = []
        self.admitted: list[tuple[int, tuple[int, ...], list[int]]] = []
        self.resets = 0

    def __len__(self) -> int:
        return len(self.held)

    def bucket(self, n: int) -> int:
        return 1 << (n - 1).bit_length()

    def static_step(self, shape: StepShape, parity: int) -> None:
        self.steps.append((shape, parity))

    def admit(self, plan: Sequence[DecodeRow], enc: torch.Tensor, mask: torch.Tensor, *, frames: list[int]) -> None:
        assert enc.shape[:2] == mask.shape and enc.shape[2] == 6
        self.admitted.append((len(plan), tuple(enc.shape[:2]), frames))
        self.held += [row.id for row in plan]

    def drop(self, row_id: int) -> None:
        self.held.remove(row_id)

    def reset_free(self) -> None:
        self.resets += 1


def test_every_static_step_shape_runs_once_then_the_free_slots_are_reset() -> None:
    pool: Any = Pool(static=True)
    assert warm_steps(pool) == 3
    assert pool.steps == [(s, 0) for s in pool.step_shapes] and pool.resets == 1


def test_a_dynamic_pool_has_no_step_shapes_to_warm() -> None:
    pool: Any = Pool(static=False)
    assert warm_steps(pool) == 0
    assert pool.steps == [] and pool.resets == 0


def test_every_row_bucket_is_admitted_at_every_width_that_fits_then_dropped() -> None:
    pool: Any = Pool(static=True, slots=4, max_frames=64)
    calls = warm_admissions(pool, rows=[1, 3, 5], frames=[20, 10, 20, 999], language="eng")
    # rows 1, 3 and 5 are buckets 1, 4 and 4 (at most the pool's 4 slots); 999 frames do not fit
    assert calls == 4
    assert pool.admitted == [(1, (1, 10), [10]), (1, (1, 20), [20]), (4, (4, 10), [10] * 4), (4, (4, 20), [20] * 4)]
    assert pool.held == [] and pool.resets == 1


def test_a_dynamic_pool_is_admitted_each_row_count_as_it_is() -> None:
    pool: Any = Pool(static=False, slots=4)
    warm_admissions(pool, rows=[1, 3, 5], frames=[10], language="eng")
    assert [n for n, _, _ in pool.admitted] == [1, 3, 4]


def test_a_pool_holding_rows_is_not_warmed() -> None:
    pool: Any = Pool(static=True)
    pool.held = [7]
    with pytest.raises(RuntimeError, match="empty decode pool"):
        warm_steps(pool)
    with pytest.raises(RuntimeError, match="empty decode pool"):
        warm_admissions(pool, [1], [10], "eng")
    assert pool.steps == [] and pool.admitted == []
