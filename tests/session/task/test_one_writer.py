"""One writer each: a call's task (``TranslationTask``) is built by ``task/checks.py`` alone and
rewritten by ``task/change.py`` alone (its client told it by ``task/told.py``), and what the engine
computes (``ModelInput``) is built by ``task/inputs.py`` alone, so a request's option reaches every
path through one place and a change never drops what it does not name (a room speaker's own Update
rebuilt its task without the rates its listeners chose when two modules wrote it). Found by walking
every module of translate_svc/: a ``TranslationTask(...)`` or ``ModelInput(...)`` call, or a
``replace(<...task>, ...)``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[3] / "translate_svc"
#: where each is written, and the one other place that may with its reason
WRITERS = {
    "TranslationTask": {"session/task/checks.py"},
    "replace(task)": {"session/task/change.py", "session/task/told.py"},
    "ModelInput": {
        "session/task/inputs.py",
        # the engine's warm-up: synthetic segments of each shape, from no call's task
        "engine/engine.py",
    },
}


def _callee(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _names_a_task(node: ast.expr) -> bool:
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name == "task" or name.endswith("_task")


def writes(source: str) -> set[str]:
    """What a module's source writes of the three."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _callee(node)
        if name in ("TranslationTask", "ModelInput"):
            found.add(name)
        elif name == "replace" and node.args and _names_a_task(node.args[0]):
            found.add("replace(task)")
    return found


def test_each_is_written_in_one_place() -> None:
    where: dict[str, set[str]] = {kind: set() for kind in WRITERS}
    for path in PACKAGE.rglob("*.py"):
        for kind in writes(path.read_text()):
            where[kind].add(str(path.relative_to(PACKAGE)))
    assert {kind: sorted(w - WRITERS[kind]) for kind, w in where.items()} == {kind: [] for kind in WRITERS}
    assert all(where[kind] for kind in WRITERS)  # the walk found each writer


def test_a_second_writer_is_found() -> None:
    """The check itself: a door that rebuilds or rewrites a task, or builds a job, is caught."""
    source = (
        "import dataclasses\n"
        "def f(session, out):\n"
        "    t = dataclasses.replace(session.task, output=out)\n"
        "    u = TranslationTask(None, ('spa',))\n"
        "    return ModelInput(t, ('spa',))\n"
    )
    assert writes(source) == {"replace(task)", "TranslationTask", "ModelInput"}
    assert writes("def g(t, o):\n    return replace(o, speed=2.0)\n") == set()
