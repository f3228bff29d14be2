"""Where the suite's time goes: with ``TRANSLATE_SVC_TEST_TIMES=<folder>`` set, each pytest process
(each xdist worker) writes one JSON line per test to ``<folder>/<worker>.jsonl``: its file, its
wall seconds and the CPU seconds its process and the children it reaped spent on it (a server
started in a subprocess counts for the test that stopped it; threads count for the process).
Summed per file by ``python -m tests.support.suite_times <folder>``: the files that cost most CPU
are the ones a loaded machine slows most (docs/ci-timings.md). Off unless the variable is set."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

FOLDER = os.environ.get("TRANSLATE_SVC_TEST_TIMES")


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if not FOLDER:
        yield
        return
    wall, cpu = time.monotonic(), _cpu()
    yield
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    line = {"file": item.location[0], "test": item.nodeid, "wall_s": time.monotonic() - wall, "cpu_s": _cpu() - cpu}
    with open(Path(FOLDER) / f"{worker}.jsonl", "a") as out:
        out.write(json.dumps(line) + "\n")


def summary(folder: Path, top: int = 40) -> str:
    """The files by CPU seconds, with their wall seconds and test counts."""
    cpu: dict[str, float] = defaultdict(float)
    wall: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for path in folder.glob("*.jsonl"):
        for raw in path.read_text().splitlines():
            row = json.loads(raw)
            cpu[row["file"]] += row["cpu_s"]
            wall[row["file"]] += row["wall_s"]
            count[row["file"]] += 1
    rows = [f"{'cpu s':>8} {'wall s':>8} {'tests':>5}  file"]
    for name in sorted(cpu, key=cpu.__getitem__, reverse=True)[:top]:
        rows.append(f"{cpu[name]:8.1f} {wall[name]:8.1f} {count[name]:5d}  {name}")
    rows.append(f"{sum(cpu.values()):8.1f} {sum(wall.values()):8.1f} {sum(count.values()):5d}  all {len(cpu)} files")
    return "\n".join(rows)


if __name__ == "__main__":
    print(summary(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 40))
