"""Every file a docstring or comment of translate_svc/ names exists: a reader sent to
``model/capture.py`` or ``../http/door.py`` finds it. A name resolves when a tracked file of the
repository ends with it (``../`` steps dropped: the walk is relative to the naming module), when it
is in ``../shared`` beside the repository (the design guide and research notes), or when it is one of
the third-party files the code cites (``EXTERNAL``), found in its installed package where that
package is one of ours. A history note naming where a module used to be is not a path to follow:
say what the code does instead (the history is in docs/decisions.md and the CHANGELOG)."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import REPO

pytestmark = pytest.mark.unit

#: a path-like word ending in a source or document suffix, not inside a longer path or a URL
NAMED = re.compile(r"(?<![\w/.:-])((?:\.\./)*(?:[\w.-]+/)*[\w-]+\.(?:py|md|yaml|yml|proto|toml|sh|ts|js))\b")
#: third-party files the code cites for its reasoning: the name and the package that holds it (None:
#: a project we do not install, named for its published algorithm)
EXTERNAL = {
    "feature_extraction_seamless_m4t.py": "transformers",
    "silero_vad/utils_vad.py": "silero_vad",
    "whisper/timing.py": None,
}


def tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    return out.stdout.split()


def prose(source: str) -> list[str]:
    """The docstrings and comments of a module's source."""
    texts = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                texts.append(doc)
    texts += [line.split("#", 1)[1] for line in source.splitlines() if "#" in line]
    return texts


def in_package(name: str, package: str) -> bool:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
    root = Path(next(iter(spec.submodule_search_locations)))
    inner = name.split("/", 1)[1] if name.startswith(package + "/") else name
    return any(root.rglob(inner))


def unresolved(files: list[str], modules: dict[str, str]) -> list[str]:
    """``module: name`` for each name in ``modules``' prose that resolves nowhere."""
    shared = REPO.parent / "shared"
    found = []
    for module, source in modules.items():
        for text in prose(source):
            for match in NAMED.finditer(text):
                name = match.group(1)
                bare = re.sub(r"^(\.\./)+", "", name)
                if any(f == bare or f.endswith("/" + bare) for f in files) or (shared / bare).exists():
                    continue
                if bare in EXTERNAL:
                    package = EXTERNAL[bare]
                    if package is None or in_package(bare, package):
                        continue
                found.append(f"{module}: {name}")
    return found


def test_every_path_a_docstring_or_comment_names_exists() -> None:
    files = tracked()
    modules = {p: (REPO / p).read_text() for p in files if p.startswith("translate_svc/") and p.endswith(".py")}
    missing = unresolved(files, modules)
    assert not missing, "files named in translate_svc/ that do not exist:\n" + "\n".join(missing)


def test_a_name_gone_is_found() -> None:
    """The check itself: a moved module's old name, a sibling's typo and a cited third-party file
    renamed are each reported; a real path, a relative one and a cited one are not."""
    files = tracked()
    source = '"""See ``model/capture.py``, ``../model/regions.py`` and silero_vad/utils_vad.py."""\n'
    assert unresolved(files, {"x.py": source}) == []
    gone = '"""Was ``session/caps.py``; see ``model/captures.py``."""\n# transformers: feature_extraction_m4t.py\n'
    assert unresolved(files, {"x.py": gone}) == [
        "x.py: session/caps.py",
        "x.py: model/captures.py",
        "x.py: feature_extraction_m4t.py",
    ]
