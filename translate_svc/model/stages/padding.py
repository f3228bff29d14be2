"""Tensor padding for shapes that repeat: rows up to a row bucket, the hard
upsampling of t2u and the vocoder as one gather into a given width, and attention masks that are
always made.

``hard_upsample`` is ``SeamlessM4Tv2TextToUnitDecoder._hard_upsample`` (and the vocoder's per-row
``repeat_interleave``) without the loop over rows: the durations' running sum, ``searchsorted`` of
the output positions into it, one gather, zeros past each row's total. Its width is the caller's
(a bucket), so the only host read a caller needs is the widest row's total, once per batch.
Not thread-safe in the torch sense: the model thread only.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.masking_utils import create_bidirectional_mask


def pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """``x`` with its first row repeated at the end up to ``rows`` rows (a real row, so the padding
    rows compute nothing out of range; their results are cut off)."""
    if x.shape[0] >= rows:
        return x
    return torch.cat([x, x[:1].expand(rows - x.shape[0], *x.shape[1:])], dim=0)


def hard_upsample(hidden: torch.Tensor, durations: torch.Tensor, width: int, *, dim: int = 1) -> torch.Tensor:
    """Each position of ``hidden`` (rows, T, ...) along ``dim`` (1 or 2 for (rows, C, T)) repeated
    ``durations`` (rows, T) times, into ``width`` positions: zeros past each row's total, a row
    longer than ``width`` cut. Equal to ``repeat_interleave`` per row then right-padding."""
    rows, t = durations.shape
    end = durations.cumsum(1)
    pos = torch.arange(width, device=durations.device).expand(rows, width).contiguous()
    idx = torch.searchsorted(end, pos, right=True).clamp_(max=max(t - 1, 0))
    valid = pos < end[:, -1:] if t else torch.zeros_like(pos, dtype=torch.bool)
    if dim == 1:
        shape = (rows, width, *hidden.shape[2:])
        idx = idx.view(rows, width, *([1] * (hidden.dim() - 2))).expand(shape)
        out = hidden.gather(1, idx)
        return out.masked_fill(~valid.view(rows, width, *([1] * (hidden.dim() - 2))), 0)
    shape = (rows, hidden.shape[1], width)
    out = hidden.gather(2, idx[:, None, :].expand(shape))
    return out.masked_fill(~valid[:, None, :], 0)


def full_mask(config: Any, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``transformers``' ``create_bidirectional_mask`` of a 2-D padding mask, always made: it would
    otherwise read on the host whether any row is padded (``mask.all()``: a device sync) and run an
    unpadded batch without a mask, which on CUDA is another attention kernel (a shape the warm-up,
    whose lengths are exact buckets, never ran masked)."""
    out = create_bidirectional_mask(
        config=config, inputs_embeds=embeds, attention_mask=mask, allow_is_bidirectional_skip=False
    )
    if not isinstance(out, torch.Tensor):  # sdpa and eager make a tensor (flex attention is not used)
        raise TypeError(f"expected an attention mask tensor, got {type(out).__name__}")
    return out
