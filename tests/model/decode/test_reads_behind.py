"""The decode pool's read behind (model/decode/reads.py, issues 70 and 88; its own test module since
issue 89 item 4): a step's flags, lengths, tokens and log-probabilities copied into one of two host
sets, taken at the next step, the next copy writing the other set so a taken read never changes
under the host. Slot buffers without a model (tests/support/fake_slots.py); no checkpoint. What it
gives a decode is tests/model/decode/test_decode_lag.py's."""

from __future__ import annotations

import pytest
import torch

from tests.support.fake_slots import fake_slots
from translate_svc.model import regions
from translate_svc.model.decode.reads import HostRead, ReadBehind

pytestmark = pytest.mark.unit


def test_a_read_takes_what_the_step_left_in_the_set_it_was_copied_into() -> None:
    slots = fake_slots(3)
    reads = ReadBehind(slots, torch.device("cpu"))
    slots.done[:2] = torch.tensor([False, True])
    slots.length[:2] = torch.tensor([4, 5])
    slots.tokens[:2, 3] = torch.tensor([11, 12])
    slots.logprob[:2, 3] = torch.tensor([-0.5, -1.5])
    reads.copy_out(2, reads.parity)
    reads.issue((7, 9), reads.parity)
    assert reads.pending and reads.parity == 1  # the next read writes the other set
    ids, host = reads.take()
    assert not reads.pending
    assert ids == (7, 9)
    assert host.done[:2].tolist() == [False, True] and host.length[:2].tolist() == [4, 5]
    assert host.tokens[:2, 3].tolist() == [11, 12] and host.logprob[:2, 3].tolist() == [-0.5, -1.5]


def test_the_next_copy_writes_the_other_set_so_a_taken_read_stays() -> None:
    slots = fake_slots(2)
    reads = ReadBehind(slots, torch.device("cpu"))
    slots.length[0] = 4
    reads.copy_out(1, reads.parity)
    reads.issue((0,), reads.parity)
    _, first = reads.take()
    slots.length[0] = 5
    reads.copy_out(1, reads.parity)  # the step after, into set 1
    reads.issue((0,), reads.parity)
    _, second = reads.take()
    assert first is not second
    assert (first.length[0].item(), second.length[0].item()) == (4, 5)
    assert reads.parity == 0  # back to the first set


def test_a_dropped_read_is_no_longer_pending() -> None:
    reads = ReadBehind(fake_slots(2), torch.device("cpu"))
    reads.issue((1,), 0)
    reads.drop()
    assert not reads.pending
    with pytest.raises(AssertionError):
        reads.take()


def test_the_host_sets_are_host_buffers_shaped_as_the_slots() -> None:
    """Reading them is no device sync (model/regions.py): the sync guard must not count it."""
    slots = fake_slots(3, max_tokens=5)
    host = HostRead.allocate(slots, pin=False)
    for name in ("done", "length", "tokens", "logprob"):
        buf = getattr(host, name)
        assert regions.is_host_buffer(buf)
        assert buf.shape == getattr(slots, name).shape and buf.dtype == getattr(slots, name).dtype
