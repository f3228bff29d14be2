"""Length buckets (model/stages/shapes.py): plain values."""

from __future__ import annotations

import pytest

from translate_svc.model.stages.shapes import bucket_length

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


def test_a_shape_log_counts_only_shapes_first_met_after_the_warm_up() -> None:
    from translate_svc.model.stages.shapes import ShapeLog

    told: list[str] = []
    log = ShapeLog(told.append, most=3)
    assert log.saw("encoder", (2, 100)) and not log.saw("encoder", (2, 100))
    assert log.saw("decoder", (2, 100))  # the same shape in another stage is another shape
    assert told == [] and log.cold == {}  # before the warm-up ends nothing is cold
    log.mark_warm()
    assert not log.saw("encoder", (2, 100)) and told == []
    assert log.saw("encoder", (3, 100)) and told == ["encoder"] and log.cold == {"encoder": 1}
    # past ``most`` remembered shapes a new one is counted every time it comes, never remembered
    assert log.saw("vocoder", (1, 7)) and log.saw("vocoder", (1, 7))
    assert log.cold == {"encoder": 1, "vocoder": 2} and len(log._seen) == 3


def test_row_buckets_ladders_and_the_encoders_finer_series() -> None:
    from translate_svc.model.stages.shapes import bucket_rows, encoder_lengths_s, frame_bucket, frame_seconds, ladder

    assert [bucket_rows(n) for n in (1, 2, 3, 4, 5, 31, 33)] == [1, 2, 4, 4, 8, 32, 64]
    assert ladder(40, bucket_rows) == [1, 2, 4, 8, 16, 32, 64]
    for n in range(1, 3000):
        b = frame_bucket(n)
        assert n <= b and (b <= 16 or b <= 1.125 * n + 1)  # at most 12.5 % padding on the encoder
    steps = ladder(751, frame_bucket)
    assert steps == sorted(set(steps)) and {frame_bucket(n) for n in range(1, 752)} == set(steps)
    assert encoder_lengths_s(15.0) == tuple(frame_seconds(b) for b in steps)
    assert frame_seconds(100) * 16000 == 320 * 100 + 100
