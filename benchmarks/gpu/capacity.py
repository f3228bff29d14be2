"""The capacity call: how many real-time S2ST streams one node serves at p95 <= 1 s, in ONE device
call (``run.sh capacity``; benchmarks/gpu/capacity_plan.py holds the plan and the verdicts).

Straight to the answer, each phase within its budget (``capacity_plan.PHASES``; a phase that ends
early gives its time to the ramp, none runs past the call):

  1. the full-size random checkpoint, built on the GPU unless it exists;
  2. ``serve --workers W`` with the defaults (CUDA graphs) to its ready file; its warm-up verified
     from /metrics: not cut (``translate_svc_warmup_cut``, planned against run batches), no capture
     failure;
  3. one stream alone: its p50 / p95;
  4. the ramp: N real-time streams from separate loadgen processes, N doubling while a step holds
     (p95 <= SLO, no stream behind or failed, no failed segment, the clients on their pace), then
     bisected; after each step, the metrics again: a cold shape or a graph miss is a failure;
  5. the same server with every graph off (``model.stage_graphs``, ``model.decode_graphs``), its
     warm-up verified, two or three steps from the graphs' answer;

with the GPU's utilisation and memory sampled every 500 ms (``nvidia-smi``) and the engine
process's CPU (loadgen ``--server-pid``) per step. After every step ``capacity.json`` (everything),
``capacity.log`` and ``results.tgz`` (the servers' and clients' logs) are rewritten in ``--out``,
so a call cut short keeps what it measured. Exit status 0: an answer with every verdict clean;
1: a verdict failed (said in ``FAILED:`` lines and in the JSON's ``failures``); 2: no answer.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.gpu import capacity_plan as cp
from benchmarks.gpu.capacity_io import GpuSampler, Load, Ready, Server, batches, gauges, read_metrics, run_clients

#: the servers' settings besides the defaults: the load's scale, forced lengths (random weights),
#: one target a stream (the load asks for one: the warm-up covers 2 decode rows a segment, not 5)
SERVER_ENV = {
    "TRANSLATE_SVC_MODEL__FORCED_TEXT_TOKENS_PER_S": "4",
    "TRANSLATE_SVC_MODEL__FORCED_UNITS_PER_S": "50",
    "TRANSLATE_SVC_LIMITS__MAX_STREAMS": "4096",
    "TRANSLATE_SVC_LIMITS__MAX_TARGET_LANGUAGES": "1",
    "TRANSLATE_SVC_ENGINE__MAX_QUEUED_SEGMENTS": "8192",
    "TRANSLATE_SVC_SERVER__METRICS_PORT": "0",
}
GRAPHS_OFF = {"TRANSLATE_SVC_MODEL__STAGE_GRAPHS": "false", "TRANSLATE_SVC_MODEL__DECODE_GRAPHS": "false"}


class Call:
    """The call's state and its records (one thread)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.work = self.out / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        (self.out / "capacity.log").write_text("")
        self.plan = cp.Plan(budget_s=args.budget).scaled(args.scale)
        self.t0 = time.monotonic()
        self.load = Load(args.py, args.files, args.stream_s, args.stagger_s, args.slo_ms, args.streams_per_client)
        self.gpu = GpuSampler(self.work / "gpu_samples.csv")
        self.servers: list[Server] = []
        self.doc: dict[str, Any] = {
            "schema": "translate_svc.benchmarks.gpu.capacity/1",
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": sys.argv,
            "options": vars(args),
            "plan": self.plan.table().splitlines(),
            "server_env": SERVER_ENV,
            "phases": [],
            "servers": {},
            "steps": [],
            "failures": [],
            "answer": {},
        }

    def now(self) -> float:
        return time.monotonic() - self.t0

    def log(self, line: str) -> None:
        text = f"[{self.now():5.0f} s] {line}"
        print(text, flush=True)
        with (self.out / "capacity.log").open("a") as f:
            f.write(text + "\n")

    def fail(self, line: str) -> None:
        self.doc["failures"].append(line)
        self.log(f"FAILED: {line}")

    def phase(self, name: str) -> tuple[float, dict[str, Any]]:
        """The phase's deadline (monotonic) and its record."""
        start = self.now()
        end = self.plan.deadline(name, start)
        rec = {"phase": name, "started_s": round(start, 1), "deadline_s": round(end, 1)}
        self.doc["phases"].append(rec)
        self.log(f"{name}: until {end:.0f} s")
        return self.t0 + end, rec

    def close(self, rec: dict[str, Any], status: str) -> None:
        rec["ended_s"], rec["status"] = round(self.now(), 1), status
        self.save()

    def save(self) -> None:
        tmp = self.out / "capacity.json.tmp"
        tmp.write_text(json.dumps(self.doc, indent=2, default=str) + "\n")
        tmp.replace(self.out / "capacity.json")
        with tarfile.open(self.out / "results.tgz", "w:gz") as tar:
            tar.add(self.work, arcname="work")


def metrics(call: Call, ready: Ready, when: str) -> dict[tuple[str, str], float]:
    """The node's /metrics; a failed read is a failure of the call (nothing verifies that step)."""
    try:
        return read_metrics(ready.metrics_port)
    except OSError as e:
        call.fail(f"{when}: /metrics unreadable ({e})")
        return {}


