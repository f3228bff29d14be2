"""Load generator: N concurrent real gRPC streams against an in-process server, batching ON vs OFF.

Run from the repository root::

    python -m benchmarks.loadgen --streams 16 --model model_cache/test-model --json out/bench.json

For each config (batching ON with ``--max-batch-size``/``--max-wait-ms``, then batching OFF =
``max_batch_size 1``) it starts a fresh ``TranslateServer`` on 127.0.0.1 port 0 in this process (so
its ``on_batch`` callback records every batch) and drives it with real ``StreamingTranslate`` calls,
one gRPC channel per stream, in two phases:

1. **real time**: N streams, each a real speech file as LINEAR16 16 kHz mono in ``--chunk-ms``
   chunks paced at ``--speed`` x real time, starts spread uniformly over ``--stagger-s``
   (stream i starts at ``i * stagger / N``). When streams outnumber files, each further copy of a
   file starts ``--shift-s`` seconds later into it (and wraps), so streams cut different segments:
   identical copies would repeat every tensor shape and flatter per-shape caches (oneDNN builds a
   kernel for each new convolution shape on CPU). Per segment: the latency from "audio up to
   ``end_ms`` was sent" to the ``segment`` response (see ``benchmarks/report.py`` for every
   definition, including "streams sustained").
2. **saturation**: the same N streams at once, unpaced, 1 s chunks: capacity in audio s / wall s.

Server, sessions and clients share one asyncio loop; the model runs on the engine's own model
thread, and client pacing uses ``asyncio.sleep``, so a paced send is late only when the loop is
busy -- ``max_send_lag_ms`` in the report says by how much. Latency is measured against the
*scheduled* send time, so such lateness counts against latency, as it would for a live speaker.
The VAD runs on the server's own VAD thread (as in the real server).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import grpc
import numpy as np
import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from benchmarks import report
from benchmarks.report import BatchObs, SegmentObs, StreamObs

logger = logging.getLogger("benchmarks.loadgen")

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "audio"
DEFAULT_FILES = "silero_test.wav,jfk.flac"
DEFAULT_SHIFT_S = 1.37
DEFAULT_TEST_MODEL = REPO / "model_cache" / "test-model"
SAMPLE_RATE = 16000
#: loadgen option -> the settings field that takes it, by the names builds have used (first found wins).
#: An option whose field this build lacks is refused with exit code 2.
SETTINGS_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "forced_tokens_per_s": (("model", "forced_text_tokens_per_s"), ("model", "forced_tokens_per_s")),
    "forced_units_per_s": (("model", "forced_units_per_s"),),
    "cpu_threads": (("model", "cpu_threads"),),
}

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)
console = Console(width=None if sys.stdout.isatty() else 132)  # piped: wide enough for one line a row


@dataclass(frozen=True)
class RunOptions:
    streams: int
    model: Path
    device: str
    dtype: str
    max_batch_size: int
    max_wait_ms: float
    speed: float
    stagger_s: float
    chunk_ms: int
    saturation_chunk_ms: int
    files: tuple[str, ...]
    targets: tuple[str, ...]
    speech: bool
    configs: tuple[str, ...]
    slo_ms: float
    behind_s: float
    timeout_s: float
    cpu_threads: int | None
    forced_tokens_per_s: float | None
    forced_units_per_s: float | None
    shift_s: float = DEFAULT_SHIFT_S


@dataclass(frozen=True)
class Clip:
    name: str
    pcm: np.ndarray  # 16 kHz mono int16

    @property
    def audio_ms(self) -> float:
        return len(self.pcm) * 1000.0 / SAMPLE_RATE


# -- settings -------------------------------------------------------------------------------


def settings_field_for(option: str) -> tuple[str, str] | None:
    """(section, field) of the settings field that takes loadgen's ``option``, if this build has one."""
    from translate_svc.settings import Settings

    for section, name in SETTINGS_FIELDS[option]:
        info = Settings.model_fields.get(section)
        fields = getattr(info.annotation, "model_fields", None) if info is not None else None
        if fields is not None and name in fields:
            return (section, name)
    return None


