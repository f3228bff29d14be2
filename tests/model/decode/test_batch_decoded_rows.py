"""A plan's rows as the fast runner's decode hands them on (model/decode/batch.py ``decoded_of``,
issue 70; its own test module since issue 89 item 4): the rows' sequences right-padded as
``generate`` writes them, the kept hidden states zero past each row's own, the log-probabilities
and host tokens row for row. Plain tensors: no checkpoint. The fast runner against the exact one
is tests/model/test_fast_runner.py's."""

from __future__ import annotations

import pytest
import torch

from translate_svc.model.decode.batch import decoded_of

pytestmark = pytest.mark.unit

PAD = 0


def test_rows_of_different_lengths_are_padded_as_generate_pads_them() -> None:
    short = ((3, 62, 9, 3), torch.full((3, 4), 1.0))  # start, language, one token, EOS
    long = ((3, 63, 9, 10, 11, 3), torch.full((5, 4), 2.0))
    decoded = decoded_of([short, long], [(-0.1, -0.2), (-0.3, -0.4, -0.5, -0.6)], PAD)
    assert decoded.sequences.tolist() == [[3, 62, 9, 3, PAD, PAD], [3, 63, 9, 10, 11, 3]]
    assert decoded.sequences.dtype == torch.long
    assert decoded.tokens == ((3, 62, 9, 3), (3, 63, 9, 10, 11, 3))
    assert decoded.logprobs == ((-0.1, -0.2), (-0.3, -0.4, -0.5, -0.6))
    states = decoded.states
    assert states is not None and states.shape == (2, 5, 4)  # every position but the longest's last
    assert states[0, :3].eq(1.0).all() and states[0, 3:].eq(0.0).all()  # zero past the short row's own
    assert states[1].eq(2.0).all()


def test_the_states_keep_the_rows_dtype() -> None:
    rows = [((3, 62, 3), torch.ones((2, 4), dtype=torch.bfloat16))]
    decoded = decoded_of(rows, [(-0.5,)], PAD)
    assert decoded.states is not None and decoded.states.dtype == torch.bfloat16
