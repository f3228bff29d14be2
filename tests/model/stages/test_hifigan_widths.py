"""The widths HiFi-GAN's groups are made at under graphs (model/stages/hifigan_widths.py, issue
88): what a row of some frames can hold (``unit_span``), a group's units cut or padded to it
(``to_width``), the frames a group is guessed at (``FrameGuess``) and what the results' read says
of them (``most_frames``, ``made``). Plain values and small tensors; the vocoder under graphs
against the widths read from the device is tests/model/stages/test_graph_widths.py's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from translate_svc.model.stages.hifigan_widths import FrameGuess, made, most_frames, to_width, unit_span
from translate_svc.model.stages.vocoder import at_rate

pytestmark = pytest.mark.unit


def test_a_frame_guess_learns_the_most_frames_a_unit_takes() -> None:
    guess = FrameGuess(first=2.0, window=3)
    assert guess.frames([10, 4], [1.0, 1.0]) == 21  # ceil(10 * 2.0) + 1 for the longest row
    assert guess.frames([10], [0.5]) == 41  # a slower row takes more frames
    assert guess.frames([10], [1.0], unit_frames=3) == 31  # benchmark mode: fixed frames a unit
    guess.saw([(15, 1.0, 10), (12, 1.5, 10)])  # 1.5 and 1.8 frames a unit at rate 1
    assert guess.per_unit == pytest.approx(1.8)
    guess.saw([(10, 1.0, 10), (11, 1.0, 10), (10, 1.0, 10)])  # the window forgets the oldest
    assert guess.per_unit == pytest.approx(1.1)


def test_the_units_a_row_of_some_frames_can_hold() -> None:
    """``unit_span``: after ``at_rate`` at any rate from 0.5 to 2, a row's units never exceed what
    its frames can hold (every unit at least one frame at rate 1)."""
    gen = torch.Generator().manual_seed(3)
    durations = torch.randint(1, 4, (400, 30), generator=gen)
    lengths = torch.randint(1, 31, (400,), generator=gen)
    durations = durations * (torch.arange(30)[None, :] < lengths[:, None])
    rates = 0.5 + 1.5 * torch.rand(400, generator=gen, dtype=torch.float64)
    rates[:100] = 2.0  # the fastest, where it is tight
    frames = at_rate(durations, rates).sum(1)
    assert all(int(n) <= unit_span(int(f)) for n, f in zip(lengths, frames, strict=True))
    assert unit_span(1) == 3 and unit_span(16) == 33


def test_a_group_is_cut_or_padded_to_its_width() -> None:
    x = torch.arange(12.0).reshape(2, 6)
    assert torch.equal(to_width(x, 4), x[:, :4])
    wide = to_width(x, 8)
    assert wide.shape == (2, 8) and torch.equal(wide[:, :6], x) and not wide[:, 6:].any()


def test_the_read_says_a_groups_longest_row_and_what_each_row_made() -> None:
    """A group's frames per unit as read (rows x units, zero past a row's units) and its rates:
    the longest row in frames decides a remake; each row with units is learned from."""
    dur = np.array([[2, 2, 3, 9], [1, 1, 0, 0], [0, 0, 0, 0]])  # the 9 is past row 0's 3 units
    rate = np.array([1.0, 0.5, 1.0])
    got = (np.zeros(1), np.zeros(1), dur, rate)
    assert most_frames(got, [3, 2, 0]) == 7
    assert made(got, [3, 2, 0]) == [(7, 1.0, 3), (2, 0.5, 2)]  # a row without units teaches nothing
