"""The checkouts an attack is measured on, before and after a fix: their commits, the command line
that names them, and the figures of each side by side."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from tests.support.json_result import print_and_save
from tests.support.paths import REPO, TEST_MODEL


def commit(checkout: Path) -> str:
    got = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return got.stdout.strip()


def add_measure(sub: Any) -> argparse.ArgumentParser:
    """The ``measure`` subcommand: every attack against a fresh server of each ``--checkout``."""
    m: argparse.ArgumentParser = sub.add_parser("measure", help="every attack against a fresh server of each checkout")
    m.add_argument("--checkout", action="append", type=Path, required=True, help="a checkout to serve (repeat)")
    m.add_argument("--model", default=str(TEST_MODEL))
    m.add_argument("--json", default=None, help="write the result here too (outside the tree, or out/)")
    return m


def save_runs(runs: list[dict[str, Any]], path: str | None) -> None:
    """``measure``'s runs, one per checkout, printed and kept in ``path``."""
    print_and_save({"date": time.strftime("%Y-%m-%d"), "runs": runs}, path)


def add_trees(ap: argparse.ArgumentParser, attacks: Sequence[str]) -> None:
    """``--before``/``--after`` (the checkouts, attacked in that order), ``--only`` and ``--json``."""
    ap.add_argument("--before", type=Path, help="another checkout to attack first (e.g. the base commit's)")
    ap.add_argument("--after", type=Path, default=REPO, help="the checkout under test (default: this one)")
    ap.add_argument("--only", type=lambda v: v.split(","), default=list(attacks), help=",".join(attacks))
    ap.add_argument("--json", help="write the result here too (outside the tree, or out/)")


async def before_after(
    opts: argparse.Namespace, run_tree: Callable[[Path, argparse.Namespace], Awaitable[dict[str, dict[str, Any]]]]
) -> dict[str, dict[str, dict[str, Any]]]:
    """``run_tree`` on ``--before`` (if given), then on ``--after``; their figures as one table on
    stderr."""
    trees = {"before": opts.before} if opts.before is not None else {}
    trees["after"] = opts.after
    results = {name: await run_tree(tree.resolve(), opts) for name, tree in trees.items()}
    print(table(results), file=sys.stderr)
    return results


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """One markdown table: a row per attack and figure, a column per tree."""
    names = list(results)
    lines = ["| attack | figure | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    attacks = list(dict.fromkeys(a for r in results.values() for a in r))
    for attack in attacks:
        figures = list(dict.fromkeys(f for r in results.values() for f in r.get(attack, {})))
        for figure in figures:
            cells = [str(results[n].get(attack, {}).get(figure, "")) for n in names]
            lines.append(f"| {attack} | {figure} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
