"""Front-end capacity: how many real-time streams one server core carries (streams per core).

Run from the repository root::

    python -m benchmarks.tools.frontend --ramp 25,50,100,150,200 --duration-s 30 --mode full --json out/frontend.json

For each step of ``--ramp`` (a number of concurrent streams) it starts a fresh ``translate-svc serve``
(``--model``, 127.0.0.1, port 0) pinned to one core (``taskset -c 0``), then runs
``python -m benchmarks.tools.loadgen --target ... --server-pid ...`` as a separate process pinned to
another core (``taskset -c 1``): N real-time streams of ``--duration-s`` seconds each (``--files``,
each further copy rotated by ``--shift-s`` so streams differ), starts spread over ``--stagger-s``,
20 ms messages as LINEAR16 or Opus, live captions on (``--interim-ms``) or off. The server is always
stopped after its step (SIGTERM, then SIGKILL), whatever happened. ``--workers N`` (N >= 2) runs the
server as a node (supervisor, engine process, N front-end workers, all under the same ``taskset``);
its CPU is the sum over the process tree.

Two modes:

- ``full``: the server's own segmentation; the (tiny, random-weight) test model translates every
  segment (text only unless ``--speech``): the whole service on one core.
- ``frontend``: the same traffic, but every stream sets ``vad.threshold`` 0.99 and
  ``vad.min_speech_ms`` 10 000, so (almost) nothing is cut into segments: the cost of the front end
  (gRPC, decoding, resampling, VAD, segmenter) without the model. The report says how many
  segments were still cut.

Per step it records the server's cores used (CPU s / wall s from /proc, over the window when all
streams were live), its CPU µs per audio message, p95 segment latency, the client's worst send lag
and its own cores, segments expected (cut by the server) / received / lost, and failures by status
(a stream the server refuses, RESOURCE_EXHAUSTED, is counted, not fatal). A step **kept up** when
the server used < ``--max-cores`` cores, the step is "streams sustained" (``benchmarks/tools/report.py``:
p95 <= ``--slo-ms``, no stream behind or failed, no segment failed), no segment was lost, and the
client was not itself saturated (else the step measured the client). **Streams per core** = the
largest step that kept up; the report says what failed at the next one. The ramp stops after the
first step that did not keep up (``--run-all`` runs every step).

Output: a table, and ``--json`` (every step, its reasons, the paths of each step's loadgen JSON and
server log). Only one such ramp should run on the machine at a time: other load shows up as
"other processes' CPU share" in each step's loadgen JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from benchmarks.tools import report
from benchmarks.tools.loadgen.options import DEFAULT_FILES
from benchmarks.tools.machine import cpu_model, git_state
from tests.support.paths import REPO, TEST_MODEL
from translate_svc.cli import ready_file as ready
from translate_svc.client_cli.load.clips import DEFAULT_SHIFT_S

logger = logging.getLogger("benchmarks.tools.frontend")

MODES = ("full", "frontend")
FRONTEND_VAD_THRESHOLD = 0.99
#: ... and keeps only speech that long (the server's maximum), so almost nothing reaches the model
FRONTEND_MIN_SPEECH_MS = 10_000
CHUNK_MS = 20
#: a client using this many cores (of its one) cannot be trusted to have sent on time
CLIENT_SATURATED_CORES = 0.9
SERVE = REPO / ".venv" / "bin" / "translate-svc"

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)
console = Console(width=None if sys.stdout.isatty() else 140)


# -- the server -------------------------------------------------------------------------------


class Server:
    """``translate-svc serve`` in a child process (pinned with taskset); ``stop()`` always ends it.
    ``cmd`` ends with serve's flags: ``--ready-file`` (beside the log) is added to them."""

    def __init__(self, cmd: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.ready_file = log_path.with_suffix(".ready.json")
        self.ready_file.unlink(missing_ok=True)
        self._log = log_path.open("wb")
        # taskset execs the server: the child's pid is the server's
        self.proc = subprocess.Popen(
            [*cmd, "--ready-file", str(self.ready_file)], env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO
        )
        self.port: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout_s: float) -> int:
        """The server's port, once it has written its ready file (never a log line: pitfall 20)."""
        try:
            self.port = ready.wait(self.ready_file, self.proc, timeout_s).port
        except ready.NotReady as e:
            raise RuntimeError(f"{e}:\n{self.log_tail()}") from None
        return self.port

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM (the server drains), then SIGKILL after ``grace_s``; returns the exit code."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(grace_s)
                except subprocess.TimeoutExpired:
                    logger.warning("server %d did not stop in %g s: killing it", self.pid, grace_s)
                    self.proc.kill()
                    self.proc.wait(10)
        finally:
            self._log.close()
        return self.proc.returncode


