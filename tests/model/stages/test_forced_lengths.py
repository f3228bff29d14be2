"""Benchmark mode's forced lengths (model/stages/forced.py; its own test module since issue 89 item
4): each row's text tokens and units from its audio's length, no EOS before a row's length and only
EOS after it, and t2u's durations replaced so that a row's characters share its unit total. Plain
tensors: no checkpoint."""

from __future__ import annotations

import pytest
import torch

from translate_svc.model.stages.forced import ForcedLengths, ForceTextLength, forced_log_durations

pytestmark = pytest.mark.unit

EOS = 3


def test_lengths_follow_the_audio_and_are_never_zero() -> None:
    forced = ForcedLengths(text_tokens_per_s=4.0, units_per_s=50.0)
    assert (forced.text_tokens(2.0), forced.text_tokens(0.1), forced.text_tokens(0.0)) == (8, 1, 1)
    assert (forced.units(2.0), forced.units(0.0)) == (100, 1)
    assert forced.frames_per_unit == 1


def test_a_row_emits_no_eos_before_its_length_and_only_eos_from_it() -> None:
    force = ForceTextLength({5: 1, 6: 3}, EOS, order=[5, 6])
    scores = torch.zeros(2, 6)
    at_one = force(torch.zeros(2, 3, dtype=torch.long), scores.clone())  # type: ignore[arg-type]
    # row 5 wrote its one token: only EOS; row 6 wants three: anything but EOS
    assert torch.isinf(at_one[0, [0, 1, 2, 4, 5]]).all() and at_one[0, EOS] == 0.0
    assert torch.isinf(at_one[1, EOS]) and not torch.isinf(at_one[1, [0, 1, 2, 4, 5]]).any()
    at_three = force(torch.zeros(2, 5, dtype=torch.long), scores.clone())  # type: ignore[arg-type]
    assert at_three[1].argmax().item() == EOS and torch.isinf(at_three[1, 0])


def test_a_rows_characters_share_its_forced_unit_total() -> None:
    chars = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
    log_dur = forced_log_durations(torch.zeros(2, 5), chars, torch.tensor([8, 1]))
    durations = torch.round(torch.expm1(log_dur))  # what text-to-unit does with them
    assert durations[0, :4].tolist() == [2.0, 2.0, 2.0, 2.0]  # 8 units over 4 characters
    assert durations[1, :2].tolist() == [1.0, 1.0]  # at least one unit a character
    assert log_dur.dtype == torch.float32 and log_dur.is_contiguous()
