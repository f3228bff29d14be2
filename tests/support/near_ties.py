"""Where two greedy decodes of one row part, and whether a near-tie explains it: the model's own
next-token logits after a prefix (the whole prefix fed, no cache) and the two tokens' gap there.
Used by the decode loop's parity tests (tests/model/decode/test_decode_loop.py) and the bfloat16 against
float32 agreement (benchmarks/tools/agreement.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def next_logits(model: Any, enc: torch.Tensor, mask: torch.Tensor, tokens: Sequence[int]) -> torch.Tensor:
    """``model``'s (``SeamlessM4Tv2Model``) logits for the token after ``tokens``, on one row's
    encoder output ``enc`` (1, frames, hidden) and its mask (1, frames): float32, on the CPU."""
    with torch.inference_mode():
        out = model(
            decoder_input_ids=torch.tensor([list(tokens)], device=enc.device),
            encoder_outputs=(enc,),
            attention_mask=mask,
        )
    logits: torch.Tensor = out.logits[0, -1].float().cpu()
    return logits


def first_difference(ours: Sequence[int], theirs: Sequence[int]) -> int:
    """The first position at which two token sequences differ (the shorter's length if one is the
    other's prefix)."""
    for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        if a != b:
            return i
    return min(len(ours), len(theirs))


def relative_gap(logits: torch.Tensor, a: int, b: int) -> float:
    """How far apart two tokens' logits are, relative to the larger magnitude."""
    la, lb = float(logits[a]), float(logits[b])
    return abs(la - lb) / max(abs(la), abs(lb), 1e-6)
