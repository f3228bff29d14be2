"""Every file a docstring or comment of translate_svc/ names exists, and every file and code name the
architecture page (docs/architecture.md) cites is there: a reader sent to
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


def resolves(name: str, files: list[str]) -> bool:
    """Whether a named file is there: in the repository, in ../shared, or one of ``EXTERNAL``."""
    bare = re.sub(r"^(\.\./)+", "", name)
    if any(f == bare or f.endswith("/" + bare) for f in files) or (REPO.parent / "shared" / bare).exists():
        return True
    if bare in EXTERNAL:
        package = EXTERNAL[bare]
        return package is None or in_package(bare, package)
    return False


def unresolved(files: list[str], modules: dict[str, str]) -> list[str]:
    """``module: name`` for each name in ``modules``' prose that resolves nowhere."""
    return [
        f"{module}: {match.group(1)}"
        for module, source in modules.items()
        for text in prose(source)
        for match in NAMED.finditer(text)
        if not resolves(match.group(1), files)
    ]


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


#: a code name in a page's backticks: snake_case with an inner underscore, or CamelCase
CODE_NAME = re.compile(
    r"\b(?:[a-z][a-z0-9]*_[a-z0-9_]*[a-z0-9]|_[a-z][a-z0-9_]*[a-z0-9]|[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*)\b"
)


def stale_citations(page: str, files: list[str], names: set[str]) -> list[str]:
    """The file names and code names in ``page``'s backticks that are nowhere: no tracked file, no
    word of the tracked sources (``names``)."""
    found = []
    for span in re.findall(r"`([^`\n]+)`", page):
        paths = [m.group(1) for m in NAMED.finditer(span)]
        if paths:
            found += [f"file {p}" for p in paths if not resolves(p, files)]
        else:
            found += [f"name {n}" for n in CODE_NAME.findall(span) if n not in names]
    return found


def words_of_sources(files: list[str]) -> set[str]:
    """Every word of the tracked sources (code, protos, settings, manifests) and each file's stem."""
    text = "\n".join((REPO / f).read_text() for f in files if f.endswith((".py", ".proto", ".toml", ".yaml", ".ts")))
    return set(re.findall(r"\w+", text)) | {Path(f).stem for f in files}


def test_the_architecture_page_cites_files_and_names_that_exist() -> None:
    files = tracked()
    page = (REPO / "docs" / "architecture.md").read_text()
    stale = stale_citations(page, files, words_of_sources(files))
    assert not stale, "docs/architecture.md cites what is gone (redraw it from farm-studio look):\n" + "\n".join(stale)


def test_a_stale_citation_is_found() -> None:
    files = tracked()
    names = {"SegmentTracker", "emit_ready"}
    page = (
        "`session/stream/segments.py`: `SegmentTracker.emit_ready`; `session/jobs.py`: `_rows_to_outputs`, `JobTracker`"
    )
    assert stale_citations(page, files, names) == ["file session/jobs.py", "name _rows_to_outputs", "name JobTracker"]