def build_settings(opts: RunOptions, max_batch_size: int) -> Any:
    from translate_svc.settings import Settings

    over: dict[str, Any] = {
        "model": {"path": opts.model, "device": opts.device, "dtype": opts.dtype},
        "server": {"host": "127.0.0.1", "port": 0, "grace_s": 2.0, "metrics_port": None},
        "engine": {"max_batch_size": max_batch_size, "max_wait_ms": opts.max_wait_ms},
    }
    for option in SETTINGS_FIELDS:
        value = getattr(opts, option)
        if value is None:
            continue
        where = settings_field_for(option)
        if where is None:
            raise ValueError(f"--{option.replace('_', '-')}: not supported by this build")
        over.setdefault(where[0], {})[where[1]] = value
    return Settings.model_validate(over)


# -- one stream -----------------------------------------------------------------------------


async def drive_stream(
    target: str,
    index: int,
    clip: Clip,
    *,
    targets: tuple[str, ...],
    speech: bool,
    chunk_ms: int,
    speed: float | None,
    start_at: float,
    timeout_s: float,
    on_started: Callable[[Any], None] | None = None,
) -> StreamObs:
    """One StreamingTranslate call; ``speed=None`` sends as fast as gRPC takes it."""
    from translate_svc import client
    from translate_svc.api.v1 import translate_pb2 as pb
    from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

    await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
    step = SAMPLE_RATE * chunk_ms // 1000
    n_chunks = math.ceil(len(clip.pcm) / step)
    state = {"start": time.perf_counter(), "last_audio": math.nan, "lag": 0.0}

    async def requests() -> AsyncIterator[Any]:
        yield pb.StreamingTranslateRequest(
            config=pb.StreamingConfig(
                format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=SAMPLE_RATE, channels=1),
                target_languages=list(targets),
                output=pb.OutputOptions(text=True, speech=speech, transcript=False),
            )
        )
        for k in range(n_chunks):
            end = min((k + 1) * step, len(clip.pcm))
            if speed is not None:
                due = state["start"] + end / SAMPLE_RATE / speed
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                state["lag"] = max(state["lag"], (time.perf_counter() - due) * 1000.0)
                state["last_audio"] = due
            else:
                state["last_audio"] = time.perf_counter()
            yield pb.StreamingTranslateRequest(audio=clip.pcm[k * step : end].tobytes())

    segments: list[SegmentObs] = []
    ended: float | None = None
    error: str | None = None
    ch = client.channel(target)
    try:
        stub = pb_grpc.TranslatorStub(ch)
        state["start"] = time.perf_counter()
        call = stub.StreamingTranslate(requests(), timeout=timeout_s)
        async for resp in call:
            now = time.perf_counter()
            kind = resp.WhichOneof("response")
            if kind == "segment":
                s = resp.segment
                segments.append(
                    SegmentObs(
                        segment_id=s.segment_id,
                        end_ms=s.end_ms,
                        arrival_s=now,
                        ok=s.status.code == 0,
                        speech_ms=sum(t.audio.duration_ms for t in s.translations),
                        server_total_ms=s.timing.total_ms,
                        vad_wait_ms=s.timing.vad_wait_ms,
                        failure=None if s.status.code == 0 else _code_name(s.status.code),
                    )
                )
            elif kind == "ended":
                ended = now
            elif kind == "started" and on_started is not None:
                on_started(resp.started)
    except grpc.aio.AioRpcError as e:  # recorded; the other streams go on
        error = f"{e.code().name}: {e.details()}"
        logger.warning("stream %d (%s) failed: %s", index, clip.name, error)
    finally:
        await ch.close()
    return StreamObs(
        index=index,
        file=clip.name,
        audio_ms=clip.audio_ms,
        start_s=state["start"],
        last_audio_s=state["last_audio"],
        ended_s=ended,
        segments=tuple(segments),
        error=error,
        max_send_lag_ms=state["lag"],
    )


# -- one config -----------------------------------------------------------------------------


