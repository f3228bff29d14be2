"""Python source parsed for the layout tests (tests/test_layout.py, tests/transport/test_door_layout.py)."""

from __future__ import annotations

import ast
import gc
from pathlib import Path


def parsed(path: Path) -> ast.Module:
    """``path`` parsed with the garbage collector paused: on CPython 3.11 a finalizer that runs
    Python code inside ``compile`` (another test's leftover asyncio task, logged as it is collected)
    breaks the AST builder's depth count ("SystemError: AST constructor recursion depth mismatch",
    seen once in CI)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    finally:
        if enabled:
            gc.enable()
