"""The text decoder's per-row processors (model/stages/decoder.py, issues 32, 33 and 72; its own
test module since issue 89 item 4): each row's token cap (``TextCap``, ``RowTokenCap``), a
simultaneous step's forced prefix (``ForcePrefix``) and the chosen tokens' log-probabilities
(``ChosenLogprobs``), each keyed by row id, on hand-made ids and scores: no checkpoint. The
decoder against ``generate`` on the test checkpoint is tests/model/test_runner.py's."""

from __future__ import annotations

import math

import pytest
import torch

from translate_svc.model.stages.decoder import ChosenLogprobs, ForcePrefix, RowTokenCap, TextCap

pytestmark = pytest.mark.unit


def prompt(rows: int, new: int = 0) -> torch.LongTensor:
    """``rows`` sequences of the two-token prompt and ``new`` tokens."""
    return torch.full((rows, 2 + new), 5, dtype=torch.long)  # type: ignore[return-value]


def test_a_rows_cap_grows_with_its_audio_over_a_base() -> None:
    cap = TextCap(per_s=16.0, base=16)
    assert (cap.tokens(0.0), cap.tokens(1.0), cap.tokens(0.01)) == (16, 32, 17)  # rounded up


def test_each_row_stops_after_its_own_number_of_new_tokens() -> None:
    stop = RowTokenCap({4: 1, 9: 3}, order=[9, 4])
    scores = torch.zeros(2, 6)
    assert stop(prompt(2, 1), scores).tolist() == [False, True]  # the first call: one new token
    assert stop(prompt(2, 2), scores).tolist() == [False, True]
    assert stop(prompt(2, 3), scores).tolist() == [True, True]
    stop.rows.reorder([9])  # row 4 left the batch
    assert stop(prompt(1, 3), scores).tolist() == [True]


def test_a_prefix_is_forced_token_by_token_then_the_row_is_free() -> None:
    force = ForcePrefix({0: (3, 4), 1: ()})
    scores = torch.zeros(2, 6)
    first = force(prompt(2), scores.clone())
    assert first[0].argmax().item() == 3 and torch.isinf(first[0, [0, 1, 2, 4, 5]]).all()
    assert torch.equal(first[1], scores[1])  # an empty prefix: untouched
    second = force(prompt(2, 1), scores.clone())
    assert second[0].argmax().item() == 4
    after = scores.clone()
    assert force(prompt(2, 2), after) is after  # every prefix spent: the scores as they are


def test_the_chosen_tokens_log_probabilities_are_the_raw_scores_log_softmax() -> None:
    record = ChosenLogprobs()
    first = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]])
    second = torch.tensor([[4.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    assert record(prompt(2), first) is first  # the scores pass untouched
    chosen = torch.tensor([[2], [2]])
    record(torch.cat([prompt(2), chosen], 1), second)  # type: ignore[arg-type]
    final = torch.cat([prompt(2), chosen, torch.tensor([[0], [1]])], 1)
    got = record.finish(final)
    want_first = torch.log_softmax(first, -1)
    want_second = torch.log_softmax(second, -1)
    assert got[0] == pytest.approx([want_first[0, 2].item(), want_second[0, 0].item()], abs=1e-6)
    assert got[1] == pytest.approx([want_first[1, 2].item(), want_second[1, 1].item()], abs=1e-6)
    assert got[1][1] == pytest.approx(-math.log(3), abs=1e-6)


def test_no_new_token_means_no_values() -> None:
    assert ChosenLogprobs().finish(prompt(3)) == [[], [], []]