async def run_phase(
    target: str,
    clips: list[Clip],
    opts: RunOptions,
    batches: list[BatchObs],
    on_started: Callable[[Any], None],
    *,
    chunk_ms: int,
    speed: float | None,
    stagger_s: float,
) -> tuple[list[StreamObs], list[BatchObs], tuple[report.CpuSnapshot | None, report.CpuSnapshot | None]]:
    """One stream per clip, stream i starting at ``i * stagger_s / N``; the batches that ran meanwhile."""
    batches.clear()
    before = cpu_snapshot()
    base = time.perf_counter() + 0.05
    n = len(clips)
    streams = await asyncio.gather(
        *(
            drive_stream(
                target,
                i,
                clip,
                targets=opts.targets,
                speech=opts.speech,
                chunk_ms=chunk_ms,
                speed=speed,
                start_at=base + i * stagger_s / n,
                timeout_s=opts.timeout_s,
                on_started=on_started,
            )
            for i, clip in enumerate(clips)
        )
    )
    return list(streams), list(batches), (before, cpu_snapshot())


async def run_config(name: str, max_batch_size: int, opts: RunOptions, clips: list[Clip]) -> dict[str, Any]:
    """A fresh server with ``max_batch_size``; the real-time phase, then the saturation phase."""
    from translate_svc import client
    from translate_svc.api.v1 import translate_pb2 as pb
    from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
    from translate_svc.app import build
    from translate_svc.transport.server import TranslateServer

    settings = build_settings(opts, max_batch_size)
    batches: list[BatchObs] = []

    def on_batch(b: Any) -> None:
        batches.append(BatchObs(b.size, b.padded_audio_s, b.model_ms, tuple(b.queue_ms)))

    started_models: set[tuple[str, str, bool]] = set()

    def on_started(msg: Any) -> None:
        started_models.add((msg.model.name, msg.model.revision, msg.model.is_test_model))

    server = TranslateServer(build(settings, on_batch=on_batch))
    try:
        t0 = time.perf_counter()
        port = await server.start()
        load_s = time.perf_counter() - t0
        target = f"127.0.0.1:{port}"
        runner: Any = server.app.engine.runner  # the SeamlessRunner: its torch model is described below
        assert runner is not None
        forced = getattr(settings.model, "forced_text_tokens_per_s", None)
        ch = client.channel(target)
        try:
            langs = await pb_grpc.TranslatorStub(ch).ListLanguages(pb.ListLanguagesRequest(), timeout=30)
        finally:
            await ch.close()
        model = {
            "name": langs.model.name,
            "revision": langs.model.revision,
            "is_test_model": langs.model.is_test_model,
            "parameters": sum(p.numel() for p in runner.model.parameters()),
            "device": str(runner.device),
            "dtype": str(runner.dtype).removeprefix("torch."),
            "device_name": _device_name(runner.device),
            "torch_threads": _torch_threads(runner.device),
            "forced_text_tokens_per_s": forced,
            "forced_units_per_s": getattr(settings.model, "forced_units_per_s", None) if forced else None,
        }
        logger.info("[%s] server on port %d, model %s loaded in %.1f s", name, port, model["name"], load_s)

        n = opts.streams
        assign = stream_clips(clips, n, opts.shift_s)

        logger.info("[%s] real-time phase: %d streams at %.2gx, stagger %.1f s", name, n, opts.speed, opts.stagger_s)
        rt_streams, rt_batches, rt_cpu = await run_phase(
            target,
            assign,
            opts,
            batches,
            on_started,
            chunk_ms=opts.chunk_ms,
            speed=opts.speed,
            stagger_s=opts.stagger_s,
        )
        realtime = report.realtime_summary(
            rt_streams, rt_batches, speed=opts.speed, chunk_ms=opts.chunk_ms, slo_ms=opts.slo_ms, behind_s=opts.behind_s
        )
        logger.info(
            "[%s] real-time: %d segments, p95 %s ms, %d batches",
            name, realtime["segments"], _fmt(realtime["latency_ms"]["p95"]), len(rt_batches),
        )  # fmt: skip

        logger.info("[%s] saturation phase: %d streams unpaced, %d ms chunks", name, n, opts.saturation_chunk_ms)
        sat_streams, sat_batches, sat_cpu = await run_phase(
            target, assign, opts, batches, on_started, chunk_ms=opts.saturation_chunk_ms, speed=None, stagger_s=0.0
        )
        saturation = report.saturation_summary(sat_streams, sat_batches)
        for summary, (before, after) in ((realtime, rt_cpu), (saturation, sat_cpu)):
            summary["foreign_cpu"] = report.foreign_cpu(before, after, summary["wall_s"], _cpus())
            if summary["foreign_cpu"]["share"] is not None and summary["foreign_cpu"]["share"] > 0.05:
                logger.warning(
                    "[%s] other processes used %.0f%% of this machine's CPU during a phase: its timings are disturbed",
                    name, 100 * summary["foreign_cpu"]["share"],
                )  # fmt: skip
        logger.info(
            "[%s] saturation: %.1f audio s in %s s = %s x real time",
            name, saturation["audio_s"], _fmt(saturation["wall_s"], 1), _fmt(saturation["throughput"], 2),
        )  # fmt: skip
    finally:
        await server.stop(grace=2.0)

    model["started_messages"] = [
        {"name": a, "revision": b, "is_test_model": c} for a, b, c in sorted(started_models)
    ]  # every stream saw the same model (one entry) unless something is badly wrong
    return {
        "name": name,
        "max_batch_size": max_batch_size,
        "max_wait_ms": opts.max_wait_ms,
        "settings": settings.model_dump(mode="json"),
        "model": model,
        "load_s": load_s,
        "realtime": realtime,
        "saturation": saturation,
        "streams": {
            "realtime": [_stream_json(s, opts) for s in rt_streams],
            "saturation": [_stream_json(s, None) for s in sat_streams],
        },
        # every batch in order: [size, padded audio s, model ms]
        "batch_log": {
            "realtime": [[b.size, round(b.padded_audio_s, 3), round(b.model_ms, 1)] for b in rt_batches],
            "saturation": [[b.size, round(b.padded_audio_s, 3), round(b.model_ms, 1)] for b in sat_batches],
        },
    }


