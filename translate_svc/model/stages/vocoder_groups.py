"""How the batched vocoder groups a call's rows (model/stages/vocoder.py): by length, so a group's
padding stays bounded, then within the buckets the warm-up ran.

HiFi-GAN's cost is per output sample, padding included, so rows are grouped in length order with
each group's rows times its longest at most ``max_padding`` times its real size
(``length_groups``). A caller may cap a group's rows (``max_rows``: renditions keep to their text
rows'). And a group's row bucket and its longest row's units must be a pair the warm-up ran
(``RowGroups.warmed``, told by ``MaskedVocoder.warm``): a respeak batch (kept units at several
rates, the vocoder alone) brings a vocoder row per job and rate, more rows than any batch of text
rows the warm-up ran, and on CUDA a pair it did not run is a new shape and a graph miss (eager:
hundreds of launches). Such a group is cut into parts that fit; a row alone is never cut. Plain
values; the model thread's (the finish thread warms and groups its own vocoder calls the same way:
the record only grows, at the warm-up).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from translate_svc.model.stages.shapes import bucket_rows


def length_groups(lengths: Sequence[int], max_padding: float) -> list[list[int]]:
    """Row indices grouped in length order; each group's rows x longest <= max_padding x its sum."""
    groups: list[list[int]] = []
    cur: list[int] = []
    total = 0
    for r in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        n = lengths[r]
        if cur and (len(cur) + 1) * n > max_padding * (total + n):
            groups.append(cur)
            cur, total = [], 0
        cur.append(r)
        total += n
    if cur:
        groups.append(cur)
    return groups


class RowGroups:
    """A vocoder's grouping of rows, and the (row bucket, units bucket) pairs its warm-up ran (see
    the module docstring). ``bucket``: the units' length bucket."""

    def __init__(self, bucket: Callable[[int], int]) -> None:
        self._bucket = bucket
        #: row bucket -> the most units (a bucket) the warm-up ran a group of it at
        self.units_at: dict[int, int] = {}

    def warmed(self, rows: int, units: int) -> None:
        """The warm-up ran a group of ``rows`` rows (a row bucket) at ``units`` units."""
        self.units_at[rows] = max(self.units_at.get(rows, 0), units)

    def fits(self, rows: int, units: int) -> bool:
        """Whether a group of ``rows`` rows whose longest has ``units`` units is a pair the warm-up
        ran (always, before any warm-up: nothing to keep to)."""
        if not self.units_at:
            return True
        return self._bucket(units) <= self.units_at.get(bucket_rows(rows), 0)

    def of(self, lengths: Sequence[int], max_padding: float, max_rows: int | None = None) -> list[list[int]]:
        """``length_groups``, each cut to ``max_rows`` rows and to the pairs the warm-up ran; in
        length order, so each part's rows stay alike."""
        out: list[list[int]] = []
        for group in length_groups(lengths, max_padding):
            cur: list[int] = []
            for r in group:  # shortest first: a row that does not fit starts a part of its own
                if cur and ((max_rows is not None and len(cur) >= max_rows) or not self.fits(len(cur) + 1, lengths[r])):
                    out.append(cur)
                    cur = []
                cur.append(r)
            out.append(cur)
        return out
