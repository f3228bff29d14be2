"""Every command's --help reads well at 80 and 120 columns: no sentence broken by a line break written
in the source, no truncated flag or variable name.

Rich wraps help text itself, so a help string must not be pre-wrapped: a prose paragraph is one logical
line, and rich breaks it only where the next word does not fit. A block that keeps its lines (an
example, a JSON shape) is indented, each line fitting 80 columns, and ends with a blank line.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
import typer.rich_utils
from typer.testing import CliRunner

from translate_svc.cli import app

pytestmark = pytest.mark.unit

WIDTHS = (80, 120)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PANEL_TOP = "╭"


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """``command`` and every command under it (typer's click, vendored or not), with the words that reach it."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, (*path, name))


COMMANDS = dict(commands(typer.main.get_command(app)))
assert len(COMMANDS) > 1, "no subcommands found"  # the walk must see them


@pytest.fixture(autouse=True)
def _width_from_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """typer reads TERMINAL_WIDTH once, at import: let COLUMNS decide here."""
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", None)


def render(path: tuple[str, ...], width: int) -> list[str]:
    """The help as printed on stdout. ``result.output`` would also hold stderr, and CliRunner swaps the
    process's sys.stderr: a line another test's leftover thread writes there meanwhile (CI saw a
    105-column line in the root help at 80) is not the help."""
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return [ANSI.sub("", line).rstrip() for line in result.stdout.splitlines()]


def description(lines: list[str]) -> list[str]:
    """The help text between the usage line and the first panel, without rich's one-column margin."""
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("Usage:")) + 1
    end = next((i for i, line in enumerate(lines) if line.startswith(PANEL_TOP)), len(lines))
    return [line[1:] for line in lines[start:end]]


def broken_lines(text: list[str], width: int) -> list[str]:
    """Line breaks rich did not make: in prose (unindented lines), a break is rich's wrap only when the next
    word would not have fitted; an indented line (a kept block) must not run on into prose."""
    problems = []
    for a, b in itertools.pairwise(text):
        if not a.strip() or not b.strip():
            continue
        a_block, b_block = a.startswith(" "), b.startswith(" ")
        if a_block and not b_block:
            problems.append(f"a kept line runs on (too wide, or no blank line after its block): {a!r} / {b!r}")
        elif not a_block and not b_block and len(a) + 1 + len(b.split()[0]) <= width:
            problems.append(f"prose broken after {a.split()[-1]!r}: {a!r} / {b!r}")
    return problems


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: " ".join(p) or "translate-svc")
def test_help_is_wrapped_by_rich_alone(path: tuple[str, ...], width: int) -> None:
    lines = render(path, width)
    assert max(map(len, lines)) <= width
    assert broken_lines(description(lines), width - 2) == []  # rich keeps one column free on each side
    assert [line for line in lines if "…" in line] == []  # a flag, default or variable cut short


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: " ".join(p) or "translate-svc")
def test_flag_help_is_one_line(path: tuple[str, ...]) -> None:
    """Rich wraps a flag's help in its table column; a newline in it would break a sentence there."""
    assert [p.name for p in COMMANDS[path].params if "\n" in (getattr(p, "help", None) or "")] == []


def test_the_rule_catches_a_pre_wrapped_paragraph() -> None:
    prose = ["The client commands speak to a server through", "the SDK", "(translate_svc.client). Connection."]
    assert len(broken_lines(prose, 46)) == 1  # "the SDK" ends early: the source broke the sentence
    assert broken_lines(["Outputs go to --out, named", "per input."], 26) == []  # "per" did not fit: a wrap
    block = ["JSON:", "  {'a': 1,", "   'b': 2}", "", "Every segment is listed."]
    assert broken_lines(block, 78) == []
    assert len(broken_lines(["  {'a': 1, 'b':", "2}"], 78)) == 1  # a kept line wider than the screen


def test_flag_groups_have_their_own_help_sections() -> None:
    """A section per group: each table sizes its columns to its own flags, so none is cut at 80 columns."""
    titles = [line.split(" ")[1] for line in render(("stream",), 80) if line.startswith(PANEL_TOP)]
    assert titles == ["Arguments", "Options", "Languages", "Translated", "Segmentation", "Headerless", "Connection"]
