"""The rate a fitted vocoder row is made at (model/stages/rates.py ``fitted``), on the device in the
vocoder's first part: the slowest rate within the row's bounds at which its natural frames take at
most its budget, ``clamp(natural / budget, slowest, fastest)``; a row without a fit (budget 0, or
no fits at all) keeps its own rate. At that rate ``at_rate`` makes at most the budget's frames
(exactly it where the speech is sped up), unless the fastest rate is not enough. Plain tensors;
``at_rate``'s rounding is test_speaking_rate.py's, fitted speech through the doors test_dub_fit.py's."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from translate_svc.model.stages.rates import at_rate, fitted

pytestmark = pytest.mark.unit


def f64(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_a_fitted_row_takes_the_slowest_rate_in_its_bounds_that_fits_its_budget() -> None:
    natural = torch.tensor([100, 100, 100, 100, 100])
    rate = f64(1.0, 1.0, 0.9, 1.0, 1.2)
    # budget in frames (0: not fitted), slowest, fastest
    fit = torch.stack((f64(80, 200, 0, 40, 100), f64(0.85, 0.85, 0.85, 0.85, 1.0), f64(1.35, 1.35, 1.35, 1.35, 1.0)))
    got = fitted(natural, fit, rate)
    assert got.tolist() == pytest.approx([1.25, 0.85, 0.9, 1.35, 1.0])
    # sped up within bounds: the budget's frames; slowed only to its bound: under its budget; not
    # fitted: its own rate; the fastest not enough: past its budget
    frames = at_rate(natural.view(5, 1), got).sum(1).tolist()
    assert frames[0] == 80 and frames[1] < 200 and frames[2] == round(100 / 0.9) and frames[3] > 40
    assert fitted(natural, None, rate) is rate


@given(
    natural=st.integers(1, 400),
    budget=st.integers(1, 400),
    bounds=st.sampled_from([(0.85, 1.35), (0.5, 2.0), (1.0, 1.0)]),
)
def test_at_the_fitted_rate_a_row_takes_at_most_its_budget(
    natural: int, budget: int, bounds: tuple[float, float]
) -> None:
    slowest, fastest = bounds
    durations = torch.tensor([[natural]])
    rate = fitted(torch.tensor([natural]), torch.stack((f64(budget), f64(slowest), f64(fastest))), f64(1.0))
    assert slowest - 1e-12 <= float(rate[0]) <= fastest + 1e-12
    frames = int(at_rate(durations, rate).sum())
    if natural <= fastest * budget:  # within reach
        assert frames <= budget
        if natural >= slowest * budget:  # sped up or slowed within bounds: the budget exactly
            assert frames == budget
