"""Soak: a steady mixed load at real time for a given time, and what the server's memory does.

Run from the repository root::

    # a served instance of its own (a separate process), 30 minutes, then 60 s idle
    python -m benchmarks.tools.soak --minutes 30
    # a quick look
    python -m benchmarks.tools.soak --minutes 3
    # before/after: the same load against another checkout's server (main's), then this one's
    python -m benchmarks.tools.soak --minutes 30 --server-repo ../main --json benchmarks/results/soak-before.json
    python -m benchmarks.tools.soak --minutes 30 --json benchmarks/results/soak-after.json
    # what grows: serve under the memory probe (tracemalloc, gc counts, mallinfo2, cycles' contents)
    python -m benchmarks.tools.soak --minutes 5 --wrapper benchmarks.tools.memprobe --wrapper-arg=--frames=0 \
        --probe-out out/probe
    # an instance already running (its pid for /proc; its log, if you want it scanned)
    python -m benchmarks.tools.soak --minutes 30 --target 127.0.0.1:50051 --http-target 127.0.0.1:8080 --server-pid 4242

Without ``--target`` it starts ``translate-svc serve --model model_cache/test-model --test-translator
stable --port 0 --http-port 0 --ready-file ... --log-format json`` (``--serve-arg`` adds to it,
``--server-env K=V`` sets its environment, ``--wrapper benchmarks.tools.memprobe`` runs it under the
memory probe) and waits for its ready file. The load (``benchmarks/tools/soak_load.py``, defaults as
issue 53's): 8 gRPC segment streams (3 with live captions), 4 simultaneous streams, 4 OpenAI-door
WebSocket sessions (each reopened when it ends), a ``Translate`` every 10 s, a ``TranslateText``
every 5 s, and every 2 minutes one client that cancels mid-stream and one that stops reading for
30 s and then cancels. Streams play ``../shared/audio`` (jfk.flac, silero_test.wav; copies rotated
so that streams differ).

Every ``--sample-s`` (10 s) it reads the server's /proc: RSS (VmRSS, and its RssAnon), the brk heap's
RSS (``[heap]`` in smaps), open fds, threads and CPU time. The report: those at marks and their
slopes (least squares, MB/min, over the last ``--slope-minutes`` of the load), RSS ``--after-s`` after
the load stopped; segment latency (the chunk with the end of a segment's audio handed to the client
library -> its final result) p50/p95/p99 early vs late, with the server's own timing of the slowest;
lost results (every id below each stream's ``segments_total``, every captioned or committed
segment's final); client errors; and the server log's ERROR lines, tracebacks and access-line codes.
A table on stdout, the whole in JSON (``--json``, default ``benchmarks/results/soak-<UTC time>.json``, git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.tools import report
from benchmarks.tools import soak_load as load
from benchmarks.tools.loadgen.clips import Clip, stream_clips
from benchmarks.tools.machine import git_state
from tests.support.paths import REPO, SHARED_AUDIO, TEST_MODEL
from tests.support.proc import free_port
from translate_svc.client_cli.load.clips import DEFAULT_SHIFT_S

MB = 1024 * 1024
console = Console(width=None if sys.stdout.isatty() else 140)


# -- the server ----------------------------------------------------------------------------------


@dataclass
class Served:
    grpc: str
    http: str | None
    pid: int | None
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    metrics_port: int | None = None


def start_server(opts: argparse.Namespace, workdir: Path) -> Served:
    """``translate-svc serve`` as a separate process, ready once its ready file is there."""
    from translate_svc.cli import ready_file as ready

    ready_path = workdir / "ready.json"
    metrics_port = free_port()
    env = {**os.environ, "TRANSLATE_SVC_SERVER__METRICS_PORT": str(metrics_port)}
    repo = opts.server_repo or REPO
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
    for kv in opts.server_env:
        key, _, value = kv.partition("=")
        env[key] = value
    serve = ["serve", "--model", str(opts.model), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"]
    serve += ["--test-translator", "stable", "--ready-file", str(ready_path), "--log-format", "json"]
    serve += opts.serve_arg
    if opts.wrapper:
        # run as a file of this checkout: --server-repo's checkout may not have it
        wrapper = REPO / (opts.wrapper.replace(".", "/") + ".py")
        probe = ["--out", str(opts.probe_out or workdir / "probe"), *opts.wrapper_arg]
        cmd = [sys.executable, str(wrapper), *probe, "--", *serve]
    else:
        cmd = [sys.executable, "-m", "translate_svc.cli", *serve]
    log = opts.server_log or workdir / "server.log"
    console.print(f"server: {' '.join(cmd)}  (log: {log})")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=repo)
    info = ready.wait(ready_path, proc, 300)
    return Served(f"127.0.0.1:{info.port}", f"127.0.0.1:{info.http_port}", proc.pid, proc, log, metrics_port)


def stop_server(served: Served) -> int | None:
    proc = served.proc
    if proc is None:
        return None
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(150)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


# -- /proc samples ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    t_s: float  # since the load started (negative: before)
    phase: str  # "load" or "after"
    rss_mb: float
    rss_anon_mb: float
    heap_mb: float | None  # the brk heap's RSS ([heap] in smaps)
    fds: int
    threads: int
    cpu_s: float


def read_sample(pid: int, t_s: float, phase: str) -> Sample | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None

    def kb(key: str) -> float:
        m = re.search(rf"^{key}:\s+(\d+) kB", status, re.M)
        return int(m.group(1)) / 1024 if m else 0.0

    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
    _, cpu = report.parse_proc_stat(stat, os.sysconf("SC_CLK_TCK"))
    return Sample(t_s, phase, kb("VmRSS"), kb("RssAnon"), heap_rss_mb(pid), fds, threads, cpu)


def heap_rss_mb(pid: int) -> float | None:
    """RSS of the ``[heap]`` mapping (glibc's brk arena), from /proc/PID/smaps."""
    try:
        text = Path(f"/proc/{pid}/smaps").read_text()
    except OSError:
        return None
    at = text.find("[heap]")
    if at < 0:
        return None
    m = re.search(r"^Rss:\s+(\d+) kB", text[at:], re.M)
    return int(m.group(1)) / 1024 if m else None


async def sampler(pid: int, rec: load.Recorder, every_s: float, phase: list[str], out: list[Sample]) -> None:
    while True:
        s = await asyncio.to_thread(read_sample, pid, time.perf_counter() - rec.t0, phase[0])
        if s is not None:
            out.append(s)
        await asyncio.sleep(every_s)


def slope_per_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 3:
        return None
    t = np.array([p[0] for p in points]) / 60.0
    v = np.array([p[1] for p in points])
    return float(np.polyfit(t, v, 1)[0])


def at_mark(samples: list[Sample], t_s: float) -> Sample | None:
    """The last load sample at or before ``t_s``."""
    before = [s for s in samples if s.phase == "load" and s.t_s <= t_s + 0.5]
    return before[-1] if before else None


# -- the server log ----------------------------------------------------------------------------------


def scan_log(path: Path | None, since_byte: int = 0) -> dict[str, Any] | None:
    """ERROR lines, tracebacks and the access lines' codes by method in the server's JSON log."""
    if path is None or not path.is_file():
        return None
    errors: list[str] = []
    warnings: Counter[str] = Counter()
    access: dict[str, Counter[str]] = {}
    tracebacks = 0
    with open(path, "rb") as f:
        f.seek(since_byte)
        for raw in f:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if not line.startswith("{"):
                tracebacks += line.startswith("Traceback")
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if "exc_info" in doc:
                tracebacks += 1
            level = doc.get("level")
            if level in ("ERROR", "CRITICAL"):
                errors.append(f"{doc.get('logger')}: {str(doc.get('message'))[:200]}")
            elif level == "WARNING":
                warnings[f"{doc.get('logger')}: {str(doc.get('message'))[:120]}"] += 1
            if doc.get("logger") == "translate_svc.access":
                access.setdefault(str(doc.get("method")), Counter())[str(doc.get("code"))] += 1
    return {
        "error_lines": len(errors),
        "errors_first": sorted(Counter(errors).items(), key=lambda kv: -kv[1])[:10],
        "tracebacks": tracebacks,
        "warnings": dict(warnings.most_common(10)),
        "access_codes": {m: dict(c) for m, c in sorted(access.items())},
    }


# -- the run --------------------------------------------------------------------------------------------


def load_clips(files: list[str]) -> list[load.Clip]:
    import soxr

    from translate_svc.client_cli.decode import load_pcm16k

    clips = []
    for name in files:
        path = Path(name) if Path(name).is_file() else SHARED_AUDIO / name
        pcm = load_pcm16k(path)
        f24 = soxr.resample(pcm.astype(np.float32) / 32768.0, 16000, 24000)
        pcm24 = np.clip(np.round(f24 * 32767), -32768, 32767).astype("<i2")
        clips.append(load.Clip(path.name, pcm, pcm24))
    return clips


def rotated(clips: list[load.Clip], n: int, shift_s: float) -> list[load.Clip]:
    """Lane i plays clip ``i % len(clips)``, its k-th copy rotated ``k * shift_s`` in (loadgen's
    ``stream_clips``; the 24 kHz copy rotated alike), so that lanes cut different segments."""
    out = []
    for i, lc in enumerate(stream_clips([Clip(c.name, c.pcm16k) for c in clips], n, shift_s)):
        c = clips[i % len(clips)]
        s24 = round((i // len(clips)) * shift_s * load.WS_RATE) % max(1, len(c.pcm24k))
        out.append(load.Clip(lc.name, lc.pcm, np.concatenate([c.pcm24k[s24:], c.pcm24k[:s24]])))
    return out


async def run(opts: argparse.Namespace, served: Served) -> dict[str, Any]:
    clips = await asyncio.to_thread(load_clips, opts.files)
    rec = load.Recorder()
    stop = asyncio.Event()
    ws_url = f"ws://{served.http}/v1/realtime/translations?model=soak" if served.http else None
    env = load.Env(served.grpc, ws_url, rec, stop)
    n_grpc, n_cap, n_sim, n_ws = opts.grpc_streams, opts.caption_streams, opts.simultaneous_streams, opts.ws_sessions
    lanes_clips = rotated(clips, n_grpc + n_sim + n_ws + 1, opts.shift_s)
    samples: list[Sample] = []
    phase = ["before"]
    rec.t0 = time.perf_counter()
    sampling = None
    if served.pid is not None:
        sampling = asyncio.create_task(sampler(served.pid, rec, opts.sample_s, phase, samples))
    await asyncio.sleep(min(opts.sample_s, 2.0) + 0.1)  # one sample of the idle server first
    phase[0] = "load"
    rec.t0 = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    k = 0
    for i in range(n_grpc):
        kind = "grpc_captions" if i < n_cap else "grpc"
        tasks.append(asyncio.create_task(load.grpc_lane(env, kind, i, lanes_clips[k])))
        k += 1
    for i in range(n_sim):
        tasks.append(asyncio.create_task(load.grpc_lane(env, "simultaneous", i, lanes_clips[k])))
        k += 1
    if ws_url is not None:
        for i in range(n_ws):
            tasks.append(asyncio.create_task(load.ws_lane(env, i, lanes_clips[k])))
            k += 1
    jfk = next((SHARED_AUDIO / f for f in opts.files if "jfk" in f), SHARED_AUDIO / "jfk.flac")
    if opts.translate_every_s > 0:
        tasks.append(asyncio.create_task(load.translate_lane(env, jfk, opts.translate_every_s)))
    if opts.text_every_s > 0:
        tasks.append(asyncio.create_task(load.text_lane(env, opts.text_every_s)))
    if opts.misbehave_every_s > 0:
        tasks.append(
            asyncio.create_task(
                load.misbehaving_lane(
                    env, lanes_clips[0], opts.misbehave_every_s, opts.cancel_after_s, opts.stop_reading_s
                )
            )
        )
    load_s = opts.minutes * 60
    with_progress = sys.stdout.isatty()
    while (left := load_s - (time.perf_counter() - rec.t0)) > 0:
        await asyncio.sleep(min(30.0, left))
        if samples and not with_progress:
            s = samples[-1]
            console.print(
                f"t={s.t_s / 60:5.1f} min  rss {s.rss_mb:6.1f} MB  heap {s.heap_mb or 0:6.1f} MB  fds {s.fds}  "
                f"threads {s.threads}  segments {len(rec.segments)}  errors {sum(rec.errors.values())}"
            )
    stop.set()
    load_end = time.perf_counter() - rec.t0
    done, pending = await asyncio.wait(tasks, timeout=load.DRAIN_TIMEOUT_S + 30)
    for t in pending:
        t.cancel()
    for t in done:
        if t.exception() is not None:
            rec.error("lane", t.exception())
    stopped = time.perf_counter() - rec.t0
    phase[0] = "after"
    await asyncio.sleep(opts.after_s)
    if sampling is not None:
        sampling.cancel()
        await asyncio.gather(sampling, return_exceptions=True)
        last = await asyncio.to_thread(read_sample, served.pid, time.perf_counter() - rec.t0, "after")  # type: ignore[arg-type]
        if last is not None:
            samples.append(last)
    return summarize(opts, rec, samples, load_end, stopped)


# -- the report -----------------------------------------------------------------------------------------


def lat(values: list[float]) -> dict[str, Any]:
    s = report.summarize(values)
    return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in asdict(s).items()}


def summarize(
    opts: argparse.Namespace, rec: load.Recorder, samples: list[Sample], load_end: float, stopped: float
) -> dict[str, Any]:
    segs = rec.segments
    window = opts.window_minutes * 60
    early = [s.latency_ms for s in segs if s.sent_s < window]
    late = [s.latency_ms for s in segs if s.sent_s >= load_end - window]
    all_ms = [s.latency_ms for s in segs]
    p95 = report.percentile(all_ms, 95) if all_ms else None
    tail_ms = max(opts.tail_ms, 2 * p95) if p95 is not None else opts.tail_ms
    tail = [s for s in segs if s.latency_ms >= tail_ms]

    def parts(group: list[load.SegmentObs]) -> dict[str, float | None]:
        def m(xs: list[float | None]) -> float | None:
            v = [x for x in xs if x is not None]
            return round(sum(v) / len(v), 1) if v else None

        rest = [s.latency_ms - s.total_ms - (s.vad_wait_ms or 0.0) if s.total_ms is not None else None for s in group]
        return {
            "latency_ms": m([s.latency_ms for s in group]),
            "vad_wait_ms": m([s.vad_wait_ms for s in group]),
            "queue_ms": m([s.queue_ms for s in group]),
            "model_ms": m([s.model_ms for s in group]),
            "server_total_ms": m([s.total_ms for s in group]),
            "rest_ms": m(rest),  # latency - vad_wait - server total: delivery, transport, the client
        }

    load_samples = [s for s in samples if s.phase == "load"]
    slope_from = load_end - opts.slope_minutes * 60
    in_slope = [s for s in load_samples if s.t_s >= slope_from]
    after = [s for s in samples if s.phase == "after"]
    memory: dict[str, Any] = {}
    if samples:
        marks = sorted({60, 120, 300, 600, 900, 1200, 1800, 2700, 3600} | {round(load_end)})
        memory["marks"] = {
            f"{t / 60:g} min": _sample_json(m) for t in marks if t <= load_end + 1 and (m := at_mark(samples, t))
        }
        memory["first"] = _sample_json(samples[0])
        memory["after_idle"] = _sample_json(after[-1]) if after else None
        memory["after_idle_s"] = round(after[-1].t_s - stopped, 1) if after else None
        memory["slope_window_min"] = [round(slope_from / 60, 2), round(load_end / 60, 2)]
        memory["slopes_per_min"] = {
            key: (
                round(v, 3)
                if (v := slope_per_min([(s.t_s, getattr(s, key)) for s in in_slope if getattr(s, key) is not None]))
                is not None
                else None
            )
            for key in ("rss_mb", "rss_anon_mb", "heap_mb", "fds", "threads")
        }
        two = at_mark(samples, 120)
        if two is not None and after:
            memory["after_idle_minus_2min_mb"] = round(after[-1].rss_mb - two.rss_mb, 1)
        cpu0 = load_samples[0] if load_samples else None
        cpu1 = at_mark(samples, load_end)
        if cpu0 is not None and cpu1 is not None and cpu1.t_s > cpu0.t_s:
            memory["server_cores_under_load"] = round((cpu1.cpu_s - cpu0.cpu_s) / (cpu1.t_s - cpu0.t_s), 3)
        memory["fds_range"] = [min(s.fds for s in samples), max(s.fds for s in samples)]
        memory["threads_range"] = [min(s.threads for s in samples), max(s.threads for s in samples)]
    by_kind = {}
    for kind in sorted({s.kind for s in segs}):
        xs = [s.latency_ms for s in segs if s.kind == kind]
        by_kind[kind] = {**lat(xs), "tail": sum(x >= tail_ms for x in xs)}
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git": git_state(),
        "machine": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
        "load_s": round(load_end, 1),
        "memory": memory,
        "samples": [_sample_json(s) for s in samples],
        "latency": {
            "all": lat(all_ms),
            "early": {"window_min": [0, opts.window_minutes], **lat(early)},
            "late": {"window_min": [round((load_end - window) / 60, 2), round(load_end / 60, 2)], **lat(late)},
            "by_kind": by_kind,
            "tail_threshold_ms": round(tail_ms, 1),
            "tail": {
                "count": len(tail),
                "share": round(len(tail) / len(segs), 4) if segs else None,
                "by_kind": dict(Counter(s.kind for s in tail)),
                "early": sum(s.sent_s < window for s in tail),
                "late": sum(s.sent_s >= load_end - window for s in tail),
                "where": parts(tail),
                "slowest": [asdict(s) for s in sorted(tail, key=lambda s: -s.latency_ms)[:10]],
            },
            "others_where": parts([s for s in segs if s.latency_ms < tail_ms]),
            # the server closed them a second or more after their end (vad_wait): the segmenter's
            # length cap, not the load (docs/decisions.md, issue 53)
            "closed_late_by_vad": {
                "count": len(late_vad := [s for s in segs if (s.vad_wait_ms or 0) >= 1000]),
                "latency": lat([s.latency_ms for s in late_vad]),
            },
        },
        "results": {
            "segments": len(segs),
            "failed_segments": sum(not s.ok for s in segs),
            "sessions": dict(rec.sessions),
            "lost": rec.lost,
        },
        "calls": {m: {**lat(v)} for m, v in sorted(rec.calls.items())},
        "misbehaving_clients": dict(rec.misbehaved),
        "client_errors": dict(rec.errors),
    }


def _sample_json(s: Sample) -> dict[str, Any]:
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(s).items()}


