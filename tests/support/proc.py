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


@contextlib.contextmanager
def peak_rss_growth_mb(pid: int) -> Iterator[dict[str, float]]:
    """The block's peak RSS growth of ``pid`` (MB), in the yielded dict's ``mb`` once it ends, and
    what of it is still held then (``after_mb``)."""
    reset_peak(pid)
    before = memory_kb(pid)["VmRSS"]
    got: dict[str, float] = {}
    yield got
    got["mb"] = round((memory_kb(pid)["VmHWM"] - before) / 1024, 1)
    got["after_mb"] = round((memory_kb(pid)["VmRSS"] - before) / 1024, 1)


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
