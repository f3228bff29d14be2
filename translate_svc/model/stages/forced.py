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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor

from translate_svc.model.stages.by_row import ByRow


@dataclass(frozen=True)
class ForcedLengths:
    text_tokens_per_s: float
    units_per_s: float = 50.0
    #: the vocoder's frames per unit (model/stages/vocoder.py ``unit_frames``): 20 ms at 16 kHz
    frames_per_unit: int = 1

    def text_tokens(self, audio_s: float) -> int:
        return max(1, math.ceil(self.text_tokens_per_s * audio_s))

    def units(self, audio_s: float) -> int:
        return max(1, round(self.units_per_s * audio_s))


class ForceTextLength(LogitsProcessor):
    """A row emits no EOS before its length (by row id: model/stages/by_row.py) in tokens, then only EOS."""

    def __init__(
        self,
        lengths: Mapping[int, int] | Sequence[int],
        eos_token_id: int,
        order: Sequence[int] | None = None,
        prompt_len: int = 2,
    ) -> None:
        self.rows = ByRow(lengths, order)
        self.eos = eos_token_id
        self.prompt_len = prompt_len  # decoder start token + language token

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        done = input_ids.shape[1] - self.prompt_len
        more = (torch.tensor(self.rows.values, device=scores.device) > done).unsqueeze(1)
        eos_only = torch.full_like(scores, float("-inf"))
        eos_only[:, self.eos] = 0.0
        no_eos = scores.clone()
        no_eos[:, self.eos] = float("-inf")
        return torch.where(more, no_eos, eos_only)  # type: ignore[return-value]


def forced_log_durations(log_dur: torch.Tensor, char_mask: torch.Tensor, row_units: torch.Tensor) -> torch.Tensor:
    """t2u's log durations (rows, chars) replaced so that each row's characters share its forced
    unit total (``row_units``, per row) equally, at least one unit each; ``char_mask`` marks each
    row's characters. Text-to-unit (model/stages/text_to_unit.py) rounds them as it rounds its own."""
    chars = char_mask.sum(1).clamp(min=1).to(log_dur.dtype)
    per_char = (row_units.to(log_dur.device, log_dur.dtype) / chars).clamp(min=1.0)
    return torch.log1p(per_char).unsqueeze(1).expand_as(log_dur).contiguous()