def _stream_json(s: StreamObs, opts: RunOptions | None) -> dict[str, Any]:
    lat = report.segment_latencies_ms(s, speed=opts.speed, chunk_ms=opts.chunk_ms) if opts is not None else []
    out: dict[str, Any] = {
        "index": s.index,
        "file": s.file,
        "audio_s": s.audio_ms / 1000.0,
        "segments": len(s.segments),
        "error": s.error,
        "end_after_last_audio_ms": None if s.ended_s is None else (s.ended_s - s.last_audio_s) * 1000.0,
        "max_send_lag_ms": s.max_send_lag_ms,
    }
    if lat:
        out["latency_ms"] = [round(ms, 1) for _, ms in lat]
    return out


def _torch_threads(device: Any) -> int:
    """torch's CPU threads once the runner has set them; warns when they leave no CPU to the loop.

    The event loop (gRPC, sessions, VAD) needs a CPU too. With one OpenMP thread per CPU the pool's
    spin-waiting workers fight the loop for the cores and small ops stall for scheduler slices: on
    a 2-CPU machine the test model ran 2-25x slower, varying from run to run.
    """
    import torch

    n = torch.get_num_threads()
    cpus = _cpus()
    if device.type == "cpu" and n >= cpus and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        logger.warning(
            "torch uses %d threads on %d CPUs shared with the event loop: timings may be slow and noisy "
            "(try --cpu-threads %d)",
            n, cpus, max(1, cpus - 1),
        )  # fmt: skip
    return n


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _device_name(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return _cpu_model()


def machine_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": _cpus(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS") if k in os.environ},
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
        info["cuda_version"] = torch.version.cuda
    return info


def _git_state() -> dict[str, Any]:
    """The commit measured, and whether the working tree differed from it."""

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD") or "unknown", "dirty": bool(git("status", "--porcelain"))}


def load_clips(files: tuple[str, ...]) -> list[Clip]:
    from translate_svc.client import load_pcm16k

    clips = []
    for f in files:
        path = Path(f)
        if not path.is_file():
            path = SHARED_AUDIO / f
        if not path.is_file():
            raise typer.BadParameter(
                f"audio file {f!r} not found (looked in . and {SHARED_AUDIO})", param_hint="--files"
            )
        clips.append(Clip(path.name, load_pcm16k(path)))
    return clips


def _code_name(code: int) -> str:
    return next((c.name for c in grpc.StatusCode if c.value[0] == code), str(code))


