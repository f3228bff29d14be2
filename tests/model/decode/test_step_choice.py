"""The decode step's own arithmetic off the model (model/decode/step.py; its own test module since
issue 89 item 4): ``choose``'s greedy pick, its sticky finish at EOS or a row's limit, benchmark
mode's forced lengths, the known tokens of a row's admission and the chosen token's
log-probability; a row moved between slots; the windows' series; a generation config that asks
for more than greedy refused. Hand-made scores on slot buffers (tests/support/fake_slots.py): no
checkpoint. What the step computes against ``generate`` is tests/model/decode/test_decode_loop.py's."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tests.support.fake_slots import fake_slots
from translate_svc.model.decode.step import Slots, check_greedy, choose, doubling, powers_of_two

pytestmark = pytest.mark.unit

EOS = 3


def active(rows: int, *, length: int = 2, limit: int = 6) -> Slots:
    """``rows`` slots mid-decode: each has its prompt (two tokens) written, nothing finished."""
    slots = fake_slots(rows + 1)
    slots.done[:rows] = False
    slots.length[:rows] = length
    slots.limit[:rows] = limit
    slots.known[:rows] = 2
    return slots


def at(slots: Slots, n: int) -> torch.Tensor:
    return slots.length[:n] - 1  # the position of each row's last token


def test_each_row_takes_its_best_token_with_its_log_probability() -> None:
    slots = active(2)
    scores = torch.tensor([[0.0, 1.0, 5.0, 0.5, 0.0], [2.0, 0.0, 0.0, 0.0, 4.0]])
    expected = torch.log_softmax(scores, -1)
    token = choose(slots, 2, scores.clone(), EOS, at(slots, 2), forced=False)
    assert token.tolist() == [2, 4]
    assert slots.tokens[:2, 2].tolist() == [2, 4] and slots.length[:2].tolist() == [3, 3]
    assert slots.logprob[0, 2].item() == pytest.approx(expected[0, 2].item(), abs=1e-6)
    assert slots.logprob[1, 2].item() == pytest.approx(expected[1, 4].item(), abs=1e-6)
    assert not slots.done[:2].any()


def test_the_log_probability_is_the_models_own_not_the_processed_scores() -> None:
    """``raw``: the logits before the host's term processors; the choice is the processed scores'."""
    slots = active(1)
    raw = torch.tensor([[0.0, 3.0, 1.0, 0.0]])
    processed = torch.tensor([[0.0, 3.0, 9.0, 0.0]])  # a term boosted token 2
    token = choose(slots, 1, processed.clone(), EOS, at(slots, 1), raw.clone(), forced=False)
    assert token.tolist() == [2]
    assert slots.logprob[0, 2].item() == pytest.approx(torch.log_softmax(raw, -1)[0, 2].item(), abs=1e-6)


def test_a_row_finishes_at_eos_or_its_limit_and_stays_finished() -> None:
    slots = active(2, limit=4)
    eos_first = torch.tensor([[0.0, 0.0, 0.0, 9.0], [0.0, 9.0, 0.0, 0.0]])
    choose(slots, 2, eos_first.clone(), EOS, at(slots, 2), forced=False)
    assert slots.done[:2].tolist() == [True, False] and slots.length[:2].tolist() == [3, 3]
    choose(slots, 2, torch.tensor([[9.0, 0, 0, 0], [0, 0, 9.0, 0]]), EOS, at(slots, 2), forced=False)
    assert slots.done[:2].tolist() == [True, True]  # the second reached its limit of 4
    assert slots.length[:2].tolist() == [3, 4]  # the finished row's masked step grew nothing
    assert slots.tokens[0, 2].item() == EOS  # its sequence still ends at its EOS
    assert slots.tokens[1, 2:4].tolist() == [1, 2]


def test_forced_lengths_hold_eos_back_then_force_it() -> None:
    """Benchmark mode: no EOS before a row's forced text length, then only EOS."""
    slots = active(1, limit=10)
    slots.force_len[0] = 2
    wants_eos = torch.tensor([[0.0, 1.0, 0.0, 9.0]])
    first = choose(slots, 1, wants_eos.clone(), EOS, at(slots, 1))
    second = choose(slots, 1, wants_eos.clone(), EOS, at(slots, 1))
    third = choose(slots, 1, torch.tensor([[0.0, 9.0, 0.0, 0.0]]), EOS, at(slots, 1))
    assert (first.item(), second.item(), third.item()) == (1, 1, EOS)
    assert slots.done[0].item()


def test_a_position_before_the_known_tokens_writes_the_known_token() -> None:
    """The static path's admission feeds a row's prompt and forced prefix through the steps."""
    slots = active(1)
    slots.known[0] = 4
    slots.tokens[0, :4] = torch.tensor([0, 5, 7, 8])
    token = choose(slots, 1, torch.tensor([[9.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]), EOS, at(slots, 1))
    assert token.item() == 7 and slots.tokens[0, 2].item() == 7


def test_a_row_moved_to_another_slot_takes_its_buffers_and_values() -> None:
    slots = fake_slots(3)
    slots.self_kv[:, 2].normal_()
    slots.cross_kv[:, 2].normal_()
    slots.hidden[2].normal_()
    slots.tokens[2, :4] = torch.tensor([0, 5, 6, 7])
    slots.length[2], slots.limit[2], slots.done[2] = 4, 9, False
    slots.move(2, 0, tokens=4, frames=3)
    assert torch.equal(slots.self_kv[:, 0, :, :, :4], slots.self_kv[:, 2, :, :, :4])
    assert torch.equal(slots.cross_kv[:, 0, :, :, :3], slots.cross_kv[:, 2, :, :, :3])
    assert torch.equal(slots.hidden[0, :4], slots.hidden[2, :4])
    assert slots.tokens[0, :4].tolist() == [0, 5, 6, 7]
    assert (slots.length[0].item(), slots.limit[0].item(), slots.done[0].item()) == (4, 9, False)
    assert slots.rows.tolist() == [0, 1, 2]  # the row indices are the slots', never moved


def test_a_free_slot_is_finished_and_reads_one_finite_frame() -> None:
    slots = fake_slots(2, max_frames=4)
    assert slots.done.all() and slots.length.tolist() == [1, 1]
    assert slots.frames_bias[:, 0].tolist() == [0.0, 0.0] and torch.isinf(slots.frames_bias[:, 1:]).all()
    assert slots.nbytes() == sum(t.nbytes for t in vars(slots).values())


def test_windows_double_up_to_the_top_and_row_buckets_are_powers_of_two() -> None:
    assert doubling(4, 20) == (4, 8, 16, 20)
    assert doubling(8, 8) == (8,)
    assert doubling(32, 20) == (20,)
    assert powers_of_two(10) == [1, 2, 4, 8]
    assert powers_of_two(8) == [1, 2, 4, 8]


def test_a_generation_config_asking_for_more_than_greedy_is_refused_by_name() -> None:
    check_greedy(SimpleNamespace(num_beams=1, do_sample=False, repetition_penalty=1.0))
    with pytest.raises(NotImplementedError, match="do_sample, num_beams"):
        check_greedy(SimpleNamespace(num_beams=4, do_sample=True))
    with pytest.raises(NotImplementedError, match="suppress_tokens"):
        check_greedy(SimpleNamespace(suppress_tokens=[5]))
