"""A server process seen from ``/proc`` (Linux): its memory, its peak memory and its CPU time, as
the attack probes, the tests that bound what a caller costs, and the benchmarks read them; and a
free loopback port for a server to take, and a server process stopped."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak since the last reset) of ``pid``, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def rss_mb(pid: int) -> float:
    """The resident memory of ``pid`` now (VmRSS), in MB."""
    return memory_kb(pid)["VmRSS"] / 1024


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux; needs to own the process)


def descendants(pid: int) -> list[int]:
    """The processes ``pid`` started, and theirs (Linux: each thread's ``children``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        for kid in kids:
            found += [kid, *descendants(kid)]
    return found


@contextlib.contextmanager
def peak_rss_growth_mb(pid: int, *, tree: bool = False) -> Iterator[dict[str, float]]:
    """The block's peak RSS growth of ``pid`` (MB), in the yielded dict's ``mb`` once it ends, and
    what of it is still held then (``after_mb``). ``tree``: the processes it started too (those
    started during the block count whole), each at its own peak, summed."""
    pids = [pid, *(descendants(pid) if tree else [])]
    before: dict[int, int] = {}
    for p in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            reset_peak(p)
            before[p] = memory_kb(p)["VmRSS"]
    got: dict[str, float] = {}
    yield got
    peaks: list[float] = []
    after = 0
    for p in [pid, *(descendants(pid) if tree else [])]:
        try:
            now = memory_kb(p)
        except (FileNotFoundError, ProcessLookupError):
            continue
        peaks.append(round((now["VmHWM"] - before.get(p, 0)) / 1024, 1))
        after += now["VmRSS"] - before.get(p, 0)
    got["mb"] = round(sum(peaks), 1)
    got["after_mb"] = round(after / 1024, 1)
    if tree:
        got["each_mb"] = peaks  # type: ignore[assignment]


def cpu_s(pid: int) -> float:
    """The process's user + system CPU time so far (``/proc/PID/stat``: utime, stime), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A loopback TCP port free now (for a server whose port must be known before it starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any], grace_s: float = 30) -> None:
    """SIGTERM (a server drains), then SIGKILL after ``grace_s``; waits for it either way."""
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
