"""Every test here needs CUDA: without it each is skipped with the reason (never failed, never
silently passed)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    reason = f"needs CUDA (torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}, no device visible)"
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))
