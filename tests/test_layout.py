"""The tests' own map (tests/README.md): every folder is a package, a folder named after a package
of translate_svc/ mirrors its sub-packages, every test module says whether it is a unit or an
integration test, and no test module imports another (what tests share is in tests/support, as
benchmarks import it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.source import parsed

pytestmark = pytest.mark.unit

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "translate_svc"
MODULES = sorted(p for p in TESTS.rglob("test_*.py") if "__pycache__" not in p.parts)


def dotted(path: Path) -> str:
    return ".".join(path.relative_to(TESTS.parent).with_suffix("").parts)


def imported(tree: ast.Module) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_every_folder_of_tests_is_a_package() -> None:
    """pytest imports a test file by its full name only inside packages; elsewhere by its basename,
    where two files of one name clash."""
    folders = {p.parent for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts}
    assert sorted(str(f.relative_to(TESTS)) for f in folders if not (f / "__init__.py").is_file()) == []


def test_the_folders_of_a_package_mirror_its_sub_packages() -> None:
    """``tests/session/rooms/`` tests ``translate_svc/session/rooms/``: under a folder named after a
    package of translate_svc/ (``session/``, ``transport/``, ...), every folder names a sub-package
    of it, so a test is found by the path of what it tests."""
    mirrored = [f for f in TESTS.iterdir() if f.is_dir() and (PACKAGE / f.name / "__init__.py").is_file()]
    assert {f.name for f in mirrored} >= {"session", "transport"}
    stray = [
        str(folder.relative_to(TESTS))
        for top in mirrored
        for folder in top.rglob("*")
        if folder.is_dir()
        and "__pycache__" not in folder.parts
        and not (PACKAGE / folder.relative_to(TESTS) / "__init__.py").is_file()
    ]
    assert sorted(stray) == []


def test_no_test_module_imports_another() -> None:
    tests = {dotted(p) for p in MODULES} | {"tests.conftest"}
    found = {}
    for path in MODULES:
        others = sorted(m for m in imported(parsed(path)) if m in tests and m != dotted(path))
        if others:
            found[str(path.relative_to(TESTS))] = others
    assert found == {}, "move what they share into tests/support"


def marks(tree: ast.Module) -> set[str]:
    """The ``pytest.mark.<name>`` names in the module's ``pytestmark``."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            return {
                n.attr
                for n in ast.walk(node.value)
                if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute) and n.value.attr == "mark"
            }
    return set()


def test_every_test_module_is_marked_unit_or_integration() -> None:
    kinds = {str(p.relative_to(TESTS)): marks(parsed(p)) & {"unit", "integration"} for p in MODULES}
    assert {path: sorted(k) for path, k in kinds.items() if len(k) != 1} == {}