def pinned(cpus: str | None, cmd: list[str]) -> list[str]:
    return cmd if cpus is None else ["taskset", "-c", cpus, *cmd]


# -- one step ---------------------------------------------------------------------------------


def loadgen_cmd(args: dict[str, Any], n: int, port: int, pid: int, out: Path) -> list[str]:
    cmd = [
        sys.executable, "-m", "benchmarks.tools.loadgen",
        "--target", f"127.0.0.1:{port}", "--server-pid", str(pid),
        "--streams", str(n), "--stream-s", f"{args['duration_s']:g}", "--stagger-s", f"{args['stagger_s']:g}",
        "--files", args["files"], "--shift-s", f"{args['shift_s']:g}",
        "--encoding", args["encoding"], "--chunk-ms", str(CHUNK_MS), "--interim-ms", str(args["interim_ms"]),
        "--to", args["to"], "--speech" if args["speech"] else "--no-speech",
        "--slo-ms", f"{args['slo_ms']:g}", "--no-saturation",
        "--json", str(out), "--log-level", "WARNING",
    ]  # fmt: skip
    if args["mode"] == "frontend":
        cmd += ["--vad-threshold", f"{FRONTEND_VAD_THRESHOLD:g}", "--vad-min-speech-ms", str(FRONTEND_MIN_SPEECH_MS)]
    return cmd


def step_record(n: int, doc: dict[str, Any], *, max_cores: float, slo_ms: float) -> dict[str, Any]:
    """One ramp step's figures from the loadgen JSON, with the kept-up verdict and its reasons."""
    rt = doc["results"]["target"]["realtime"]
    cpu = rt["cpu"]
    server = cpu["server"] or {}
    steady, phase = server.get("steady") or {}, server.get("phase") or {}
    client = cpu["client"]
    client_cores = client["steady"]["cores"] if client["steady"]["cores"] is not None else client["phase"]["cores"]
    cores = steady.get("cores") if steady.get("cores") is not None else phase.get("cores")
    per_msg = (
        steady.get("cpu_us_per_message")
        if steady.get("cpu_us_per_message") is not None
        else phase.get("cpu_us_per_message")
    )
    captions = rt["captions"]
    rec: dict[str, Any] = {
        "streams": n,
        "server_cores": cores,
        "server_cores_phase": phase.get("cores"),
        "server_cores_steady": steady.get("cores"),
        "steady_window_s": cpu["steady_window_s"],
        "cpu_us_per_message": per_msg,
        "server_threads_s": cpu["server_threads_s"],
        "audio_messages": rt["audio_messages"],
        "p50_latency_ms": rt["latency_ms"]["p50"],
        "p95_latency_ms": rt["latency_ms"]["p95"],
        "vad_wait_p95_ms": rt["vad_wait_ms"]["p95"],
        "max_send_lag_ms": rt["max_send_lag_ms"],
        "client_cores": client_cores,
        "segments_expected": rt["segments_expected"],
        "segments_received": rt["segments_received"],
        "segments_lost": rt["segments_lost"],
        "failed_segments": rt["failed_segments"],
        "segment_failures": rt["segment_failures"],
        "streams_failed": rt["streams_failed"],
        "stream_failures": rt["stream_failures"],
        "streams_behind": rt["streams_behind"],
        "errors": rt["errors"],
        "slo_ms": slo_ms,
        "interims": captions["interims"],
        "segments_with_caption": captions["segments_with_caption"],
        "first_caption_latency_ms": {k: captions["first_caption_latency_ms"][k] for k in ("p50", "p95", "max")},
        "interims_after_final": captions["interims_after_final"],
        "foreign_cpu_share": rt["foreign_cpu"]["share"],
    }
    ok, why = report.kept_up(rec, max_cores=max_cores)
    if client_cores is not None and client_cores >= CLIENT_SATURATED_CORES:
        ok = False
        why.append(f"the client used {client_cores:.2f} cores: it, not the server, was the limit (invalid step)")
    rec["kept_up"], rec["reasons"] = ok, why
    return rec


