"""Length buckets (model/shapes.py): plain values."""

from __future__ import annotations

import pytest

from translate_svc.model.shapes import bucket_length

pytestmark = pytest.mark.unit


def test_bucket_is_the_smallest_series_member_not_below_the_length() -> None:
    assert [bucket_length(n) for n in (0, 1, 16, 17, 20, 21, 25, 26)] == [16, 16, 16, 20, 20, 25, 25, 32]


def test_padding_is_bounded_by_the_growth_and_buckets_are_few() -> None:
    lengths = range(1, 2001)
    buckets = {bucket_length(n) for n in lengths}
    assert len(buckets) == 23  # 16, 20, 25, ... 2272: 23 shapes for 2000 lengths
    for n in lengths:
        b = bucket_length(n)
        assert n <= b and (b <= 16 or b <= 1.25 * n + 1)
        assert bucket_length(b) == b  # a bucket maps to itself


def test_custom_series_and_bad_arguments() -> None:
    assert bucket_length(9, smallest=4, growth=2.0) == 16
    with pytest.raises(ValueError):
        bucket_length(-1)
    with pytest.raises(ValueError):
        bucket_length(5, growth=1.0)