def stream_clips(clips: list[Clip], n: int, shift_s: float) -> list[Clip]:
    """Stream i plays clip ``i % len(clips)``; its k-th copy rotated to start ``k * shift_s`` in."""
    out = []
    for i in range(n):
        clip, k = clips[i % len(clips)], i // len(clips)
        shift = round(k * shift_s * SAMPLE_RATE) % len(clip.pcm) if len(clip.pcm) else 0
        if shift == 0:
            out.append(clip)
        else:
            rotated = np.concatenate([clip.pcm[shift:], clip.pcm[:shift]])
            out.append(Clip(f"{clip.name}@{shift / SAMPLE_RATE:.2f}s", rotated))
    return out


async def run_all(opts: RunOptions) -> dict[str, Any]:
    clips = await asyncio.to_thread(load_clips, opts.files)
    results: dict[str, Any] = {}
    for config in opts.configs:
        size = opts.max_batch_size if config == "on" else 1
        results[f"batching_{config}"] = await run_config(f"batching_{config}", size, opts, clips)
    first = next(iter(results.values()))
    model = {k: v for k, v in first["model"].items() if k != "started_messages"}
    model["caveat"] = report.model_caveat(
        model["is_test_model"], model["parameters"], model["forced_text_tokens_per_s"], model["forced_units_per_s"]
    )
    out: dict[str, Any] = {
        "schema": "translate_svc.benchmarks.loadgen/1",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, "-m", "benchmarks.loadgen", *sys.argv[1:]]),
        "git": _git_state(),
        "machine": machine_info(),
        "model": model,
        "config": {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in opts.__dict__.items()},
            "clips": [{"name": c.name, "audio_s": c.audio_ms / 1000.0} for c in clips],
        },
        "definitions": report.DEFINITIONS,
        "results": results,
    }
    if "batching_on" in results and "batching_off" in results:
        out["ratios"] = report.ratio_table(results["batching_on"], results["batching_off"])
    return out


# -- the report for people ------------------------------------------------------------------


def _fmt_failures(failures: dict[str, int] | None) -> str:
    return ", ".join(f"{code} x{n}" for code, n in (failures or {}).items()) or "none"


