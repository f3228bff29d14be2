"""Forced decode lengths: capacity benchmarks of a full-size model with random weights.

Random weights stop decoding at random points, so their cost says nothing about real speech. With
``ForcedLengths`` every text row decodes exactly ``ceil(text_tokens_per_s x audio seconds)`` tokens,
text-to-unit emits about ``units_per_s x audio seconds`` units (its per-character durations are
set so that each row hits its total), and the vocoder renders each unit as one frame (20 ms at
16 kHz, as trained models do at 50 units/s). The lengths are those of typical speech, so the
compute matches a real model's; the output is noise. Never enable this with real weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor


@dataclass(frozen=True)
class ForcedLengths:
    text_tokens_per_s: float
    units_per_s: float = 50.0

    def text_tokens(self, audio_s: float) -> int:
        return max(1, math.ceil(self.text_tokens_per_s * audio_s))

    def units(self, audio_s: float) -> int:
        return max(1, round(self.units_per_s * audio_s))


class ForceTextLength(LogitsProcessor):
    """Row r emits no EOS before ``lengths[r]`` tokens, then only EOS."""

    def __init__(self, lengths: Sequence[int], eos_token_id: int, prompt_len: int = 2) -> None:
        self.lengths = torch.tensor(list(lengths))
        self.eos = eos_token_id
        self.prompt_len = prompt_len  # decoder start token + language token

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        done = input_ids.shape[1] - self.prompt_len
        more = (self.lengths.to(scores.device) > done).unsqueeze(1)
        eos_only = torch.full_like(scores, float("-inf"))
        eos_only[:, self.eos] = 0.0
        no_eos = scores.clone()
        no_eos[:, self.eos] = float("-inf")
        return torch.where(more, no_eos, eos_only)  # type: ignore[return-value]


class UnitDurations:
    """Forward hooks that replace predicted durations: t2u per-row totals, vocoder one frame per unit."""

    def __init__(self) -> None:
        self.row_units: torch.Tensor | None = None  # set by the runner before each t2u call

    def t2u_hook(self, module, args, kwargs, log_dur):  # type: ignore[no-untyped-def]
        mask = kwargs.get("padding_mask")
        if self.row_units is None or mask is None:
            return log_dur
        chars = mask.sum(1).clamp(min=1).to(log_dur.dtype)
        per_char = (self.row_units.to(log_dur.device, log_dur.dtype) / chars).clamp(min=1.0)
        return torch.log1p(per_char).unsqueeze(1).expand_as(log_dur).contiguous()

    @staticmethod
    def vocoder_hook(module, args, log_dur):  # type: ignore[no-untyped-def]
        return torch.full_like(log_dur, math.log(2.0))  # expm1(log 2) = 1 frame per unit