def build_checkpoint(call: Call) -> bool:
    a = call.args
    deadline, rec = call.phase("checkpoint")
    if (Path(a.model) / "config.json").exists():
        call.close(rec, "exists")
        return True
    code = (
        "import sys, torch; torch.set_default_device(sys.argv[2])\n"
        "from translate_svc.model.testing.checkpoint import build_test_checkpoint\n"
        "build_test_checkpoint(sys.argv[1], full_size=True)"
    )
    with (call.work / "build.txt").open("wb") as log:
        try:
            rc = subprocess.run(
                [a.py, "-c", code, a.model, a.device], stdout=log, stderr=subprocess.STDOUT,
                timeout=max(1.0, deadline - time.monotonic()), check=False,
            ).returncode  # fmt: skip
        except subprocess.TimeoutExpired:
            rc = -1
    ok = rc == 0 and (Path(a.model) / "config.json").exists()
    if not ok:
        call.fail(f"the checkpoint was not built within {rec['deadline_s'] - rec['started_s']:.0f} s (exit {rc})")
    call.close(rec, "built" if ok else "failed")
    return ok


def serve(call: Call, label: str, extra: dict[str, str], warmup_max_s: float) -> tuple[Server | None, Ready | None]:
    """The server of ``label`` up to its ready file within its phase; its warm-up verified."""
    a = call.args
    deadline, rec = call.phase(f"serve_{label}")
    env = {
        **os.environ, **SERVER_ENV, **extra,
        "TRANSLATE_SVC_MODEL__WARMUP": a.warmup, "TRANSLATE_SVC_MODEL__WARMUP_MAX_S": f"{warmup_max_s:g}",
    }  # fmt: skip
    argv = [
        a.py, "-m", "translate_svc.cli", "serve", "--model", a.model, "--device", a.device, "--dtype", a.dtype,
        "--port", "0", "--max-batch-size", str(a.max_batch), "--workers", str(a.workers),
        "--ready-file", str(call.work / f"ready_{label}.json"), "--log-level", "WARNING",
    ]  # fmt: skip
    server = Server(argv, env, call.work / f"serve_{label}.txt", call.work / f"ready_{label}.json")
    call.servers.append(server)
    ready = server.wait_ready(deadline)
    if ready is None:
        call.fail(
            f"{label}: serve was not ready within its phase ({call.now() - rec['started_s']:.0f} s):\n{server.tail()}"
        )
        server.stop(time.monotonic() + 10)
        call.close(rec, "not ready")
        return None, None
    samples = metrics(call, ready, f"{label}, at ready")
    warm = gauges(samples, cp.WARMUP_GAUGES)
    shapes = cp.shape_counts(samples)
    graphs = label == "graphs"
    call.doc["servers"][label] = {
        "ready_after_s": round(ready.ready_after_s, 1),
        "warmup_max_s": warmup_max_s,
        "warmup": warm,
        "shapes_at_ready": shapes,
        "batches_at_ready": batches(samples),
    }
    call.log(
        f"{label}: ready in {ready.ready_after_s:.0f} s; warm-up {warm.get('translate_svc_warmup_batches', '?')} of "
        f"{warm.get('translate_svc_warmup_planned_batches', '?')} batches, "
        f"{warm.get('translate_svc_warmup_stage_calls', '?')} stage calls, "
        f"{warm.get('translate_svc_warmup_seconds', float('nan')):.1f} s of its {warmup_max_s:g} s"
    )
    for problem in cp.warmup_verdict(warm) + cp.shape_verdict({}, shapes, graphs=graphs):
        call.fail(f"{label}, at ready: {problem}")
    call.close(rec, "ready")
    return server, ready