def _fmt(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def render(doc: dict[str, Any]) -> None:
    model, machine, cfg = doc["model"], doc["machine"], doc["config"]
    results = doc["results"]
    if model["caveat"]:
        console.print(Panel(model["caveat"], title="[bold yellow]TEST MODEL[/]", border_style="yellow"))
    console.print(
        f"model [bold]{model['name']}[/] ({model['revision']}, {model['parameters'] / 1e6:,.1f} M parameters) on "
        f"{model['device']} {model['dtype']} ({model['device_name']}); {machine['cpus_usable']} CPUs, "
        f"torch {machine['torch']} ({model['torch_threads']} threads); git {doc['git']['commit'][:10]}"
        f"{' (dirty tree)' if doc['git']['dirty'] else ''}; {cfg['streams']} streams of {', '.join(cfg['files'])} "
        f"-> {','.join(cfg['targets'])}, speech {'on' if cfg['speech'] else 'off'}, "
        f"{cfg['speed']:g}x real time, stagger {cfg['stagger_s']:g} s"
    )
    names = list(results)
    table = Table(title=f"translate_svc load test: {cfg['streams']} streams", show_lines=False)
    table.add_column("metric")
    for n in names:
        r = results[n]
        table.add_column(f"{n.replace('_', ' ')}\n(max batch {r['max_batch_size']}, wait {r['max_wait_ms']:g} ms)")
    ratios = {row["path"]: row for row in doc.get("ratios", [])}
    if ratios:
        table.add_column("ON / OFF")

    def row(label: str, path: tuple[str, ...], fmt: Callable[[Any], str], end_section: bool = False) -> None:
        cells = [fmt(report.lookup(results[n], path)) for n in names]
        if ratios:
            rr = ratios.get(".".join(path))
            cells.append("" if rr is None else _fmt(rr["ratio"], 2) + "x")
        table.add_row(label, *cells, end_section=end_section)

    ms = lambda x: _fmt(x)  # noqa: E731
    table.add_row("[bold]real-time phase[/]", *[""] * (len(table.columns) - 1))
    row("segments (failed)", ("realtime",), lambda r: f"{r['segments']} ({r['failed_segments']})")
    row("latency p50 (ms)", ("realtime", "latency_ms", "p50"), ms)
    row("latency p95 (ms)", ("realtime", "latency_ms", "p95"), ms)
    row("latency p99 (ms)", ("realtime", "latency_ms", "p99"), ms)
    row("latency max (ms)", ("realtime", "latency_ms", "max"), ms)
    row("first translated audio p95 (ms)", ("realtime", "first_audio_latency_ms", "p95"), ms)
    row(
        "server closed->ready p50/p95 (ms)",
        ("realtime", "server_total_ms"),
        lambda s: f"{ms(s['p50'])} / {ms(s['p95'])}",
    )
    row(
        "VAD wait (end_ms -> closed) p50/p95 (ms)",
        ("realtime", "vad_wait_ms"),
        lambda s: f"{ms(s['p50'])} / {ms(s['p95'])}",
    )
    row("throughput (audio s / s)", ("realtime", "throughput"), lambda x: _fmt(x, 2))
    row("failed segments by status", ("realtime", "segment_failures"), _fmt_failures)
    row("streams behind / failed", ("realtime",), lambda r: f"{r['streams_behind']} / {r['streams_failed']}")
    row("max client send lag (ms)", ("realtime", "max_send_lag_ms"), ms)
    row("other processes' CPU share", ("realtime", "foreign_cpu", "share"), _pct)
    row(
        f"streams sustained (p95 <= {cfg['slo_ms']:g} ms)",
        ("realtime",),
        lambda r: (
            f"[green]{r['streams_sustained']} ✓[/]" if r["streams_sustained"] else f"[red]0 ✗ (of {r['streams']})[/]"
        ),
    )
    row("batch size: mean", ("realtime", "batches", "mean_size"), lambda x: _fmt(x, 2))
    row("batch size: histogram", ("realtime", "batches", "size_histogram"), report.format_histogram)
    row("queue wait p50/p95 (ms)", ("realtime", "batches", "queue_ms"), lambda q: f"{ms(q['p50'])} / {ms(q['p95'])}")
    row(
        "model ms per batch p50/mean",
        ("realtime", "batches", "model_ms_per_batch"),
        lambda s: f"{ms(s['p50'])} / {ms(s['mean'])}",
    )
    row("model ms per segment", ("realtime", "batches", "model_ms_per_segment"), lambda x: _fmt(x, 1), True)
    table.add_row("[bold]saturation phase[/]", *[""] * (len(table.columns) - 1))
    row("segments (failed)", ("saturation",), lambda r: f"{r['segments']} ({r['failed_segments']})")
    row("audio s / wall s", ("saturation",), lambda r: f"{_fmt(r['audio_s'], 1)} / {_fmt(r['wall_s'], 1)}")
    row("throughput (audio s / s)", ("saturation", "throughput"), lambda x: _fmt(x, 2))
    row("failed segments by status", ("saturation", "segment_failures"), _fmt_failures)
    row("batch size: mean", ("saturation", "batches", "mean_size"), lambda x: _fmt(x, 2))
    row("batch size: histogram", ("saturation", "batches", "size_histogram"), report.format_histogram)
    row(
        "model ms per batch p50/mean",
        ("saturation", "batches", "model_ms_per_batch"),
        lambda s: f"{ms(s['p50'])} / {ms(s['mean'])}",
    )
    row("model ms per segment", ("saturation", "batches", "model_ms_per_segment"), lambda x: _fmt(x, 1))
    row("model busy (s of wall)", ("saturation", "batches", "model_busy_s"), lambda x: _fmt(x, 1))
    row("other processes' CPU share", ("saturation", "foreign_cpu", "share"), _pct)
    console.print(table)
    for n in names:
        for phase in ("realtime", "saturation"):
            for err in results[n][phase]["errors"]:
                console.print(f"[red]{n} {phase}: {err}[/]")


# -- CLI --------------------------------------------------------------------------------------


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


@app.command()
def main(
    streams: Annotated[int, typer.Option(min=1, help="concurrent streams")] = 16,
    model: Annotated[Path, typer.Option(help="model directory")] = DEFAULT_TEST_MODEL,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16")] = "auto",
    max_batch_size: Annotated[int, typer.Option(min=1, help="batching ON: segments per batch")] = 16,
    max_wait_ms: Annotated[float, typer.Option(min=0, help="batching ON and OFF: longest wait to fill a batch")] = 10.0,
    speed: Annotated[float, typer.Option(min=0.01, help="real-time phase pacing: k means k x real time")] = 1.0,
    stagger_s: Annotated[float, typer.Option(min=0, help="stream starts spread over this many seconds")] = 2.0,
    chunk_ms: Annotated[int, typer.Option(min=10, help="real-time phase chunk length")] = 100,
    saturation_chunk_ms: Annotated[int, typer.Option(min=10, help="saturation phase chunk length")] = 1000,
    files: Annotated[str, typer.Option(help="comma list; names in ../shared/audio or paths")] = DEFAULT_FILES,
    shift_s: Annotated[
        float, typer.Option(min=0, help="each further copy of a file starts this much later (0: identical copies)")
    ] = DEFAULT_SHIFT_S,
    to: Annotated[str, typer.Option(help="target languages, comma list")] = "spa",
    speech: Annotated[bool, typer.Option("--speech/--no-speech", help="ask for translated speech")] = True,
    configs: Annotated[str, typer.Option(help="which configs to run: on, off or on,off")] = "on,off",
    slo_ms: Annotated[float, typer.Option(help="p95 latency bound for 'streams sustained'")] = report.DEFAULT_SLO_MS,
    behind_s: Annotated[float, typer.Option(help="a stream whose end comes later than this fell behind")] = (
        report.DEFAULT_BEHIND_S
    ),
    timeout_s: Annotated[float, typer.Option(help="deadline of each stream call")] = 1800.0,
    cpu_threads: Annotated[
        int | None, typer.Option(min=1, help="model.cpu_threads (torch CPU threads); default: the server's")
    ] = None,
    forced_tokens_per_s: Annotated[
        float | None,
        typer.Option(
            help="random weights only: force this many text tokens per audio second "
            "(model.forced_text_tokens_per_s; refused by builds without it)"
        ),
    ] = None,
    forced_units_per_s: Annotated[
        float | None, typer.Option(help="with --forced-tokens-per-s: units per audio second (server default 50)")
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the machine-readable report here")] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "INFO",
) -> None:
    """Run the benchmark; print a table; optionally write JSON."""
    from pydantic import ValidationError

    from translate_svc import logging_setup

    logging_setup.configure(log_level.upper())
    err = Console(stderr=True)
    given = {
        "cpu_threads": cpu_threads,
        "forced_tokens_per_s": forced_tokens_per_s,
        "forced_units_per_s": forced_units_per_s,
    }
    for option, value in given.items():
        if value is not None and settings_field_for(option) is None:
            err.print(f"--{option.replace('_', '-')}: not supported by this build (no such setting)")
            raise typer.Exit(2)
    if forced_units_per_s is not None and forced_tokens_per_s is None:
        raise typer.BadParameter("needs --forced-tokens-per-s", param_hint="--forced-units-per-s")
    chosen = _csv(configs)
    if not chosen or any(c not in ("on", "off") for c in chosen):
        raise typer.BadParameter("use on, off or on,off", param_hint="--configs")
    if model.resolve() == DEFAULT_TEST_MODEL and not (model / "config.json").is_file():
        from translate_svc.model.test_checkpoint import build_test_checkpoint

        logger.info("building the test checkpoint in %s", model)
        build_test_checkpoint(model)
    opts = RunOptions(
        streams=streams,
        model=model,
        device=device,
        dtype=dtype,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        speed=speed,
        stagger_s=stagger_s,
        chunk_ms=chunk_ms,
        saturation_chunk_ms=saturation_chunk_ms,
        files=_csv(files),
        shift_s=shift_s,
        targets=_csv(to),
        speech=speech,
        configs=chosen,
        slo_ms=slo_ms,
        behind_s=behind_s,
        timeout_s=timeout_s,
        cpu_threads=cpu_threads,
        forced_tokens_per_s=forced_tokens_per_s,
        forced_units_per_s=forced_units_per_s,
    )
    try:
        build_settings(opts, max_batch_size)  # fail before loading anything
    except ValidationError as e:
        err.print(f"invalid settings: {e}")
        raise typer.Exit(2) from e
    t0 = time.perf_counter()
    doc = asyncio.run(run_all(opts))
    doc["wall_s"] = time.perf_counter() - t0
    render(doc)
    console.print(f"benchmark wall time {doc['wall_s']:.0f} s")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(doc, indent=2) + "\n")
        logger.info("wrote %s", json_path)


if __name__ == "__main__":
    app()