def render(doc: dict[str, Any]) -> None:
    mem = doc["memory"]
    t = Table(title=f"soak: {doc['load_s'] / 60:.1f} min of load ({doc['git']['commit'][:10]})")
    for col in ("at", "RSS MB", "RssAnon MB", "heap MB", "fds", "threads"):
        t.add_column(col, justify="right")

    def row(name: str, s: dict[str, Any] | None) -> None:
        if s is not None:
            t.add_row(
                name,
                f"{s['rss_mb']:.1f}",
                f"{s['rss_anon_mb']:.1f}",
                f"{s['heap_mb'] or 0:.1f}",
                str(s["fds"]),
                str(s["threads"]),
            )

    row("idle, before", mem.get("first"))
    for name, s in mem.get("marks", {}).items():
        row(name, s)
    row(f"+{mem.get('after_idle_s')} s idle", mem.get("after_idle"))
    sl = mem.get("slopes_per_min", {})
    if sl:
        t.add_row(
            f"slope/min {mem['slope_window_min'][0]:g}-{mem['slope_window_min'][1]:g} min",
            *(
                f"{sl.get(k):+.3f}" if sl.get(k) is not None else "-"
                for k in ("rss_mb", "rss_anon_mb", "heap_mb", "fds", "threads")
            ),
        )
    console.print(t)
    lt = Table(title="segment latency (end of its audio sent -> final result), ms")
    for col in ("", "n", "p50", "p95", "p99", "max", f"≥{doc['latency']['tail_threshold_ms']:g}"):
        lt.add_column(col, justify="right")
    la = doc["latency"]
    for name, s in [("all", la["all"]), ("early", la["early"]), ("late", la["late"]), *la["by_kind"].items()]:
        lt.add_row(
            name,
            str(s["count"]),
            *(f"{s[k]:.0f}" if s[k] is not None else "-" for k in ("p50", "p95", "p99", "max")),
            str(s.get("tail", "")),
        )
    console.print(lt)
    tail = la["tail"]
    console.print(
        f"tail: {tail['count']} segments {tail['by_kind']}, early {tail['early']}, late {tail['late']}; "
        f"where (means): {tail['where']}; the others: {la['others_where']}"
    )
    res = doc["results"]
    calls = ", ".join(f"{m} n={v['count']} p95={v['p95']}" for m, v in doc["calls"].items())
    console.print(
        f"results: {res['segments']} segments, {res['failed_segments']} failed, sessions {res['sessions']}, "
        f"lost {len(res['lost'])}; calls {calls}; misbehaving {doc['misbehaving_clients']}; "
        f"client errors {sum(doc['client_errors'].values())}"
    )
    if mem.get("server_cores_under_load") is not None:
        cores = mem["server_cores_under_load"]
        console.print(f"server cores under load: {cores}; fds {mem['fds_range']}, threads {mem['threads_range']}")
    log = doc.get("server_log")
    if log:
        console.print(f"server log: {log['error_lines']} ERROR lines, {log['tracebacks']} tracebacks")
        console.print(f"access lines' codes: {log['access_codes']}", markup=False)
        for msg, n in log["errors_first"]:
            console.print(f"  {n} x {msg}", markup=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--minutes", type=float, default=30.0, help="how long the load runs")
    ap.add_argument(
        "--after-s", type=float, default=60.0, help="keep sampling the idle server this long after the load"
    )
    ap.add_argument("--sample-s", type=float, default=10.0, help="how often the server's /proc is read")
    ap.add_argument("--slope-minutes", type=float, help="slopes over the load's last N minutes (default: 2/3 of it)")
    ap.add_argument(
        "--window-minutes", type=float, help="latency early/late: the first and last N minutes (default: min(5, 1/3))"
    )
    ap.add_argument(
        "--tail-ms", type=float, default=1000.0, help="a segment this late (or 2x p95, if more) is in the tail"
    )
    ap.add_argument("--model", type=Path, default=TEST_MODEL)
    ap.add_argument("--files", default="jfk.flac,silero_test.wav", help="speech, in ../shared/audio")
    ap.add_argument("--shift-s", type=float, default=DEFAULT_SHIFT_S)
    ap.add_argument("--grpc-streams", type=int, default=8)
    ap.add_argument("--caption-streams", type=int, default=3, help="of --grpc-streams, with live captions")
    ap.add_argument("--simultaneous-streams", type=int, default=4)
    ap.add_argument("--ws-sessions", type=int, default=4)
    ap.add_argument("--translate-every-s", type=float, default=10.0)
    ap.add_argument("--text-every-s", type=float, default=5.0)
    ap.add_argument("--misbehave-every-s", type=float, default=120.0)
    ap.add_argument("--cancel-after-s", type=float, default=6.0)
    ap.add_argument("--stop-reading-s", type=float, default=30.0)
    ap.add_argument("--target", help="host:port of a running server (none is started)")
    ap.add_argument("--http-target", help="with --target: its OpenAI door's host:port (else no WebSocket sessions)")
    ap.add_argument("--server-pid", type=int, help="with --target: the server's pid, to sample its /proc")
    ap.add_argument("--server-log", type=Path, help="the server's log (started: where to write it; --target: to scan)")
    ap.add_argument(
        "--server-repo",
        type=Path,
        help="serve this checkout's translate_svc (e.g. main's, for a before/after pair; default: this one)",
    )
    ap.add_argument("--serve-arg", action="append", default=[], help="one more argument for `serve` (repeat)")
    ap.add_argument("--server-env", action="append", default=[], help="KEY=VALUE in the server's environment (repeat)")
    ap.add_argument(
        "--wrapper", help="run serve under this module (e.g. benchmarks.tools.memprobe: tracemalloc, gc counts)"
    )
    ap.add_argument("--wrapper-arg", action="append", default=[], help="one more argument for --wrapper (repeat)")
    ap.add_argument("--probe-out", type=Path, help="with --wrapper: where it writes (default: in the run's temp dir)")
    ap.add_argument("--json", type=Path, help="default: benchmarks/results/soak-<UTC time>.json")
    opts = ap.parse_args(argv)
    opts.files = [f for f in opts.files.split(",") if f]
    if opts.slope_minutes is None:
        opts.slope_minutes = opts.minutes * 2 / 3
    if opts.window_minutes is None:
        opts.window_minutes = min(5.0, opts.minutes / 3)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = opts.json or REPO / "benchmarks" / "results" / f"soak-{stamp}.json"
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    served: Served | None = None
    try:
        if opts.target:
            served = Served(opts.target, opts.http_target, opts.server_pid, log=opts.server_log)
            log_from = opts.server_log.stat().st_size if opts.server_log and opts.server_log.is_file() else 0
        else:
            served = start_server(opts, workdir)
            log_from = 0
        doc = asyncio.run(run(opts, served))
        if opts.server_repo is not None:
            doc["server_repo"] = {"path": str(opts.server_repo), **git_state(opts.server_repo)}
        code = stop_server(served)
        doc["server_exit"] = code
        doc["server_log"] = scan_log(served.log, log_from)
        if served.proc is not None and opts.server_log is None and served.log is not None:
            keep = path.with_suffix(".server.log")
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(served.log, keep)
            doc["server_log_file"] = str(keep.relative_to(REPO) if keep.is_relative_to(REPO) else keep)
        if opts.wrapper:
            doc["probe_out"] = str(opts.probe_out or workdir / "probe")
    finally:
        if served is not None and served.proc is not None and served.proc.poll() is None:
            stop_server(served)
        if not opts.wrapper:
            shutil.rmtree(workdir, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    render(doc)
    console.print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
