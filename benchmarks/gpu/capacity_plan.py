"""The capacity call's plan and verdicts (benchmarks/gpu/capacity.py): pure functions on plain values,
no clock, no process, no I/O, so that what the GPU call will do is tested here on the CPU.

- ``PHASES``: each phase's time budget. The call's whole budget is fixed (``Plan.budget_s``); a
  phase ends at its own budget or where the later phases' budgets would no longer fit, whichever is
  first, and a ramp (``Phase.elastic``) at the latter alone (``Plan.deadline``), so time a phase did
  not use goes to the ramp after it, never past the call.
- ``next_streams``: the ramp's search (doubling until a step is not sustained, then bisecting).
- ``merge_steps``: one ramp step's loadgen JSONs (several client processes) as one result.
- ``shape_verdict``: the metrics that say the warm-up covered what ran (cold shapes, graph
  misses, capture failures, a cut warm-up); anything but zero is a failure, said as one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Phase:
    name: str
    budget_s: float
    what: str
    #: runs to where the later phases' budgets begin, whatever its own (a ramp takes the time the
    #: phases before it did not use); the others end at their own budget too
    elastic: bool = False


#: the capacity call, in order (seconds). 550 s of a 600 s device call (timeout_s=590): run.sh's
#: set-up before it (the site unpacked, libopus, machine.txt) takes about 12 s; the rest is slack
#: for the results' packing and the call's own transfers. The graphs server's warm-up gets 160 s of
#: its 190 (load about 21 s on the H200, 2026-11-26): 210 batches and 694 stage calls at batch 64
#: (benchmarks/gpu/warmup_check.py --count-only), twice the t2u and vocoder calls with the finish thread.
PHASES = (
    Phase("checkpoint", 30, "the full-size random checkpoint built on the GPU (skipped when it exists)"),
    Phase("serve_graphs", 190, "serve with the defaults (CUDA graphs) up to its ready file: load + warm-up"),
    Phase("one_stream", 45, "one 30 s stream: its p50 / p95 alone on the server (about 39 s)"),
    Phase("ramp_graphs", 120, "steps of N streams, 28 s each: 6 s start, 4 s stagger, 15 s, 3 s drain", True),
    Phase("stop_graphs", 10, "SIGTERM, then wait"),
    Phase("serve_eager", 85, "serve with every graph off (stage_graphs, decode_graphs): load + warm-up"),
    Phase("ramp_eager", 60, "one or two steps from the graphs' answer", True),
    Phase("stop_eager", 10, "SIGTERM, then wait"),
)


@dataclass(frozen=True)
class Plan:
    """The phases' budgets within ``budget_s``; ``deadline`` turns them into times from the start."""

    phases: tuple[Phase, ...] = PHASES
    budget_s: float = 550.0

    def __post_init__(self) -> None:
        if sum(p.budget_s for p in self.phases) > self.budget_s:
            raise ValueError(
                f"the phases' budgets add up to {sum(p.budget_s for p in self.phases):g} s, over the call's "
                f"{self.budget_s:g} s"
            )

    def scaled(self, k: float) -> Plan:
        """Every budget times ``k``: a CPU dry run (benchmarks/gpu/preflight.sh), whose warm-ups run
        on a 2-core CPU, keeps the call's shape with more time; a device call runs at 1."""
        phases = tuple(Phase(p.name, p.budget_s * k, p.what, p.elastic) for p in self.phases)
        return Plan(phases, self.budget_s * k)

    def deadline(self, name: str, started_s: float) -> float:
        """When phase ``name`` (started at ``started_s`` s into the call) must end: the point after
        which the phases after it no longer fit in the call, or its own budget if sooner (not for
        an elastic phase: a ramp takes what the phases before it left)."""
        k = [p.name for p in self.phases].index(name)
        last = self.budget_s - sum(p.budget_s for p in self.phases[k + 1 :])
        return last if self.phases[k].elastic else min(started_s + self.phases[k].budget_s, last)

    def table(self) -> str:
        """The plan as text (capacity.json and the log start with it)."""
        lines, at = [], 0.0
        for p in self.phases:
            more = " (+ what earlier phases left)" if p.elastic else ""
            lines.append(f"{at:5.0f}-{at + p.budget_s:3.0f} s  {p.name:<13} {p.what}{more}")
            at += p.budget_s
        lines.append(f"{at:5.0f} s of {self.budget_s:g} s planned")
        return "\n".join(lines)


def next_streams(tried: Mapping[int, bool], *, start: int, most: int, resolution: float = 0.125) -> int | None:
    """The next ramp step after the steps ``tried`` (streams -> sustained): ``start`` first, then
    doubling while every step held (up to ``most``), then halfway between the largest sustained and
    the smallest not sustained, until they are within ``resolution`` of the sustained one (and 1
    stream) apart. None: the answer is found (or ``most`` held)."""
    if start < 1 or most < 1:
        raise ValueError(f"streams must be >= 1: start {start}, most {most}")
    if not tried:
        return min(start, most)
    good = max((n for n, ok in tried.items() if ok), default=0)
    bad = min((n for n, ok in tried.items() if not ok and n > good), default=None)
    if bad is None:
        return None if good >= most else min(good * 2, most)
    if bad - good <= max(1, math.floor(good * resolution)):
        return None
    return (good + bad) // 2


