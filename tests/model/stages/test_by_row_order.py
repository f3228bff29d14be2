"""Per-row values keyed by row id (model/stages/by_row.py, issue 70; its own test module since
issue 89 item 4): what every logits processor holds, so a row's value follows the row when rows
join and leave, whatever its place in the batch. Plain values."""

from __future__ import annotations

import pytest

from translate_svc.model.stages.by_row import ByRow

pytestmark = pytest.mark.unit


def test_a_sequence_is_keyed_by_position_in_its_own_order() -> None:
    rows = ByRow([10, 20, 30])
    assert rows.by_id == {0: 10, 1: 20, 2: 30} and rows.order == [0, 1, 2] and rows.values == [10, 20, 30]


def test_a_mapping_follows_the_batch_order_given() -> None:
    rows = ByRow({7: "a", 3: "b", 5: "c"}, order=[5, 7])
    assert rows.values == ["c", "a"]  # only the rows in the batch, in its order


def test_a_row_keeps_its_value_when_others_leave_or_the_batch_reorders() -> None:
    rows = ByRow({1: 4, 2: 8, 3: 16})
    rows.reorder([3, 1])  # row 2 left, row 3 moved first
    assert rows.order == [3, 1] and rows.values == [16, 4]
    with pytest.raises(KeyError):
        rows.reorder([9])  # a row that never joined has no value
