"""The doors' home (issue 35): one package per door, and no module of transport/ takes a private
name (``_x``) of another module of this project. import-linter holds the packages' imports
(pyproject.toml); this holds the names, which import-linter does not look at."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

import translate_svc.transport
from tests.support.source import parsed

pytestmark = pytest.mark.unit

TRANSPORT = Path(translate_svc.transport.__file__).parent
#: packages of the doors' shared home, not doors (tokens/: issue 71)
SHARED = {"tokens", "telephony"}  # the shared home's tokens package; the phone and SIP doors' floor
#: the HTTP port's home: a package of transport/ that route sets stand on, not a door of its own
PORT_HOMES = {"http"}
PYPROJECT = TRANSPORT.parents[1] / "pyproject.toml"


def private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("translate_svc"):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    return found


def test_no_module_of_transport_imports_a_private_name_of_another() -> None:
    modules = sorted(TRANSPORT.rglob("*.py"))
    assert len(modules) >= 12, "the doors' modules were not found"
    offenders = {str(p.relative_to(TRANSPORT)): names for p in modules if (names := private_imports(p))}
    assert offenders == {}


def test_the_check_sees_a_private_import(tmp_path: Path) -> None:
    sample = tmp_path / "door.py"
    sample.write_text("from translate_svc.transport.openai.loop import _drive, PATH\n", encoding="utf-8")
    assert private_imports(sample) == ["translate_svc.transport.openai.loop._drive"]


def test_each_door_is_a_package_of_its_own() -> None:
    doors = {p.name for p in TRANSPORT.iterdir() if (p / "__init__.py").is_file()} - SHARED
    # phone: issue 44; http, rooms: 58; sip: 60; recordings: 61; mcp: 62; glossaries, jobs: 73
    assert doors == {
        "glossaries",
        "grpc",
        "http",
        "jobs",
        "mcp",
        "openai",
        "phone",
        "recordings",
        "riva",
        "rooms",
        "sip",
    }
    assert not (TRANSPORT / "server.py").exists() and (TRANSPORT / "host.py").is_file()


def independent_doors() -> set[str]:
    """The packages of transport/ that the door independence contract names (pyproject.toml)."""
    contracts = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]
    (doors,) = [c for c in contracts if c["type"] == "independence" and c["name"].startswith("Each door imports")]
    prefix = "translate_svc.transport."
    assert all(m.startswith(prefix) for m in doors["modules"])
    return {m.removeprefix(prefix) for m in doors["modules"]}


def test_every_door_is_in_the_independence_contract() -> None:
    """A door left out of the contract may import another door unseen (the jobs door once read
    the gRPC door's converters): every package of transport/ but the shared home's is named."""
    doors = {p.name for p in TRANSPORT.iterdir() if (p / "__init__.py").is_file()} - SHARED - PORT_HOMES
    assert independent_doors() == doors
