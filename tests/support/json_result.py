"""A run's result as JSON: what the attack probes and the benchmarks print, and keep where asked
(outside the tree, or in the git-ignored ``benchmarks/results/``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def print_and_save(result: dict[str, Any], path: str | Path | None) -> None:
    """A run's result as indented JSON on stdout, and in ``path`` when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
