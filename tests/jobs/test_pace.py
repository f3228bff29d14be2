"""A job's share of the engine (``jobs/pace.py``), with plain values."""

from __future__ import annotations

import pytest

from translate_svc.jobs.pace import MAX_PAUSE_S, EnginePace

pytestmark = pytest.mark.unit


def test_a_segments_model_time_is_followed_by_its_share_of_pause() -> None:
    pace = EnginePace(0.2)
    assert pace.take() == 0.0
    pace.spent(0.5)
    pace.spent(0.25)
    assert pace.take() == pytest.approx(3.0)  # 0.75 s of model time at 20 %: 3 s idle for the streams
    assert pace.take() == 0.0  # paid


def test_a_whole_share_never_pauses_and_a_pause_is_bounded() -> None:
    whole = EnginePace(1.0)
    whole.spent(10.0)
    assert whole.take() == 0.0
    tiny = EnginePace(0.001)
    tiny.spent(5.0)
    assert tiny.take() == MAX_PAUSE_S


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_a_share_outside_its_range_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="share"):
        EnginePace(share)
