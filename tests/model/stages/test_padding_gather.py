"""Padding for shapes that repeat (model/stages/padding.py, issues 70 and 88; its own test module
since issue 89 item 4): rows padded with copies of a real row, the hard upsampling of t2u and the
vocoder as one gather equal to ``repeat_interleave`` row by row then right-padding, cut at the
width asked, and an attention mask made even where no row is padded. Plain tensors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import PretrainedConfig

from translate_svc.model.stages.padding import full_mask, hard_upsample, pad_rows

pytestmark = pytest.mark.unit


def test_rows_are_padded_with_copies_of_the_first_and_never_cut() -> None:
    x = torch.arange(6.0).view(2, 3)
    padded = pad_rows(x, 4)
    assert padded.tolist() == [[0, 1, 2], [3, 4, 5], [0, 1, 2], [0, 1, 2]]
    assert pad_rows(x, 2) is x and pad_rows(x, 1) is x


def reference(hidden: torch.Tensor, durations: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """Row by row: ``repeat_interleave`` along ``dim``, cut or zero-padded to ``width``."""
    rows = []
    for h, d in zip(hidden, durations, strict=True):
        up = h.repeat_interleave(d, dim=dim - 1)[..., :width] if dim == 2 else h.repeat_interleave(d, dim=0)[:width]
        pad = width - up.shape[dim - 1]
        rows.append(torch.nn.functional.pad(up, (0, pad)) if dim == 2 else torch.nn.functional.pad(up, (0, 0, 0, pad)))
    return torch.stack(rows)


@settings(max_examples=60, deadline=None)
@given(
    durations=st.lists(st.lists(st.integers(0, 4), min_size=3, max_size=3), min_size=1, max_size=3),
    width=st.integers(1, 14),
    dim=st.sampled_from([1, 2]),
)
def test_the_gather_equals_repeat_interleave_row_by_row(durations: list[list[int]], width: int, dim: int) -> None:
    d = torch.tensor(durations)
    rows = d.shape[0]
    hidden = torch.arange(rows * 3 * 2, dtype=torch.float32).view(rows, 3, 2) + 1  # no zero values
    if dim == 2:
        hidden = hidden.transpose(1, 2).contiguous()  # (rows, channels, T)
    assert torch.equal(hard_upsample(hidden, d, width, dim=dim), reference(hidden, d, width, dim))


def test_a_mask_is_made_even_when_no_row_is_padded() -> None:
    """Else the unpadded batch would run another attention kernel, one the warm-up never ran."""
    config = PretrainedConfig()
    config._attn_implementation = "sdpa"
    embeds = torch.zeros(2, 3, 4)
    mask = full_mask(config, embeds, torch.ones(2, 3, dtype=torch.long))
    assert isinstance(mask, torch.Tensor) and mask.shape[0] == 2 and mask.shape[-2:] == (3, 3)
    padded = full_mask(config, embeds, torch.tensor([[1, 1, 1], [1, 1, 0]]))
    assert padded.shape == mask.shape and not torch.equal(padded, mask)
