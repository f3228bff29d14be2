"""A batch ready to decode (model/prefill.py ``Prefilled.of``, issues 70 and 89; its own test module
since issue 89 item 4): one encoder output per input expanded to the plan's rows, in plan order,
each row reading its own input's output, mask and frames. Plain tensors: no checkpoint."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from translate_svc.model.prefill import Prefilled
from translate_svc.model_api.requests import ModelInput
from translate_svc.model_api.rows import plan_rows

pytestmark = pytest.mark.unit

STAGES: Any = SimpleNamespace(device=torch.device("cpu"))


def test_each_row_reads_its_own_inputs_encoder_output_mask_and_frames() -> None:
    silence = np.zeros(16000, np.float32)
    inputs = [
        ModelInput(silence, ("fra", "deu"), transcript_language="eng"),
        ModelInput(silence, ("spa",)),
    ]
    plan = plan_rows(inputs)
    enc = torch.stack([torch.full((3, 2), float(k)) for k in range(2)])  # input k's output is all k
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    got = Prefilled.of(STAGES, enc, mask, plan, {0: {"eng": 1.0}}, 2.5, frames=[3, 2])
    items = [row.item for row in plan.rows]
    assert sorted(items) == [0, 0, 0, 1]  # three rows of the first input, one of the second
    assert got.row_enc.shape == (4, 3, 2) and got.row_mask.shape == (4, 3)
    assert [int(got.row_enc[r, 0, 0]) for r in range(4)] == items
    assert [got.row_mask[r].tolist() for r in range(4)] == [mask[k].tolist() for k in items]
    assert got.row_frames == tuple([3, 2][k] for k in items)
    assert (got.plan, got.detected, got.language_id_ms, got.said) == (plan, {0: {"eng": 1.0}}, 2.5, None)


def test_without_host_frames_the_rows_have_none() -> None:
    plan = plan_rows([ModelInput(np.zeros(1600, np.float32), ("fra",))])
    got = Prefilled.of(STAGES, torch.zeros(1, 2, 4), torch.ones(1, 2, dtype=torch.long), plan, {}, 0.0)
    assert got.row_frames is None
