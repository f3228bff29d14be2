"""A vocoder row's speaking rate on the device (``ModelInput.speed`` and ``fit``;
model/stages/vocoder.py runs them inside its first part's graph): its frames per unit scaled by its
rate (``at_rate``), and the rate a fitted row is made at (``fitted``). Tensors in, tensors out; no
read of the device, so a graph replays them at any rate."""

from __future__ import annotations

import torch


def at_rate(durations: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """``durations`` (rows, units; int64, zero past a row's units) at each row's speaking ``rate``
    (rows,): the differences of ``round(cumsum(durations) / rate)``, so a row's frames are
    ``round(total / rate)`` and each unit's end is within half a frame of its exact place
    (cumulative rounding: no drift along the row), a unit getting 0 frames where the rate skips
    it. A row's running sum keeps at least one frame once it has one (a row of one frame at rate
    2 would round to none). Rate 1 returns the durations as they are, bit for bit. Static: no
    read of the device (the first part's graph replays it at any rate)."""
    ends = durations.cumsum(1)
    scaled = torch.round(ends.double() / rate[:, None]).long()
    scaled = torch.maximum(scaled, (ends > 0).long())
    moved = torch.diff(scaled, dim=1, prepend=torch.zeros_like(scaled[:, :1]))
    return torch.where((rate == 1.0)[:, None], durations, moved)


def fitted(natural: torch.Tensor, fit: torch.Tensor | None, rate: torch.Tensor) -> torch.Tensor:
    """Each row's speaking rate (rows,): its ``rate``, or where ``fit`` (3, rows: its budget in
    whole frames, 0 when not fitted; its slowest and fastest rates) fits it, the slowest rate in
    its bound at which its ``natural`` frames (at rate 1) take at most its budget:
    ``clamp(natural / budget, slowest, fastest)``. At that rate ``at_rate`` rounds the row's
    frames to at most its budget (exactly it where the speech is sped up), since the budget is
    whole frames. Static: no read of the device."""
    if fit is None:
        return rate
    budget, slowest, fastest = fit[0], fit[1], fit[2]
    chosen = torch.minimum(torch.maximum(natural.double() / budget.clamp(min=1.0), slowest), fastest)
    return torch.where(budget > 0, chosen, rate)
