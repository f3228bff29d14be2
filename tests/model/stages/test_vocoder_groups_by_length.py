"""The batched vocoder's groups of rows (model/stages/vocoder_groups.py ``length_groups``,
``RowGroups``): rows grouped in length order so that a group's padded size (rows times its longest)
stays within ``max_padding`` of its real size, every row in one group, then cut to the pairs the
warm-up ran. HiFi-GAN's cost is per output sample, padding included. Plain values; each row
against the vocoder alone is tests/model/stages/test_speech_stages.py's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from translate_svc.model.stages.vocoder_groups import length_groups as _length_groups

pytestmark = pytest.mark.unit


def test_similar_lengths_share_a_group_and_a_long_row_goes_alone() -> None:
    assert _length_groups([100, 104, 98, 400], 1.25) == [[2, 0, 1], [3]]
    assert _length_groups([], 1.25) == []
    assert _length_groups([5, 5, 5], 1.0) == [[0, 1, 2]]  # no padding at all: one group


@given(lengths=st.lists(st.integers(1, 500), max_size=24), bound=st.sampled_from([1.0, 1.25, 2.0]))
def test_every_row_is_in_one_group_whose_padding_stays_in_bounds(lengths: list[int], bound: float) -> None:
    groups = _length_groups(lengths, bound)
    assert sorted(r for g in groups for r in g) == list(range(len(lengths)))
    order = [r for g in groups for r in g]
    assert [lengths[r] for r in order] == sorted(lengths)  # in length order
    for group in groups:
        sizes = [lengths[r] for r in group]
        assert len(sizes) * max(sizes) <= bound * sum(sizes) + 1e-9


def test_groups_are_cut_to_the_row_buckets_and_units_the_warm_up_ran() -> None:
    """A respeak batch brings more vocoder rows than the warm-up's batches: its groups are cut so
    each part's row bucket and longest units are a pair the warm-up ran (a new shape and a graph
    miss on CUDA otherwise); before any warm-up nothing is cut."""
    from translate_svc.model.stages.shapes import bucket_length
    from translate_svc.model.stages.vocoder_groups import RowGroups

    lengths = [100, 101, 102, 103, 104, 105]  # one length group of 6 rows (bucket 8)
    groups = RowGroups(bucket_length)
    assert groups.of(lengths, 1.25) == [[0, 1, 2, 3, 4, 5]]  # not warmed: as they come
    for rows in (1, 2, 4):
        groups.warmed(rows, bucket_length(200))
    groups.warmed(4, bucket_length(102))  # a smaller record never lowers a larger one
    assert groups.of(lengths, 1.25) == [[0, 1, 2, 3], [4, 5]]
    groups.warmed(8, bucket_length(90))  # 8 rows warmed only up to 99 units (90's bucket)
    assert groups.of(lengths, 1.25) == [[0, 1, 2, 3], [4, 5]]  # 5 rows (bucket 8) of 104 units: not run
    groups.warmed(8, bucket_length(105))
    assert groups.of(lengths, 1.25) == [[0, 1, 2, 3, 4, 5]]
    assert groups.of([300, 300], 1.25) == [[0], [1]]  # longer than any 2-row group the warm-up ran
    assert groups.of(lengths, 1.25, max_rows=3) == [[0, 1, 2], [3, 4, 5]]
