"""The decode pool's warm-up: every shape its static step and its admission can take,
run once on the empty pool before the server says ready (on CUDA each admission bucket's graph is
captured then; the step's were captured when the pool was made: model/decode/graphs.py), so no live
segment meets a shape the warm-up did not run. Model thread only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from translate_svc.model.decode.loop import DecodeLoop
from translate_svc.model_api.rows import DecodeRow


@torch.inference_mode()
def warm_steps(loop: DecodeLoop) -> int:
    """The static step of every shape (row bucket and windows) once on the empty pool (what its
    capture runs on CUDA; eagerly elsewhere, where the warm-up meets the same shapes). Returns the
    steps run (0: the pool is not static)."""
    if not loop.static:
        return 0
    if len(loop):
        raise RuntimeError("warm the steps of an empty decode pool")
    shapes = loop.step_shapes
    for shape in shapes:
        loop.static_step(shape, 0)
    loop.reset_free()
    return len(shapes)


@torch.inference_mode()
def warm_admissions(loop: DecodeLoop, rows: Sequence[int], frames: Sequence[int], language: str) -> int:
    """Admit dummy rows of every row count in ``rows`` (each up to its bucket) and encoder width in
    ``frames``, then drop them; the pool must be empty. Returns the admissions run."""
    if len(loop):
        raise RuntimeError("warm the admissions of an empty decode pool")
    hidden = loop.weights.embed.shape[1]
    calls = 0
    counts = {loop.bucket(min(r, loop.slots)) if loop.static else min(r, loop.slots) for r in rows}
    for n in sorted(counts):
        for width in sorted(set(frames)):
            if width > loop.max_frames:
                continue
            plan = [DecodeRow(-1 - k, k, language, True, False, False, seconds=1.0) for k in range(n)]
            enc = torch.zeros((n, width, hidden), dtype=loop.dtype, device=loop.device)
            ones = torch.ones((n, width), dtype=torch.long, device=loop.device)
            loop.admit(plan, enc, ones, frames=[width] * n)
            for row in plan:
                loop.drop(row.id)
            calls += 1
    loop.reset_free()
    return calls