def step(
    call: Call, label: str, ready: Ready, streams: int, deadline: float, *, stream_s: float | None = None, graphs: bool
) -> cp.StepResult | None:
    """One ramp step (None: no time left for it); what its shape counters did during it, checked."""
    if time.monotonic() + call.load.expect_s(streams, stream_s) > deadline:
        call.log(
            f"{label}: no time left for a step of {streams} streams ({call.load.expect_s(streams, stream_s):.0f} s)"
        )
        return None
    t0 = time.monotonic()
    before = metrics(call, ready, f"{label}, before {streams} streams")
    docs = run_clients(
        call.load, ready.port, streams, call.work / f"ramp_{label}_{streams}",
        min(deadline, t0 + call.load.most_s(streams, stream_s)), server_pid=ready.engine_pid, stream_s=stream_s,
    )  # fmt: skip
    t1 = time.monotonic()
    after = metrics(call, ready, f"{label}, after {streams} streams")
    result = cp.merge_steps(docs, streams, slo_ms=call.args.slo_ms, client_lag_ms=call.args.client_lag_ms)
    cold = cp.shape_verdict(cp.shape_counts(before), cp.shape_counts(after), graphs=graphs)
    (b0, s0), (b1, s1) = batches(before), batches(after)
    rec = {
        "server": label,
        "wall_s": round(t1 - t0, 1),
        **asdict(result),
        "gpu": call.gpu.window(t0, t1),
        "engine_batches": b1 - b0,
        "engine_mean_batch": round((s1 - s0) / (b1 - b0), 2) if b1 > b0 else None,
        "shapes": cp.shape_counts(after),
        "cold": cold,
    }
    call.doc["steps"].append(rec)
    p50 = "-" if result.p50_ms is None else f"{result.p50_ms:.0f}"
    p95 = "-" if result.p95_ms is None else f"{result.p95_ms:.0f}"
    gpu = rec["gpu"]
    call.log(
        f"{label} {streams} streams: {'SUSTAINED' if result.sustained else 'not sustained'}; p50 {p50} p95 {p95} ms, "
        f"{result.segments} segments, failed {result.streams_failed}/{result.failed_segments}, behind "
        f"{result.streams_behind}, client lag {result.max_send_lag_ms:.0f} ms"
        f"{' (CLIENT-BOUND)' if result.client_bound else ''}, GPU {gpu.get('util_mean', '-')} % "
        f"(max {gpu.get('util_max', '-')}), mean batch {rec['engine_mean_batch']}"
    )
    for problem in cold:
        call.fail(f"{label}, {streams} streams: {problem}")
    call.save()
    return result


def ramp(call: Call, label: str, ready: Ready, start: int, graphs: bool) -> int:
    """The ramp's steps within the phase ``ramp_<label>``; returns the most streams sustained."""
    deadline, rec = call.phase(f"ramp_{label}")
    tried: dict[int, bool] = {}
    while (n := cp.next_streams(tried, start=start, most=call.args.ramp_max)) is not None:
        result = step(call, label, ready, n, deadline, graphs=graphs)
        if result is None:
            break
        tried[n] = result.sustained
    good = max((n for n, ok in tried.items() if ok), default=0)
    bad = min((n for n, ok in tried.items() if not ok and n > good), default=None)
    call.doc["answer"][label] = {"sustained": good, "first_not_sustained": bad, "steps": sorted(tried)}
    call.log(f"{label}: most streams sustained {good}, first not sustained {bad}")
    call.close(rec, "done")
    return good


def stop(call: Call, label: str, server: Server) -> None:
    deadline, rec = call.phase(f"stop_{label}")
    rc = server.stop(deadline)
    call.close(rec, f"exit {rc}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--files", required=True, help="the clips every stream plays (comma list)")
    p.add_argument("--py", default=sys.executable, help="the Python the server and the clients run on")
    p.add_argument("--budget", type=float, default=550.0, help="the call's seconds for this script")
    p.add_argument("--scale", type=float, default=1.0, help="every phase's budget times this (a CPU dry run)")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--warmup", default="auto")
    p.add_argument("--warmup-max-s", type=float, default=130.0, help="the graphs server's warm-up budget")
    p.add_argument("--warmup-max-s-eager", type=float, default=25.0, help="the graphs-off server's")
    p.add_argument("--slo-ms", type=float, default=1000.0)
    p.add_argument("--stream-s", type=float, default=15.0)
    p.add_argument("--stagger-s", type=float, default=4.0)
    p.add_argument("--one-s", type=float, default=30.0, help="the one stream's audio")
    p.add_argument("--ramp-start", type=int, default=128)
    p.add_argument("--ramp-max", type=int, default=2048)
    p.add_argument("--streams-per-client", type=int, default=150)
    p.add_argument("--client-lag-ms", type=float, default=500.0, help="a client's send lag that voids a step")
    p.add_argument("--skip-eager", action="store_true")
    args = p.parse_args(argv)
    call = Call(args)
    call.log("the plan:\n" + call.plan.table())
    try:
        if not build_checkpoint(call):
            return 2
        good = 0
        server, ready = serve(call, "graphs", {}, args.warmup_max_s)
        if server is not None and ready is not None:
            deadline, rec = call.phase("one_stream")
            one = step(call, "graphs", ready, 1, deadline, stream_s=args.one_s, graphs=True)
            call.doc["answer"]["one_stream"] = None if one is None else {"p50_ms": one.p50_ms, "p95_ms": one.p95_ms}
            call.close(rec, "done")
            good = ramp(call, "graphs", ready, args.ramp_start, graphs=True)
            stop(call, "graphs", server)
        if not args.skip_eager:
            server, ready = serve(call, "eager", GRAPHS_OFF, args.warmup_max_s_eager)
            if server is not None and ready is not None:
                ramp(call, "eager", ready, good or args.ramp_start, graphs=False)
                stop(call, "eager", server)
    finally:
        for server in call.servers:  # one left running by an error above
            server.stop(time.monotonic() + 10)
        call.doc["gpu"] = call.gpu.window(call.t0, time.monotonic())
        call.gpu.close()
        call.doc["ended_s"] = round(call.now(), 1)
        call.save()
    answer = call.doc["answer"].get("graphs")
    call.log(f"answer: {json.dumps(call.doc['answer'])}; {len(call.doc['failures'])} failures")
    if answer is None:
        return 2
    return 1 if call.doc["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
