"""No function of the model wing (translate_svc/model/) is over 100 lines, docstring and comments
included: one that long does several jobs, and each new feature lands in it (the batch's finish
grew to 163 lines of tables kept side by side per row before it became a pipeline of row records,
model/finish/outputs.py). Split a long function by job, never by squeezing lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.source import parsed

pytestmark = pytest.mark.unit

MODEL = Path(__file__).resolve().parent.parent / "translate_svc" / "model"
LIMIT = 100


def functions(root: Path) -> list[tuple[str, str, int]]:
    """Every function and method under ``root`` (nested ones too): (path, name, lines)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                found.append((str(path.relative_to(root.parent)), node.name, node.end_lineno - node.lineno + 1))
    return found


def test_no_function_of_the_model_is_over_100_lines() -> None:
    every = functions(MODEL)
    assert len(every) > 300  # the walk found the model
    long = [f"{path} {name}: {lines} lines" for path, name, lines in every if lines > LIMIT]
    assert long == [], f"split each by job (at most {LIMIT} lines a function)"