def run_step(n: int, args: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """A fresh pinned server, one loadgen run against it, the server stopped: the step's record."""
    env = {
        **os.environ,
        "TRANSLATE_SVC_LIMITS__MAX_STREAMS": str(max(1000, 2 * n)),
        "TRANSLATE_SVC_MODEL__CPU_THREADS": "1",
        "TRANSLATE_SVC_SERVER__GRACE_S": "2",
        **args["server_env"],
    }
    serve = [str(SERVE), "serve", "--model", str(args["model"]), "--host", "127.0.0.1", "--port", "0"]
    serve += ["--workers", str(args["workers"])]
    if args["server_log_level"]:
        serve += ["--log-level", args["server_log_level"]]
    log_path = out_dir / f"server_{n}.log"
    step_json = out_dir / f"loadgen_{n}.json"
    step_json.unlink(missing_ok=True)
    rec: dict[str, Any] = {"streams": n, "loadgen_json": str(step_json), "server_log": str(log_path)}
    server = Server(pinned(args["server_cpus"], serve), env, log_path)
    try:
        port = server.wait_ready(args["start_timeout_s"])
        rec["server_pid"] = server.pid
        cmd = pinned(args["client_cpus"], loadgen_cmd(args, n, port, server.pid, step_json))
        rec["loadgen_command"] = shlex.join(cmd)
        logger.info("step %d streams: server pid %d on port %d; %s", n, server.pid, port, rec["loadgen_command"])
        timeout = 3 * (args["duration_s"] + args["stagger_s"]) + 120
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
        (out_dir / f"loadgen_{n}.out").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0 or not step_json.is_file():
            raise RuntimeError(f"loadgen exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-3000:]}")
        if server.proc.poll() is not None:
            raise RuntimeError(f"the server died during the step ({server.proc.returncode}):\n{server.log_tail()}")
        doc = json.loads(step_json.read_text())
        rec.update(step_record(n, doc, max_cores=args["max_cores"], slo_ms=args["slo_ms"]))
    except (RuntimeError, subprocess.TimeoutExpired, OSError, KeyError, ValueError) as e:
        rec.update({"kept_up": False, "reasons": [f"step failed: {str(e).splitlines()[0]}"], "error": str(e)})
        logger.error("step %d streams failed: %s", n, e)
    finally:
        rec["server_exit"] = server.stop()
    return rec


def add_marginal_cost(steps: list[dict[str, Any]]) -> None:
    """``marginal_cpu_us_per_message``: extra server CPU per extra message since the previous step.

    ``cpu_us_per_message`` divides *all* server CPU (idle polling, timers, the engine) by the
    messages, so it falls as load rises; the marginal figure is the cost of one more message.
    """
    prev: tuple[float, float] | None = None
    for s in steps:
        cores, per_msg = s.get("server_cores"), s.get("cpu_us_per_message")
        if cores is None or not per_msg:
            s["marginal_cpu_us_per_message"] = None
            prev = None
            continue
        rate = cores * 1e6 / per_msg  # messages per second in the window
        s["marginal_cpu_us_per_message"] = (
            (cores - prev[0]) * 1e6 / (rate - prev[1]) if prev is not None and rate > prev[1] else None
        )
        prev = (cores, rate)


# -- the report -------------------------------------------------------------------------------


def _fmt(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _counts(c: dict[str, int] | None) -> str:
    return ", ".join(f"{k} x{v}" for k, v in (c or {}).items())


def render(doc: dict[str, Any]) -> None:
    cfg, steps, res = doc["config"], doc["steps"], doc["result"]
    captions = cfg["interim_ms"] > 0
    table = Table(
        title=f"front-end ramp: mode {cfg['mode']}, {cfg['encoding']}, {CHUNK_MS} ms messages, "
        f"captions {'every ' + str(cfg['interim_ms']) + ' ms' if captions else 'off'}, "
        f"server on CPU {cfg['server_cpus']}, client on CPU {cfg['client_cpus']}"
    )
    for col in (
        "streams",
        "server cores",
        "CPU µs/msg (marginal)",
        "p95 latency ms",
        "max send lag ms",
        "client cores",
    ):
        table.add_column(col, justify="right")
    table.add_column("segments exp/recv/lost", justify="right")
    if captions:
        table.add_column("captions: segs / 1st p95 ms", justify="right")
    table.add_column("failures")
    table.add_column("kept up")
    for s in steps:
        failures = "; ".join(
            x for x in (_counts(s.get("stream_failures")), _counts(s.get("segment_failures"))) if x
        ) or ("behind x" + str(s["streams_behind"]) if s.get("streams_behind") else "none")
        cells = [
            str(s["streams"]),
            _fmt(s.get("server_cores"), 2),
            f"{_fmt(s.get('cpu_us_per_message'))} ({_fmt(s.get('marginal_cpu_us_per_message'))})",
            _fmt(s.get("p95_latency_ms")),
            _fmt(s.get("max_send_lag_ms")),
            _fmt(s.get("client_cores"), 2),
            f"{s.get('segments_expected', '-')}/{s.get('segments_received', '-')}/{s.get('segments_lost', '-')}",
        ]
        if captions:
            first = (s.get("first_caption_latency_ms") or {}).get("p95")
            cells.append(f"{s.get('segments_with_caption', '-')} / {_fmt(first)}")
        cells.append(failures if "error" not in s else "[red]step failed[/]")
        cells.append("[green]yes[/]" if s.get("kept_up") else "[red]no[/]: " + "; ".join(s.get("reasons", [])))
        table.add_row(*cells)
    console.print(table)
    if cfg["mode"] == "frontend":
        cut = sum(s.get("segments_expected") or 0 for s in steps)
        console.print(
            f"mode frontend: VAD threshold {FRONTEND_VAD_THRESHOLD} on every stream; the server still cut "
            f"{cut} segments over all steps (speech silero scores above {FRONTEND_VAD_THRESHOLD}), each translated."
        )
    spc = res["streams_per_core"]
    if spc is None:
        console.print("[red]streams per core: no step kept up[/] (try a smaller first step)")
    else:
        console.print(
            f"[bold]streams per core: {spc}[/] (the largest step the server kept up with on 1 core"
            + (
                f"; linear estimate at {cfg['max_cores']:g} cores: {res['estimated_streams_at_max_cores']:.0f})"
                if res.get("estimated_streams_at_max_cores")
                else ")"
            )
        )
    if res["first_failure"] is not None:
        f = res["first_failure"]
        console.print(f"beyond it, at {f['streams']} streams: " + "; ".join(f["reasons"]))
    elif res["all_kept_up"]:
        console.print("[yellow]every step kept up: the capacity is above the ramp; extend it[/]")


# -- CLI ----------------------------------------------------------------------------------------


@app.command()
def main(
    ramp: Annotated[str, typer.Option(help="stream counts, comma list, ascending")] = "25,50,100,150,200",
    duration_s: Annotated[float, typer.Option(min=1, help="seconds of real-time audio per stream")] = 30.0,
    stagger_s: Annotated[float, typer.Option(min=0, help="stream starts spread over this many seconds")] = 5.0,
    mode: Annotated[str, typer.Option(help="full (segments translated) or frontend (VAD threshold 0.99)")] = "full",
    encoding: Annotated[str, typer.Option(help="linear16 or opus")] = "linear16",
    interim_ms: Annotated[int, typer.Option(min=0, help="live captions every this many ms (0: off)")] = 0,
    files: Annotated[str, typer.Option(help="comma list; names in ../shared/audio or paths")] = DEFAULT_FILES,
    shift_s: Annotated[float, typer.Option(min=0, help="each further copy of a file starts this much later")] = (
        DEFAULT_SHIFT_S
    ),
    to: Annotated[str, typer.Option(help="target languages, comma list")] = "spa",
    speech: Annotated[bool, typer.Option("--speech/--no-speech", help="ask for translated speech")] = False,
    model: Annotated[Path, typer.Option(help="model directory for the server")] = TEST_MODEL,
    server_cpus: Annotated[str, typer.Option(help="taskset CPU list for the server")] = "0",
    workers: Annotated[
        str, typer.Option(help="the server's --workers (2+: engine process and workers, their CPU summed)")
    ] = "1",
    client_cpus: Annotated[str, typer.Option(help="taskset CPU list for the load generator")] = "1",
    pin: Annotated[bool, typer.Option("--pin/--no-pin", help="pin server and client with taskset")] = True,
    max_cores: Annotated[float, typer.Option(help="a step keeps up only below this many server cores")] = (
        report.DEFAULT_MAX_CORES
    ),
    slo_ms: Annotated[float, typer.Option(help="p95 latency bound ('streams sustained')")] = report.DEFAULT_SLO_MS,
    server_env: Annotated[
        list[str] | None,
        typer.Option(help="extra KEY=VALUE for the server (e.g. TRANSLATE_SVC_VAD__MIN_SILENCE_MS=300)"),
    ] = None,
    server_log_level: Annotated[str | None, typer.Option(help="the server's --log-level (default: its own)")] = None,
    start_timeout_s: Annotated[float, typer.Option(help="longest wait for the server to serve")] = 300.0,
    run_all: Annotated[bool, typer.Option("--run-all", help="run every step, not stop after the first failure")] = (
        False
    ),
    out_dir: Annotated[Path, typer.Option(help="each step's loadgen JSON and server log")] = Path("out/frontend"),
    json_path: Annotated[Path | None, typer.Option("--json", help="write the ramp's report here")] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "INFO",
) -> None:
    """Run the ramp; print a table; optionally write JSON."""
    from translate_svc import logging_setup

    logging_setup.configure(log_level.upper())
    steps_n = sorted({int(x) for x in ramp.split(",") if x.strip()})
    if not steps_n or steps_n[0] < 1:
        raise typer.BadParameter("give positive stream counts, e.g. 25,50,100", param_hint="--ramp")
    if mode not in MODES:
        raise typer.BadParameter(f"use {' or '.join(MODES)}", param_hint="--mode")
    if encoding not in ("linear16", "opus"):
        raise typer.BadParameter("use linear16 or opus", param_hint="--encoding")
    if not SERVE.is_file():
        raise typer.BadParameter(f"{SERVE} is missing: run `make install`", param_hint="--model")
    if not (model / "config.json").is_file():
        raise typer.BadParameter(f"no model in {model} (make-test-model builds the test one)", param_hint="--model")
    extra_env = {}
    for kv in server_env or []:
        key, sep, value = kv.partition("=")
        if not sep or not key.startswith("TRANSLATE_SVC_"):
            raise typer.BadParameter(f"{kv!r}: use TRANSLATE_SVC_...=VALUE", param_hint="--server-env")
        extra_env[key] = value
    if pin:
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        if shutil.which("taskset") is None or len(cpus) < 2:
            raise typer.BadParameter(
                "pinning needs taskset and 2 CPUs (server and client each on its own); or pass --no-pin",
                param_hint="--pin",
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    args: dict[str, Any] = {
        "ramp": steps_n,
        "duration_s": duration_s,
        "stagger_s": stagger_s,
        "mode": mode,
        "encoding": encoding,
        "interim_ms": interim_ms,
        "files": files,
        "shift_s": shift_s,
        "to": to,
        "speech": speech,
        "model": str(model),
        "server_cpus": server_cpus if pin else None,
        "workers": workers,
        "client_cpus": client_cpus if pin else None,
        "max_cores": max_cores,
        "slo_ms": slo_ms,
        "server_env": extra_env,
        "server_log_level": server_log_level,
        "start_timeout_s": start_timeout_s,
        "chunk_ms": CHUNK_MS,
        "vad_threshold": FRONTEND_VAD_THRESHOLD if mode == "frontend" else None,
    }
    t0 = time.perf_counter()
    steps: list[dict[str, Any]] = []
    for n in steps_n:
        rec = run_step(n, args, out_dir)
        steps.append(rec)
        verdict = "kept up" if rec["kept_up"] else "did NOT keep up: " + "; ".join(rec["reasons"])
        logger.info(
            "step %d streams: server %s cores, %s µs/msg, p95 %s ms: %s",
            n, _fmt(rec.get("server_cores"), 2), _fmt(rec.get("cpu_us_per_message")),
            _fmt(rec.get("p95_latency_ms")), verdict,
        )  # fmt: skip
        if not rec["kept_up"] and not run_all:
            break
    add_marginal_cost(steps)
    result = report.streams_per_core(steps)
    best = next((s for s in steps if s["streams"] == result["streams_per_core"]), None)
    cores = best.get("server_cores") if best else None
    result["estimated_streams_at_max_cores"] = best["streams"] * max_cores / cores if best and cores else None
    doc = {
        "schema": "translate_svc.benchmarks.frontend/1",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, "-m", "benchmarks.tools.frontend", *sys.argv[1:]]),
        "git": git_state(),
        "machine": {"cpu_count": os.cpu_count(), "cpu_model": cpu_model()},
        "config": args,
        "definitions": {
            **{k: report.DEFINITIONS[k] for k in ("server_cores", "cpu_us_per_message", "segments_expected")},
            "kept_up": f"server < max_cores cores (steady window), no segment lost, streams sustained "
            f"(p95 <= slo_ms, none behind or failed, no failed segment), client below "
            f"{CLIENT_SATURATED_CORES} cores",
            "streams_per_core": "the largest step that kept up (the server has one core)",
            "marginal_cpu_us_per_message": "(server cores - previous step's) / (messages per s - previous step's)",
            "estimated_streams_at_max_cores": "streams_per_core x max_cores / its server cores: a linear estimate",
        },
        "steps": steps,
        "result": result,
        "wall_s": time.perf_counter() - t0,
    }
    render(doc)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(doc, indent=2) + "\n")
        logger.info("wrote %s", json_path)


if __name__ == "__main__":
    app()