@dataclass(frozen=True)
class StepResult:
    """One ramp step, every client process's streams together."""

    streams: int
    segments: int
    p50_ms: float | None
    p95_ms: float | None
    failed_segments: int
    streams_failed: int
    streams_behind: int
    max_send_lag_ms: float
    #: the clients fell behind their own pacing (a send lag over ``client_lag_ms``): the step
    #: measured the load generator, not the server
    client_bound: bool
    sustained: bool
    errors: tuple[str, ...] = ()
    server_cpu: dict[str, Any] = field(default_factory=dict)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear between closest ranks (numpy's default), as loadgen's report computes it."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def merge_steps(
    docs: Sequence[Mapping[str, Any] | None], streams: int, *, slo_ms: float, client_lag_ms: float
) -> StepResult:
    """One step's loadgen documents (``--target``: ``results.target``), one per client process; a
    process that wrote none (killed at the step's budget) counts all its streams failed."""
    latencies: list[float] = []
    segments = failed_segments = failed = behind = 0
    lag = 0.0
    errors: set[str] = set()
    cpu: dict[str, Any] = {}
    seen = 0
    for doc in docs:
        if doc is None:
            errors.add("a client process wrote no result (cut at the step's budget)")
            continue
        target = doc["results"]["target"]
        rt = target["realtime"]
        for s in target["streams"]["realtime"]:
            latencies += s.get("latency_ms", [])
        seen += rt["streams"]
        behind += rt["streams_behind"]
        segments += rt["segments"]
        failed_segments += rt["failed_segments"]
        failed += rt["streams_failed"]
        lag = max(lag, rt["max_send_lag_ms"])
        errors |= set(rt["errors"])
        if rt.get("cpu", {}).get("server"):
            cpu = {"server": rt["cpu"]["server"], "threads_s": rt["cpu"].get("server_threads_s", {})}
    failed += streams - seen  # the streams of a process that wrote nothing
    p95 = percentile(latencies, 95)
    client_bound = lag > client_lag_ms
    ok = p95 is not None and p95 <= slo_ms and failed_segments == 0 and failed == 0 and behind == 0 and not client_bound
    return StepResult(
        streams, segments, percentile(latencies, 50), p95, failed_segments, failed, behind, lag, client_bound,
        ok, tuple(sorted(errors)), cpu,
    )  # fmt: skip


#: counters that must not move once the warm-up is over, and the gauge of a cut warm-up
SHAPE_COUNTERS = (
    "translate_svc_model_cold_shapes_total",
    "translate_svc_model_graph_misses_total",
    "translate_svc_model_capture_failures_total",
)
WARMUP_GAUGES = (
    "translate_svc_warmup_planned_batches",
    "translate_svc_warmup_batches",
    "translate_svc_warmup_stage_calls",
    "translate_svc_warmup_seconds",
    "translate_svc_warmup_cut",
)


def shape_counts(samples: Mapping[tuple[str, str], float]) -> dict[str, dict[str, float]]:
    """(metric, stage label) -> value, as {metric: {stage: value}} for the shape counters only."""
    out: dict[str, dict[str, float]] = {name: {} for name in SHAPE_COUNTERS}
    for (name, stage), value in samples.items():
        if name in out and value:
            out[name][stage] = out[name].get(stage, 0.0) + value
    return out


def shape_verdict(
    before: Mapping[str, Mapping[str, float]], after: Mapping[str, Mapping[str, float]], *, graphs: bool
) -> list[str]:
    """What moved between two readings of ``shape_counts`` (``before`` the warm-up's end: all
    zeros): one line per counter that rose, naming the stages. Graph misses count only where
    the stages have graphs (``graphs``); capture failures at any time. Empty: all covered."""
    problems = []
    for name in SHAPE_COUNTERS:
        if name == "translate_svc_model_graph_misses_total" and not graphs:
            continue
        rose = {s: v - before.get(name, {}).get(s, 0.0) for s, v in after.get(name, {}).items()}
        rose = {s: v for s, v in rose.items() if v > 0}
        if rose:
            stages = ", ".join(f"{s} {v:g}" for s, v in sorted(rose.items()))
            problems.append(f"{name.removeprefix('translate_svc_model_')} rose by {sum(rose.values()):g} ({stages})")
    return problems


def warmup_verdict(gauges: Mapping[str, float]) -> list[str]:
    """A warm-up that is not whole, as lines (empty: it ran its whole plan within its budget).
    A server without these gauges (older code) is a failure too: nothing verifies it."""
    missing = [g for g in WARMUP_GAUGES if g not in gauges]
    if missing:
        return [f"the server has no warm-up gauges ({', '.join(missing)}): its warm-up cannot be verified"]
    problems = []
    planned, run = gauges["translate_svc_warmup_planned_batches"], gauges["translate_svc_warmup_batches"]
    if gauges["translate_svc_warmup_cut"] or run < planned:
        problems.append(
            f"the warm-up was CUT by its budget after {gauges['translate_svc_warmup_seconds']:.1f} s: {run:g} of "
            f"{planned:g} planned batches, {gauges['translate_svc_warmup_stage_calls']:g} stage calls"
        )
    return problems
