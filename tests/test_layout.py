"""The tests' own map (tests/README.md): every folder is a package, a folder named after a package
of translate_svc/ mirrors its sub-packages, every test module says whether it is a unit or an
integration test, no test module imports another (what tests share is in tests/support, as
benchmarks import it), and a module of the model or its seam with logic has a test module named
after it (issue 89)."""

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
    assert {f.name for f in mirrored} >= {"session", "transport", "model", "model_api"}
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


#: model modules with no logic of their own, so no test module named after them (issue 89), each
#: with why; every other ``model/**/X.py`` and ``model_api/X.py`` has one (below)
MODEL_WITHOUT_LOGIC = {
    "model_api/runner.py": "Protocols and the stepper's three priorities: no code runs; mypy holds the "
    "runners and tests/support's fakes to them",
    "model/decode/finished.py": "one frozen record a decode pool's rows leave as; tests/model/decode's "
    "loop and whole-plan tests read it",
}


def model_modules() -> list[str]:
    """Every module of translate_svc/model/ and translate_svc/model_api/ (packages' ``__init__``
    aside: docstrings), as a path under translate_svc/."""
    return sorted(
        str(p.relative_to(PACKAGE))
        for top in ("model", "model_api")
        for p in (PACKAGE / top).rglob("*.py")
        if p.name != "__init__.py" and "__pycache__" not in p.parts
    )


def holds(name: list[str], words: list[str]) -> bool:
    return any(name[k : k + len(words)] == words for k in range(len(name) - len(words) + 1))


def named_after(module: str) -> list[str]:
    """The test modules named after ``module`` (a path under translate_svc/): in the folder of tests/
    that mirrors its folder, a name whose words (after ``test``) hold the module's name, word for
    word (``model/decode/loop.py``: ``tests/model/decode/test_decode_loop.py``), so a test is named
    after the behaviour it checks and still found beside the module it tests; a name that holds a
    longer sibling's name is that sibling's (``test_lid_checkpoint_build.py`` is not
    ``checkpoint.py``'s)."""
    path = Path(module)
    words = path.stem.split("_")
    siblings = [p.stem.split("_") for p in (PACKAGE / path.parent).glob("*.py")]
    longer = [w for w in siblings if len(w) > len(words) and holds(w, words)]
    return [
        str(test.relative_to(TESTS))
        for test in sorted((TESTS / path.parent).glob("test_*.py"))
        if holds(name := test.stem.split("_")[1:], words) and not any(holds(name, w) for w in longer)
    ]


def test_a_model_module_with_logic_has_a_test_module_named_after_it() -> None:
    """Issue 89: the model wing along a segment's path (stages/, decode/, finish/, testing/, the
    seam model_api/) is tested where a reader looks: each module beside its tests, in the mirrored
    folder; a module without logic is listed in ``MODEL_WITHOUT_LOGIC`` with its reason."""
    modules = model_modules()
    assert len(modules) > 30  # the walk found the model
    assert sorted(set(MODEL_WITHOUT_LOGIC) - set(modules)) == [], "an exemption names no module"
    missing = [m for m in modules if m not in MODEL_WITHOUT_LOGIC and not named_after(m)]
    assert missing == [], "add tests/<its folder>/test_<behaviour with its name>.py, or list it with a reason"
