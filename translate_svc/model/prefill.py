"""A batch ready to decode: what the prefill of segments or texts gives the
decode and the finish: each row's encoder output and mask, the plan of rows, the languages
detected, and, for speech, each row's own encoder frames known on the host. The exact runner's
batches, the stepping decoder's jobs (one prefill per arriving batch, split per job) and the
finish all pass it; it holds tensors and plain values, no stage. Model thread only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from translate_svc.model.capture import upload
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model_api.rows import RowPlan


@dataclass(frozen=True, eq=False)
class Prefilled:
    """A batch ready to decode: its encoder outputs expanded to the plan's rows (``row_enc``,
    ``row_mask``: one per row, in plan order), the plan, the languages detected (per input index)
    and the identifier's time. ``said``: text inputs' own text, what their terms look for (their
    encoder outputs and mask are the text encoder's); None for speech."""

    row_enc: torch.Tensor
    row_mask: torch.Tensor
    plan: RowPlan
    detected: dict[int, dict[str, float]]
    language_id_ms: float
    said: dict[int, str] | None = None
    #: each row's own encoder frames, known on the host (speech); None: read from the mask
    row_frames: tuple[int, ...] | None = None

    @classmethod
    def of(
        cls,
        stages: SeamlessStages,
        enc: torch.Tensor,
        mask: torch.Tensor,
        plan: RowPlan,
        detected: dict[int, dict[str, float]],
        language_id_ms: float,
        said: dict[int, str] | None = None,
        frames: Sequence[int] | None = None,
    ) -> Prefilled:
        """The inputs' encoder outputs (one per input; ``frames``: each input's own encoder frames)
        expanded to the plan's rows."""
        items = [row.item for row in plan.rows]
        index = upload(items, torch.long, stages.device)
        row_frames = None if frames is None else tuple(frames[k] for k in items)
        return cls(
            enc.index_select(0, index), mask.index_select(0, index), plan, detected, language_id_ms, said, row_frames
        )
