"""Whether the model can run on the device asked for: checked by ``serve`` before anything loads."""

from __future__ import annotations

import torch


def device_problem(device: str) -> str | None:
    """Why the model cannot run on ``device`` here, or None: ``cuda`` where torch has no CUDA."""
    if device == "cuda" and not torch.cuda.is_available():
        return (
            f"--device cuda, but CUDA is not available here (torch {torch.__version__}, "
            f"CUDA build: {torch.version.cuda or 'none'}); use --device cpu or auto"
        )
    return None


def cuda_available() -> bool:
    """Whether torch sees a CUDA device here (``--device auto`` picks it: model/seamless.py)."""
    return torch.cuda.is_available()
