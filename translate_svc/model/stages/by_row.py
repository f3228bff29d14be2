"""Per-row values of a decode, keyed by row id (``model_api/rows.py`` ``DecodeRow.id``).

Every logits processor and stopping criterion of the text decoder (model/stages/decoder.py,
model/stages/terms.py, model/stages/forced.py) holds its rows' values by id and the batch's order of ids apart,
so a row's state follows the row, not its place in the batch: rows can join and leave between
steps (``reorder``), and ``generate``, whose batch is fixed, sees them in plan order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class ByRow(Generic[T]):
    """Per-row values keyed by row id, and the order of the ids in the batch being decoded.

    Built from a mapping (row id -> value) and the batch's ids, or from a plain sequence (the ids
    are then 0, 1, ...). ``reorder`` gives a new batch order (rows joined or left); ``values`` are
    the batch's values in order."""

    def __init__(self, rows: Mapping[int, T] | Sequence[T], order: Sequence[int] | None = None) -> None:
        by_id = dict(rows) if isinstance(rows, Mapping) else dict(enumerate(rows))
        self.by_id: dict[int, T] = by_id
        self.order: list[int] = list(by_id) if order is None else list(order)
        self.values: list[T] = [by_id[i] for i in self.order]

    def reorder(self, order: Sequence[int]) -> None:
        self.order = list(order)
        self.values = [self.by_id[i] for i in self.order]
