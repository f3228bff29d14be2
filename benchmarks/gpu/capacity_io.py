"""The processes and readings of the capacity call (benchmarks/gpu/capacity.py): a real
``translate-svc serve --workers W`` up to its ready file, its /metrics read over HTTP, the GPU's
load sampled by ``nvidia-smi``, and a ramp step's load generators (benchmarks/tools/loadgen
``--target``, separate processes). Every wait has a deadline (``time.monotonic``) and ends there;
what a process wrote before it was stopped is kept. Called from the driver's one thread, except
``GpuSampler``'s reader thread, which only appends to its own list under its lock.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Ready:
    """What the server's ready file says, of what the call needs."""

    port: int
    metrics_port: int
    engine_pid: int | None
    ready_after_s: float


class Server:
    """``serve`` as a process group of its own (the supervisor, the engine, the workers), its output
    in ``log``; ``stop`` signals the group, then kills it at the deadline."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log: Path, ready_file: Path) -> None:
        self.log = log
        self.ready_file = ready_file
        ready_file.unlink(missing_ok=True)
        self._out: IO[bytes] = log.open("wb")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            list(argv), env=dict(env), stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, deadline: float) -> Ready | None:
        """The ready file's ports once written; None if the server exited or the deadline came first."""
        while time.monotonic() < deadline:
            if self.ready_file.exists() and self.ready_file.stat().st_size:
                doc = json.loads(self.ready_file.read_text())
                if doc.get("metrics_port") is None:
                    raise RuntimeError("the server serves no /metrics: its warm-up cannot be verified")
                return Ready(
                    int(doc["port"]), int(doc["metrics_port"]), doc.get("engine_pid"), time.monotonic() - self.t0
                )
            if self.proc.poll() is not None:
                return None
            time.sleep(0.25)
        return None

    def tail(self, lines: int = 30) -> str:
        self._out.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, deadline: float) -> int | None:
        """SIGTERM to the group, then SIGKILL at ``deadline``; the exit status (None: killed). Once
        stopped, again is a no-op."""
        if self._out.closed:
            return self.proc.returncode
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                self._out.close()
                return None
        self._out.close()
        return self.proc.returncode


def read_metrics(port: int, timeout_s: float = 10.0) -> dict[tuple[str, str], float]:
    """The node's /metrics (the supervisor's aggregate of every process): (sample name, its
    ``stage`` label or "") -> value, summed over the other labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as r:
        text = r.read().decode()
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, s.labels.get("stage", ""))
            out[key] = out.get(key, 0.0) + s.value
    return out


def gauges(samples: Mapping[tuple[str, str], float], names: Sequence[str]) -> dict[str, float]:
    return {name: samples[(name, "")] for name in names if (name, "") in samples}


def batches(samples: Mapping[tuple[str, str], float]) -> tuple[float, float]:
    """(batches, segments in them) so far: the engine's batch-size histogram's count and sum."""
    return samples.get(("translate_svc_batch_size_count", ""), 0.0), samples.get(
        ("translate_svc_batch_size_sum", ""), 0.0
    )


class GpuSampler:
    """``nvidia-smi`` every 500 ms (utilisation %, memory MiB), each line stamped on arrival;
    ``window`` summarises a span. Without ``nvidia-smi`` (a CPU dry run) nothing is sampled."""

    def __init__(self, log: Path) -> None:
        self.samples: list[tuple[float, float, float]] = []
        self._lock = threading.Lock()
        self._log = log.open("w")
        self.proc: subprocess.Popen[str] | None = None
        try:
            query = ["--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-lms", "500"]
            self.proc = subprocess.Popen(
                ["nvidia-smi", *query], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
        except FileNotFoundError:
            return
        threading.Thread(target=self._read, name="gpu-sampler", daemon=True).start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = [p.strip() for p in line.split(",")]
            try:
                util, mem = float(parts[0]), float(parts[1])
            except (ValueError, IndexError):
                continue
            with self._lock:
                self.samples.append((time.monotonic(), util, mem))
            self._log.write(line)

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        with self._lock:
            xs = [(u, m) for t, u, m in self.samples if t0 <= t <= t1]
        if not xs:
            return {"samples": 0}
        utils = [u for u, _ in xs]
        return {
            "samples": len(xs),
            "util_mean": round(sum(utils) / len(utils), 1),
            "util_max": max(utils),
            "mem_max_mib": max(m for _, m in xs),
        }

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()
        self._log.close()


@dataclass(frozen=True)
class Load:
    """How every ramp step's streams play (loadgen ``--target``)."""

    py: str
    files: str
    stream_s: float
    stagger_s: float
    slo_ms: float
    streams_per_client: int
    #: a stream call's own deadline past its audio: an overloaded step ends by itself, its JSON written
    grace_s: float = 20.0
    #: what a client process takes to start (imports, the clips decoded) before its first stream
    start_s: float = 6.0
    #: the last results' wait after the audio, on a server that keeps up (p95 <= 1 s, the VAD's tail)
    drain_s: float = 3.0

    def expect_s(self, streams: int, stream_s: float | None = None) -> float:
        """What a step takes on a server that keeps up: start, stagger, the audio, the drain."""
        return self.start_s + self.stagger(streams) + (stream_s or self.stream_s) + self.drain_s

    def most_s(self, streams: int, stream_s: float | None = None) -> float:
        """What a step may take at most: an overloaded one ends by its streams' own deadlines."""
        return self.start_s + self.stagger(streams) + (stream_s or self.stream_s) + self.grace_s

    def stagger(self, streams: int) -> float:
        return self.stagger_s if streams > 1 else 0.0


def run_clients(
    load: Load, port: int, streams: int, out: Path, deadline: float, *, server_pid: int | None, stream_s: float | None
) -> list[dict[str, Any] | None]:
    """``streams`` real-time streams against 127.0.0.1:``port``, in ceil(streams / streams_per_client)
    loadgen processes started together (``server_pid`` to the first: the engine process's CPU);
    each writes ``out``.k.json and .txt. Processes still running at ``deadline`` are stopped (their
    streams count as failed). Returns each process's document (None: it wrote none)."""
    procs = max(1, math.ceil(streams / load.streams_per_client))
    counts = [streams // procs + (1 if k < streams % procs else 0) for k in range(procs)]
    seconds = stream_s or load.stream_s
    call_s = load.stagger(streams) + seconds + load.grace_s  # each stream call's own deadline
    running = []
    for k, n in enumerate(counts):
        argv = [
            load.py, "-m", "benchmarks.tools.loadgen", "--target", f"127.0.0.1:{port}", "--streams", str(n),
            "--files", load.files, "--stream-s", f"{seconds:g}", "--stagger-s", f"{load.stagger(streams):g}",
            "--no-saturation", "--slo-ms", f"{load.slo_ms:g}", "--timeout-s", f"{call_s:g}",
            "--json", str(out.with_suffix(f".{k}.json")), "--log-level", "WARNING",
        ]  # fmt: skip
        if k == 0 and server_pid is not None:
            argv += ["--server-pid", str(server_pid)]
        log = out.with_suffix(f".{k}.txt").open("wb")
        running.append((subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True), log))
    for proc, log in running:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    docs: list[dict[str, Any] | None] = []
    for k in range(procs):
        path = out.with_suffix(f".{k}.json")
        docs.append(json.loads(path.read_text()) if path.exists() else None)
    return docs
