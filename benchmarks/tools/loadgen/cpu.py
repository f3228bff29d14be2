"""CPU time as a run reads it: a server process's (its live descendants and threads included),
this process's, and the whole machine's (``/proc``, Linux)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from benchmarks.tools import report
from benchmarks.tools.report import ProcCpu


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (a ``serve --workers N`` node: the supervisor, the engine
    process and the workers), from /proc/<pid>/task/<tid>/children."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in children.read_text().split()]
            except (OSError, ValueError):
                continue  # gone meanwhile
    return out


def read_proc_cpu(pid: int, *, messages: int = 0, threads: bool = False) -> ProcCpu | None:
    """A process's CPU seconds (utime + stime) now, its live descendants' included, and their
    threads' by name; None if it is gone."""
    hz = os.sysconf("SC_CLK_TCK")
    t = time.perf_counter()
    try:
        _, cpu = report.parse_proc_stat(Path(f"/proc/{pid}/stat").read_text(), hz)
    except (OSError, ValueError, IndexError):
        return None
    pids = process_tree(pid)
    for child in pids[1:]:
        try:
            cpu += report.parse_proc_stat(Path(f"/proc/{child}/stat").read_text(), hz)[1]
        except (OSError, ValueError, IndexError):
            continue  # it just ended
    named: list[tuple[str, float]] = []
    if threads:
        for p in pids:
            for task in Path(f"/proc/{p}/task").glob("*/stat"):
                try:
                    named.append(report.parse_proc_stat(task.read_text(), hz))
                except (OSError, ValueError, IndexError):
                    continue  # the thread just ended
    return ProcCpu(t, cpu, messages, tuple(named))


def own_cpu(messages: int = 0) -> ProcCpu:
    t = os.times()
    return ProcCpu(time.perf_counter(), t.user + t.system, messages)


def cpu_snapshot() -> report.CpuSnapshot | None:
    """Busy CPU seconds of the whole machine (/proc/stat) and of this process, or None off Linux."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]  # idle + iowait
    t = os.times()
    return report.CpuSnapshot(machine_busy_s=(sum(values) - idle) / hz, process_s=t.user + t.system)
